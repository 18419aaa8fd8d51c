import type { ObjectConstantDecl } from '@datapath/libbpf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeConstant, encodeConstant } from '../src/constants.js';

const decl = (d: Partial<ObjectConstantDecl> & Pick<ObjectConstantDecl, 'kind'>): ObjectConstantDecl =>
  ({ name: 'c', offset: 0, size: 4, ...d }) as ObjectConstantDecl;

describe('constants', () => {
  it('round-trips integers of every size and signedness within range', () => {
    for (const size of [1, 2, 4, 8]) {
      for (const signed of [false, true]) {
        const bits = BigInt(size * 8);
        const min = signed ? -(1n << (bits - 1n)) : 0n;
        const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
        const d = decl({ kind: 'int', signed, size });
        fc.assert(
          fc.property(fc.bigInt({ min, max }), (v) => {
            const buf = new Uint8Array(size);
            encodeConstant(d, v, buf);
            expect(BigInt(decodeConstant(d, buf) as number | bigint)).toBe(v);
          }),
        );
        expect(() => encodeConstant(d, max + 1n, new Uint8Array(size))).toThrow(/out of range/);
        expect(() => encodeConstant(d, min - 1n, new Uint8Array(size))).toThrow(/out of range/);
      }
    }
  });

  it('writes little-endian bytes', () => {
    const buf = new Uint8Array(2);
    encodeConstant(decl({ kind: 'int', signed: false, size: 2 }), 0x1234, buf);
    expect([...buf]).toEqual([0x34, 0x12]);
  });

  it('checks types: bool, strings that fit with their NUL, exact-size bytes', () => {
    const b = decl({ kind: 'bool', size: 1 });
    const buf = new Uint8Array(1);
    encodeConstant(b, true, buf);
    expect(decodeConstant(b, buf)).toBe(true);
    expect(() => encodeConstant(b, 1, buf)).toThrow(/expects a boolean/);
    const s = decl({ kind: 'chars', size: 4, length: 4 });
    const sb = new Uint8Array(4);
    encodeConstant(s, 'abc', sb);
    expect(decodeConstant(s, sb)).toBe('abc');
    expect(() => encodeConstant(s, 'abcd', sb)).toThrow(/does not fit/);
    const raw = decl({ kind: 'bytes', size: 3 });
    expect(() => encodeConstant(raw, new Uint8Array(2), new Uint8Array(3))).toThrow(/exactly 3 bytes/);
    expect(() => encodeConstant(decl({ kind: 'int', signed: false }), 1.5, new Uint8Array(4))).toThrow(
      /safe integer/,
    );
    expect(() => encodeConstant(decl({ kind: 'int', signed: false }), '1', new Uint8Array(4))).toThrow(
      /expects an integer/,
    );
  });
});
