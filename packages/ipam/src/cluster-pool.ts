// Operator side: several cluster CIDRs per family, consumed in order, cut into node CIDRs; dual stack with
// rollback; node → CIDRs bookkeeping; snapshot/restore so a persistent backend (e.g. etcd) can be added.
import { formatPrefix, type IpFamily, type IpPrefix, prefixOverlaps } from '@datapath/ip';
import { CidrSet, type CidrSetSnapshot } from './cidrset.js';
import { checkFamily, fail } from './errors.js';
import { parseCidr } from './parse.js';

/** Cluster CIDRs of one family and the node mask size they are cut into. */
export interface ClusterFamilyConfig {
  /** Cluster CIDRs, consumed in this order. Must not overlap. */
  cidrs: string[];
  /** Node CIDR mask size, shared by every cluster CIDR of the family. */
  maskSize: number;
}

/** Configuration of a {@link ClusterPool}: at least one family. */
export interface ClusterPoolConfig {
  /** IPv4 cluster CIDRs. */
  v4?: ClusterFamilyConfig;
  /** IPv6 cluster CIDRs. */
  v6?: ClusterFamilyConfig;
}

/** The node CIDRs of one node, per family. */
export interface NodeCidrs {
  /** IPv4 node CIDRs. */
  v4: string[];
  /** IPv6 node CIDRs. */
  v6: string[];
}

/** Serialised state of a {@link ClusterPool} (JSON-safe apart from the bitmap bytes). */
export interface ClusterPoolSnapshot {
  /** Format version, 1. */
  version: 1;
  /** Per cluster CIDR bitmap and pointer, in configuration order. */
  sets: CidrSetSnapshot[];
  /** Node name → node CIDRs. */
  nodes: Record<string, NodeCidrs>;
}

type Fam = 'v4' | 'v6';

/**
 * The operator's allocator: hands each node one node CIDR per configured family, taking the first cluster
 * CIDR (in configuration order) that is not full, and rolls back the first family if the second fails.
 *
 * @example Node CIDRs for two nodes
 * ```ts
 * import { ClusterPool } from '@datapath/ipam';
 * const pool = new ClusterPool({ v4: { cidrs: ['10.244.0.0/16'], maskSize: 24 }, v6: { cidrs: ['fd00:10:244::/56'], maskSize: 64 } });
 * console.log(pool.allocateNode('node-a')); // { v4: ['10.244.0.0/24'], v6: ['fd00:10:244::/64'] }
 * console.log(pool.allocateNode('node-b').v4); // ['10.244.1.0/24']
 * ```
 */
export class ClusterPool {
  private readonly sets: Record<Fam, CidrSet[]> = { v4: [], v6: [] };
  private readonly nodes = new Map<string, NodeCidrs>();

  /**
   * Validates the configuration and creates the cluster CIDR sets.
   *
   * @throws {@link IpamError} `InvalidCidr` (unparsable CIDR, or no CIDR at all); `Family` (a CIDR of the
   * other family); `Collision` (a CIDR overlapping an earlier one); `MaskInvalid`, `SubnetTooBig` (see
   * {@link CidrSet}).
   * @example
   * ```ts
   * import { ClusterPool, IpamError } from '@datapath/ipam';
   * try {
   *   new ClusterPool({ v4: { cidrs: ['10.0.0.0/16', '10.0.0.0/8'], maskSize: 24 } });
   * } catch (e) {
   *   console.log((e as IpamError).code, (e as IpamError).reason); // 'AlreadyExists' 'Collision'
   * }
   * ```
   */
  constructor(config: ClusterPoolConfig) {
    const op = 'ClusterPool';
    if (config?.v4 === undefined && config?.v6 === undefined)
      fail('InvalidCidr', op, 'no address family configured');
    for (const fam of ['v4', 'v6'] as const) {
      const c = config[fam];
      if (c === undefined) continue;
      if (!Array.isArray(c.cidrs) || c.cidrs.length === 0)
        fail('InvalidCidr', op, `${fam} is configured with no cluster CIDRs`);
      const want: IpFamily = fam === 'v4' ? 4 : 6;
      const seen: IpPrefix[] = [];
      for (const text of c.cidrs) {
        const p = parseCidr(text, op);
        if (p.family !== want) fail('Family', op, `${text} is not an IPv${want} CIDR`, text);
        const clash = seen.find((q) => prefixOverlaps(p, q));
        if (clash !== undefined) fail('Collision', op, `${text} overlaps ${formatPrefix(clash)}`, text);
        seen.push(p);
        this.sets[fam].push(new CidrSet(text, c.maskSize));
      }
    }
  }

