import { BpfError } from '@datapath/libbpf';
import type { Codec, CodecType, StructFields } from './codec.js';

/** The value type of a {@link union} of `F`: any of its members (decoding gives all of them). */
export type UnionType<F extends StructFields> = { [K in keyof F]?: CodecType<F[K]> };

/** Options of {@link union}. */
export interface UnionOptions {
  /** The expected `sizeof`, checked when the codec is built. */
  size?: number;
}

/**
 * A C union: every member at offset 0, the size the largest member's rounded up to the largest
 * alignment. Decoding reads every member from the same bytes; encoding zeroes the union and writes the
 * members present, in declaration order (give one).
 *
 * @throws {@link BpfError} `InvalidArgument` when `options.size` differs from the computed size, or (on
 * encode) when no member is present.
 * @example An address that is IPv4 or IPv6
 * ```ts
 * import { ipv4, ipv6, union } from '@datapath/bpf-maps';
 * const addr = union({ v4: ipv4, v6: ipv6 }, { size: 16 });
 * const view = new DataView(new ArrayBuffer(16));
 * addr.encode({ v4: '10.0.0.1' }, view, 0);
 * ```
 */
export function union<F extends StructFields>(fields: F, options: UnionOptions = {}): Codec<UnionType<F>> {
  const entries = Object.entries(fields);
  const align = Math.max(1, ...entries.map(([, c]) => c.align));
  const raw = Math.max(0, ...entries.map(([, c]) => c.size));
  const size = (raw + align - 1) & ~(align - 1);
  if (options.size !== undefined && options.size !== size) {
    throw new BpfError(
      'InvalidArgument',
      `union: computed size ${size} differs from the expected size ${options.size}`,
      {
        op: 'union',
      },
    );
  }
  return {
    size,
    align,
    encode(v, d, o) {
      if (v === null || typeof v !== 'object') {
        throw new BpfError('InvalidArgument', 'codec: expected an object with one union member', {
          op: 'encode',
        });
      }
      new Uint8Array(d.buffer, d.byteOffset + o, size).fill(0);
      let wrote = false;
      for (const [n, c] of entries) {
        const fv = (v as Record<string, unknown>)[n];
        if (fv === undefined) continue;
        c.encode(fv, d, o);
        wrote = true;
      }
      if (!wrote) {
        throw new BpfError(
          'InvalidArgument',
          `codec: a union needs one of ${entries.map(([n]) => n).join(', ')}`,
          {
            op: 'encode',
          },
        );
      }
    },
    decode(d, o) {
      const out: Record<string, unknown> = {};
      for (const [n, c] of entries) out[n] = c.decode(d, o);
      return out as UnionType<F>;
    },
  };
}

/**
 * A C enum stored as `base` (u8…i32): its values typed as the union of the enum's literals. Encoding
 * refuses a number that is not one of `values`; decoding returns the stored number as is.
 *
 * @throws {@link BpfError} `InvalidArgument` (on encode) for a value outside the enum.
 * @example A direction enum
 * ```ts
 * import { enumeration, u8 } from '@datapath/bpf-maps';
 * const Dir = { DIR_INGRESS: 1, DIR_EGRESS: 2 } as const;
 * const dir = enumeration(u8, Dir); // Codec<1 | 2>
 * ```
 */
export function enumeration<const V extends Readonly<Record<string, number>>>(
  base: Codec<number>,
  values: V,
): Codec<V[keyof V]> {
  const allowed = new Set<number>(Object.values(values));
  return {
    size: base.size,
    align: base.align,
    encode(v, d, o) {
      if (!allowed.has(v)) {
        throw new BpfError(
          'InvalidArgument',
          `codec: ${String(v)} is not one of ${[...allowed].join(', ')}`,
          {
            op: 'encode',
          },
        );
      }
      base.encode(v, d, o);
    },
    decode: (d, o) => base.decode(d, o) as V[keyof V],
  };
}
