// The async map operations against real maps: their bpf(2) calls run on libuv's threadpool (timers fire
// during a large walk), they give what the sync forms give (bpftool as the oracle), queue safely when many
// are in flight on one map, and refuse bad input with typed errors before any syscall.
import { readdirSync } from 'node:fs';
import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { bytes, createMap, lpmKey, lpmKeyCodec, u32, u64 } from '../src/index.js';
import { bpftoolDump } from './helpers.js';

const N = 200_000;

describe('async batch operations and walks', () => {
  it('walks a large map on the threadpool with the same result as the sync walk, timers firing during the kernel call', async (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: N, name: uniqueName() });
    await map.setManyAsync(Array.from({ length: N }, (_, i) => [i * 3, BigInt(i) * 5n] as const));
    const sync = map.dump();
    expect(sync).toHaveLength(N);
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    let asyncDump: [number, bigint][];
    let ticksBeforeFirst = -1;
    try {
      asyncDump = await map.dumpAsync({ batchSize: 8192 });
      // One batch call for a whole map of 100 000 x 256-byte values: the kernel copies 25 MB (milliseconds)
      // on a pool thread, so timers fire before the first entry reaches the callback (a call on this thread
      // would leave them no turn).
      using wide = createMap({
        type: 'hash',
        key: u32,
        value: bytes(256),
        maxEntries: N / 2,
        name: uniqueName(),
      });
      const row = new Uint8Array(256).fill(7);
      wide.setMany(Array.from({ length: N / 2 }, (_, i) => [i, row] as const));
      const t0 = ticks;
      let seen = 0;
      await wide.forEachAsync(
        () => {
          if (seen++ === 0) ticksBeforeFirst = ticks - t0;
        },
        { batchSize: N / 2 },
      );
      expect(seen).toBe(N / 2);
    } finally {
      clearInterval(timer);
    }
    ctx.annotate(`${ticks} ticks in all, ${ticksBeforeFirst} before the one-batch walk's first entry`);
    expect(new Map(asyncDump)).toEqual(new Map(sync));
    expect(asyncDump).toHaveLength(N);
    expect(ticksBeforeFirst).toBeGreaterThan(0);
    // Key by key (batch: false) gives the same entries too.
    const small = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 512, name: uniqueName() });
    try {
      small.setMany(sync.slice(0, 500));
      expect(new Map(await small.dumpAsync({ batch: false }))).toEqual(new Map(small.dump({ batch: false })));
      expect(await small.clearAsync({ batch: false })).toBe(500);
      expect(bpftoolDump(small.id)).toHaveLength(0);
    } finally {
      small.close();
    }
  }, 60_000);

  it('setManyAsync / deleteManyAsync / clearAsync match the sync forms on hash, LPM trie and per-CPU maps', async (ctx) => {
    requireRoot(ctx);
    for (const batch of [true, false]) {
      using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 1000, name: uniqueName() });
      const entries = Array.from({ length: 1000 }, (_, i) => [i * 7, BigInt(i) << 33n] as [number, bigint]);
      await map.setManyAsync(entries, 'any', { batchSize: 333, batch });
      expect(bpftoolDump(map.id)).toHaveLength(1000);
      expect(new Map(map.dump())).toEqual(new Map(entries));
      // The sync forms' typed errors: a full map, noExist over an existing key (nothing after it written).
      await expect(map.setManyAsync([[1, 1n]], 'any', { batch })).rejects.toMatchObject({
        code: 'Exhausted',
        reason: 'Full',
      });
      await expect(map.setManyAsync([[0, 9n]], 'noExist', { batch })).rejects.toMatchObject({
        code: 'AlreadyExists',
      });
      expect(map.get(0)).toBe(0n);
      expect(await map.deleteManyAsync([0, 1, 7, 2, 14, 999_999], { batchSize: 4, batch })).toBe(3);
      expect(bpftoolDump(map.id)).toHaveLength(997);
      expect(await map.clearAsync({ batch })).toBe(997);
      expect(bpftoolDump(map.id)).toHaveLength(0);
    }
    using trie = createMap({
      type: 'lpmTrie',
      key: lpmKeyCodec({ family: 'ipv4' }),
      value: u32,
      maxEntries: 300,
      name: uniqueName(),
    });
    const cidrs = Array.from({ length: 256 }, (_, i) => [lpmKey.fromCidr(`10.${i}.0.0/16`), i] as const);
    await trie.setManyAsync(cidrs);
    const show = (d: [{ addr: string; prefixLen: number }, number][]) =>
      d.map(([k, v]) => `${k.addr}/${k.prefixLen}=${v}`);
    expect(show(await trie.dumpAsync())).toEqual(show(trie.dump()));
    expect(show(await trie.dumpAsync({ batch: false })).sort()).toEqual(show(trie.dump()).sort());
    expect(await trie.deleteManyAsync(cidrs.slice(0, 100).map(([k]) => k))).toBe(100);
    expect(bpftoolDump(trie.id)).toHaveLength(156);
    using pc = createMap({ type: 'perCpuHash', key: u32, value: u64, maxEntries: 64, name: uniqueName() });
    const cpus = pc.cpus;
    await pc.setManyAsync(
      Array.from(
        { length: 50 },
        (_, i) => [i, Array.from({ length: cpus }, (_, c) => BigInt(i * 100 + c))] as const,
      ),
    );
    expect(await pc.dumpAsync()).toEqual(pc.dump());
    expect(bpftoolDump(pc.id)[0]?.values).toHaveLength(cpus);
  });

  it('queues many async calls on one map while sync calls go on, and refuses bad input before any syscall', async (ctx) => {
    requireRoot(ctx);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const map = createMap({ type: 'hash', key: bytes(4), value: u64, maxEntries: 4096, name: uniqueName() });
    const key = (i: number) => Uint8Array.of(i & 0xff, i >> 8, 0, 1);
    // 32 writers of 100 entries each at once, a walk and sync reads in between: nothing crossed or lost.
    const writes = Array.from({ length: 32 }, (_, w) =>
      map.setManyAsync(
        Array.from({ length: 100 }, (_, i) => [key(w * 100 + i), BigInt(w * 100 + i)] as const),
      ),
    );
    const walk = map.dumpAsync();
    expect(map.get(key(1))).toBeUndefined(); // sync call while async ones are queued: the first write has not run yet
    await Promise.all(writes);
    expect((await walk).length).toBe(3200); // queued after the writes: sees them all
    for (const [k, v] of map.dump()) expect(Number(v)).toBe(k[0]! | (k[1]! << 8));
    // Bad input: typed errors, nothing written.
    await expect(map.setManyAsync([[Uint8Array.of(1, 2, 3), 1n]])).rejects.toMatchObject({
      code: 'InvalidArgument',
      errno: undefined,
    });
    await expect(map.setManyAsync([[key(4000), -1n]])).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(map.deleteManyAsync([Uint8Array.of(9)])).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(map.dumpAsync({ batchSize: 0 })).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(map.get(key(4000))).toBeUndefined();
    expect(bpftoolDump(map.id)).toHaveLength(3200);
    // Closed while a walk is in flight: the walk stops with BadFd; the fd goes when it has settled.
    const walking = map.forEachAsync(() => {}, { batchSize: 16 });
    map.close();
    await expect(walking).rejects.toMatchObject({ code: 'BadFd' });
    await expect(map.setManyAsync([[key(1), 1n]])).rejects.toMatchObject({ code: 'BadFd' });
    await expect(map.dumpAsync()).rejects.toMatchObject({ code: 'BadFd' });
    expect(fds()).toBe(before);
  });
});
