import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { type Codec, createMap, HashMap, i32, i64, u16, u32, u64 } from '../src/index.js';
import { bpftoolDump, le } from './helpers.js';

/** The same codec without its fast-path tag: the map then goes through encode/decode. */
const generic = <T>(c: Codec<T>): Codec<T> => ({
  size: c.size,
  align: c.align,
  encode: (v, d, o) => c.encode(v, d, o),
  decode: (d, o) => c.decode(d, o),
});

const invalid = expect.objectContaining({ name: 'BpfError', code: 'InvalidArgument' });

describe('fast paths of the scalar codecs against the kernel', () => {
  it('u32 → u64: the fast and the generic path write and read the same kernel bytes', (ctx) => {
    requireRoot(ctx);
    using fast = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 64, name: uniqueName() });
    using slow = HashMap.fromFd(fast.fd, { key: generic(u32), value: generic(u64) });
    const big = (1n << 64n) - 1n;
    fast.set(0xffff_ffff, big);
    slow.set(7, 1n << 40n);
    fast.setMany([
      [1, 2n],
      [2, 3n],
    ]);
    slow.setMany([[3, 4n]]);
    const oracle = new Map(
      bpftoolDump(fast.id).map((e) => [new DataView(e.key.buffer).getUint32(0, true), [...e.value!]]),
    );
    expect(oracle).toEqual(
      new Map([
        [0xffff_ffff, le(big, 8)],
        [7, le(1n << 40n, 8)],
        [1, le(2n, 8)],
        [2, le(3n, 8)],
        [3, le(4n, 8)],
      ]),
    );
    for (const k of [0xffff_ffff, 7, 1, 2, 3]) expect(fast.get(k)).toBe(slow.get(k));
    const sorted = (m: HashMap<number, bigint>) => m.dump({ batchSize: 2 }).sort((a, b) => a[0] - b[0]);
    expect(sorted(fast)).toEqual(sorted(slow));
    const seen: [number, bigint][] = [];
    fast.forEach((k, v) => {
      seen.push([k, v]);
    });
    expect(seen.sort((a, b) => a[0] - b[0])).toEqual(sorted(slow));
    // Bad keys and values are refused alike, before any syscall, and nothing is written.
    for (const m of [fast, slow]) {
      for (const k of [-1, 2 ** 32, 1.5, Number.NaN, '1', 1n]) {
        expect(() => m.set(k as number, 1n)).toThrow(invalid);
        expect(() => m.get(k as number)).toThrow(invalid);
      }
      for (const v of [-1n, 1n << 64n, 1, '1']) expect(() => m.set(5, v as bigint)).toThrow(invalid);
      expect(() =>
        m.setMany([
          [6, 1n],
          [7, -1n],
        ]),
      ).toThrow(invalid);
    }
    expect(bpftoolDump(fast.id)).toHaveLength(5);
    expect(fast.get(6)).toBeUndefined();
  });

  it('u32 → u64: its own get/set still refuse a closed map with BadFd', (ctx) => {
    requireRoot(ctx);
    const map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 4, name: uniqueName() });
    map.set(1, 2n);
    map.close();
    expect(() => map.get(1)).toThrow(expect.objectContaining({ code: 'BadFd' }));
    expect(() => map.set(1, 3n)).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });

  it('signed and narrow scalars round-trip through the fast paths (i32 → i64, u16 key)', (ctx) => {
    requireRoot(ctx);
    using a = createMap({ type: 'hash', key: i32, value: i64, maxEntries: 8, name: uniqueName() });
    a.set(-5, -(1n << 63n));
    a.set(2 ** 31 - 1, (1n << 63n) - 1n);
    const oracle = bpftoolDump(a.id).map((e) => [[...e.key], [...e.value!]]);
    expect(oracle).toContainEqual([le(0xffff_fffb, 4), le(1n << 63n, 8)]);
    expect(a.get(-5)).toBe(-(1n << 63n));
    expect(new Map(a.dump())).toEqual(
      new Map([
        [-5, -(1n << 63n)],
        [2 ** 31 - 1, (1n << 63n) - 1n],
      ]),
    );
    using b = createMap({ type: 'hash', key: u16, value: u32, maxEntries: 8, name: uniqueName() });
    b.set(0xffff, 0xffff_ffff);
    expect(() => b.set(0x1_0000, 1)).toThrow(invalid);
    expect(bpftoolDump(b.id).map((e) => [[...e.key], [...e.value!]])).toEqual([
      [le(0xffff, 2), le(0xffff_ffff, 4)],
    ]);
    expect(b.dump()).toEqual([[0xffff, 0xffff_ffff]]);
  });
});
