import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NaiveBitmap } from '../bench/naive.js';
import { Bitmap } from '../src/index.js';
import { expectCode, hex, seeded } from './helpers.js';

describe('Bitmap', () => {
  it('allocates, releases and counts', () => {
    const b = new Bitmap(100, { strategy: 'contiguous' });
    expect(b.allocate(5)).toBe(true);
    // Regression (issue 17): a taken offset was a `false` return where every IPAM failure throws.
    const e = expectCode(() => b.allocate(5), 'AlreadyAllocated');
    expect(e.target).toBe('5');
    expect(b.used).toBe(1);
    expect(b.has(5)).toBe(true);
    expect(b.used).toBe(1);
    expect(b.free).toBe(99);
    expect(b.allocateNext()).toBe(0);
    b.release(5);
    b.release(5); // no-op
    expect(b.has(5)).toBe(false);
    expect(b.used).toBe(1);
  });

  it('range-checks every offset (upstream cilium does not)', () => {
    const b = new Bitmap(10);
    for (const bad of [-1, 10, 1.5, Number.NaN]) {
      expectCode(() => b.allocate(bad), 'OutOfRange');
      expectCode(() => b.release(bad), 'OutOfRange');
      expectCode(() => b.has(bad), 'OutOfRange');
    }
    expect(b.free).toBe(10);
    expectCode(() => new Bitmap(-1), 'OutOfRange');
    expectCode(() => new Bitmap(2 ** 32 + 1), 'OutOfRange');
    expectCode(() => new Bitmap(4, { strategy: 'bogus' as 'random' }), 'OutOfRange');
  });

  it('reports Full and stays full', () => {
    for (const strategy of ['random', 'contiguous'] as const) {
      const b = new Bitmap(70, { strategy });
      const seen = new Set<number>();
      for (let i = 0; i < 70; i++) seen.add(b.allocateNext());
      expect(seen.size).toBe(70);
      expectCode(() => b.allocateNext(), 'Full');
      expect(b.free).toBe(0);
      b.release(33);
      expect(b.allocateNext()).toBe(33);
    }
    expectCode(() => new Bitmap(0).allocateNext(), 'Full');
  });

  it('encodes snapshots in the upstream big-endian format', () => {
    const cases: [number[], string][] = [
      [[], ''],
      [[3], '08'],
      [[0, 2, 5], '25'],
      [[8], '0100'],
      [[63, 64], '018000000000000000'],
      [[...Array(16).keys()], 'ffff'],
    ];
    for (const [offsets, want] of cases) {
      const b = new Bitmap(128);
      for (const o of offsets) b.allocate(o);
      expect(hex(b.snapshot())).toBe(want);
      const c = new Bitmap(128);
      c.restore(b.snapshot());
      const got: number[] = [];
      c.forEach((o) => {
        got.push(o);
      });
      expect(got).toEqual(offsets);
      expect(c.used).toBe(offsets.length);
    }
  });

  it('restores a smaller snapshot into a bigger map and accepts leading zero bytes', () => {
    const b = new Bitmap(10);
    b.restore(Uint8Array.of(0, 0, 0x02, 0x01));
    expect(b.has(0)).toBe(true);
    expect(b.has(9)).toBe(true);
    expect(b.used).toBe(2);
  });

  it('rejects snapshots with bits past the size and keeps its state (upstream bug 3)', () => {
    const b = new Bitmap(6);
    b.allocate(1);
    expectCode(() => b.restore(Uint8Array.of(0xff)), 'InvalidSnapshot');
    expect(b.used).toBe(1);
    expect(b.has(1)).toBe(true);
    expectCode(() => b.restore('x' as unknown as Uint8Array), 'InvalidSnapshot');
  });

  it('ignores padding bits past the size in forEach, snapshot and counts', () => {
    const b = new Bitmap(33, { strategy: 'contiguous' });
    for (let i = 0; i < 33; i++) b.allocateNext();
    expectCode(() => b.allocateNext(), 'Full');
    let n = 0;
    b.forEach(() => {
      n++;
    });
    expect(n).toBe(33);
    expect(hex(b.snapshot())).toBe(`01${'ff'.repeat(4)}`);
  });

  it('random strategy: random start, forward scan, wrap', () => {
    const b = new Bitmap(100, { strategy: 'random', random: () => 0.5 });
    for (let i = 50; i < 60; i++) b.allocate(i);
    expect(b.allocateNext()).toBe(60);
    const c = new Bitmap(100, { strategy: 'random', random: () => 0.99 });
    c.allocate(99);
    expect(c.allocateNext()).toBe(0); // wrapped
  });

  it('contiguous strategy reuses the lowest hole at once', () => {
    const b = new Bitmap(2000, { strategy: 'contiguous' });
    for (let i = 0; i < 1500; i++) expect(b.allocateNext()).toBe(i);
    b.release(700);
    b.release(12);
    expect(b.allocateNext()).toBe(12);
    expect(b.allocateNext()).toBe(700);
    expect(b.allocateNext()).toBe(1500);
  });

  it('scans across summary words in a large map', () => {
    const b = new Bitmap(1 << 16, { strategy: 'random', random: () => 0 });
    for (let i = 0; i < 1 << 16; i++) if (i !== 40000) b.allocate(i);
    expect(b.allocateNext()).toBe(40000);
    expectCode(() => b.allocateNext(), 'Full');
    b.release(65535);
    b.release(3);
    expect(b.allocateNext()).toBe(3);
  });
});

