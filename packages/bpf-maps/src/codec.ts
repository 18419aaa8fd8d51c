import { formatIp, formatIpv4, ipToBytes } from '@datapath/ip';
import { BpfError } from '@datapath/libbpf';
import { FAST_I32, FAST_I64, FAST_U8, FAST_U16, FAST_U32, FAST_U64, fastKind, tagFast } from './fast.js';

/**
 * Encodes values of type `T` into a fixed number of bytes and back, the way a C struct lays them out.
 *
 * `encode` and `decode` work in place on a DataView at an offset, so map operations can use reused
 * scratch buffers and allocate nothing but the decoded value.
 *
 * @example A custom codec for a 2-byte port in network byte order
 * ```ts
 * import type { Codec } from '@datapath/bpf-maps';
 * const port: Codec<number> = {
 *   size: 2,
 *   align: 2,
 *   encode: (v, view, off) => view.setUint16(off, v, false),
 *   decode: (view, off) => view.getUint16(off, false),
 * };
 * ```
 */
export interface Codec<T> {
  /** Size in bytes (C `sizeof`). */
  readonly size: number;
  /** Alignment in bytes (C `_Alignof`), used by {@link struct}. */
  readonly align: number;
  /** Writes `value` at `offset`; throws `InvalidArgument` for a value that does not fit. */
  encode(value: T, view: DataView, offset: number): void;
  /** Reads a value at `offset`. */
  decode(view: DataView, offset: number): T;
}

/** The value type of a codec. */
export type CodecType<C> = C extends Codec<infer T> ? T : never;

function bad(what: string, value: unknown): BpfError {
  let shown: string;
  try {
    shown = typeof value === 'bigint' ? `${value}n` : JSON.stringify(value);
  } catch {
    shown = String(value);
  }
  return new BpfError('InvalidArgument', `codec: ${what}, got ${shown}`, { op: 'encode' });
}

type Get = (d: DataView, o: number) => number;
type Set = (d: DataView, o: number, v: number) => void;

function accessors(size: 1 | 2 | 4, signed: boolean, little: boolean): [Get, Set] {
  if (size === 1) {
    return signed
      ? [(d, o) => d.getInt8(o), (d, o, v) => d.setInt8(o, v)]
      : [(d, o) => d.getUint8(o), (d, o, v) => d.setUint8(o, v)];
  }
  if (size === 2) {
    return signed
      ? [(d, o) => d.getInt16(o, little), (d, o, v) => d.setInt16(o, v, little)]
      : [(d, o) => d.getUint16(o, little), (d, o, v) => d.setUint16(o, v, little)];
  }
  return signed
    ? [(d, o) => d.getInt32(o, little), (d, o, v) => d.setInt32(o, v, little)]
    : [(d, o) => d.getUint32(o, little), (d, o, v) => d.setUint32(o, v, little)];
}

function intCodec(size: 1 | 2 | 4, signed: boolean, little: boolean): Codec<number> {
  const min = signed ? -(2 ** (size * 8 - 1)) : 0;
  const max = signed ? 2 ** (size * 8 - 1) - 1 : 2 ** (size * 8) - 1;
  const what = `expected an integer in ${min}…${max}`;
  const [get, set] = accessors(size, signed, little);
  return {
    size,
    align: size,
    encode(v, d, o) {
      if (!Number.isInteger(v) || v < min || v > max) throw bad(what, v);
      set(d, o, v);
    },
    decode: get,
  };
}

function bigCodec(signed: boolean, little: boolean): Codec<bigint> {
  const min = signed ? -(1n << 63n) : 0n;
  const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
  const what = `expected a bigint in ${min}…${max}`;
  return {
    size: 8,
    align: 8,
    encode: (v, d, o) => {
      if (typeof v !== 'bigint' || v < min || v > max) throw bad(what, v);
      if (signed) d.setBigInt64(o, v, little);
      else d.setBigUint64(o, v, little);
    },
    decode: (d, o) => (signed ? d.getBigInt64(o, little) : d.getBigUint64(o, little)),
  };
}

/**
 * `__u8`.
 * @example
 * ```ts
 * import { u8 } from '@datapath/bpf-maps';
 * u8.size; // 1
 * ```
 */
export const u8: Codec<number> = tagFast(intCodec(1, false, true), FAST_U8);
/**
 * `__s8`.
 * @example
 * ```ts
 * import { i8 } from '@datapath/bpf-maps';
 * i8.size; // 1
 * ```
 */
