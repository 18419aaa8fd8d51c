import { PolicyError } from './errors.js';

/** A parsed IP prefix: family, address bits as a bigint (32 or 128 wide) and prefix length. */
export interface Prefix {
  family: 4 | 6;
  bits: bigint;
  len: number;
  /** Canonical text, e.g. `10.0.0.0/8` (host bits cleared). */
  text: string;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const dbl = s.split('::');
  if (dbl.length > 2) return undefined;
  const side = (t: string): number[] | undefined => {
    if (t === '') return [];
    const out: number[] = [];
    const groups = t.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = parseV4(g);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(Number.parseInt(g, 16));
      }
    }
    return out;
  };
  const head = side(dbl[0]!);
  const tail = dbl.length === 2 ? side(dbl[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if ((dbl.length === 2 && missing < 1) || (dbl.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parses an IP address into family and bits, or `undefined` when it is not one. */
export function parseIp(s: string): { family: 4 | 6; bits: bigint } | undefined {
  const v4 = parseV4(s);
  if (v4 !== undefined) return { family: 4, bits: v4 };
  const v6 = s.includes(':') ? parseV6(s) : undefined;
  return v6 === undefined ? undefined : { family: 6, bits: v6 };
}

function width(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/** Formats address bits back to text (dotted quad or compressed IPv6). */
export function formatIp(family: 4 | 6, bits: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((bits >> s) & 0xffn)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((bits >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function mask(family: 4 | 6, len: number): bigint {
  const w = BigInt(width(family));
  return ((1n << w) - 1n) ^ ((1n << (w - BigInt(len))) - 1n);
}

/** Parses `addr/len` (or a bare address = host prefix) into a canonical {@link Prefix}; `undefined` if malformed. */
export function tryParsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (ip === undefined) return undefined;
  const w = width(ip.family);
  let len = w;
  if (slash >= 0) {
    const l = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l)) return undefined;
    len = Number(l);
    if (len > w) return undefined;
  }
  const bits = ip.bits & mask(ip.family, len);
  return { family: ip.family, bits, len, text: `${formatIp(ip.family, bits)}/${len}` };
}

/** Like {@link tryParsePrefix} but throws `PolicyError` `InvalidArgument`. */
export function parsePrefix(s: string): Prefix {
  const p = tryParsePrefix(s);
  if (p === undefined) throw new PolicyError('InvalidArgument', `not an IP prefix: ${JSON.stringify(s)}`);
  return p;
}

/** True when prefix `outer` contains prefix `inner` (same family, shorter or equal, same leading bits). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || outer.len > inner.len) return false;
  return (inner.bits & mask(outer.family, outer.len)) === outer.bits;
}

/** True when prefix `p` contains the address. */
export function prefixContainsIp(p: Prefix, ip: { family: 4 | 6; bits: bigint }): boolean {
  return p.family === ip.family && (ip.bits & mask(p.family, p.len)) === p.bits;
}

/** The 4 or 16 network-order bytes of an address. */
export function ipBytes(family: 4 | 6, bits: bigint): Uint8Array {
  const n = family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(bits & 0xffn);
    bits >>= 8n;
  }
  return out;
}
