/**
 * The Internet checksum (RFC 1071) of `parts` concatenated: the ones' complement of the ones'
 * complement sum of 16-bit big-endian words (an odd trailing byte padded with zero).
 *
 * @example Checking an IPv4 header
 * ```ts
 * import { internetChecksum } from '@datapath/loader';
 * declare const header: Uint8Array;
 * console.log(internetChecksum(header) === 0 ? 'valid' : 'corrupt');
 * ```
 */
export function internetChecksum(...parts: Uint8Array[]): number {
  let sum = 0;
  let pos = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++, pos++) sum += (pos & 1) === 0 ? p[i]! << 8 : p[i]!;
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The IPv4 pseudo-header of TCP/UDP checksums. */
export function pseudo4(src: Uint8Array, dst: Uint8Array, proto: number, length: number): Uint8Array {
  const p = new Uint8Array(12);
  p.set(src, 0);
  p.set(dst, 4);
  p[9] = proto;
  p[10] = length >> 8;
  p[11] = length & 0xff;
  return p;
}

/** The IPv6 pseudo-header of TCP/UDP/ICMPv6 checksums. */
export function pseudo6(src: Uint8Array, dst: Uint8Array, next: number, length: number): Uint8Array {
  const p = new Uint8Array(40);
  p.set(src, 0);
  p.set(dst, 16);
  new DataView(p.buffer).setUint32(32, length);
  p[39] = next;
  return p;
}