export const i8: Codec<number> = intCodec(1, true, true);
/**
 * `__u16` in host (little-endian) byte order.
 * @example
 * ```ts
 * import { u16 } from '@datapath/bpf-maps';
 * u16.size; // 2
 * ```
 */
export const u16: Codec<number> = tagFast(intCodec(2, false, true), FAST_U16);
/**
 * `__s16` in host byte order.
 * @example
 * ```ts
 * import { i16 } from '@datapath/bpf-maps';
 * i16.size; // 2
 * ```
 */
export const i16: Codec<number> = intCodec(2, true, true);
/**
 * `__u32` in host (little-endian) byte order.
 * @example
 * ```ts
 * import { u32 } from '@datapath/bpf-maps';
 * u32.size; // 4
 * ```
 */
export const u32: Codec<number> = tagFast(intCodec(4, false, true), FAST_U32);
/**
 * `__s32` in host byte order.
 * @example
 * ```ts
 * import { i32 } from '@datapath/bpf-maps';
 * i32.size; // 4
 * ```
 */
export const i32: Codec<number> = tagFast(intCodec(4, true, true), FAST_I32);
/**
 * `__u64` in host byte order, as a bigint.
 * @example
 * ```ts
 * import { u64 } from '@datapath/bpf-maps';
 * u64.size; // 8
 * ```
 */
export const u64: Codec<bigint> = tagFast(bigCodec(false, true), FAST_U64);
/**
 * `__s64` in host byte order, as a bigint.
 * @example
 * ```ts
 * import { i64 } from '@datapath/bpf-maps';
 * i64.size; // 8
 * ```
 */
export const i64: Codec<bigint> = tagFast(bigCodec(true, true), FAST_I64);
/**
 * `__be16`: a 16-bit number in network byte order (ports).
 * @example
 * ```ts
 * import { be16 } from '@datapath/bpf-maps';
 * be16.size; // 2
 * ```
 */
export const be16: Codec<number> = intCodec(2, false, false);
/**
 * `__be32`: a 32-bit number in network byte order.
 * @example
 * ```ts
 * import { be32 } from '@datapath/bpf-maps';
 * be32.size; // 4
 * ```
 */
export const be32: Codec<number> = intCodec(4, false, false);

/** Parses IP text of one family into its network-order bytes; throws InvalidArgument. */
export function ipBytes(text: string, family: 4 | 6): Uint8Array {
  try {
    return ipToBytes(text, family);
  } catch {
    throw bad(family === 4 ? 'expected an IPv4 address such as 10.0.0.1' : 'expected an IPv6 address', text);
  }
}

/**
 * An IPv4 address in network byte order (4 bytes), as dotted-quad text.
 * @example
 * ```ts
 * import { ipv4 } from '@datapath/bpf-maps';
 * const view = new DataView(new ArrayBuffer(4));
 * ipv4.encode('10.0.0.1', view, 0); // bytes 0a 00 00 01
 * ```
 */
export const ipv4: Codec<string> = {
  size: 4,
  align: 1,
  encode: (v, d, o) => {
    const b = ipBytes(v, 4);
    for (let i = 0; i < 4; i++) d.setUint8(o + i, b[i]!);
  },
  decode: (d, o) => formatIpv4(d.getUint32(o, false)),
};

/**
 * An IPv6 address in network byte order (16 bytes), as RFC 5952 text (`fd00::1`, `::ffff:10.0.0.1`).
 * @example
 * ```ts
 * import { ipv6 } from '@datapath/bpf-maps';
 * ipv6.size; // 16
 * ```
 */
export const ipv6: Codec<string> = {
  size: 16,
  align: 1,
  encode: (v, d, o) => {
    const b = ipBytes(v, 6);
    for (let i = 0; i < 16; i++) d.setUint8(o + i, b[i]!);
  },
  decode: (d, o) => formatIp(new Uint8Array(d.buffer, d.byteOffset + o, 16)),
};

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * A 6-byte MAC address, as lower-case `aa:bb:cc:dd:ee:ff` text.
 * @example
 * ```ts
 * import { mac } from '@datapath/bpf-maps';
 * mac.size; // 6
 * ```
 */
