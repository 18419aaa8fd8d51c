import { formatIp, prefixFirst, tryParsePrefix } from '@datapath/ip';
import { BpfError } from '@datapath/libbpf';
import { type Codec, ipBytes, type StructType, struct } from './codec.js';

/** An LPM trie key: a CIDR (`addr` / `prefixLen`) plus any static fields in front of the address. */
export type LpmKey<S extends object = {}> = {
  /** The CIDR's prefix length in bits (not counting the static fields). */
  prefixLen: number;
  /** The network address, host bits zero (`10.0.0.0`, `fd00::`). */
  addr: string;
} & S;

/** Options of {@link lpmKeyCodec}. */
export interface LpmKeyOptions<F extends Record<string, Codec<unknown>>> {
  /** Address family: 4 bytes (`ipv4`) or 16 bytes (`ipv6`) of address data. */
  family: 'ipv4' | 'ipv6';
  /**
   * Static fields between `prefixlen` and the address, laid out packed (as in Cilium's ipcache key
   * `{ u16 pad; u8 cluster_id; u8 family }`). They always take part in the match: the kernel's
   * `prefixlen` is their bit count plus the CIDR's.
   */
  prefix?: F;
  /**
   * Bytes reserved for the address (default 4 for IPv4, 16 for IPv6). Cilium's ipcache keeps IPv4
   * addresses in a 16-byte field: `{ family: 'ipv4', addressSize: 16 }` writes the address into its
   * first 4 bytes and zeroes the rest.
   */
  addressSize?: 4 | 16;
}

function bad(msg: string): BpfError {
  return new BpfError('InvalidArgument', `lpmKey: ${msg}`, { op: 'encode' });
}

/**
 * A codec for LPM trie keys laid out as `{ u32 prefixlen; <static prefix fields>; u8 addr[4|16] }`,
 * `prefixlen` in host byte order and the address in network byte order. Encoding sets `prefixlen` to
 * the static fields' bits plus the CIDR's and clears host bits; decoding subtracts the static bits.
 *
 * @throws {@link BpfError} `InvalidArgument` (at encode time) for a bad address or prefix length.
 * @example Cilium's ipcache key (prefixlen, pad, cluster id, family, 16-byte address)
 * ```ts
 * import { lpmKeyCodec, pad, u8 } from '@datapath/bpf-maps';
 * const ipcacheKey = lpmKeyCodec({ family: 'ipv6', prefix: { _pad: pad(2), clusterId: u8, family: u8 } });
 * ipcacheKey.size; // 24
 * ```
 */
export function lpmKeyCodec<F extends Record<string, Codec<unknown>> = {}>(
  options: LpmKeyOptions<F>,
): Codec<LpmKey<StructType<F>>> {
  const { family } = options;
  if (family !== 'ipv4' && family !== 'ipv6') throw bad(`family must be ipv4 or ipv6, got ${String(family)}`);
  const fields = options.prefix ?? ({} as F);
  const pre = Object.keys(fields).length > 0 ? struct(fields, { packed: true }) : undefined;
  const preSize = pre?.size ?? 0;
  const addrLen = family === 'ipv4' ? 4 : 16;
  const addrSize = options.addressSize ?? addrLen;
  if (addrSize !== 4 && addrSize !== 16) throw bad(`addressSize must be 4 or 16, got ${String(addrSize)}`);
  if (addrSize < addrLen) throw bad(`an ${family} address does not fit in ${addrSize} bytes`);
  const addrOff = 4 + preSize;
  const staticBits = preSize * 8;
  const maxBits = addrLen * 8;
  // C pads the struct to its 4-byte alignment (the u32 prefixlen).
  const size = (addrOff + addrSize + 3) & ~3;
  return {
    size,
    align: 4,
    encode: (v, d, o) => {
      if (v === null || typeof v !== 'object') throw bad('expected { addr, prefixLen }');
      const { prefixLen, addr } = v;
      if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > maxBits) {
        throw bad(`prefixLen must be 0…${maxBits}, got ${String(prefixLen)}`);
      }
      const b = ipBytes(addr, family === 'ipv4' ? 4 : 6);
      d.setUint32(o, staticBits + prefixLen, true);
      if (pre) pre.encode(v as unknown as StructType<F>, d, o + 4);
      for (let i = addrOff + addrLen; i < size; i++) d.setUint8(o + i, 0);
      for (let i = 0; i < addrLen; i++) {
        const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
        d.setUint8(o + addrOff + i, b[i]! & ((0xff00 >> keep) & 0xff));
      }
    },
    decode: (d, o) => {
      const bits = d.getUint32(o, true) - staticBits;
      const addr = formatIp(new Uint8Array(d.buffer, d.byteOffset + o + addrOff, addrLen));
      const rest = pre ? (pre.decode(d, o + 4) as object) : {};
      return { ...rest, prefixLen: bits, addr } as LpmKey<StructType<F>>;
    },
  };
}

/**
 * Helpers that build {@link LpmKey} values.
 *
 * @example Keys for an ipcache-style trie
 * ```ts
 * import { lpmKey } from '@datapath/bpf-maps';
 * const k = lpmKey.fromCidr('10.0.0.0/8'); // { addr: '10.0.0.0', prefixLen: 8 }
 * const withCluster = lpmKey.fromCidr('fd00::/64', { clusterId: 1, family: 10 });
 * ```
 */
export const lpmKey = {
  /**
   * Parses `a.b.c.d/n` or `x::y/n` into an {@link LpmKey} with host bits cleared, merged with the
   * static fields `extra`; a bare address gets a full-length prefix.
   * @throws {@link BpfError} `InvalidArgument` for bad CIDR text.
   */
  fromCidr<S extends object = {}>(cidr: string, extra?: S): LpmKey<S> {
    if (typeof cidr !== 'string') throw bad(`expected CIDR text, got ${String(cidr)}`);
    const p = tryParsePrefix(cidr, { strict: false, bare: true });
    if (p === undefined) throw bad(`expected an address or address/length, got ${JSON.stringify(cidr)}`);
    return { ...(extra ?? ({} as S)), addr: formatIp(prefixFirst(p)), prefixLen: p.length };
  },
};