  /** Whether a family is configured. @throws {@link IpamError} `Family` when `family` is not 4 or 6. */
  hasFamily(family: IpFamily): boolean {
    checkFamily(family, 'ClusterPool.hasFamily');
    return this.sets[family === 4 ? 'v4' : 'v6'].length > 0;
  }

  private firstFree(fam: Fam): string {
    for (const s of this.sets[fam]) if (!s.isFull) return s.allocateNext();
    return fail(
      'Full',
      'ClusterPool.allocateNode',
      `all ${fam} cluster CIDRs are exhausted (${this.sets[fam].map((s) => s.cidr).join(', ')})`,
    );
  }

  private setFor(cidr: string, op: string): CidrSet {
    const p = parseCidr(cidr, op);
    const fam: Fam = p.family === 4 ? 'v4' : 'v6';
    const s = this.sets[fam].find((x) => x.inRange(cidr));
    if (s === undefined) fail('NotInPool', op, `${cidr} is in no configured cluster CIDR`, cidr);
    return s;
  }

  /**
   * Allocates node CIDRs for `name` (one per configured family, IPv4 first), or returns the ones it already has.
   *
   * @throws {@link IpamError} `Full` when a family has no free node CIDR left (nothing stays allocated).
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/24'], maskSize: 26 } });
   * console.log(pool.allocateNode('n1').v4, pool.allocateNode('n1').v4); // ['10.0.0.0/26'] ['10.0.0.0/26']
   * ```
   */
  allocateNode(name: string): NodeCidrs {
    const have = this.nodes.get(name);
    if (have !== undefined) return { v4: [...have.v4], v6: [...have.v6] };
    const got: NodeCidrs = { v4: [], v6: [] };
    try {
      for (const fam of ['v4', 'v6'] as const)
        if (this.sets[fam].length > 0) got[fam].push(this.firstFree(fam));
    } catch (e) {
      for (const c of got.v4) this.setFor(c, 'ClusterPool.allocateNode').release(c);
      throw e;
    }
    this.nodes.set(name, got);
    return { v4: [...got.v4], v6: [...got.v6] };
  }

  /**
   * Frees the node CIDRs of `name`; returns false when the node has none.
   *
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } });
   * pool.allocateNode('n1');
   * console.log(pool.releaseNode('n1'), pool.freeCidrs(4)); // true 256
   * ```
   */
  releaseNode(name: string): boolean {
    const have = this.nodes.get(name);
    if (have === undefined) return false;
    for (const c of [...have.v4, ...have.v6]) this.setFor(c, 'ClusterPool.releaseNode').release(c);
    this.nodes.delete(name);
    return true;
  }

  /**
   * Records node CIDRs a node already announces (restore after an operator restart), before any new
   * allocation. Idempotent for the same CIDRs; all or nothing.
   *
   * @throws {@link IpamError} `InvalidCidr`; `NotInPool` (in no cluster CIDR); `AlreadyAllocated` (some
   * block is taken by another node); `Mismatch` (the node already has different CIDRs).
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } });
   * pool.occupyNode('n1', ['10.0.0.0/24']);
   * console.log(pool.allocateNode('n2').v4); // ['10.0.1.0/24']
   * ```
   */
  occupyNode(name: string, cidrs: string[]): NodeCidrs {
    const op = 'ClusterPool.occupyNode';
    const want: NodeCidrs = { v4: [], v6: [] };
    const parsed = cidrs.map((c) => {
      const p = parseCidr(c, op);
      const text = formatPrefix(p);
      want[p.family === 4 ? 'v4' : 'v6'].push(text);
      return { text, set: this.setFor(text, op) };
    });
    const have = this.nodes.get(name);
    if (have !== undefined) {
      const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
      if (same(have.v4, want.v4) && same(have.v6, want.v6)) return { v4: [...have.v4], v6: [...have.v6] };
      fail('Mismatch', op, `node ${name} already has ${[...have.v4, ...have.v6].join(', ')}`, name);
    }
    const done: { text: string; set: CidrSet }[] = [];
    try {
      for (const x of parsed) {
        if (x.set.anyAllocated(x.text))
          fail('AlreadyAllocated', op, `${x.text} is already allocated`, x.text);
        x.set.occupy(x.text);
        done.push(x);
      }
    } catch (e) {
      for (const x of done) x.set.release(x.text);
      throw e;
    }
    this.nodes.set(name, want);
    return { v4: [...want.v4], v6: [...want.v6] };
  }

  /**
   * The node CIDRs recorded for `name`, if any.
   *
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } });
   * console.log(pool.getNode('nope')); // undefined
   * ```
   */
  getNode(name: string): NodeCidrs | undefined {
    const have = this.nodes.get(name);
    return have === undefined ? undefined : { v4: [...have.v4], v6: [...have.v6] };
  }

