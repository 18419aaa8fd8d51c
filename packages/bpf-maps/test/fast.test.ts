import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FAST_NONE, fastKind, readFast, writeFast } from '../src/fast.js';
import {
  align,
  array,
  be16,
  be32,
  bytes,
  type Codec,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../src/index.js';

const fast: [string, Codec<unknown>][] = [
  ['u8', u8],
  ['u16', u16],
  ['u32', u32],
  ['i32', i32],
  ['u64', u64],
  ['i64', i64],
  ['align(u64, 1)', align(u64, 1)],
  ['align(u32, 8)', align(u32, 8)],
] as [string, Codec<unknown>][];

/** Bytes the generic codec writes for `v` (over a 0xaa background), or 'throws'. */
function generic(c: Codec<unknown>, v: unknown): string {
  const view = new DataView(new ArrayBuffer(c.size + 3));
  new Uint8Array(view.buffer).fill(0xaa);
  try {
    c.encode(v, view, 3);
  } catch {
    return 'throws';
  }
  return Buffer.from(view.buffer).toString('hex');
}

/** Bytes the fast path writes for `v`, or 'throws' when it declines (the map then runs the codec, which throws). */
function viaFast(c: Codec<unknown>, v: unknown): string {
  const view = new DataView(new ArrayBuffer(c.size + 3));
  new Uint8Array(view.buffer).fill(0xaa);
  return writeFast(fastKind(c), v, view, 3) ? Buffer.from(view.buffer).toString('hex') : 'throws';
}

// Values around every bound of every fast codec, plus things that are not integers at all.
const edgeNumbers = [
  0,
  -0,
  1,
  -1,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  2 ** 31 - 1,
  2 ** 31,
];
const edges: unknown[] = [
  ...edgeNumbers,
  ...edgeNumbers.map((n) => -n),
  2 ** 32 - 1,
  2 ** 32,
  -(2 ** 31) - 1,
  0.5,
  -0.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  Number.MAX_SAFE_INTEGER,
  0n,
  1n,
  -1n,
  (1n << 63n) - 1n,
  1n << 63n,
  -(1n << 63n),
  -(1n << 63n) - 1n,
  (1n << 64n) - 1n,
  1n << 64n,
  '1',
  null,
  undefined,
  true,
  {},
  [1],
  { valueOf: () => 1 },
];

const anyValue = fc.oneof(
  fc.integer({ min: -(2 ** 33), max: 2 ** 33 }),
  fc.double(),
  fc.bigInt({ min: -(1n << 65n), max: 1n << 65n }),
  fc.anything(),
);

describe('fast paths of the built-in scalar codecs', () => {
  it('exist for the little-endian integers only (never for network byte order or composite codecs)', () => {
    for (const [name, c] of fast) expect(fastKind(c), name).not.toBe(FAST_NONE);
    for (const c of [
      i8,
      i16,
      be16,
      be32,
      ipv4,
      bytes(4),
      array(u32, 2),
      struct({ a: u32 }),
    ] as Codec<unknown>[]) {
      expect(fastKind(c)).toBe(FAST_NONE);
      const view = new DataView(new ArrayBuffer(8));
      expect(writeFast(fastKind(c), 1, view, 0)).toBe(false);
    }
  });

  it('golden bytes (x86_64 little-endian)', () => {
    expect(viaFast(u32, 0x12345678)).toBe('aaaaaa78563412');
    expect(viaFast(i32, -2)).toBe('aaaaaafeffffff');
    expect(viaFast(u16, 0x1234)).toBe('aaaaaa3412');
    expect(viaFast(u8, 0xfe)).toBe('aaaaaafe');
    expect(viaFast(u64, 0x0102030405060708n)).toBe('aaaaaa0807060504030201');
    expect(viaFast(i64, -2n)).toBe('aaaaaafeffffffffffffff');
  });

  it('accept, reject and write exactly what the generic codecs do, at every bound', () => {
    for (const [name, c] of fast)
      for (const v of edges) expect(viaFast(c, v), `${name} ${String(v)}`).toBe(generic(c, v));
  });

  it('accept, reject and write exactly what the generic codecs do (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...fast), anyValue, ([name, c], v) => {
        expect(viaFast(c, v), name).toBe(generic(c, v));
      }),
      { numRuns: 2000 },
    );
  });

  it('read what the generic codecs decode (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...fast),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.nat(7),
        ([name, c], raw, off) => {
          const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
          expect(readFast(fastKind(c), view, off), name).toEqual(c.decode(view, off));
        },
      ),
    );
  });
});
