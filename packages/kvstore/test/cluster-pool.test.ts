import { describe, expect, it } from 'vitest';
import {
  ManualClock,
  MemoryStore,
  type NodeCidrChange,
  NodeSession,
  StoreClusterPool,
} from '../src/index.js';

const v4 = { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } };
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('pool spec validation', () => {
  it('rejects bad CIDRs and masks with InvalidArgument', async () => {
    const store = new MemoryStore();
    for (const spec of [
      { ipv4: { cidrs: ['10.0.0.0/33'], nodeMaskSize: 24 } },
      { ipv4: { cidrs: ['10.0.0.256/16'], nodeMaskSize: 24 } },
      { ipv4: { cidrs: ['010.0.0.0/16'], nodeMaskSize: 24 } },
      { ipv4: { cidrs: ['10.0.0.0/16'], nodeMaskSize: 8 } },
      { ipv4: { cidrs: ['fd00::/64'], nodeMaskSize: 80 } },
      { ipv6: { cidrs: ['fd00::/48'], nodeMaskSize: 72 } },
      { ipv4: { cidrs: ['10.0.0.0/16', '10.0.0.0/8'], nodeMaskSize: 24 } },
      { ipv4: { cidrs: [], nodeMaskSize: 24 } },
      {},
    ]) {
      await expect(StoreClusterPool.open(store, spec)).rejects.toMatchObject({
        name: 'KvError',
        code: 'InvalidArgument',
      });
    }
    expect((await store.list('')).entries).toEqual([]); // nothing written
  });
});

