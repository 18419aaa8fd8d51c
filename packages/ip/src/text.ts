// Address text, both directions, without bigints where they are not needed: IPv4 as a uint32 number,
// IPv6 as eight 16-bit groups (bigints are built from three number chunks at the end).
// Accepted text: IPv4 as four decimal octets without leading zeros (as Go, glibc's inet_pton and Node's
// net.isIPv4); IPv6 as RFC 4291 §2.2 (1-4 hex digits per group, one `::`, a trailing dotted quad), no zone,
// no brackets. Output: RFC 5952 (lower case, no leading zeros, the longest run of two or more zero groups
// compressed, the first on ties) and `::ffff:a.b.c.d` for IPv4-mapped addresses (RFC 5952 §5).

/** Parses the dotted quad `s[start, end)` to a uint32; -1 when it is not one. */
export function v4At(s: string, start: number, end: number): number {
  if (end - start < 7 || end - start > 15) return -1;
  let n = 0;
  let i = start;
  for (let k = 0; k < 4; k++) {
    if (k > 0) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1;
      i++;
    }
    if (i >= end) return -1;
    let c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    let v = c;
    i++;
    if (i < end) {
      c = s.charCodeAt(i) - 48;
      if (c >= 0 && c <= 9) {
        if (v === 0) return -1; // leading zero
        v = v * 10 + c;
        i++;
        if (i < end) {
          c = s.charCodeAt(i) - 48;
          if (c >= 0 && c <= 9) {
            v = v * 10 + c;
            i++;
            if (v > 255) return -1;
          }
        }
      }
    }
    n = n * 256 + v;
  }
  return i === end ? n : -1;
}

/** Value of one hex digit character code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20; // lower case
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/**
 * Parses IPv6 text into `g` (eight 16-bit groups, written in full); false when the text is not an IPv6
 * address.
 */
export function v6Groups(s: string, g: number[]): boolean {
  const len = s.length;
  if (len < 2 || len > 45) return false;
  let i = 0;
  let n = 0;
  let gap = -1;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    const start = i;
    let v = 0;
    let d = hexDigit(s.charCodeAt(i));
    while (d >= 0) {
      v = v * 16 + d;
      i++;
      if (i - start > 4) return false;
      d = i < len ? hexDigit(s.charCodeAt(i)) : -1;
    }
    if (i < len && s.charCodeAt(i) === 46) {
      // Trailing dotted quad: the last 32 bits.
      if (n > 6) return false;
      const q = v4At(s, start, len);
      if (q < 0) return false;
      g[n++] = q >>> 16;
      g[n++] = q & 0xffff;
      i = len;
      break;
    }
    if (i === start || n === 8) return false;
    g[n++] = v;
    if (i === len) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < len && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === len) return false; // a trailing single ':'
  }
  if (gap < 0) return n === 8;
  if (n > 7) return false;
  // Move the groups after the gap to the end and zero the gap.
  const tail = n - gap;
  for (let k = 1; k <= tail; k++) g[8 - k] = g[n - k]!;
  for (let k = gap; k < 8 - tail; k++) g[k] = 0;
  return true;
}

/** Eight 16-bit groups to a uint128 (three number chunks, three bigint conversions). */
export function groupsToBigint(g: readonly number[]): bigint {
  const a = (g[0]! * 65536 + g[1]!) * 65536 + g[2]!; // 48 bits
  const b = (g[3]! * 65536 + g[4]!) * 65536 + g[5]!; // 48 bits
  const c = g[6]! * 65536 + g[7]!; // 32 bits
  return (BigInt(a) << 80n) | (BigInt(b) << 32n) | BigInt(c);
}

/** A uint128 to eight 16-bit groups written into `g`. */
export function bigintToGroups(v: bigint, g: number[]): void {
  const hi = BigInt.asUintN(64, v >> 64n);
  const lo = BigInt.asUintN(64, v);
  const a = Number(hi >> 32n);
  const b = Number(BigInt.asUintN(32, hi));
  const c = Number(lo >> 32n);
  const d = Number(BigInt.asUintN(32, lo));
  g[0] = a >>> 16;
  g[1] = a & 0xffff;
  g[2] = b >>> 16;
  g[3] = b & 0xffff;
  g[4] = c >>> 16;
  g[5] = c & 0xffff;
  g[6] = d >>> 16;
  g[7] = d & 0xffff;
}

const OCTET = Array.from({ length: 256 }, (_, i) => String(i));
const OCTET_DOT = Array.from({ length: 256 }, (_, i) => `${i}.`);

/** A uint32 as a dotted quad. */
export function v4Text(n: number): string {
  return OCTET_DOT[n >>> 24]! + OCTET_DOT[(n >>> 16) & 255]! + OCTET_DOT[(n >>> 8) & 255]! + OCTET[n & 255]!;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16));
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** One 16-bit group in hex without leading zeros. */
function hex(x: number): string {
  return x < 256 ? HEX[x]! : HEX[x >>> 8]! + HEX2[x & 255]!;
}

/** Eight 16-bit groups as RFC 5952 text. */
export function v6Text(g: readonly number[]): string {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff)
    return `::ffff:${v4Text(g[6]! * 65536 + g[7]!)}`;
  // The longest run of two or more zero groups, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    if (g[i] !== 0) continue;
    let j = i + 1;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0)
    return `${hex(g[0]!)}:${hex(g[1]!)}:${hex(g[2]!)}:${hex(g[3]!)}:${hex(g[4]!)}:${hex(g[5]!)}:${hex(g[6]!)}:${hex(g[7]!)}`;
  let s = best === 0 ? ':' : '';
  for (let i = 0; i < best; i++) s += `${hex(g[i]!)}:`;
  const end = best + bestLen;
  if (end === 8) return `${s}:`;
  for (let i = end; i < 8; i++) s += `:${hex(g[i]!)}`;
  return s;
}
