import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { BpfError, createMap, lpmKey, lpmKeyCodec, u32, u64 } from '../src/index.js';
import { bpftoolDump, le } from './helpers.js';

describe('batch operations', () => {
  it('setMany / dump / deleteMany / clear on a hash map, in batch and single-element mode alike', (ctx) => {
    requireRoot(ctx);
    for (const batch of [true, false]) {
      using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 5000, name: uniqueName() });
      const entries = Array.from({ length: 5000 }, (_, i) => [i * 7, BigInt(i) << 33n] as [number, bigint]);
      map.setMany(entries, 'any', { batchSize: 333, batch });
      const oracle = bpftoolDump(map.id);
      expect(oracle).toHaveLength(5000);
      for (const e of oracle.slice(0, 50)) {
        const k = new DataView(e.key.buffer).getUint32(0, true);
        expect([...e.value!]).toEqual(le(BigInt(k / 7) << 33n, 8));
      }
      const dumped = map.dump({ batchSize: 100, batch });
      expect(dumped).toHaveLength(5000);
      expect(new Map(dumped)).toEqual(new Map(entries));
      expect(map.count()).toBe(5000);
      expect(map.pressure()).toBe(1);
      // A full map refuses one more entry with Exhausted (reason Full).
      expect(() => map.setMany([[1, 1n]], 'any', { batch })).toThrow(
        expect.objectContaining({ code: 'Exhausted', reason: 'Full' }),
      );
      // noExist over existing keys is refused, and nothing after the failing element is written.
      expect(() => map.setMany([[0, 9n]], 'noExist', { batch })).toThrow(
        expect.objectContaining({ code: 'AlreadyExists' }),
      );
      expect(map.get(0)).toBe(0n);
      // Absent keys in a delete batch are skipped, not fatal.
      const gone = map.deleteMany([0, 1, 7, 2, 14, 999_999], { batchSize: 4, batch });
      expect(gone).toBe(3);
      expect(bpftoolDump(map.id)).toHaveLength(4997);
      expect(map.getMany([0, 21, 3])).toEqual([undefined, 3n << 33n, undefined]);
      expect(map.clear({ batch })).toBe(4997);
      expect(bpftoolDump(map.id)).toHaveLength(0);
      expect(map.pressure()).toBe(0);
    }
  });

  it('refuses a batch operation nested in forEach, allows single-element calls there', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 8, name: uniqueName() });
    map.setMany([
      [1, 1n],
      [2, 2n],
    ]);
    map.forEach((k, v) => {
      map.set(k, v + 10n);
      expect(() => map.setMany([[3, 3n]])).toThrow(expect.objectContaining({ code: 'Busy' }));
      expect(() => map.dump()).toThrow(expect.objectContaining({ code: 'Busy' }));
    });
    expect(new Map(map.dump())).toEqual(
      new Map([
        [1, 11n],
        [2, 12n],
      ]),
    );
  });

  it('dumpAsync lets the event loop run between batches and sees every entry', async (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 4096, name: uniqueName() });
    map.setMany(Array.from({ length: 4000 }, (_, i) => [i, BigInt(i)] as const));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    let batchesSeen = 0;
    const ticksAt: number[] = [];
    try {
      const all = await map.dumpAsync({ batchSize: 256 });
      expect(new Map(all)).toEqual(new Map(Array.from({ length: 4000 }, (_, i) => [i, BigInt(i)])));
      await map.forEachAsync(
        () => {
          if (batchesSeen++ % 256 === 0) ticksAt.push(ticks);
        },
        { batchSize: 256 },
      );
    } finally {
      clearInterval(timer);
    }
    // Timers fired while the walk was going on, not only after it.
    expect(new Set(ticksAt).size).toBeGreaterThan(1);
    // The async walk has buffers of its own: sync batch calls stay usable meanwhile; closing stops the walk.
    const walking = map.forEachAsync(() => {}, { batchSize: 16 });
    expect(map.dump()).toHaveLength(4000);
    map.close();
    await expect(walking).rejects.toMatchObject({ code: 'BadFd' });
  });

  it('a bad entry in setMany writes nothing', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 8, name: uniqueName() });
    const err = (() => {
      try {
        map.setMany([
          [1, 1n],
          [2, -1n],
        ]);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ code: 'InvalidArgument', errno: undefined });
    expect(bpftoolDump(map.id)).toHaveLength(0);
  });

  it('dumps an LPM trie and a per-CPU hash with batch lookups', (ctx) => {
    requireRoot(ctx);
    using trie = createMap({
      type: 'lpmTrie',
      key: lpmKeyCodec({ family: 'ipv4' }),
      value: u32,
      maxEntries: 300,
      name: uniqueName(),
    });
    const cidrs = Array.from({ length: 256 }, (_, i) => [lpmKey.fromCidr(`10.${i}.0.0/16`), i] as const);
    trie.setMany(cidrs);
    const dumped = trie.dump({ batchSize: 10 });
    expect(dumped.map(([k, v]) => `${k.addr}/${k.prefixLen}=${v}`).sort()).toEqual(
      cidrs.map(([k, v]) => `${k.addr}/${k.prefixLen}=${v}`).sort(),
    );
    expect(trie.get(lpmKey.fromCidr('10.200.3.4'))).toBe(200);

    using pc = createMap({ type: 'perCpuHash', key: u32, value: u64, maxEntries: 64, name: uniqueName() });
    const row = (i: number) => Array.from({ length: pc.cpus }, (_, c) => BigInt(i * 100 + c));
    pc.setMany(
      Array.from({ length: 64 }, (_, i) => [i, row(i)] as const),
      'any',
      { batchSize: 7 },
    );
    const all = new Map(pc.dump({ batchSize: 5 }));
    expect(all.size).toBe(64);
    for (let i = 0; i < 64; i++) expect(all.get(i)).toEqual(row(i));
    const oracle = bpftoolDump(pc.id).find((e) => new DataView(e.key.buffer).getUint32(0, true) === 9)!;
    expect(oracle.values!.map((v) => [...v])).toEqual(row(9).map((v) => le(v, 8)));
  });
});
