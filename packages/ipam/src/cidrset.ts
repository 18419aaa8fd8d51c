// A cluster CIDR cut into equal node CIDRs (Kubernetes/Cilium cidrset), one bitmap bit per node CIDR.
import {
  familyWidth,
  formatIpv4,
  formatIpv6,
  formatPrefix,
  type IpPrefix,
  prefixLast,
  prefixOverlaps,
} from '@datapath/ip';
import { Bitmap } from './bitmap.js';
import { fail } from './errors.js';
import { parseCidr } from './parse.js';

/** Serialised state of a {@link CidrSet}. */
export interface CidrSetSnapshot {
  /** Canonical cluster CIDR. */
  cidr: string;
  /** Node mask size. */
  nodeMaskSize: number;
  /** Big-endian bitmap of allocated node CIDRs, bit i = node CIDR index i. */
  data: Uint8Array;
  /** Index where the next scan starts. */
  nextCandidate: number;
}

/**
 * Cuts a cluster CIDR into node CIDRs of `nodeMaskSize` bits and hands them out in index order from a
 * next-candidate pointer that wraps around, exactly as upstream cidrset (release and occupy do not move the
 * pointer, so freed blocks are reused after the wrap).
 *
 * @example Node CIDRs from a /16
 * ```ts
 * import { CidrSet } from '@datapath/ipam';
 * const s = new CidrSet('10.244.0.0/16', 24);
 * console.log(s.allocateNext(), s.allocateNext(), s.maxCidrs); // 10.244.0.0/24 10.244.1.0/24 256
 * ```
 */
export class CidrSet {
  /** Canonical cluster CIDR. */
  readonly cidr: string;
  /** Node mask size. */
  readonly nodeMaskSize: number;
  /** Number of node CIDRs in the cluster CIDR. */
  readonly maxCidrs: number;
  /** The parsed cluster prefix. @internal */
  readonly prefix: IpPrefix;
  private readonly bitmap: Bitmap;
  private nextCandidate = 0;
  private readonly shift: number;
  private readonly base4: number;
  private readonly step4: number;
  private readonly suffix: string;

  /**
   * Creates an empty set.
   *
   * @throws {@link IpamError} `InvalidCidr`; `MaskInvalid` when the node mask is not an integer, exceeds the
   * address width or is shorter than the cluster prefix; `SubnetTooBig` when an IPv6 node mask is more than 16
   * bits longer than the cluster prefix (the bitmap limit, as upstream).
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * console.log(new CidrSet('fd00::/104', 120).maxCidrs); // 65536
   * ```
   */
  constructor(clusterCidr: string, nodeMaskSize: number) {
    const op = 'CidrSet';
    const p = parseCidr(clusterCidr, op);
    this.prefix = p;
    this.cidr = formatPrefix(p);
    const width = familyWidth(p.family);
    if (!Number.isInteger(nodeMaskSize) || nodeMaskSize < 0 || nodeMaskSize > width)
      fail('MaskInvalid', op, `node mask size ${nodeMaskSize} is invalid for IPv${p.family}`, this.cidr);
    if (nodeMaskSize < p.length)
      fail(
        'MaskInvalid',
        op,
        `node mask /${nodeMaskSize} is shorter than the cluster prefix /${p.length}`,
        this.cidr,
      );
    const diff = nodeMaskSize - p.length;
    if (p.family === 6 && diff > 16)
      fail(
        'SubnetTooBig',
        op,
        `IPv6 node mask may be at most 16 bits longer than the cluster prefix (/${p.length} → /${nodeMaskSize})`,
        this.cidr,
      );
    this.nodeMaskSize = nodeMaskSize;
    this.maxCidrs = 2 ** diff;
    this.shift = width - nodeMaskSize;
    this.base4 = p.family === 4 ? Number(p.value) : 0;
    this.step4 = 2 ** this.shift;
    this.suffix = `/${nodeMaskSize}`;
    this.bitmap = new Bitmap(this.maxCidrs, { strategy: 'contiguous' });
  }

  /** Number of allocated node CIDRs. */
  get allocatedCount(): number {
    return this.bitmap.used;
  }

  /** Whether every node CIDR is allocated. */
  get isFull(): boolean {
    return this.bitmap.used === this.maxCidrs;
  }

  /**
   * The node CIDR at `index`.
   *
   * @throws {@link IpamError} `OutOfRange` for an index outside `0 … maxCidrs-1`.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * console.log(new CidrSet('127.123.0.0/16', 24).cidrAt(15)); // 127.123.15.0/24
   * ```
   */
  cidrAt(index: number): string {
    if (!Number.isInteger(index) || index < 0 || index >= this.maxCidrs)
      fail(
        'OutOfRange',
        'CidrSet.cidrAt',
        `index ${index} out of range 0 … ${this.maxCidrs - 1}`,
        String(index),
      );
    return this.format(index);
  }

  private format(index: number): string {
    if (this.prefix.family === 4) return formatIpv4(this.base4 + index * this.step4) + this.suffix;
    return formatIpv6(this.prefix.value | (BigInt(index) << BigInt(this.shift))) + this.suffix;
  }

  /**
   * Allocates the next free node CIDR, scanning from the next-candidate pointer with wrap-around.
   *
   * @throws {@link IpamError} `Full` when every node CIDR is allocated.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * console.log(new CidrSet('10.0.0.0/28', 30).allocateNext()); // 10.0.0.0/30
   * ```
   */
  allocateNext(): string {
    if (this.isFull) fail('Full', 'CidrSet.allocateNext', `no node CIDRs left in ${this.cidr}`, this.cidr);
    let i = this.bitmap.findFree(this.nextCandidate);
    if (i < 0) i = this.bitmap.findFree(0);
    this.bitmap.set(i);
    this.nextCandidate = (i + 1) % this.maxCidrs;
    return this.format(i);
  }