export const mac: Codec<string> = {
  size: 6,
  align: 1,
  encode: (v, d, o) => {
    if (typeof v !== 'string' || !MAC_RE.test(v)) throw bad('expected a MAC address aa:bb:cc:dd:ee:ff', v);
    for (let i = 0; i < 6; i++) d.setUint8(o + i, Number.parseInt(v.slice(i * 3, i * 3 + 2), 16));
  },
  decode: (d, o) => {
    let s = '';
    for (let i = 0; i < 6; i++)
      s +=
        (i ? ':' : '') +
        d
          .getUint8(o + i)
          .toString(16)
          .padStart(2, '0');
    return s;
  },
};

/**
 * `n` raw bytes (`__u8[n]`), as a Uint8Array of exactly that length.
 * @throws {@link BpfError} `InvalidArgument` for a size that is not a positive integer.
 * @example
 * ```ts
 * import { bytes } from '@datapath/bpf-maps';
 * const tag = bytes(8);
 * ```
 */
export function bytes(n: number): Codec<Uint8Array> {
  checkSize(n, 'bytes');
  return {
    size: n,
    align: 1,
    encode: (v, d, o) => {
      if (!(v instanceof Uint8Array) || v.length !== n)
        throw bad(`expected a Uint8Array of ${n} bytes`, v?.length);
      new Uint8Array(d.buffer, d.byteOffset + o, n).set(v);
    },
    decode: (d, o) => new Uint8Array(d.buffer.slice(d.byteOffset + o, d.byteOffset + o + n)),
  };
}

/**
 * A fixed-length C array `T[n]` of `codec`, as a JS array of exactly `n` elements.
 * @throws {@link BpfError} `InvalidArgument` for a length that is not a positive integer.
 * @example Four u32 tunnel endpoints
 * ```ts
 * import { array, u32 } from '@datapath/bpf-maps';
 * const eps = array(u32, 4); // 16 bytes
 * ```
 */
export function array<T>(codec: Codec<T>, n: number): Codec<T[]> {
  checkSize(n, 'array');
  return {
    size: codec.size * n,
    align: codec.align,
    encode: (v, d, o) => {
      if (!Array.isArray(v) || v.length !== n) throw bad(`expected an array of ${n} elements`, v?.length);
      for (let i = 0; i < n; i++) codec.encode(v[i] as T, d, o + i * codec.size);
    },
    decode: (d, o) => {
      const out = new Array<T>(n);
      for (let i = 0; i < n; i++) out[i] = codec.decode(d, o + i * codec.size);
      return out;
    },
  };
}

/** A padding codec: `n` zero bytes that do not appear in the struct's value. */
export interface PadCodec extends Codec<undefined> {
  /** Marks the field as padding. */
  readonly pad: true;
}

/**
 * `n` bytes of explicit padding inside a {@link struct}: written as zeros, left out of the value.
 * @throws {@link BpfError} `InvalidArgument` for a size that is not a positive integer.
 * @example
 * ```ts
 * import { pad, struct, u16, u8 } from '@datapath/bpf-maps';
 * const s = struct({ a: u8, _pad: pad(1), b: u16 });
 * ```
 */
export function pad(n: number): PadCodec {
  checkSize(n, 'pad');
  return {
    pad: true,
    size: n,
    align: 1,
    encode: (_v, d, o) => {
      for (let i = 0; i < n; i++) d.setUint8(o + i, 0);
    },
    decode: () => undefined,
  };
}

/**
 * The same codec with a different alignment (C `__attribute__((aligned(n)))` on a field, or a packed
 * field with `align(c, 1)`).
 * @throws {@link BpfError} `InvalidArgument` unless `n` is a power of two.
 * @example
 * ```ts
 * import { align, u64 } from '@datapath/bpf-maps';
 * const packedU64 = align(u64, 1);
 * ```
 */
export function align<T>(codec: Codec<T>, n: number): Codec<T> {
  if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0) throw bad('alignment must be a power of two', n);
  return tagFast({ size: codec.size, align: n, encode: codec.encode, decode: codec.decode }, fastKind(codec));
}

function checkSize(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > 1 << 20) throw bad(`${what}: size must be a positive integer`, n);
}

/** The field codecs of a {@link struct}, in declaration order. */
export type StructFields = Record<string, Codec<unknown>>;

/** The value type of a {@link struct} of `F`: every field but the padding. */
export type StructType<F extends StructFields> = {
  [K in keyof F as F[K] extends PadCodec ? never : K]: CodecType<F[K]>;
};