describe('StoreClusterPool on the memory store', () => {
  it('hands out blocks in order and gives a node its blocks back (idempotent)', async () => {
    const pool = await StoreClusterPool.open(new MemoryStore(), {
      ...v4,
      ipv6: { cidrs: ['fd00:10:244::/56'], nodeMaskSize: 64 },
    });
    expect(await pool.allocate('a')).toEqual({ ipv4: '10.244.0.0/24', ipv6: 'fd00:10:244::/64' });
    expect(await pool.allocate('b')).toEqual({ ipv4: '10.244.1.0/24', ipv6: 'fd00:10:244:1::/64' });
    expect(await pool.allocate('a')).toEqual({ ipv4: '10.244.0.0/24', ipv6: 'fd00:10:244::/64' });
    expect(pool.owner('10.244.1.0/24')).toBe('b');
    expect(pool.free()).toEqual({ ipv4: 254, ipv6: 254 });
  });

  it('never hands out one block twice across concurrent replicas', async () => {
    const store = new MemoryStore();
    const replicas = await Promise.all(Array.from({ length: 6 }, () => StoreClusterPool.open(store, v4)));
    const nodes = Array.from({ length: 120 }, (_, i) => `n${i}`);
    const got = await Promise.all(nodes.map((n, i) => replicas[i % replicas.length]!.allocate(n)));
    expect(new Set(got.map((g) => g.ipv4)).size).toBe(nodes.length);
    // the same node asked through every replica at once still gets one block
    const again = await Promise.all(replicas.map((r) => r.allocate('n7')));
    expect(new Set(again.map((g) => g.ipv4))).toEqual(new Set([got[7]!.ipv4]));
    await tick();
    for (const r of replicas) expect(r.allocations().size).toBe(nodes.length);
  });

  it('reports Exhausted and gives back a block taken for the other family', async () => {
    const pool2 = await StoreClusterPool.open(new MemoryStore(), {
      ipv4: { cidrs: ['10.0.0.0/16'], nodeMaskSize: 24 },
      ipv6: { cidrs: ['fd00::/64'], nodeMaskSize: 64 },
    });
    await pool2.allocate('a');
    await expect(pool2.allocate('b')).rejects.toMatchObject({ code: 'Exhausted' });
    expect(pool2.free()).toEqual({ ipv4: 255, ipv6: 0 });
    expect(pool2.allocations().has('b')).toBe(false);
  });

  it('uses cluster CIDRs in order and refuses a different spec for an existing pool', async () => {
    const store = new MemoryStore();
    const pool = await StoreClusterPool.open(store, {
      ipv4: { cidrs: ['10.0.0.0/24', '10.1.0.0/24'], nodeMaskSize: 25 },
    });
    const got = [];
    for (const n of ['a', 'b', 'c']) got.push((await pool.allocate(n)).ipv4);
    expect(got).toEqual(['10.0.0.0/25', '10.0.0.128/25', '10.1.0.0/25']);
    await expect(
      StoreClusterPool.open(store, { ipv4: { cidrs: ['10.0.0.0/24'], nodeMaskSize: 25 } }),
    ).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
  });

  it('restores from the store after a restart', async () => {
    const store = new MemoryStore();
    const first = await StoreClusterPool.open(store, v4);
    await first.allocate('a');
    await first.allocate('b');
    await first.close();
    const second = await StoreClusterPool.open(store, v4);
    expect(second.allocations()).toEqual(
      new Map([
        ['a', { ipv4: '10.244.0.0/24' }],
        ['b', { ipv4: '10.244.1.0/24' }],
      ]),
    );
    expect(await second.allocate('b')).toEqual({ ipv4: '10.244.1.0/24' });
    expect((await second.allocate('c')).ipv4).toBe('10.244.2.0/24');
  });

  it('a listener that throws is its own failure: other listeners, the copy and other writers go on', async () => {
    const store = new MemoryStore();
    const writer = await StoreClusterPool.open(store, v4);
    const watcher = await StoreClusterPool.open(store, v4);
    const changes: NodeCidrChange[] = [];
    watcher.onChange(() => {
      throw new Error('listener bug');
    });
    watcher.onChange((c) => changes.push(c));
    expect(await writer.allocate('a')).toEqual({ ipv4: '10.244.0.0/24' });
    await new Promise((r) => setTimeout(r, 0));
    expect(changes).toEqual([{ type: 'allocated', node: 'a', cidr: '10.244.0.0/24' }]);
    expect(watcher.owner('10.244.0.0/24')).toBe('a');
    expect((await writer.allocate('b')).ipv4).toBe('10.244.1.0/24');
  });

  it('releases a dead node only after the grace period, and not if it came back', async () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    const pool = await StoreClusterPool.open(store, v4, { clock });
    const changes: NodeCidrChange[] = [];
    pool.onChange((c) => changes.push(c));
    const a = await NodeSession.open(store, { node: 'a', ttlSeconds: 3 });
    await NodeSession.open(store, { node: 'b', ttlSeconds: 3 });
    await pool.allocate('a');
    await pool.allocate('b');
    expect(await pool.reapExpired({ graceMs: 10_000 })).toEqual([]);
    a.abandon();
    clock.advance(3_000); // a's lease expires: nodes/a is gone
    expect(await store.get('nodes/a')).toBeUndefined();
    expect(await pool.reapExpired({ graceMs: 10_000 })).toEqual([]); // first seen absent
    clock.advance(9_999);
    expect(await pool.reapExpired({ graceMs: 10_000 })).toEqual([]);
    clock.advance(1);
    expect(await pool.reapExpired({ graceMs: 10_000 })).toEqual(['a']);
    expect(pool.owner('10.244.0.0/24')).toBeUndefined();
    expect(pool.owner('10.244.1.0/24')).toBe('b');
    expect(changes.filter((c) => c.type === 'released')).toEqual([
      { type: 'released', node: 'a', cidr: '10.244.0.0/24' },
    ]);
    // a node that returns within the grace period keeps its block
    const c = await NodeSession.open(store, { node: 'c', ttlSeconds: 3 });
    await pool.allocate('c');
    c.abandon();
    clock.advance(3_000);
    expect(await pool.reapExpired({ graceMs: 5_000 })).toEqual([]);
    await NodeSession.open(store, { node: 'c', ttlSeconds: 3 });
    clock.advance(5_000);
    expect(await pool.reapExpired({ graceMs: 5_000 })).toEqual([]);
    expect(pool.allocations().has('c')).toBe(true);
  });

  it('rejects bad node names before touching the store', async () => {
    const store = new MemoryStore();
    const pool = await StoreClusterPool.open(store, v4);
    const rev = store.revision;
    for (const bad of ['', 'a/b', 'a b']) {
      await expect(pool.allocate(bad)).rejects.toMatchObject({ code: 'InvalidArgument' });
    }
    expect(store.revision).toBe(rev);
  });
});
