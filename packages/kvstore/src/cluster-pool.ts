import { CidrSet } from '@datapath/ipam';
import { type Clock, systemClock } from './clock.js';
import { closedError, invalidArgument, KvError } from './errors.js';
import { ChangeListeners, KeyedMutex, PrefixMirror } from './mirror.js';
import { checkNodeName, NODES_PREFIX } from './session.js';
import type { KvStore, KvWatchEvent } from './types.js';

/** One address family of a cluster pool: cluster CIDRs (used in order) cut into node blocks. */
export interface ClusterPoolFamily {
  /** Cluster CIDRs of this family, consumed in this order; they must not overlap. */
  readonly cidrs: readonly string[];
  /** Prefix length of one node's block, e.g. 24 for a /24 per node. */
  readonly nodeMaskSize: number;
}

/** What {@link StoreClusterPool.open} needs; every replica of a pool must be opened with the same spec. */
export interface ClusterPoolSpec {
  /** Pool name, used in the key layout (`ipam/<name>/…`); default `'default'`. */
  readonly name?: string;
  /** IPv4 node CIDRs, if the cluster has IPv4. */
  readonly ipv4?: ClusterPoolFamily;
  /** IPv6 node CIDRs, if the cluster has IPv6. */
  readonly ipv6?: ClusterPoolFamily;
}

/** Options of {@link StoreClusterPool.open}. */
export interface ClusterPoolOptions {
  /** Clock of the expiry grace period; default {@link systemClock}. */
  readonly clock?: Clock;
  /** Random source in [0, 1) used to spread replicas apart after a lost race; default `Math.random`. */
  readonly random?: () => number;
}

/** The pod CIDRs of one node; one per configured family. */
export interface NodeCidrAllocation {
  /** The node's IPv4 block, when the pool has IPv4. */
  readonly ipv4?: string;
  /** The node's IPv6 block, when the pool has IPv6. */
  readonly ipv6?: string;
}

/**
 * @deprecated Use {@link NodeCidrAllocation} (renamed so it does not collide with `@datapath/ipam`'s
 * `NodeCidrs`, which has another shape); this alias goes in the next minor version.
 */
export type NodeCidrs = NodeCidrAllocation;

/** Free node blocks per configured family (the result of {@link StoreClusterPool.free}). */
export interface FreeBlocks {
  /** Free IPv4 blocks, when the pool has IPv4. */
  readonly ipv4?: number;
  /** Free IPv6 blocks, when the pool has IPv6. */
  readonly ipv6?: number;
}

/** A change of node CIDR ownership anywhere in the cluster. */
export interface NodeCidrChange {
  /** `allocated` when a node got a block, `released` when it lost it. */
  readonly type: 'allocated' | 'released';
  /** The node. */
  readonly node: string;
  /** The block. */
  readonly cidr: string;
}

/** Options of {@link StoreClusterPool.reapExpired}. */
export interface ReapOptions {
  /** How long a node must have had no liveness key (`nodes/<node>`) before its CIDRs are released. */
  readonly graceMs: number;
}

type Family = 'ipv4' | 'ipv6';
const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

interface FamilyState {
  /** One `@datapath/ipam` CidrSet per cluster CIDR: this replica's view of which blocks are taken. */
  readonly sets: CidrSet[];
  /** Per set, the index the next in-order scan starts at (moved only by this replica's own allocations). */
  readonly next: number[];
}

interface Candidate {
  readonly cidr: string;
  readonly set: number;
  readonly index: number;
}

function cidrSet(op: string, text: string, mask: number): CidrSet {
  try {
    return new CidrSet(text, mask);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new KvError('InvalidArgument', `${op}: ${msg}`, { op, target: String(text), cause: err });
  }
}

const cidrKeyOf = (cidr: string) => cidr.replace('/', '_');

