// The async forms of the netlink handle against the real kernel: many requests in flight on one socket
// and on several, each answered with its own reply; cancellation before the kernel; a closed handle; a
// namespace whose name is deleted under pending requests.
import { readlinkSync } from 'node:fs';
import { ipJson, requireRoot, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Handle, IfFlag, NetlinkError, Netns, netnsDelete } from '../src/index.js';
import { nativeAddon } from '../src/sys/native.js';

const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

describe('async netlink requests', () => {
  it('runs on the native addon here (the async forms wait off the event loop)', () => {
    expect(nativeAddon).toBeDefined();
  });

  it('keeps 40 requests in flight on one handle without crossing replies', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      const before = selfNs();
      using h = Handle.open(ns);
      expect(selfNs()).toBe(before); // the socket was made inside without moving this thread
      const names = Array.from({ length: 20 }, (_, i) => `dpa${i}`);
      await Promise.all(
        names.map((name, i) => h.linkNewAsync({ name, info: { kind: 'veth', peer: { name: `dpb${i}` } } })),
      );
      // Interleave gets of different links with a failing request: each promise gets its own answer.
      const results = await Promise.allSettled([
        ...names.map((name) => h.linkGetAsync({ name })),
        h.linkGetAsync({ name: 'nosuch0' }),
        ...names.map((_, i) => h.linkGetAsync({ name: `dpb${i}` })),
      ]);
      const ok = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.name);
      expect(ok).toEqual([...names, ...names.map((_, i) => `dpb${i}`)]);
      const failed = results[names.length];
      expect(failed?.status).toBe('rejected');
      expect((failed as PromiseRejectedResult).reason).toBeInstanceOf(NetlinkError);
      expect((failed as PromiseRejectedResult).reason).toMatchObject({ code: 'NotFound', op: 'linkGet' });
      // The async dump matches the synchronous one and the independent oracle.
      const dumped = (await h.linkDumpAsync()).map((l) => l.name).sort();
      const oracle = ipJson<{ ifname: string }[]>(['link', 'show'], t.name)
        .map((l) => l.ifname)
        .sort();
      expect(dumped).toEqual(oracle);
      expect(dumped).toHaveLength(41);
      // A synchronous request while async ones run is refused, not allowed to steal a reply.
      const pending = h.linkSetAsync({ index: 1, flags: IfFlag.UP, change: IfFlag.UP });
      expect(() => h.linkGet({ name: 'lo' })).toThrow(expect.objectContaining({ code: 'Busy' }));
      await pending;
      expect(h.linkGet({ name: 'lo' }).flags! & IfFlag.UP).toBe(IfFlag.UP);
      await Promise.all(names.map((name) => h.linkDeleteAsync({ name })));
      expect(ipJson<unknown[]>(['link', 'show'], t.name)).toHaveLength(1);
      expect(selfNs()).toBe(before);
    });
  });

  it('cancels a queued request through its AbortSignal and leaves the kernel untouched', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      const ac = new AbortController();
      const first = h.linkNewAsync({ name: 'dpk0', info: { kind: 'veth', peer: { name: 'dpk1' } } });
      const second = h
        .linkNewAsync({ name: 'dpk2', info: { kind: 'veth', peer: { name: 'dpk3' } } }, 'create', {
          signal: ac.signal,
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      ac.abort(new Error('changed my mind'));
      await first;
      const err = await second;
      expect(err).toBeInstanceOf(NetlinkError);
      expect(err).toMatchObject({ code: 'Interrupted', reason: 'Aborted' });
      const names = ipJson<{ ifname: string }[]>(['link', 'show'], t.name).map((l) => l.ifname);
      expect(names).toContain('dpk0');
      expect(names).not.toContain('dpk2');
      // An already aborted signal never queues; the handle stays usable.
      await expect(h.linkGetAsync({ name: 'lo' }, { signal: AbortSignal.abort() })).rejects.toMatchObject({
        code: 'Interrupted',
      });
      expect((await h.linkGetAsync({ name: 'lo' })).index).toBe(1);
    });
  });

  it('rejects queued requests with BadFd when the handle is closed, and finishes the running one', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      const h = Handle.open(ns);
      const running = h.linkGetAsync({ name: 'lo' });
      const queued = h.linkGetAsync({ name: 'lo' }).catch((e: unknown) => e);
      h.close();
      expect((await running).index).toBe(1);
      expect(await queued).toMatchObject({ code: 'BadFd' });
      await expect(h.linkDumpAsync()).rejects.toMatchObject({ code: 'BadFd' });
    });
  });

  it('keeps working when the namespace name is deleted under pending requests', async (ctx) => {
    requireRoot(ctx);
    await withNetns(async (t) => {
      using ns = Netns.open({ name: t.name });
      using h = Handle.open(ns);
      const pending = Array.from({ length: 10 }, (_, i) =>
        h.linkNewAsync({ name: `dpz${i}`, info: { kind: 'veth', peer: { name: `dpy${i}` } } }),
      );
      netnsDelete(t.name); // the socket and our fd keep the namespace itself alive
      await Promise.all(pending);
      expect((await h.linkDumpAsync()).length).toBe(21);
      // A new handle by name now fails with a typed error; the open handle stays usable.
      expect(() => Netns.open({ name: t.name })).toThrow(expect.objectContaining({ code: 'NotFound' }));
      expect((await h.linkGetAsync({ name: 'dpz3' })).name).toBe('dpz3');
    }).catch((err: unknown) => {
      // withNetns's own cleanup finds the name gone: that is this test's doing.
      if (!(err instanceof Error) || !/netns|namespace|No such file/i.test(err.message)) throw err;
    });
  });
});
