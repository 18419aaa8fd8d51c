// Subscriptions against the real kernel, with `ip` as the oracle, in throwaway namespaces.
import { spawn } from 'node:child_process';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipJson, requireRoot, run, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Handle, type NetlinkEvent, Netns, type Subscription } from '../src/index.js';

const openFds = () => readdirSync('/proc/self/fd').length;

/** Reads events until `stop` says so; fails (with what was seen) if that takes more than 20 s. */
async function collect(sub: Subscription, stop: (ev: NetlinkEvent, all: NetlinkEvent[]) => boolean) {
  const seen: NetlinkEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${seen.length} events: ${JSON.stringify(seen.slice(-5))}`)),
      20_000,
    );
  });
  try {
    for (;;) {
      const r = await Promise.race([sub.next(), timeout]);
      if (r.done) return seen;
      seen.push(r.value);
      if (stop(r.value, seen)) return seen;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Writes an `ip -batch` file with the given lines; returns its path. */
function batchFile(lines: string[]): string {
  const file = join(tmpdir(), `dpt-batch-${process.pid}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const isMarker = (name: string) => (ev: NetlinkEvent) =>
  ev.kind === 'link' && ev.action === 'new' && ev.source === 'notify' && ev.link.name === name;

describe('Handle.subscribe', () => {
  it('reports link, addr, route and neigh changes made with ip as typed events', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      await using sub = h.subscribe(['link', 'addr', 'route', 'neigh']);
      const ip = (...args: string[]) => run('ip', ['-n', t.name, ...args]);
      ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
      ip('link', 'set', 'v1', 'up');
      ip('link', 'set', 'v0', 'up');
      ip('addr', 'add', '10.244.5.1/24', 'dev', 'v0');
      ip('route', 'add', '10.244.6.0/24', 'via', '10.244.5.2', 'dev', 'v0');
      ip('neigh', 'add', '10.244.5.9', 'lladdr', '02:00:00:00:00:09', 'dev', 'v0', 'nud', 'permanent');
      ip('neigh', 'del', '10.244.5.9', 'dev', 'v0');
      ip('route', 'del', '10.244.6.0/24');
      ip('addr', 'del', '10.244.5.1/24', 'dev', 'v0');
      ip('link', 'del', 'v0');
      const seen = await collect(
        sub,
        (ev) => ev.kind === 'link' && ev.action === 'del' && ev.link.name === 'v0',
      );
      expect(seen.every((ev) => ev.kind !== 'overrun' && ev.kind !== 'synced')).toBe(true);
      const v0 = seen.find((ev) => ev.kind === 'link' && ev.link.name === 'v0');
      expect(v0).toMatchObject({
        kind: 'link',
        action: 'new',
        source: 'notify',
        link: { info: { kind: 'veth' } },
      });
      const v0Index = v0?.kind === 'link' ? v0.link.index : -1;
      const pos = (pred: (ev: NetlinkEvent) => boolean) => seen.findIndex(pred);
      const upAt = pos(
        (ev) => ev.kind === 'link' && ev.link.name === 'v0' && ((ev.link.flags ?? 0) & 1) === 1,
      );
      const addrNew = pos(
        (ev) =>
          ev.kind === 'addr' &&
          ev.action === 'new' &&
          ev.addr.local === '10.244.5.1' &&
          ev.addr.prefixLen === 24,
      );
      const routeNew = pos(
        (ev) =>
          ev.kind === 'route' &&
          ev.action === 'new' &&
          ev.route.dst === '10.244.6.0' &&
          ev.route.dstLen === 24 &&
          ev.route.gateway === '10.244.5.2' &&
          ev.route.oif === v0Index,
      );
      const neighNew = pos(
        (ev) =>
          ev.kind === 'neigh' &&
          ev.action === 'new' &&
          ev.neigh.dst === '10.244.5.9' &&
          ev.neigh.lladdr === '02:00:00:00:00:09' &&
          ev.neigh.index === v0Index,
      );
      const neighDel = pos(
        (ev) => ev.kind === 'neigh' && ev.action === 'del' && ev.neigh.dst === '10.244.5.9',
      );
      const routeDel = pos(
        (ev) => ev.kind === 'route' && ev.action === 'del' && ev.route.dst === '10.244.6.0',
      );
      const addrDel = pos(
        (ev) => ev.kind === 'addr' && ev.action === 'del' && ev.addr.local === '10.244.5.1',
      );
      const linkDel = seen.length - 1;
      const order = [upAt, addrNew, routeNew, neighNew, neighDel, routeDel, addrDel, linkDel];
      expect(order.every((p) => p >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
    });
  });

  it('lists first, then streams; changes made during the listing are each seen exactly once', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      run('ip', ['-n', t.name, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
      const before = Array.from(
        { length: 1500 },
        (_, i) => `addr add 10.244.${10 + (i >> 8)}.${i & 255}/32 dev v0`,
      );
      const during = Array.from(
        { length: 400 },
        (_, i) => `addr add 10.244.${20 + (i >> 8)}.${i & 255}/32 dev v0`,
      );
      const pre = batchFile(before);
      const file = batchFile(during);
      try {
        run('ip', ['-n', t.name, '-batch', pre]);
        using ns = Netns.open({ name: t.name });
        using h = Handle.open(ns);
        // The child adds 400 more addresses (1900 in all) while the subscription dumps (the dump runs on the event loop).
        const child = spawn('ip', ['-n', t.name, '-batch', file], { stdio: 'ignore' });
        // A 4 MiB queue holds the notifications that pile up while the listing is read.
        await using sub = h.subscribe(['addr', 'link'], { list: true, receiveBufferSize: 4 << 20 });
        const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
        const reader = collect(sub, isMarker('mark0'));
        expect(await exited).toBe(0);
        run('ip', ['-n', t.name, 'link', 'add', 'mark0', 'type', 'veth', 'peer', 'name', 'mark1']);
        const events = await reader;
        const synced = events.findIndex((ev) => ev.kind === 'synced');
        expect(events[synced]).toEqual({ kind: 'synced', source: 'list' });
        expect(events.slice(0, synced).every((ev) => 'source' in ev && ev.source === 'list')).toBe(true);
        expect(events.some((ev) => ev.kind === 'overrun')).toBe(false);
        const count = new Map<string, number>();
        for (const ev of events)
          if (ev.kind === 'addr' && ev.action === 'new' && ev.addr.local?.startsWith('10.244.'))
            count.set(ev.addr.local, (count.get(ev.addr.local) ?? 0) + 1);
        const oracle = ipJson<{ addr_info: { family: string; local: string }[] }[]>(
          ['addr', 'show', 'dev', 'v0'],
          t.name,
        )
          .flatMap((l) => l.addr_info)
          .filter((a) => a.family === 'inet')
          .map((a) => a.local)
          .sort();
        expect(oracle).toHaveLength(1900);
        expect([...count.keys()].sort()).toEqual(oracle);
        expect([...count.values()].every((n) => n === 1)).toBe(true);
        expect(events.some((ev) => ev.kind === 'link' && ev.source === 'list' && ev.link.name === 'lo')).toBe(
          true,
        );
      } finally {
        rmSync(pre, { force: true });
        rmSync(file, { force: true });
      }
    });
  });

  it("with actions ['del']: the whole listing, then removals only (new links are not reported)", async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      const ip = (...args: string[]) => run('ip', ['-n', t.name, ...args]);
      ip('link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'a1');
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      await using sub = h.subscribe(['link'], { list: true, actions: ['del'] });
      const listed = await collect(sub, (ev) => ev.kind === 'synced');
      const names = (evs: NetlinkEvent[]) =>
        evs.flatMap((e) => (e.kind === 'link' ? [`${e.action} ${e.link.name}`] : [])).sort();
      expect(names(listed)).toEqual(['new a0', 'new a1', 'new lo']);
      ip('link', 'add', 'b0', 'type', 'veth', 'peer', 'name', 'b1');
      ip('link', 'set', 'b0', 'up');
      ip('link', 'set', 'b1', 'up');
      ip('link', 'del', 'a0');
      const after = await collect(
        sub,
        (_ev, all) => names(all).filter((n) => n.startsWith('del')).length === 2,
      );
      expect(names(after)).toEqual(['del a0', 'del a1']);
      expect(() => h.subscribe(['link'], { actions: [] })).toThrow(/actions/);
      expect(() => h.subscribe(['link'], { actions: ['gone' as 'del'] })).toThrow(/actions/);
    });
  });

  it('turns an overrun into an overrun event and a resync that equals ip -j', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      run('ip', ['-n', t.name, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
      const burst = Array.from(
        { length: 300 },
        (_, i) => `addr add 10.244.30.${i & 255}/32 dev ${i < 256 ? 'v0' : 'v1'}`,
      );
      const file = batchFile([...burst, 'link set v0 up', 'addr del 10.244.30.7/32 dev v0']);
      try {
        using ns = Netns.open({ name: t.name });
        using h = Handle.open(ns);
        await using sub = h.subscribe(['link', 'addr'], { list: true, receiveBufferSize: 4096 });
        await collect(sub, (ev) => ev.kind === 'synced');
        // The burst runs while this thread is blocked: nothing reads the tiny queue, it must overflow.
        run('ip', ['-n', t.name, '-batch', file]);
        const events = await collect(sub, (ev) => ev.kind === 'synced');
        expect(events[0]).toEqual({ kind: 'overrun' });
        expect(events.at(-1)).toEqual({ kind: 'synced', source: 'resync' });
        const listed = events.slice(1, -1);
        expect(listed.every((ev) => 'action' in ev && ev.source === 'resync' && ev.action === 'new')).toBe(
          true,
        );
        const addrs = listed
          .flatMap((ev) =>
            ev.kind === 'addr' && ev.addr.family === 2
              ? [`${ev.addr.index} ${ev.addr.local}/${ev.addr.prefixLen}`]
              : [],
          )
          .sort();
        const links = listed
          .flatMap((ev) => (ev.kind === 'link' ? [`${ev.link.index} ${ev.link.name} ${ev.link.mtu}`] : []))
          .sort();
        type IpAddr = { ifindex: number; addr_info: { family: string; local: string; prefixlen: number }[] };
        const ipAddrs = ipJson<IpAddr[]>(['addr', 'show'], t.name)
          .flatMap((l) =>
            l.addr_info
              .filter((a) => a.family === 'inet')
              .map((a) => `${l.ifindex} ${a.local}/${a.prefixlen}`),
          )
          .sort();
        const ipLinks = ipJson<{ ifindex: number; ifname: string; mtu: number }[]>(['link', 'show'], t.name)
          .map((l) => `${l.ifindex} ${l.ifname} ${l.mtu}`)
          .sort();
        expect(addrs).toEqual(ipAddrs);
        expect(addrs).toHaveLength(300); // 299 + lo's 127.0.0.1
        expect(links).toEqual(ipLinks);
        // It keeps streaming after the resync.
        run('ip', ['-n', t.name, 'addr', 'add', '10.244.31.1/32', 'dev', 'v0']);
        const after = await collect(sub, (ev) => ev.kind === 'addr' && ev.addr.local === '10.244.31.1');
        expect(after.at(-1)).toMatchObject({ kind: 'addr', action: 'new', source: 'notify' });
      } finally {
        rmSync(file, { force: true });
      }
    });
  });

  it('closing mid-stream ends the iterator and leaks no fd (close, break, abort)', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      const fds = openFds();
      const ip = (...args: string[]) => run('ip', ['-n', t.name, ...args]);

      const sub = h.subscribe(['addr', 'link'], { list: true });
      expect(openFds()).toBe(fds + 2); // its socket and its namespace
      const first = await sub.next();
      expect(first.done).toBe(false);
      const pending = sub
        .next()
        .then(() => sub.next())
        .then(() => sub.next())
        .then(() => sub.next());
      sub.close();
      expect(await pending).toEqual({ value: undefined, done: true });
      expect(await sub.next()).toEqual({ value: undefined, done: true });
      expect(openFds()).toBe(fds);

      const sub2 = h.subscribe(['link']);
      ip('link', 'add', 'b0', 'type', 'veth', 'peer', 'name', 'b1');
      let n = 0;
      for await (const ev of sub2) {
        n++;
        if (ev.kind === 'link') break;
      }
      expect(n).toBeGreaterThan(0);
      expect(await sub2.next()).toEqual({ value: undefined, done: true });
      expect(openFds()).toBe(fds);

      const ac = new AbortController();
      const sub3 = h.subscribe(['link'], { signal: ac.signal });
      const ended = (async () => {
        let count = 0;
        for await (const _ of sub3) count++;
        return count;
      })();
      setTimeout(() => ac.abort(), 50);
      expect(await ended).toBe(0);
      expect(openFds()).toBe(fds);
    });
  });

  it('rejects bad input before any syscall and a closed handle with BadFd', (ctx) => {
    requireRoot(ctx);
    const h = Handle.open();
    const fds = openFds();
    expect(() => h.subscribe([])).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => h.subscribe(['links' as 'link'])).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => h.subscribe(['link'], { receiveBufferSize: -1 })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(openFds()).toBe(fds);
    h.close();
    expect(() => h.subscribe(['link'])).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });
});
