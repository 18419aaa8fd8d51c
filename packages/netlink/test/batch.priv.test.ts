// Handle.batch against the real kernel: several requests in one datagram, each with its own outcome in
// order; a failing request in the middle does not stop the ones after it; sync and async forms agree
// with `ip` as the oracle.
import { ipJson, requireRoot, withNetns } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { type BatchRequest, Handle, IfFlag, NetlinkError, Netns } from '../src/index.js';

const requests = (addr: string): BatchRequest[] => [
  { op: 'linkSet', link: { index: 1, flags: IfFlag.UP, change: IfFlag.UP } },
  { op: 'addrNew', addr: { index: 1, prefixLen: 32, local: addr, address: addr } },
  // no such interface: NotFound in its slot, the rest still runs
  { op: 'addrNew', addr: { index: 999_999, prefixLen: 32, local: '10.244.77.9', address: '10.244.77.9' } },
  { op: 'routeNew', route: { dst: '10.244.78.0', dstLen: 24, oif: 1, scope: 253, type: 1, protocol: 4 } },
  { op: 'linkGet', link: { name: 'lo' } },
];

describe('Handle.batch', () => {
  for (const form of ['sync', 'async'] as const) {
    it(`${form}: one outcome per request, in order, a failure in the middle isolated`, async (ctx) => {
      requireRoot(ctx);
      await withNetns(async (t) => {
        using ns = Netns.open({ name: t.name });
        using h = Handle.open(ns);
        const reqs = requests('10.244.77.1');
        const out = form === 'sync' ? h.batch(reqs) : await h.batchAsync(reqs);
        expect(out).toHaveLength(5);
        expect(out.map((o) => o.error?.code)).toEqual([
          undefined,
          undefined,
          'NotFound',
          undefined,
          undefined,
        ]);
        expect(out[2]?.error).toBeInstanceOf(NetlinkError);
        expect(out[2]?.error).toMatchObject({ op: 'addrNew', target: '10.244.77.9' });
        expect(out[4]?.link).toMatchObject({ name: 'lo', index: 1 });
        const addrs = ipJson<{ addr_info: { local: string }[] }[]>(['addr', 'show', 'dev', 'lo'], t.name);
        expect(addrs[0]?.addr_info.map((a) => a.local)).toContain('10.244.77.1');
        const routes = ipJson<{ dst: string }[]>(['route', 'show'], t.name).map((r) => r.dst);
        expect(routes).toContain('10.244.78.0/24');
        // The same batch again: the creates now fail with AlreadyExists, each in its own slot.
        const again = form === 'sync' ? h.batch(reqs) : await h.batchAsync(reqs);
        expect(again.map((o) => o.error?.code)).toEqual([
          undefined,
          'AlreadyExists',
          'NotFound',
          'AlreadyExists',
          undefined,
        ]);
        // The handle stays usable for single requests afterwards.
        expect(h.linkGet({ name: 'lo' }).index).toBe(1);
      });
    });
  }

  it('refuses an empty batch before anything is sent', (ctx) => {
    requireRoot(ctx);
    using h = Handle.open();
    expect(() => h.batch([])).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});