  /** Names of the nodes holding CIDRs, in allocation order. */
  nodeNames(): string[] {
    return [...this.nodes.keys()];
  }

  /**
   * Number of free node CIDRs of a family over all its cluster CIDRs (0 when the family is not configured).
   *
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16', '10.1.0.0/16'], maskSize: 24 } });
   * console.log(pool.freeCidrs(4)); // 512
   * ```
   */
  freeCidrs(family: IpFamily): number {
    checkFamily(family, 'ClusterPool.freeCidrs');
    return this.sets[family === 4 ? 'v4' : 'v6'].reduce((n, s) => n + s.maxCidrs - s.allocatedCount, 0);
  }

  /**
   * The pool's full state (bitmaps, pointers, node map) for persistence; see {@link ClusterPool.restore}.
   *
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } });
   * pool.allocateNode('n1');
   * console.log(Object.keys(pool.snapshot().nodes)); // ['n1']
   * ```
   */
  snapshot(): ClusterPoolSnapshot {
    const nodes: Record<string, NodeCidrs> = {};
    for (const [n, c] of this.nodes) nodes[n] = { v4: [...c.v4], v6: [...c.v6] };
    return { version: 1, sets: [...this.sets.v4, ...this.sets.v6].map((s) => s.snapshot()), nodes };
  }

  /**
   * Replaces the state with a snapshot taken from a pool with the same configuration. The node map must
   * agree with the bitmaps.
   *
   * @throws {@link IpamError} `InvalidSnapshot` (wrong version or shape, node CIDRs that disagree with the
   * bitmaps); `Mismatch` (another configuration). The pool is unchanged on error.
   * @example
   * ```ts
   * import { ClusterPool } from '@datapath/ipam';
   * const config = { v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } };
   * const a = new ClusterPool(config);
   * a.allocateNode('n1');
   * const b = new ClusterPool(config);
   * b.restore(a.snapshot());
   * console.log(b.allocateNode('n2').v4); // ['10.0.1.0/24']
   * ```
   */
  restore(snapshot: ClusterPoolSnapshot): void {
    const op = 'ClusterPool.restore';
    const all = [...this.sets.v4, ...this.sets.v6];
    if (
      snapshot?.version !== 1 ||
      !Array.isArray(snapshot.sets) ||
      typeof snapshot.nodes !== 'object' ||
      snapshot.nodes === null
    )
      fail('InvalidSnapshot', op, 'not a version 1 cluster pool snapshot');
    if (snapshot.sets.length !== all.length)
      fail('Mismatch', op, 'the snapshot has a different number of cluster CIDRs');
    // Build the restored state in fresh sets first, so a bad snapshot leaves this pool untouched.
    const fresh = all.map((s, i) => {
      const c = new CidrSet(s.cidr, s.nodeMaskSize);
      c.restore(snapshot.sets[i]!);
      return c;
    });
    const check = all.map((s) => new CidrSet(s.cidr, s.nodeMaskSize));
    const nodes = new Map<string, NodeCidrs>();
    for (const [name, c] of Object.entries(snapshot.nodes)) {
      if (!Array.isArray(c?.v4) || !Array.isArray(c?.v6))
        fail('InvalidSnapshot', op, `node ${name} has no v4/v6 lists`, name);
      for (const cidr of [...c.v4, ...c.v6]) {
        const i = all.findIndex((s) => s.inRange(cidr));
        if (i < 0) fail('InvalidSnapshot', op, `node ${name}: ${cidr} is in no cluster CIDR`, name);
        if (check[i]!.anyAllocated(cidr))
          fail('InvalidSnapshot', op, `node ${name}: ${cidr} is held twice`, name);
        check[i]!.occupy(cidr);
      }
      nodes.set(name, { v4: [...c.v4], v6: [...c.v6] });
    }
    for (let i = 0; i < all.length; i++) {
      const a = Buffer.from(fresh[i]!.snapshot().data).toString('hex');
      const b = Buffer.from(check[i]!.snapshot().data).toString('hex');
      if (a !== b)
        fail(
          'InvalidSnapshot',
          op,
          `the bitmap of ${all[i]!.cidr} disagrees with the node map`,
          all[i]!.cidr,
        );
    }
    this.sets.v4.splice(0, this.sets.v4.length, ...fresh.slice(0, this.sets.v4.length));
    this.sets.v6.splice(0, this.sets.v6.length, ...fresh.slice(this.sets.v4.length));
    this.nodes.clear();
    for (const [n, c] of nodes) this.nodes.set(n, c);
  }
}
