// Agent side: the pod CIDRs of one node, tried in order; CIDRs removed from the spec while in use are kept
// (releasable, no longer offered) until they empty.
import { formatPrefix, type IpFamily } from '@datapath/ip';
import { fail } from './errors.js';
import { parseCidr, parseIp } from './parse.js';
import { RangeAllocator, type RangeOptions, type RangeSnapshot } from './range.js';

/** Usage of one pod CIDR. */
export interface PodCidrStats {
  /** The pod CIDR. */
  cidr: string;
  /** Usable addresses. */
  size: number;
  /** Allocated addresses. */
  used: number;
  /** Free addresses (0 for a removed CIDR: it is no longer offered). */
  free: number;
  /** True when the CIDR left the spec but still has allocated addresses. */
  removed: boolean;
}

/** Serialised state of one pod CIDR of a {@link PodCidrPool}. */
export interface PodCidrSnapshot extends RangeSnapshot {
  /** True when the CIDR had left the spec but was still in use. */
  removed: boolean;
}

/** Usage of a {@link PodCidrPool}. */
export interface PodPoolStats {
  /** Usable addresses over the CIDRs still in the spec. */
  size: number;
  /** Allocated addresses over all CIDRs. */
  used: number;
  /** Free addresses over the CIDRs still in the spec. */
  free: number;
  /** Per-CIDR figures, in pool order. */
  cidrs: PodCidrStats[];
}

interface Entry {
  range: RangeAllocator;
  removed: boolean;
}

/**
 * The pod CIDRs of one node (one family), used in order to avoid fragmentation, with the
 * {@link RangeAllocator} operations over all of them.
 *
 * @example Two pod CIDRs, the second used once the first is full
 * ```ts
 * import { PodCidrPool } from '@datapath/ipam';
 * const pool = new PodCidrPool(['10.244.1.0/30', '10.244.9.0/30'], { strategy: 'contiguous' });
 * console.log(pool.allocateNext(), pool.allocateNext(), pool.allocateNext()); // 10.244.1.1 10.244.1.2 10.244.9.1
 * ```
 */
export class PodCidrPool {
  private entries: Entry[] = [];
  private readonly options: RangeOptions;
  /** 4 or 6, fixed by the first CIDR. */
  readonly family: IpFamily;

  /**
   * Creates a pool over `podCidrs` (duplicates are ignored).
   *
   * @throws {@link IpamError} `InvalidCidr` (unparsable, or an empty list); `Family` (mixed families);
   * `SubnetTooBig` (see {@link RangeAllocator}).
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * console.log(new PodCidrPool(['10.0.0.0/24', '10.0.1.0/24']).size); // 508
   * ```
   */
  constructor(podCidrs: string[], options: RangeOptions = {}) {
    this.options = options;
    if (!Array.isArray(podCidrs) || podCidrs.length === 0)
      fail('InvalidCidr', 'PodCidrPool', 'no pod CIDRs given');
    this.family = parseCidr(podCidrs[0]!, 'PodCidrPool').family;
    this.entries = this.build(podCidrs, 'PodCidrPool').map((range) => ({ range, removed: false }));
  }

  private build(cidrs: string[], op: string): RangeAllocator[] {
    const seen = new Set<string>();
    const out: RangeAllocator[] = [];
    for (const c of cidrs) {
      const p = parseCidr(c, op);
      if (p.family !== this.family) fail('Family', op, `${c} is not an IPv${this.family} CIDR`, c);
      const text = formatPrefix(p);
      if (seen.has(text)) continue;
      seen.add(text);
      out.push(
        this.entries.find((e) => e.range.cidr === text)?.range ?? new RangeAllocator(text, this.options),
      );
    }
    return out;
  }

  /** The pod CIDRs in pool order, removed ones included. */
  get cidrs(): string[] {
    return this.entries.map((e) => e.range.cidr);
  }

  /**
   * Whether `e`'s usable addresses all lie in another entry of `among` that counts instead (a larger one, or
   * an equal one earlier in the pool). CIDRs either nest or are disjoint, so overlapping pod CIDRs are
   * counted once, by the outermost.
   */
  private shadowed(e: Entry, among: Entry[]): boolean {
    const i = this.entries.indexOf(e);
    return among.some((f) => {
      if (f === e || !f.range.contains(e.range.first) || !f.range.contains(e.range.last)) return false;
      return f.range.size > e.range.size || this.entries.indexOf(f) < i;
    });
  }