  /**
   * Whether `cidr` overlaps the cluster CIDR (either contains the other); false for the other family.
   *
   * @throws {@link IpamError} `InvalidCidr`.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * console.log(s.inRange('10.0.5.0/24'), s.inRange('10.0.0.0/8'), s.inRange('10.1.0.0/24')); // true true false
   * ```
   */
  inRange(cidr: string): boolean {
    return prefixOverlaps(this.prefix, parseCidr(cidr, 'CidrSet.inRange'));
  }

  /** First and last node index covered by `cidr`. @internal */
  indices(cidr: string, op: string): [number, number] {
    const c = parseCidr(cidr, op);
    if (!prefixOverlaps(this.prefix, c))
      fail('NotInRange', op, `${cidr} is out of the range of cluster CIDR ${this.cidr}`, cidr);
    if (c.length <= this.prefix.length) return [0, this.maxCidrs - 1];
    const sh = BigInt(this.shift);
    const begin = Number((c.value - this.prefix.value) >> sh);
    const end = Number((prefixLast(c).value - this.prefix.value) >> sh);
    return [begin, end];
  }

  /**
   * Marks every node CIDR covered by `cidr` allocated (idempotent); a `cidr` at least as large as the cluster
   * CIDR covers all of them. Returns how many became allocated.
   *
   * @throws {@link IpamError} `InvalidCidr`; `NotInRange` when `cidr` does not overlap the cluster CIDR.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * s.occupy('10.0.0.0/17');
   * console.log(s.allocateNext()); // 10.0.128.0/24
   * ```
   */
  occupy(cidr: string): number {
    const [b, e] = this.indices(cidr, 'CidrSet.occupy');
    let n = 0;
    for (let i = b; i <= e; i++) if (this.bitmap.set(i)) n++;
    return n;
  }

  /**
   * Frees every node CIDR covered by `cidr` (idempotent). Returns how many became free.
   *
   * @throws {@link IpamError} `InvalidCidr`; `NotInRange` when `cidr` does not overlap the cluster CIDR.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * const c = s.allocateNext();
   * s.release(c);
   * console.log(s.allocatedCount); // 0
   * ```
   */
  release(cidr: string): number {
    const [b, e] = this.indices(cidr, 'CidrSet.release');
    let n = 0;
    for (let i = b; i <= e; i++) if (this.bitmap.clear(i)) n++;
    return n;
  }

  /**
   * Whether every node CIDR covered by `cidr` is allocated.
   *
   * @throws {@link IpamError} `InvalidCidr`; `NotInRange` when `cidr` does not overlap the cluster CIDR.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * s.occupy('10.0.3.0/24');
   * console.log(s.isAllocated('10.0.3.0/24'), s.isAllocated('10.0.2.0/23')); // true false
   * ```
   */
  isAllocated(cidr: string): boolean {
    const [b, e] = this.indices(cidr, 'CidrSet.isAllocated');
    for (let i = b; i <= e; i++) if (!this.bitmap.get(i)) return false;
    return true;
  }

  /** Whether any node CIDR covered by `cidr` is allocated. @internal */
  anyAllocated(cidr: string): boolean {
    const [b, e] = this.indices(cidr, 'CidrSet.anyAllocated');
    for (let i = b; i <= e; i++) if (this.bitmap.get(i)) return true;
    return false;
  }

  /**
   * Calls `fn` with every allocated node CIDR in index order.
   *
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * s.occupy('10.0.7.0/24');
   * s.forEach((c) => console.log(c)); // 10.0.7.0/24
   * ```
   */
  forEach(fn: (cidr: string) => void): void {
    this.bitmap.forEach((i) => {
      fn(this.format(i));
    });
  }

  /**
   * The set's state, for persistence.
   *
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const s = new CidrSet('10.0.0.0/16', 24);
   * s.allocateNext();
   * console.log(s.snapshot().nextCandidate); // 1
   * ```
   */
  snapshot(): CidrSetSnapshot {
    return {
      cidr: this.cidr,
      nodeMaskSize: this.nodeMaskSize,
      data: this.bitmap.snapshot(),
      nextCandidate: this.nextCandidate,
    };
  }

  /**
   * Replaces the state with a snapshot of a set with the same cluster CIDR and node mask.
   *
   * @throws {@link IpamError} `Mismatch` for another CIDR or mask; `InvalidSnapshot` for bits past
   * `maxCidrs` or a bad `nextCandidate`. The set is unchanged on error.
   * @example
   * ```ts
   * import { CidrSet } from '@datapath/ipam';
   * const a = new CidrSet('10.0.0.0/16', 24);
   * a.allocateNext();
   * const b = new CidrSet('10.0.0.0/16', 24);
   * b.restore(a.snapshot());
   * console.log(b.allocateNext()); // 10.0.1.0/24
   * ```
   */
  restore(snapshot: CidrSetSnapshot): void {
    const op = 'CidrSet.restore';
    if (snapshot?.cidr !== this.cidr || snapshot.nodeMaskSize !== this.nodeMaskSize)
      fail(
        'Mismatch',
        op,
        `snapshot of ${String(snapshot?.cidr)}→/${String(snapshot?.nodeMaskSize)} does not match ${this.cidr}→/${this.nodeMaskSize}`,
        this.cidr,
      );
    const next = snapshot.nextCandidate;
    if (!Number.isInteger(next) || next < 0 || next >= this.maxCidrs)
      fail('InvalidSnapshot', op, `nextCandidate ${String(next)} out of range`, this.cidr);
    this.bitmap.restore(snapshot.data);
    this.nextCandidate = next;
  }
}