/**
 * A cluster pool of node pod CIDRs shared through a {@link KvStore}: many operator replicas or per-node
 * allocators never hand out one block twice, because each assignment is one compare-and-swap creating
 * both `ipam/<pool>/cidrs/<block>` (→ node) and `ipam/<pool>/nodes/<node>/<family>` (→ block).
 * Blocks are taken in cluster-CIDR order, scanning from the block after the last one handed out (the
 * Kubernetes `cidrset` order); a replica that loses races for a block skips a random number of free blocks, growing
 * exponentially with the races lost, and keeps starting that spread out until it wins eight times in a
 * row at the first try. State lives only in the store, so a restarted replica restores it by
 * opening the pool again; {@link StoreClusterPool.reapExpired} releases the blocks of nodes whose
 * liveness key has been gone for a grace period.
 *
 * @example Two nodes share one pool
 * ```ts
 * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const spec = { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } };
 * const [a, b] = await Promise.all([StoreClusterPool.open(store, spec), StoreClusterPool.open(store, spec)]);
 * console.log(await a.allocate('node-a')); // { ipv4: '10.244.0.0/24' }
 * console.log(await b.allocate('node-b')); // { ipv4: '10.244.1.0/24' }
 * ```
 */
export class StoreClusterPool implements AsyncDisposable {
  /** The store holding the pool. */
  readonly store: KvStore;
  /** The pool name. */
  readonly name: string;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #fam: Partial<Record<Family, FamilyState>> = {};
  readonly #owners = new Map<string, string>(); // block → node
  readonly #byNode = new Map<string, Map<Family, string>>();
  readonly #absentSince = new Map<string, number>();
  readonly #contention: Record<Family, { level: number; clean: number }> = {
    ipv4: { level: 0, clean: 0 },
    ipv6: { level: 0, clean: 0 },
  };
  readonly #locks = new KeyedMutex();
  readonly #listeners = new ChangeListeners<NodeCidrChange>();
  readonly #mirror: PrefixMirror;
  #closed = false;

  private constructor(store: KvStore, name: string, spec: ClusterPoolSpec, options: ClusterPoolOptions) {
    this.store = store;
    this.name = name;
    this.#prefix = `ipam/${name}/`;
    this.#mirror = new PrefixMirror(
      store,
      `${this.#prefix}nodes/`,
      (ev, notify) => this.#apply(ev, notify),
      () => this.#knownKeys(),
    );
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    const all: CidrSet[] = [];
    for (const f of FAMILIES) {
      const fs = spec[f];
      if (fs === undefined) continue;
      if (!Array.isArray(fs.cidrs) || fs.cidrs.length === 0) {
        throw invalidArgument('StoreClusterPool.open', `${f} needs at least one cluster CIDR`);
      }
      const sets = fs.cidrs.map((text) => {
        const set = cidrSet('StoreClusterPool.open', text, fs.nodeMaskSize);
        if (set.cidr.includes(':') !== (f === 'ipv6')) {
          throw invalidArgument('StoreClusterPool.open', `${text} is not an ${f} CIDR`, text);
        }
        if (all.some((o) => o.inRange(set.cidr))) {
          throw invalidArgument('StoreClusterPool.open', `cluster CIDR ${text} overlaps another one`, text);
        }
        all.push(set);
        return set;
      });
      this.#fam[f] = { sets, next: sets.map(() => 0) };
    }
    if (all.length === 0) throw invalidArgument('StoreClusterPool.open', 'the pool needs ipv4 or ipv6 CIDRs');
  }

  /**
   * Opens (or creates) a pool in the store: records the spec on first use and refuses a different one,
   * loads every assignment and watches for other replicas' changes.
   *
   * @throws {@link KvError} `InvalidArgument` (bad CIDRs or masks, overlapping CIDRs, a spec that differs
   * from the one stored for this pool), `Unavailable`, `Timeout`, `Closed`.
   * @example Opening a dual-stack pool on etcd
   * ```ts
   * import { EtcdStore, StoreClusterPool } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * const pool = await StoreClusterPool.open(store, {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   *   ipv6: { cidrs: ['fd00:10:244::/56'], nodeMaskSize: 64 },
   * });
   * ```
   */
  static async open(
    store: KvStore,
    spec: ClusterPoolSpec,
    options: ClusterPoolOptions = {},
  ): Promise<StoreClusterPool> {
    const name = spec.name ?? 'default';
    if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,63}$/.test(name)) {
      throw invalidArgument('StoreClusterPool.open', `bad pool name ${JSON.stringify(name)}`);
    }
    const pool = new StoreClusterPool(store, name, spec, options);
    const specKey = `${pool.#prefix}spec`;
    const specText = JSON.stringify({ ipv4: spec.ipv4 ?? null, ipv6: spec.ipv6 ?? null });
    const r = await store.txn(
      [{ key: specKey, target: 'version', op: '==', value: 0 }],
      [{ type: 'put', key: specKey, value: specText }],
      [{ type: 'get', key: specKey }],
    );
    if (!r.succeeded && r.gets[0]?.value !== specText) {
      throw invalidArgument(
        'StoreClusterPool.open',
        `pool ${name} exists with another spec: ${r.gets[0]?.value}`,
      );
    }
    await pool.#mirror.start();
    return pool;
  }

  /**
   * Returns the node's blocks, assigning one per configured family if it has none (idempotent: a node
   * that already has blocks, from any replica or before a restart, gets the same ones back).
   *
   * @throws {@link KvError} `InvalidArgument` (bad node name), `Exhausted` (no free block; a block taken
   * for another family in the same call is given back), `Conflict` (lost too many races in a row),
   * `Unavailable`, `Timeout`, `Closed`.
   * @example Allocating a node's pod CIDR
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * const { ipv4 } = await pool.allocate('node-a');
   * ```
   */
  async allocate(node: string): Promise<NodeCidrAllocation> {
    checkNodeName('allocate', node);
    this.#check('allocate');
    return this.#locks.run(node, async () => {
      const got: Partial<Record<Family, string>> = {};
      const taken: Family[] = [];
      try {
        for (const f of FAMILIES) {
          if (this.#fam[f] === undefined) continue;
          const had = this.#byNode.get(node)?.get(f);
          const r = had === undefined ? await this.#allocateFamily(node, f) : { cidr: had, fresh: false };
          got[f] = r.cidr;
          if (r.fresh) taken.push(f);
        }
      } catch (err) {
        for (const f of taken) await this.#releaseOne(node, f, got[f]!).catch(() => undefined);
        throw err;
      }
      return got;
    });
  }

  /**
   * Gives a node's blocks back to the pool; returns the released blocks.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example Releasing a deleted node
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * await pool.allocate('node-a');
   * console.log(await pool.release('node-a')); // ['10.244.0.0/24']
   * ```
   */
  async release(node: string): Promise<string[]> {
    checkNodeName('release', node);
    this.#check('release');
    return this.#locks.run(node, async () => {
      const { entries } = await this.store.list(`${this.#prefix}nodes/${node}/`);
      const out: string[] = [];
      for (const e of entries) {
        const f = e.key.slice(e.key.lastIndexOf('/') + 1) as Family;
        if (await this.#releaseOne(node, f, e.value)) out.push(e.value);
      }
      return out;
    });
  }

  /**
   * The node owning a block, from the watched cache.
   *
   * @example Who owns a block
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * console.log(pool.owner('10.244.0.0/24')); // undefined until allocated
   * ```
   */
  owner(cidr: string): string | undefined {
    return this.#owners.get(cidr);
  }

  /**
   * Every node's blocks, from the watched cache.
   *
   * @example Listing assignments
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * for (const [node, cidrs] of pool.allocations()) console.log(node, cidrs.ipv4);
   * ```
   */
  allocations(): Map<string, NodeCidrAllocation> {
    return new Map([...this.#byNode].map(([n, m]) => [n, Object.fromEntries(m) as NodeCidrAllocation]));
  }

  /**
   * Free blocks per family, from the watched cache.
   *
   * @example Capacity left
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * console.log(pool.free()); // { ipv4: 256 }
   * ```
   */
  free(): FreeBlocks {
    const out: { ipv4?: number; ipv6?: number } = {};
    for (const f of FAMILIES) {
      const st = this.#fam[f];
      if (st) out[f] = st.sets.reduce((n, set) => n + set.maxCidrs - set.allocatedCount, 0);
    }
    return out;
  }

  /**
   * Calls `listener` when any replica assigns or releases a block; returns an unsubscribe function.
   *
   * @example Following assignments
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * const stop = pool.onChange((c) => console.log(c.type, c.node, c.cidr));
   * stop();
   * ```
   */
  onChange(listener: (change: NodeCidrChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Releases the blocks of nodes whose liveness key `nodes/<node>` (see {@link NodeSession}) has been
   * absent for at least `graceMs`, as measured across calls on this pool's clock (a node is first seen
   * absent by one call and released by a later one). Each release is guarded by "the liveness key is
   * still absent", so a node that comes back in time keeps its blocks. Returns the released nodes.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example A reaper loop on one replica
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * const timer = setInterval(() => void pool.reapExpired({ graceMs: 30_000 }), 5_000);
   * clearInterval(timer);
   * ```
   */
  async reapExpired(options: ReapOptions): Promise<string[]> {
    this.#check('reapExpired');
    if (!(options.graceMs >= 0)) throw invalidArgument('reapExpired', 'graceMs must be ≥ 0');
    const [alive, owned] = await Promise.all([
      this.store.list(NODES_PREFIX),
      this.store.list(`${this.#prefix}nodes/`),
    ]);
    const live = new Set(alive.entries.map((e) => e.key.slice(NODES_PREFIX.length)));
    const owners = new Set(owned.entries.map((e) => e.key.slice(this.#prefix.length + 6).split('/')[0]!));
    const now = this.#clock.now();
    const released: string[] = [];
    for (const node of owners) {
      if (live.has(node)) {
        this.#absentSince.delete(node);
        continue;
      }
      const since = this.#absentSince.get(node);
      if (since === undefined) {
        this.#absentSince.set(node, now);
        if (options.graceMs > 0) continue;
      } else if (now - since < options.graceMs) continue;
      const mine = owned.entries.filter((e) => e.key.startsWith(`${this.#prefix}nodes/${node}/`));
      let any = false;
      for (const e of mine) {
        const f = e.key.slice(e.key.lastIndexOf('/') + 1) as Family;
        if (await this.#releaseOne(node, f, e.value, true)) any = true;
      }
      this.#absentSince.delete(node);
      if (any) released.push(node);
    }
    for (const n of this.#absentSince.keys()) if (!owners.has(n)) this.#absentSince.delete(n);
    return released;
  }

  /**
   * Stops watching; the assignments stay in the store.
   *
   * @example Closing
   * ```ts
   * import { MemoryStore, StoreClusterPool } from '@datapath/kvstore';
   * const pool = await StoreClusterPool.open(new MemoryStore(), {
   *   ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 },
   * });
   * await pool.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#mirror.close();
  }

  /** Same as {@link StoreClusterPool.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(op: string): void {
    if (this.#closed) throw closedError(op, 'pool');
  }

  /** The keys of the assignments this replica holds (for the mirror's reload). */
  *#knownKeys(): Iterable<string> {
    for (const [node, m] of this.#byNode) for (const f of m.keys()) yield `${this.#prefix}nodes/${node}/${f}`;
  }

  /**
   * The next block to try: the first free one in cidrset order from the set's next-candidate index; after
   * this replica lost `attempt` races, the k-th free one with k random below 2^attempt, so racing replicas
   * spread out (exponentially, like a backoff in address space) while allocations stay near the front.
   */
  #candidate(f: Family, attempt: number): Candidate | undefined {
    const st = this.#fam[f]!;
    for (let s = 0; s < st.sets.length; s++) {
      const set = st.sets[s]!;
      const free = set.maxCidrs - set.allocatedCount;
      if (free <= 0) continue;
      let skip = attempt === 0 ? 0 : Math.floor(this.#random() * Math.min(2 ** Math.min(attempt, 30), free));
      for (let i = 0; i < set.maxCidrs; i++) {
        const index = (st.next[s]! + i) % set.maxCidrs;
        const cidr = set.cidrAt(index);
        if (set.isAllocated(cidr)) continue;
        if (skip-- === 0) return { cidr, set: s, index };
      }
    }
    return undefined;
  }

  /** Marks a block taken or free in this replica's view; a block of no configured cluster CIDR is ignored. */
  #mark(cidr: string, on: boolean): void {
    for (const f of FAMILIES) {
      for (const set of this.#fam[f]?.sets ?? []) {
        if (!set.inRange(cidr)) continue;
        if (on) set.occupy(cidr);
        else set.release(cidr);
        return;
      }
    }
  }

  async #allocateFamily(node: string, f: Family): Promise<{ cidr: string; fresh: boolean }> {
    const nodeKey = `${this.#prefix}nodes/${node}/${f}`;
    for (let tries = 0; tries < 256; tries++) {
      // start spread out while this replica keeps losing races, in order once it stops
      const attempt = this.#contention[f].level + tries;
      const cand = this.#candidate(f, attempt);
      if (cand === undefined) {
        throw new KvError('Exhausted', `allocate: no free ${f} node CIDR left in pool ${this.name}`, {
          op: 'allocate',
          target: node,
        });
      }
      const { cidr } = cand;
      const cidrKey = `${this.#prefix}cidrs/${cidrKeyOf(cidr)}`;
      const r = await this.store.txn(
        [
          { key: cidrKey, target: 'version', op: '==', value: 0 },
          { key: nodeKey, target: 'version', op: '==', value: 0 },
        ],
        [
          { type: 'put', key: cidrKey, value: node },
          { type: 'put', key: nodeKey, value: cidr },
        ],
        [
          { type: 'get', key: cidrKey },
          { type: 'get', key: nodeKey },
        ],
      );
      if (r.succeeded) {
        const c = this.#contention[f];
        if (tries > 0) {
          c.level = Math.min(attempt + 1, 12);
          c.clean = 0;
        } else if (c.level > 0 && ++c.clean >= 8) {
          c.level--; // eight clean wins in a row: back towards strict order
          c.clean = 0;
        }
        const st = this.#fam[f]!;
        st.next[cand.set] = (cand.index + 1) % st.sets[cand.set]!.maxCidrs;
        this.#own(node, f, cidr, true);
        return { cidr, fresh: true };
      }
      const [byCidr, byNode] = r.gets;
      if (byNode !== undefined) {
        // another replica (or our own retried request) assigned this node already
        this.#own(node, f, byNode.value, true);
        return { cidr: byNode.value, fresh: false };
      }
      if (byCidr !== undefined) this.#mark(cidr, true);
    }
    throw new KvError('Busy', `allocate: gave up after 256 conflicting attempts`, {
      op: 'allocate',
      reason: 'Conflict',
      target: node,
    });
  }

  async #releaseOne(node: string, f: Family, cidr: string, onlyIfDead = false): Promise<boolean> {
    const nodeKey = `${this.#prefix}nodes/${node}/${f}`;
    const cidrKey = `${this.#prefix}cidrs/${cidrKeyOf(cidr)}`;
    const r = await this.store.txn(
      [
        { key: nodeKey, target: 'value', op: '==', value: cidr },
        ...(onlyIfDead
          ? [{ key: `${NODES_PREFIX}${node}`, target: 'version', op: '==', value: 0 } as const]
          : []),
      ],
      [
        { type: 'delete', key: nodeKey },
        { type: 'delete', key: cidrKey },
      ],
    );
    if (r.succeeded) this.#disown(node, f, cidr, true);
    return r.succeeded;
  }

  #own(node: string, f: Family, cidr: string, notify: boolean): void {
    if (this.#owners.get(cidr) === node) return;
    this.#owners.set(cidr, node);
    const m = this.#byNode.get(node) ?? new Map<Family, string>();
    this.#byNode.set(node, m);
    m.set(f, cidr);
    this.#mark(cidr, true);
    if (notify) this.#listeners.emit({ type: 'allocated', node, cidr });
  }

  #disown(node: string, f: Family, cidr: string, notify: boolean): void {
    if (this.#owners.get(cidr) !== node) return;
    this.#owners.delete(cidr);
    const m = this.#byNode.get(node);
    m?.delete(f);
    if (m?.size === 0) this.#byNode.delete(node);
    this.#mark(cidr, false);
    if (notify) this.#listeners.emit({ type: 'released', node, cidr });
  }

  #apply(ev: KvWatchEvent, notify: boolean): void {
    const rest = (ev.type === 'put' ? ev.entry.key : ev.key).slice(`${this.#prefix}nodes/`.length);
    const [node, f] = rest.split('/') as [string, Family];
    if (this.#fam[f] === undefined) return;
    if (ev.type === 'put') {
      const before = this.#byNode.get(node)?.get(f);
      if (before !== undefined && before !== ev.entry.value) this.#disown(node, f, before, notify);
      try {
        this.#own(node, f, ev.entry.value, notify);
      } catch {
        // a value that is not a block of this pool (written by something else): not ours to interpret
      }
    } else {
      const cidr = this.#byNode.get(node)?.get(f);
      if (cidr !== undefined) this.#disown(node, f, cidr, notify);
    }
  }
}