  private counted(activeOnly: boolean): Entry[] {
    const among = activeOnly ? this.entries.filter((e) => !e.removed) : this.entries;
    return among.filter((e) => !this.shadowed(e, among));
  }

  /** Usable addresses over the CIDRs in the spec (an address in overlapping CIDRs counts once). */
  get size(): number {
    return this.counted(true).reduce((n, e) => n + e.range.size, 0);
  }

  /** Allocated addresses over all CIDRs (each address once). */
  get used(): number {
    return this.counted(false).reduce((n, e) => n + e.range.used, 0);
  }

  /** Free addresses over the CIDRs in the spec (each address once). */
  get free(): number {
    return this.counted(true).reduce((n, e) => n + e.range.free, 0);
  }

  private find(ip: string): Entry | undefined {
    for (const e of this.entries) if (e.range.contains(ip)) return e;
    return undefined;
  }

  /** Marks `ip` allocated in every other CIDR that contains it (overlapping pod CIDRs agree). */
  private mirror(ip: string, from: Entry): void {
    for (const e of this.entries)
      if (e !== from && e.range.contains(ip) && !e.range.has(ip)) e.range.allocate(ip);
  }

  /**
   * Allocates a specific address in the first pod CIDR that contains it.
   *
   * @throws {@link IpamError} `InvalidCidr`; `NotInRange` (in no pod CIDR, or in a removed one);
   * `AlreadyAllocated`.
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/24']);
   * pool.allocate('10.0.0.10');
   * console.log(pool.has('10.0.0.10')); // true
   * ```
   */
  allocate(ip: string): void {
    const e = this.find(ip);
    if (e === undefined || e.removed) {
      parseIp(ip, 'PodCidrPool.allocate');
      fail('NotInRange', 'PodCidrPool.allocate', `${ip} is not in range of any pod CIDR`, ip);
    }
    e.range.allocate(ip);
    this.mirror(ip, e);
  }

  /**
   * Allocates a free address from the first pod CIDR (in pool order) that has one.
   *
   * @throws {@link IpamError} `Full` when every pod CIDR is exhausted (the message lists them).
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * console.log(new PodCidrPool(['10.0.0.0/30'], { strategy: 'contiguous' }).allocateNext()); // 10.0.0.1
   * ```
   */
  allocateNext(): string {
    for (const e of this.entries) {
      if (e.removed) continue;
      // Overlapping CIDRs mirror every allocation, so an address free here is free in all of them.
      while (e.range.free > 0) {
        const ip = e.range.allocateNext();
        if (this.entries.some((f) => f !== e && f.range.contains(ip) && f.range.has(ip))) continue;
        this.mirror(ip, e);
        return ip;
      }
    }
    return fail(
      'Full',
      'PodCidrPool.allocateNext',
      `all pod CIDR ranges are exhausted (${this.cidrs.join(', ')})`,
    );
  }

  /**
   * Frees an address (a no-op when free or in no pod CIDR); a removed CIDR is dropped once empty.
   *
   * @throws {@link IpamError} `InvalidCidr` when `ip` is not an IP address.
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/24']);
   * pool.release(pool.allocateNext());
   * console.log(pool.used); // 0
   * ```
   */
  release(ip: string): void {
    const e = this.find(ip);
    if (e === undefined) {
      parseIp(ip, 'PodCidrPool.release');
      return;
    }
    for (const x of this.entries) if (x.range.contains(ip)) x.range.release(ip);
    this.entries = this.entries.filter((x) => !(x.removed && x.range.used === 0));
  }

  /**
   * Whether an address is allocated.
   *
   * @throws {@link IpamError} `InvalidCidr` when `ip` is not an IP address.
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * console.log(new PodCidrPool(['10.0.0.0/24']).has('10.0.0.1')); // false
   * ```
   */
  has(ip: string): boolean {
    const e = this.find(ip);
    if (e === undefined) {
      parseIp(ip, 'PodCidrPool.has');
      return false;
    }
    return e.range.has(ip);
  }

  /** Whether `ip` is a usable address of a pod CIDR still in the spec. */
  contains(ip: string): boolean {
    const e = this.find(ip);
    return e !== undefined && !e.removed;
  }

  /** Index of the pod CIDR holding `ip` (-1 if none). @internal */
  indexOf(ip: string): number {
    const e = this.find(ip);
    return e === undefined ? -1 : this.entries.indexOf(e);
  }

  /**
   * Calls `fn` with every allocated address, pod CIDR by pod CIDR, each in address order.
   *
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/24']);
   * pool.allocate('10.0.0.3');
   * pool.forEach((ip) => console.log(ip)); // 10.0.0.3
   * ```
   */
  forEach(fn: (ip: string) => void): void {
    for (const e of this.entries) e.range.forEach(fn);
  }

