import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LbError, MAGLEV_TABLE_SIZES, maglevMoved, maglevTable, murmur3 } from '../src/index.js';

// An independent, straightforward Maglev: the paper's pseudocode with materialised permutation tables,
// its own MurmurHash3 (checked against published test vectors), weights as "a backend of weight w takes
// a turn in round r while turns·wMax < r·w".
function refMurmur(data: Uint8Array, seed: number): number {
  const c1 = 0xcc9e2d51n;
  const c2 = 0x1b873593n;
  const m32 = 0xffffffffn;
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & m32;
  let h = BigInt(seed >>> 0);
  let i = 0;
  for (; i + 4 <= data.length; i += 4) {
    let k = BigInt(data[i]! + data[i + 1]! * 256 + data[i + 2]! * 65536 + data[i + 3]! * 16777216);
    k = (k * c1) & m32;
    k = rotl(k, 15n);
    k = (k * c2) & m32;
    h ^= k;
    h = rotl(h, 13n);
    h = (h * 5n + 0xe6546b64n) & m32;
  }
  let k = 0n;
  const rest = data.length - i;
  for (let j = rest - 1; j >= 0; j--) k = (k << 8n) | BigInt(data[i + j]!);
  if (rest > 0) {
    k = (k * c1) & m32;
    k = rotl(k, 15n);
    k = (k * c2) & m32;
    h ^= k;
  }
  h ^= BigInt(data.length);
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & m32;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & m32;
  h ^= h >> 16n;
  return Number(h);
}

function reference(backends: { key: string; weight?: number }[], M: number, seed = 0): number[] {
  const enc = new TextEncoder();
  const perm = backends.map((b) => {
    const bytes = enc.encode(b.key);
    const offset = refMurmur(bytes, seed) % M;
    const skip = (refMurmur(bytes, (seed ^ 0x9e3779b9) >>> 0) % (M - 1)) + 1;
    return Array.from({ length: M }, (_, j) => (offset + j * skip) % M);
  });
  const w = backends.map((b) => b.weight ?? 1);
  const wMax = Math.max(0, ...w);
  const entry: number[] = new Array(M).fill(-1);
  if (wMax === 0) return entry;
  const next = new Array(backends.length).fill(0);
  const turns = new Array(backends.length).fill(0);
  let n = 0;
  for (let r = 1; ; r++) {
    for (let i = 0; i < backends.length; i++) {
      if (w[i] === 0 || turns[i] * wMax >= r * w[i]!) continue;
      let c = perm[i]![next[i]]!;
      while (entry[c]! >= 0) {
        next[i]++;
        c = perm[i]![next[i]]!;
      }
      entry[c] = i;
      next[i]++;
      turns[i]++;
      n++;
      if (n === M) return entry;
    }
  }
}

const keys = (n: number, prefix = '10.244.') =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i >> 8}.${i & 255}:8080` }));

describe('murmur3', () => {
  it('matches published MurmurHash3_x86_32 vectors and the bigint reference', () => {
    const enc = new TextEncoder();
    expect(murmur3(enc.encode(''), 0)).toBe(0);
    expect(murmur3(enc.encode(''), 1)).toBe(0x514e28b7);
    expect(murmur3(enc.encode('hello'), 0)).toBe(0x248bfa47);
    expect(murmur3(enc.encode('Hello, world!'), 1234)).toBe(0xfaf6cdb3);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 0xffffffff }), (d, s) => {
        expect(murmur3(d, s)).toBe(refMurmur(d, s));
      }),
    );
  });
});

describe('maglevTable', () => {
  it('equals the straightforward implementation (unweighted and weighted, several sizes)', () => {
    expect(Array.from(maglevTable(keys(3), 251))).toEqual(reference(keys(3), 251));
    expect(Array.from(maglevTable(keys(37), 1021, { seed: 7 }))).toEqual(reference(keys(37), 1021, 7));
    const weighted = keys(5).map((b, i) => ({ ...b, weight: [1, 3, 0, 2, 7][i]! }));
    expect(Array.from(maglevTable(weighted, 509))).toEqual(reference(weighted, 509));
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 20, maxLength: 20 }),
        fc.constantFrom(251, 509),
        (names, weights, M) => {
          const bs = names.map((key, i) => ({ key, weight: weights[i]! }));
          expect(Array.from(maglevTable(bs, M))).toEqual(reference(bs, M));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fills every entry, spreads equal weights evenly and weighted ones in proportion', () => {
    const M = 16381;
    const t = maglevTable(keys(10), M);
    const counts = new Array(10).fill(0);
    for (const i of t) counts[i]++;
    for (const c of counts) expect(Math.abs(c - M / 10)).toBeLessThanOrEqual(1); // the paper's balance
    const w = maglevTable(
      keys(2).map((b, i) => ({ ...b, weight: i + 1 })),
      M,
    );
    const heavy = w.filter((i) => i === 1).length;
    expect(heavy / M).toBeGreaterThan(0.6);
    expect(heavy / M).toBeLessThan(0.72);
  });

  it('moves close to 1/N of the table when one backend of N is removed or added', () => {
    for (const [N, M] of [
      [10, 16381],
      [100, 65521],
    ] as const) {
      const all = keys(N + 1);
      const before = all.slice(0, N);
      const ids = before.map((b) => b.key);
      const a = maglevTable(before, M);
      // remove backend 3
      const fewer = before.filter((_, i) => i !== 3);
      const b = maglevTable(fewer, M);
      const moved = maglevMoved(
        a,
        b,
        ids,
        fewer.map((x) => x.key),
      );
      const own = a.filter((i) => i === 3).length; // these must move
      expect(moved).toBeGreaterThanOrEqual(own);
      expect(moved / M).toBeLessThan(1.6 / N); // close to 1/N (Maglev is near-minimal, not minimal)
      // add one
      const more = maglevTable(all, M);
      const movedAdd = maglevMoved(
        a,
        more,
        ids,
        all.map((x) => x.key),
      );
      expect(movedAdd / M).toBeLessThan(1.6 / (N + 1));
      expect(movedAdd / M).toBeGreaterThan(0.6 / (N + 1));
    }
  });

  it('property: every entry names a weighted backend, deterministic for the same input', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 50 }),
        fc.constantFrom(...MAGLEV_TABLE_SIZES.slice(0, 4)),
        (names, M) => {
          const bs = names.map((key, i) => ({ key, weight: i % 3 }));
          const t = maglevTable(bs, M);
          const anyWeighted = bs.some((b) => b.weight > 0);
          for (const i of t) {
            if (anyWeighted) expect(bs[i]!.weight).toBeGreaterThan(0);
            else expect(i).toBe(-1);
          }
          expect(maglevTable(bs, M)).toEqual(t);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('refuses sizes that are not offered, bad weights, more backends than entries', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(LbError);
        return (e as LbError).reason;
      }
      return undefined;
    };
    expect(err(() => maglevTable(keys(2), 1000))).toBe('InvalidTableSize');
    expect(err(() => maglevTable([{ key: 'a', weight: 1.5 }], 251))).toBe('InvalidWeight');
    expect(err(() => maglevTable(keys(252), 251))).toBe('TooManyBackends');
    expect(Array.from(maglevTable([], 251))).toEqual(new Array(251).fill(-1));
  });
});
