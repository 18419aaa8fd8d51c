// Address parsing, formatting and arithmetic. IPv4 addresses are plain numbers (uint32), IPv6 addresses
// bigints (uint128). ipaddr.js is used to parse IPv6 text only; everything else is done here.
import ipaddr from 'ipaddr.js';
import { fail } from './errors.js';

/** An IP family: 4 or 6. */
export type IpFamily = 4 | 6;

/** A parsed, masked prefix. `addr` is the network address as a bigint for both families. */
export interface Prefix {
  readonly family: IpFamily;
  readonly addr: bigint;
  readonly bits: number;
  /** Address width: 32 or 128. */
  readonly width: number;
}

const MASK128 = (1n << 128n) - 1n;

/** One decimal octet at `i`: `value * 256 + next index`, or -1 (no digit, leading zero, > 255). */
function octet(s: string, i: number, len: number): number {
  if (i >= len) return -1;
  let c = s.charCodeAt(i) - 48;
  if (c < 0 || c > 9) return -1;
  let v = c;
  i++;
  if (i < len) {
    c = s.charCodeAt(i) - 48;
    if (c >= 0 && c <= 9) {
      if (v === 0) return -1;
      v = v * 10 + c;
      i++;
      if (i < len) {
        c = s.charCodeAt(i) - 48;
        if (c >= 0 && c <= 9) {
          v = v * 10 + c;
          i++;
          if (v > 255) return -1;
        }
      }
    }
  }
  return v * 256 + i;
}

/** Parses a dotted quad strictly (four decimal octets, no leading zeros); -1 when invalid. */
export function parseV4(s: string): number {
  const len = s.length;
  if (len < 7 || len > 15) return -1;
  let r = octet(s, 0, len);
  if (r < 0) return -1;
  let n = r >>> 8;
  let i = r & 255;
  for (let k = 0; k < 3; k++) {
    if (s.charCodeAt(i) !== 46) return -1;
    r = octet(s, i + 1, len);
    if (r < 0) return -1;
    n = n * 256 + (r >>> 8);
    i = r & 255;
  }
  return i === len ? n : -1;
}

/** Parses IPv6 text (no zone) to a bigint; -1n when invalid. */
export function parseV6(s: string): bigint {
  if (s.indexOf('%') >= 0 || !ipaddr.IPv6.isValid(s)) return -1n;
  const parts = ipaddr.IPv6.parse(s).parts;
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 16n) | BigInt(parts[i]!);
  return v;
}

const OCTET = Array.from({ length: 256 }, (_, i) => String(i));
const OCTET_DOT = Array.from({ length: 256 }, (_, i) => `${i}.`);

/** Formats a uint32 as a dotted quad. */
export function formatV4(n: number): string {
  return OCTET_DOT[n >>> 24]! + OCTET_DOT[(n >>> 16) & 255]! + OCTET_DOT[(n >>> 8) & 255]! + OCTET[n & 255]!;
}

/** Formats a uint128 in RFC 5952 form (IPv4-mapped addresses as `::ffff:a.b.c.d`, as Go does). */
export function formatV6(v: bigint): string {
  const g: number[] = new Array(8);
  const hiBig = v >> 64n;
  const lo = v & 0xffffffffffffffffn;
  const h1 = Number(hiBig >> 32n);
  const h2 = Number(hiBig & 0xffffffffn);
  const l1 = Number(lo >> 32n);
  const l2 = Number(lo & 0xffffffffn);
  g[0] = h1 >>> 16;
  g[1] = h1 & 0xffff;
  g[2] = h2 >>> 16;
  g[3] = h2 & 0xffff;
  g[4] = l1 >>> 16;
  g[5] = l1 & 0xffff;
  g[6] = l2 >>> 16;
  g[7] = l2 & 0xffff;
  if (h1 === 0 && h2 === 0 && l1 === 0xffff) return `::ffff:${formatV4(l2)}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number): string =>
    g
      .slice(a, b)
      .map((x) => x.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** A parsed IP: family plus value (bigint for both families). */
export interface ParsedIp {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** Parses an IP string; throws `InvalidCidr` when it is not a valid IPv4 or IPv6 address. */
export function parseIp(s: string, op: string): ParsedIp {
  if (typeof s === 'string') {
    if (s.indexOf(':') < 0) {
      const n = parseV4(s);
      if (n >= 0) return { family: 4, value: BigInt(n) };
    } else {
      const v = parseV6(s);
      if (v >= 0n) return { family: 6, value: v };
    }
  }
  return fail('InvalidCidr', op, `invalid IP address ${JSON.stringify(s)}`, String(s));
}

/** Formats an address of a family. */
export function formatIp(family: IpFamily, v: bigint): string {
  return family === 4 ? formatV4(Number(v)) : formatV6(v);
}

/** Mask with the low `hostBits` bits set. */
export function hostMask(hostBits: number): bigint {
  return (1n << BigInt(hostBits)) - 1n;
}

/**
 * Parses a CIDR the way Go's `net.ParseCIDR` does (strict dotted quads, prefix length in range, no
 * whitespace or zone) and masks the host bits: `10.0.0.1/24` → `10.0.0.0/24`. Throws `InvalidCidr`.
 */
export function parseCidr(s: string, op: string): Prefix {
  if (typeof s !== 'string') return fail('InvalidCidr', op, `invalid CIDR ${String(s)}`, String(s));
  const slash = s.indexOf('/');
  const lenText = slash < 0 ? '' : s.slice(slash + 1);
  if (slash < 0 || !/^(0|[1-9][0-9]{0,2})$/.test(lenText))
    return fail('InvalidCidr', op, `invalid CIDR ${JSON.stringify(s)}`, s);
  const bits = Number(lenText);
  const ipText = s.slice(0, slash);
  let family: IpFamily;
  let value: bigint;
  if (ipText.indexOf(':') < 0) {
    const n = parseV4(ipText);
    if (n < 0 || bits > 32) return fail('InvalidCidr', op, `invalid CIDR ${JSON.stringify(s)}`, s);
    family = 4;
    value = BigInt(n);
  } else {
    const v = parseV6(ipText);
    if (v < 0n || bits > 128) return fail('InvalidCidr', op, `invalid CIDR ${JSON.stringify(s)}`, s);
    family = 6;
    value = v;
  }
  const width = family === 4 ? 32 : 128;
  const addr = value & ~hostMask(width - bits) & MASK128;
  return { family, addr, bits, width };
}

/** Canonical text of a prefix. */
export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.family, p.addr)}/${p.bits}`;
}

/** Last address of a prefix. */
export function lastAddr(p: Prefix): bigint {
  return p.addr | hostMask(p.width - p.bits);
}

/** True when two prefixes of the same family overlap (one contains the other). */
export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  return a.addr <= lastAddr(b) && b.addr <= lastAddr(a);
}