  /**
   * Replaces the pod CIDR list: new CIDRs are appended in order, CIDRs that left the list are dropped when
   * unused or kept as removed (releasable, not offered) while in use, and a removed CIDR that comes back is
   * offered again. All or nothing.
   *
   * @throws {@link IpamError} `InvalidCidr`; `Family`; `SubnetTooBig`.
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/24']);
   * pool.allocate('10.0.0.7');
   * pool.updatePodCidrs(['10.0.1.0/24']);
   * console.log(pool.stats().cidrs.map((c) => `${c.cidr}${c.removed ? ' (removed)' : ''}`));
   * // ['10.0.0.0/24 (removed)', '10.0.1.0/24']
   * ```
   */
  updatePodCidrs(podCidrs: string[]): void {
    const op = 'PodCidrPool.updatePodCidrs';
    if (!Array.isArray(podCidrs)) fail('InvalidCidr', op, 'pod CIDRs must be an array');
    const ranges = this.build(podCidrs, op);
    const wanted = new Set(ranges.map((r) => r.cidr));
    const next: Entry[] = [];
    for (const e of this.entries) {
      if (wanted.has(e.range.cidr)) next.push({ range: e.range, removed: false });
      else if (e.range.used > 0) next.push({ range: e.range, removed: true });
    }
    for (const r of ranges) if (!next.some((e) => e.range === r)) next.push({ range: r, removed: false });
    // A new CIDR overlapping one in use starts with the addresses already taken there.
    for (const e of next) {
      if (this.entries.some((x) => x.range === e.range)) continue;
      for (const x of next) {
        if (x === e) continue;
        x.range.forEach((ip) => {
          if (e.range.contains(ip) && !e.range.has(ip)) e.range.allocate(ip);
        });
      }
    }
    this.entries = next;
  }

  /**
   * The state of every pod CIDR, in pool order (each in the upstream {@link RangeSnapshot} format).
   *
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/24']);
   * pool.allocate('10.0.0.4');
   * console.log(pool.snapshot()[0]?.range); // 10.0.0.0/24
   * ```
   */
  snapshot(): PodCidrSnapshot[] {
    return this.entries.map((e) => ({ ...e.range.snapshot(), removed: e.removed }));
  }

  /**
   * Replaces the pool's CIDRs and their state with a snapshot (all or nothing).
   *
   * @throws {@link IpamError} `InvalidSnapshot` (not an array, or bits past a range); `InvalidCidr`;
   * `Family` (a CIDR of the other family); `Mismatch` (a malformed entry).
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const a = new PodCidrPool(['10.0.0.0/24']);
   * a.allocate('10.0.0.4');
   * const b = new PodCidrPool(['10.0.0.0/24']);
   * b.restore(a.snapshot());
   * console.log(b.has('10.0.0.4')); // true
   * ```
   */
  restore(snapshot: PodCidrSnapshot[]): void {
    const op = 'PodCidrPool.restore';
    if (!Array.isArray(snapshot) || snapshot.length === 0)
      fail('InvalidSnapshot', op, 'expected a non-empty array of pod CIDR snapshots');
    const entries: Entry[] = snapshot.map((s) => {
      const p = parseCidr(s?.range, op);
      if (p.family !== this.family)
        fail('Family', op, `${s.range} is not an IPv${this.family} CIDR`, s.range);
      const range = new RangeAllocator(formatPrefix(p), this.options);
      range.restore(s);
      return { range, removed: s.removed === true };
    });
    this.entries = entries;
  }

  /**
   * Per-CIDR and total usage.
   *
   * @example
   * ```ts
   * import { PodCidrPool } from '@datapath/ipam';
   * const pool = new PodCidrPool(['10.0.0.0/30']);
   * pool.allocateNext();
   * console.log(pool.stats().cidrs[0]); // { cidr: '10.0.0.0/30', size: 2, used: 1, free: 1, removed: false }
   * ```
   */
  stats(): PodPoolStats {
    // Per CIDR as it stands (an address in overlapping CIDRs shows in each); the totals count it once.
    const cidrs = this.entries.map((e) => ({
      cidr: e.range.cidr,
      size: e.range.size,
      used: e.range.used,
      free: e.removed ? 0 : e.range.free,
      removed: e.removed,
    }));
    return { size: this.size, used: this.used, free: this.free, cidrs };
  }
}
