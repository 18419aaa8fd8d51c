// Fast paths for the built-in scalar codecs. A map whose key or value codec is one of them reads and
// writes the scratch buffers here, with the DataView call inlined, instead of through the codec's
// closures (a megamorphic call per element once several codecs are in use). Only the happy path is
// here: a value these writers do not take goes to the codec's own `encode`, which throws the usual
// error, so both paths accept and reject exactly the same values and write the same bytes.
import type { Codec } from './codec.js';

/** Not a built-in scalar: use the codec. */
export const FAST_NONE = 0;
/** `u8`. */
export const FAST_U8 = 1;
/** `u16`, little-endian. */
export const FAST_U16 = 2;
/** `u32`, little-endian. */
export const FAST_U32 = 3;
/** `i32`, little-endian. */
export const FAST_I32 = 4;
/** `u64`, little-endian, bigint. */
export const FAST_U64 = 5;
/** `i64`, little-endian, bigint. */
export const FAST_I64 = 6;

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

const kinds = new WeakMap<object, number>();

/** True for a value `u32` takes (an integer in 0…2³²-1). */
export function isU32(v: unknown): v is number {
  return typeof v === 'number' && v === v >>> 0;
}

/** True for a value `u64` takes (a bigint in 0…2⁶⁴-1). */
export function isU64(v: unknown): v is bigint {
  return typeof v === 'bigint' && v >= 0n && v <= U64_MAX;
}

/** Marks a built-in codec as having fast path `kind`; returns it. */
export function tagFast<T, C extends Codec<T>>(codec: C, kind: number): C {
  kinds.set(codec, kind);
  return codec;
}

/** The fast path of `codec`, or {@link FAST_NONE}. */
export function fastKind<T>(codec: Codec<T>): number {
  return kinds.get(codec) ?? FAST_NONE;
}

/** Reads a value of fast kind `kind` (not {@link FAST_NONE}) at `off`. */
export function readFast(kind: number, view: DataView, off: number): number | bigint {
  switch (kind) {
    case FAST_U32:
      return view.getUint32(off, true);
    case FAST_U64:
      return view.getBigUint64(off, true);
    case FAST_I32:
      return view.getInt32(off, true);
    case FAST_I64:
      return view.getBigInt64(off, true);
    case FAST_U16:
      return view.getUint16(off, true);
    default:
      return view.getUint8(off);
  }
}

/**
 * Writes `v` at `off` when `kind` is a fast kind and `v` is a valid value of it; false otherwise (the
 * caller then runs the codec's `encode`, which writes it or throws).
 */
export function writeFast(kind: number, v: unknown, view: DataView, off: number): boolean {
  switch (kind) {
    case FAST_U32:
      if (!isU32(v)) return false;
      view.setUint32(off, v, true);
      return true;
    case FAST_U64:
      if (!isU64(v)) return false;
      view.setBigUint64(off, v, true);
      return true;
    case FAST_I32:
      if (typeof v !== 'number' || v !== (v | 0)) return false;
      view.setInt32(off, v, true);
      return true;
    case FAST_I64:
      if (typeof v !== 'bigint' || v < I64_MIN || v > I64_MAX) return false;
      view.setBigInt64(off, v, true);
      return true;
    case FAST_U16:
      if (typeof v !== 'number' || v !== (v & 0xffff)) return false;
      view.setUint16(off, v, true);
      return true;
    case FAST_U8:
      if (typeof v !== 'number' || v !== (v & 0xff)) return false;
      view.setUint8(off, v);
      return true;
    default:
      return false;
  }
}