type Op = { kind: 'alloc' } | { kind: 'allocAt'; at: number } | { kind: 'release'; at: number };
const opArb = (size: number): fc.Arbitrary<Op> =>
  fc.oneof(
    fc.constant<Op>({ kind: 'alloc' }),
    fc.integer({ min: 0, max: size - 1 }).map<Op>((at) => ({ kind: 'allocAt', at })),
    fc.integer({ min: 0, max: size - 1 }).map<Op>((at) => ({ kind: 'release', at })),
  );

describe('Bitmap properties (fast-check, against the naive upstream-style reference)', () => {
  it('never hands out a slot twice; free + used = size; matches the reference', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((size) => fc.tuple(fc.constant(size), fc.array(opArb(size), { maxLength: 400 }))),
        fc.constantFrom('random' as const, 'contiguous' as const),
        fc.integer(),
        ([size, ops], strategy, seed) => {
          // The same random sequence drives both, so the random strategy must pick identical slots.
          const b = new Bitmap(size, { strategy, random: seeded(seed) });
          const n = new NaiveBitmap(size, strategy, seeded(seed));
          const live = new Set<number>();
          for (const op of ops) {
            if (op.kind === 'alloc') {
              const want = n.allocateNext();
              if (want < 0) expectCode(() => b.allocateNext(), 'Full');
              else {
                const got = b.allocateNext();
                expect(got).toBe(want);
                expect(live.has(got)).toBe(false);
                live.add(got);
              }
            } else if (op.kind === 'allocAt') {
              if (n.allocate(op.at)) expect(b.allocate(op.at)).toBe(true);
              else expectCode(() => b.allocate(op.at), 'AlreadyAllocated');
              live.add(op.at);
            } else {
              b.release(op.at);
              n.release(op.at);
              live.delete(op.at);
            }
            expect(b.free + b.used).toBe(size);
            expect(b.used).toBe(live.size);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('snapshot → restore round-trips', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 500 })
          .chain((size) =>
            fc.tuple(fc.constant(size), fc.uniqueArray(fc.integer({ min: 0, max: size - 1 }))),
          ),
        ([size, offsets]) => {
          const a = new Bitmap(size);
          for (const o of offsets) a.allocate(o);
          const b = new Bitmap(size);
          b.restore(a.snapshot());
          const got: number[] = [];
          b.forEach((o) => {
            got.push(o);
          });
          expect(got).toEqual([...offsets].sort((x, y) => x - y));
          expect(b.used).toBe(offsets.length);
          expect(hex(b.snapshot())).toBe(hex(a.snapshot()));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('random strategy eventually returns every free slot', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer(), (size, seed) => {
        const b = new Bitmap(size, { strategy: 'random', random: seeded(seed) });
        const got = new Set<number>();
        for (let i = 0; i < size; i++) got.add(b.allocateNext());
        expect(got.size).toBe(size);
      }),
      { numRuns: 100 },
    );
  });

  it('contiguous strategy returns the lowest free slot', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 300 })
          .chain((size) =>
            fc.tuple(fc.constant(size), fc.uniqueArray(fc.integer({ min: 0, max: size - 1 }))),
          ),
        ([size, taken]) => {
          const b = new Bitmap(size, { strategy: 'contiguous' });
          for (const o of taken) b.allocate(o);
          const t = new Set(taken);
          let lowest = 0;
          while (t.has(lowest)) lowest++;
          if (lowest >= size) expectCode(() => b.allocateNext(), 'Full');
          else expect(b.allocateNext()).toBe(lowest);
        },
      ),
      { numRuns: 200 },
    );
  });
});