/** Options of {@link struct}. */
export interface StructOptions {
  /** `__attribute__((packed))`: no alignment padding between fields or at the end. */
  packed?: boolean;
  /** The expected `sizeof`, checked when the codec is built (mirrors a C `_Static_assert`). */
  size?: number;
}

/** A {@link struct} codec, which also exposes each field's offset (`offsetof`). */
export interface StructCodec<F extends StructFields> extends Codec<StructType<F>> {
  /** Byte offset of each field. */
  readonly offsets: { readonly [K in keyof F]: number };
}

/**
 * A C struct from named field codecs in declaration order, laid out with C's rules: each field at
 * the next multiple of its alignment, the size rounded up to the largest alignment (unless `packed`).
 * Use {@link pad} for explicit padding fields, which the value omits.
 *
 * @throws {@link BpfError} `InvalidArgument` when `options.size` differs from the computed size.
 * @example Cilium's policy map key (prefixlen, identity, dir, proto, dport)
 * ```ts
 * import { be16, struct, u32, u8 } from '@datapath/bpf-maps';
 * const policyKey = struct(
 *   { prefixlen: u32, identity: u32, dir: u8, proto: u8, dport: be16 },
 *   { size: 12 },
 * );
 * ```
 */
export function struct<F extends StructFields>(fields: F, options: StructOptions = {}): StructCodec<F> {
  const names = Object.keys(fields);
  const entries: [string, Codec<unknown>, number, boolean][] = [];
  let off = 0;
  let maxAlign = 1;
  for (const name of names) {
    const c = fields[name]!;
    const a = options.packed ? 1 : c.align;
    off = (off + a - 1) & ~(a - 1);
    entries.push([name, c, off, (c as Partial<PadCodec>).pad === true]);
    off += c.size;
    maxAlign = Math.max(maxAlign, a);
  }
  const size = (off + maxAlign - 1) & ~(maxAlign - 1);
  if (options.size !== undefined && options.size !== size) {
    throw new BpfError(
      'InvalidArgument',
      `struct: computed size ${size} differs from the expected size ${options.size} (fields: ${entries
        .map(([n, c, o]) => `${n}@${o}+${c.size}`)
        .join(', ')})`,
      { op: 'struct' },
    );
  }
  const offsets = Object.fromEntries(entries.map(([n, , o]) => [n, o])) as { [K in keyof F]: number };
  const codec: StructCodec<F> = {
    size,
    align: maxAlign,
    offsets,
    encode: (v, d, o) => {
      if (v === null || typeof v !== 'object') throw bad('expected an object', v);
      // Zero the gaps between fields and the tail padding: the kernel compares keys byte for byte.
      new Uint8Array(d.buffer, d.byteOffset + o, size).fill(0);
      const rec = v as Record<string, unknown>;
      for (const [n, c, fo, isPad] of entries) {
        if (isPad) continue;
        const fv = rec[n];
        if (fv === undefined) throw bad(`missing struct field ${n}`, v);
        c.encode(fv, d, o + fo);
      }
    },
    decode: compileDecode(entries) as (d: DataView, o: number) => StructType<F>,
  };
  layouts.set(
    codec,
    entries.map(([name, c, offset, pad]) => ({ name, codec: c, offset, pad })),
  );
  inPlaceMakers.set(codec, compileInPlace(entries));
  return codec;
}

/** A field of a {@link struct}: its name, codec, byte offset, and whether it is padding. */
export interface StructField {
  readonly name: string;
  readonly codec: Codec<unknown>;
  readonly offset: number;
  readonly pad: boolean;
}

const layouts = new WeakMap<object, readonly StructField[]>();

/** @internal The fields of a codec made by {@link struct}, in declaration order; undefined for any other codec. */
export function structLayout(codec: Codec<unknown>): readonly StructField[] | undefined {
  return layouts.get(codec);
}

const FAST_READ: Record<number, (off: string) => string> = {
  [FAST_U8]: (off) => `d.getUint8(${off})`,
  [FAST_U16]: (off) => `d.getUint16(${off}, true)`,
  [FAST_U32]: (off) => `d.getUint32(${off}, true)`,
  [FAST_I32]: (off) => `d.getInt32(${off}, true)`,
  [FAST_U64]: (off) => `d.getBigUint64(${off}, true)`,
  [FAST_I64]: (off) => `d.getBigInt64(${off}, true)`,
};

