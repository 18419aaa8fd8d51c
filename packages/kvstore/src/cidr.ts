import { invalidArgument } from './errors.js';

/** A parsed, normalised CIDR (host bits cleared). */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bits: 32 | 128;
  readonly base: bigint;
  readonly prefixLen: number;
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(s) || s.split('::').length > 2) return undefined;
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head === '' || head === undefined ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  if ((tail === undefined && h.length !== 8) || fill < 0 || (tail !== undefined && fill < 1))
    return undefined;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(`0x${g}`);
  }
  return v;
}

/** Parses `a.b.c.d/n` or an IPv6 CIDR; host bits are cleared. Throws `InvalidArgument`. */
export function parseCidr(op: string, text: string): Cidr {
  const m = typeof text === 'string' ? /^([^/]+)\/([0-9]{1,3})$/.exec(text) : null;
  if (m === null) throw invalidArgument(op, `invalid CIDR ${JSON.stringify(text)}`);
  const v4 = m[1]!.includes(':') ? undefined : parseV4(m[1]!);
  const v6 = v4 === undefined ? parseV6(m[1]!) : undefined;
  const bits = v4 !== undefined ? 32 : 128;
  const addr = v4 ?? v6;
  const prefixLen = Number(m[2]);
  if (addr === undefined || prefixLen > bits)
    throw invalidArgument(op, `invalid CIDR ${JSON.stringify(text)}`);
  const host = (1n << BigInt(bits - prefixLen)) - 1n;
  return { family: bits === 32 ? 4 : 6, bits, base: addr & ~host, prefixLen };
}

/** Formats an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatAddr(family: 4 | 6, v: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  const g = Array.from({ length: 8 }, (_, i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Canonical text of a CIDR. */
export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.family, c.base)}/${c.prefixLen}`;
}

/** Whether two CIDRs overlap (one contains the other). */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const len = BigInt(a.bits - Math.min(a.prefixLen, b.prefixLen));
  return a.base >> len === b.base >> len;
}

/** One cluster CIDR cut into node blocks of `nodeMask` bits, addressed by index. */
export class NodeBlocks {
  readonly cluster: Cidr;
  readonly nodeMask: number;
  readonly count: number;
  readonly #shift: bigint;

  constructor(op: string, cluster: Cidr, nodeMask: number) {
    if (!Number.isInteger(nodeMask) || nodeMask < cluster.prefixLen || nodeMask > cluster.bits) {
      throw invalidArgument(
        op,
        `node mask /${nodeMask} must be between the cluster prefix /${cluster.prefixLen} and /${cluster.bits}`,
        formatCidr(cluster),
      );
    }
    if (nodeMask - cluster.prefixLen > (cluster.family === 6 ? 16 : 24)) {
      throw invalidArgument(
        op,
        `node mask /${nodeMask} is more than ${cluster.family === 6 ? 16 : 24} bits longer than the cluster prefix`,
        formatCidr(cluster),
      );
    }
    this.cluster = cluster;
    this.nodeMask = nodeMask;
    this.count = 2 ** (nodeMask - cluster.prefixLen);
    this.#shift = BigInt(cluster.bits - nodeMask);
  }

  /** The canonical text of block `i`. */
  at(i: number): string {
    const base = this.cluster.base | (BigInt(i) << this.#shift);
    return `${formatAddr(this.cluster.family, base)}/${this.nodeMask}`;
  }

  /** The index of an exact node block, or undefined when `text` is not one of this set's blocks. */
  indexOf(text: string): number | undefined {
    let c: Cidr;
    try {
      c = parseCidr('indexOf', text);
    } catch {
      return undefined;
    }
    if (c.family !== this.cluster.family || c.prefixLen !== this.nodeMask || !overlaps(c, this.cluster))
      return undefined;
    return Number((c.base ^ this.cluster.base) >> this.#shift);
  }
}
