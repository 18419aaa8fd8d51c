import { closeSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { ipJson, requireRoot, run, uniqueName, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Handle, IfFlag, NetlinkError, Netns, netnsAdd, netnsDelete, netnsList } from '../src/index.js';

const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

describe('named network namespaces', () => {
  it('creates a namespace that ip netns sees and enters, and deletes it', (ctx) => {
    requireRoot(ctx);
    const name = uniqueName();
    const before = selfNs();
    const ns = netnsAdd(name);
    try {
      expect(selfNs()).toBe(before); // unshare happened, and was undone
      expect(netnsList()).toContain(name);
      expect(run('ip', ['netns', 'list'])).toContain(name);
      // The namespace is a fresh one: only a loopback, which iproute2 sees down.
      const links = ipJson<{ ifname: string; flags: string[] }[]>(['link', 'show'], name);
      expect(links.map((l) => l.ifname)).toEqual(['lo']);
      using again = Netns.open({ name });
      expect(ns.sameAs(again)).toBe(true);
      using here = Netns.current();
      expect(ns.sameAs(here)).toBe(false);
    } finally {
      ns.close();
      netnsDelete(name);
    }
    expect(netnsList()).not.toContain(name);
    expect(() => netnsDelete(name)).toThrow(expect.objectContaining({ code: 'NotFound' }));
  });

  it('refuses a duplicate name and bad names, leaving nothing behind', (ctx) => {
    requireRoot(ctx);
    const name = uniqueName();
    netnsAdd(name).close();
    try {
      expect(() => netnsAdd(name)).toThrow(expect.objectContaining({ code: 'AlreadyExists' }));
      expect(netnsList().filter((n) => n === name)).toHaveLength(1);
    } finally {
      netnsDelete(name);
    }
    for (const bad of ['', '.', '..', 'a/b']) {
      expect(() => netnsAdd(bad)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
  });

  it('opens by name, path and pid, and refuses paths that are not nsfs', async (ctx) => {
    requireRoot(ctx);
    await withNetns((t) => {
      using a = Netns.open({ name: t.name });
      using b = Netns.open({ path: t.path });
      expect(a.sameAs(b)).toBe(true);
      using me = Netns.open({ pid: process.pid });
      using cur = Netns.current();
      expect(me.sameAs(cur)).toBe(true);
    });
    expect(() => Netns.open({ path: '/etc/hostname' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => Netns.open({ name: uniqueName() })).toThrow(expect.objectContaining({ code: 'NotFound' }));
  });

  it('refuses a namespace file of another kind and a missing reference with a typed error', (ctx) => {
    requireRoot(ctx);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    for (const kind of ['mnt', 'uts', 'ipc', 'pid']) {
      const err = (() => {
        try {
          Netns.open({ path: `/proc/self/ns/${kind}` });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(NetlinkError);
      expect(err).toMatchObject({ code: 'InvalidArgument', target: `/proc/self/ns/${kind}` });
      expect((err as Error).message).toContain(`a ${kind} namespace, not a network namespace`);
    }
    for (const bad of [null, undefined, 'blue', 7]) {
      expect(() => Netns.open(bad as never)).toThrow(NetlinkError);
      expect(() => Netns.open(bad as never)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
    expect(fds()).toBe(before); // nothing opened along the way stays open
  });

  it('dup() gives an independent handle on the same namespace', async (ctx) => {
    requireRoot(ctx);
    await withNetns((t) => {
      const ns = Netns.open({ name: t.name });
      using copy = ns.dup();
      ns.close();
      expect(copy.path).toBe(t.path);
      expect(copy.run(() => selfNs())).toBe(`net:[${copy.id.ino}]`);
      expect(() => ns.dup()).toThrow(expect.objectContaining({ code: 'BadFd' }));
    });
  });

  it('Handle.openAsync and openFileAsync act inside the namespace, made off the event loop', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      const before = selfNs();
      run('ip', ['-n', t.name, 'link', 'add', 'dpa0', 'type', 'veth', 'peer', 'name', 'dpa1']);
      run('ip', ['netns', 'exec', t.name, 'sysctl', '-qw', 'net.ipv4.conf.all.forwarding=1']);
      const ns = Netns.open({ name: t.name });
      try {
        const handles = await Promise.all([1, 2, 3].map(() => Handle.openAsync(ns)));
        for (const h of handles) {
          expect(h.linkGet({ name: 'dpa1' }).name).toBe('dpa1'); // only inside the namespace
          h.close();
        }
        const fd = await ns.openFileAsync('/proc/sys/net/ipv4/conf/all/forwarding', 'r');
        try {
          expect(readFileSync(fd, 'utf8').trim()).toBe('1');
        } finally {
          closeSync(fd);
        }
        expect(selfNs()).toBe(before);
        await expect(ns.openFileAsync('/proc/sys/net/nope', 'r')).rejects.toMatchObject({ code: 'NotFound' });
      } finally {
        ns.close();
      }
      await expect(Handle.openAsync(ns)).rejects.toMatchObject({ code: 'BadFd' });
      await expect(ns.openFileAsync('/proc/sys/net/ipv4/ip_forward', 'r')).rejects.toMatchObject({
        code: 'BadFd',
      });
    });
  });

  it('runs a synchronous call inside and restores the namespace, even when it throws', async (ctx) => {
    requireRoot(ctx);
    await withNetns((t) => {
      using ns = Netns.open({ name: t.name });
      const before = selfNs();
      const inside = ns.run(() => selfNs());
      expect(inside).not.toBe(before);
      expect(selfNs()).toBe(before);
      expect(() =>
        ns.run(() => {
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(selfNs()).toBe(before);
      // A sysctl written inside lands in that namespace only.
      const path = '/proc/sys/net/ipv4/conf/lo/rp_filter';
      const outside = readFileSync(path, 'utf8');
      ns.run(() => writeFileSync(path, '2'));
      expect(readFileSync(path, 'utf8')).toBe(outside);
      expect(run('ip', ['netns', 'exec', t.name, 'cat', path]).trim()).toBe('2');
      expect(() => ns.run(() => Promise.resolve(1))).toThrow(
        expect.objectContaining({ code: 'InvalidArgument' }),
      );
      expect(selfNs()).toBe(before);
    });
  });
});

describe('nested namespace windows', () => {
  it('restores each level, and a handle opened inside a window stays in its own namespace', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) => {
      using nsA = Netns.open({ name: a.name });
      using nsB = Netns.open({ name: b.name });
      const outer = selfNs();
      const seen = nsA.run(() => {
        const inA = selfNs();
        const inB = nsB.run(() => selfNs());
        const h = Handle.open(nsB); // opened from inside A, bound to B
        h.linkNew({ name: 'inb0', info: { kind: 'veth', peer: { name: 'inb1' } } });
        h.close();
        return { inA, inB, back: selfNs() };
      });
      expect(seen.inA).not.toBe(outer);
      expect(seen.inB).not.toBe(seen.inA);
      expect(seen.back).toBe(seen.inA);
      expect(selfNs()).toBe(outer);
      expect(
        ipJson<{ ifname: string }[]>(['link', 'show'], b.name)
          .map((l) => l.ifname)
          .sort(),
      ).toEqual(['inb0', 'inb1', 'lo']);
      expect(ipJson<{ ifname: string }[]>(['link', 'show'], a.name).map((l) => l.ifname)).toEqual(['lo']);
    });
  });
});

describe('Handle bound to a namespace', () => {
  it('acts in its namespace without further setns, and maps kernel errors with their extended ACK', async (ctx) => {
    requireRoot(ctx);
    await withNetns((t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      const name = uniqueName();
      h.linkNew({
        name,
        mtu: 1400,
        address: '02:00:00:00:00:aa',
        info: { kind: 'veth', peer: { name: `${name}p` } },
      });
      const links = ipJson<{ ifname: string; mtu: number; address: string }[]>(
        ['link', 'show', name],
        t.name,
      );
      expect(links[0]).toMatchObject({ ifname: name, mtu: 1400, address: '02:00:00:00:00:aa' });
      // Nothing was created in the caller's namespace.
      expect(run('ip', ['link', 'show']).includes(name)).toBe(false);
      const got = h.linkGet({ name });
      expect(got).toMatchObject({ name, mtu: 1400, info: { kind: 'veth' } });
      h.linkSet({ index: got.index ?? 0, flags: IfFlag.UP, change: IfFlag.UP });
      expect(h.linkGet({ name }).flags! & IfFlag.UP).toBe(IfFlag.UP);
      let err: unknown;
      try {
        h.linkSet({ index: got.index ?? 0, mtu: 10 });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetlinkError);
      expect(err).toMatchObject({ code: 'InvalidArgument', errno: 22, syscall: 'RTM_SETLINK' });
      expect((err as NetlinkError).kernelMessage).toMatch(/mtu/i);
      expect(() => h.linkGet({ name: 'nope0' })).toThrow(
        expect.objectContaining({ code: 'NotFound', errno: 19 }),
      );
    });
  });
});