/**
 * A struct decoder that builds its object in one literal (one hidden class, no property-by-property
 * growth) and reads built-in scalar fields inline; other fields call their codec. Generated once per
 * struct with `new Function` (only field offsets and JSON-quoted names go into the source); where code
 * generation is disabled, the same result through a loop.
 */
function compileDecode(
  entries: [string, Codec<unknown>, number, boolean][],
): (d: DataView, o: number) => unknown {
  const live = entries.filter(([, , , isPad]) => !isPad);
  const loop = (d: DataView, o: number) => {
    const out: Record<string, unknown> = {};
    for (const [n, c, fo] of live) out[n] = c.decode(d, o + fo);
    return out;
  };
  const codecs = live.map(([, c]) => c);
  const props = live.map(([n, c, fo], i) => {
    const fast = FAST_READ[fastKind(c)];
    const at = `o + ${fo}`;
    return `${JSON.stringify(n)}: ${fast === undefined ? `c[${i}].decode(d, ${at})` : fast(at)}`;
  });
  try {
    const make = new Function('c', `return function decode(d, o) { return { ${props.join(', ')} }; };`) as (
      c: Codec<unknown>[],
    ) => (d: DataView, o: number) => unknown;
    return make(codecs);
  } catch {
    return loop;
  }
}

/** A little-endian host: typed arrays read `u16`/`u32`/`i32` fields in the byte order those codecs use. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type InPlaceMaker = (
  u8: Uint8Array,
  u16: Uint16Array,
  u32: Uint32Array,
  i32: Int32Array,
  d: DataView,
) => (o: number) => unknown;
const inPlaceMakers = new WeakMap<object, InPlaceMaker | undefined>();

/**
 * @internal A decoder of `codec` (a {@link struct}) bound to one region of memory: `decode(o)` reads the record
 * at byte `o` of `bytes`, which must be a multiple of 8. It reads the aligned built-in `u8`/`u16`/`u32`/`i32`
 * fields through typed arrays over the region (cheaper than DataView calls) and the rest as the struct's own
 * decoder does, and returns the same object that decoder would. Undefined for another codec, on a big-endian
 * host, for a region not 8-byte aligned, or where code generation is disabled.
 */
export function structDecoderIn<T>(codec: Codec<T>, bytes: Uint8Array): ((o: number) => T) | undefined {
  const make = inPlaceMakers.get(codec);
  if (make === undefined || !LITTLE_ENDIAN || bytes.byteOffset % 8 !== 0) return undefined;
  const { buffer, byteOffset, byteLength } = bytes;
  return make(
    bytes,
    new Uint16Array(buffer, byteOffset, byteLength >>> 1),
    new Uint32Array(buffer, byteOffset, byteLength >>> 2),
    new Int32Array(buffer, byteOffset, byteLength >>> 2),
    new DataView(buffer, byteOffset, byteLength),
  ) as (o: number) => T;
}

/**
 * The generated maker behind {@link structDecoderIn}: the same object literal as {@link compileDecode}, with a
 * field at an offset aligned to its size read by index from a typed array (records start 8-byte aligned, so
 * the field is aligned too) and every other field read as the DataView decoder reads it.
 */
function compileInPlace(entries: [string, Codec<unknown>, number, boolean][]): InPlaceMaker | undefined {
  const live = entries.filter(([, , , isPad]) => !isPad);
  const codecs = live.map(([, c]) => c);
  const props = live.map(([n, c, fo], i) => {
    const kind = fastKind(c);
    const at = `o + ${fo}`;
    let read: string;
    if (kind === FAST_U8) read = `u8[${at}]`;
    else if (kind === FAST_U16 && fo % 2 === 0) read = `u16[(${at}) >>> 1]`;
    else if (kind === FAST_U32 && fo % 4 === 0) read = `u32[(${at}) >>> 2]`;
    else if (kind === FAST_I32 && fo % 4 === 0) read = `i32[(${at}) >>> 2]`;
    else {
      const fast = FAST_READ[kind];
      read = fast === undefined ? `c[${i}].decode(d, ${at})` : fast(at);
    }
    return `${JSON.stringify(n)}: ${read}`;
  });
  try {
    const make = new Function(
      'c',
      `return function bind(u8, u16, u32, i32, d) { return function decode(o) { return { ${props.join(', ')} }; }; };`,
    ) as (c: Codec<unknown>[]) => InPlaceMaker;
    return make(codecs);
  } catch {
    return undefined;
  }
}
