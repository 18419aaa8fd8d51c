import { type Clock, systemClock } from './clock.js';
import { closedError, invalidArgument, KvError } from './errors.js';
import { ChangeListeners, KeyedMutex, PrefixMirror } from './mirror.js';
import type { NodeSession } from './session.js';
import type { KvEntry, KvWatchEvent } from './types.js';

/** First cluster-local security identity, as Cilium numbers them (0–255 are reserved and well-known). */
export const MIN_CLUSTER_IDENTITY = 256;
/** Last cluster-local security identity without ClusterMesh bits (16 bits). */
export const MAX_CLUSTER_IDENTITY = 65_535;

/** Options of {@link StoreIdentityAllocator.open}. */
export interface IdentityAllocatorOptions {
  /** Lowest identity handed out; default {@link MIN_CLUSTER_IDENTITY}. */
  readonly minId?: number;
  /** Highest identity handed out; default {@link MAX_CLUSTER_IDENTITY}. */
  readonly maxId?: number;
  /** Key prefix of the identity tables in the store; default `'identities/'`. */
  readonly prefix?: string;
  /** Clock for the GC grace period; default {@link systemClock}. */
  readonly clock?: Clock;
  /** Random source in [0, 1) for picking a free candidate id; default `Math.random`. */
  readonly random?: () => number;
}

/** The result of {@link StoreIdentityAllocator.allocate}. */
export interface AllocatedIdentity {
  /** The numeric security identity, the same on every node for this label set. */
  readonly id: number;
  /** Whether this call created the identity cluster-wide (false when another node or call had it first). */
  readonly isNew: boolean;
}

/** A change of the cluster-wide identity table, seen through the store's watch. */
export interface IdentityChange {
  /** `add` when an identity appeared, `delete` when it was garbage-collected. */
  readonly type: 'add' | 'delete';
  /** The numeric identity. */
  readonly id: number;
  /** Its labels, sorted. */
  readonly labels: readonly string[];
}

/** Options of {@link StoreIdentityAllocator.gc}. */
export interface IdentityGcOptions {
  /**
   * An identity must be seen unreferenced by this allocator's GC for at least this long (on its clock)
   * before it is deleted; default 0 (delete on the first pass that finds it unreferenced).
   */
  readonly graceMs?: number;
}

/**
 * Sorts and de-duplicates a label set into its canonical form; every node must agree on it.
 *
 * @throws {@link KvError} `InvalidArgument` when the set is empty or a label is empty or contains `;`.
 * @example Canonical labels
 * ```ts
 * import { canonicalLabels } from '@datapath/kvstore';
 * console.log(canonicalLabels(['k8s:b=2', 'k8s:a=1', 'k8s:b=2'])); // ['k8s:a=1', 'k8s:b=2']
 * ```
 */
export function canonicalLabels(labels: readonly string[]): string[] {
  if (!Array.isArray(labels) || labels.length === 0) {
    throw invalidArgument('identity', 'a label set needs at least one label');
  }
  for (const l of labels) {
    if (typeof l !== 'string' || l.length === 0 || l.includes(';')) {
      throw invalidArgument(
        'identity',
        `bad label ${JSON.stringify(l)}: labels are non-empty strings without ';'`,
      );
    }
  }
  return [...new Set(labels)].sort();
}

interface LocalRef {
  id: number;
  count: number;
}

/**
 * The cluster-wide security-identity allocator: the same label set gets the same numeric identity on
 * every node, even when nodes allocate it concurrently, because an identity is created by one
 * compare-and-swap transaction on two index keys:
 *
 * - `identities/labels/<labels>` → id and `identities/id/<id>` → labels (created together, never leased);
 * - `identities/refs/<labels>/<node>` → id, attached to the node's lease: a node references an identity
 *   while it has local users of it, and the reference vanishes when the node dies.
 *
 * {@link StoreIdentityAllocator.gc} deletes identities no node references. A local cache, filled by a
 * watch, answers lookups and reports changes made by other nodes. Over a {@link MemoryStore} this is
 * the single-node default.
 *
 * @example Two nodes agree on an identity
 * ```ts
 * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const a = await StoreIdentityAllocator.open(await NodeSession.open(store, { node: 'a' }));
 * const b = await StoreIdentityAllocator.open(await NodeSession.open(store, { node: 'b' }));
 * const labels = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default'];
 * const [x, y] = await Promise.all([a.allocate(labels), b.allocate(labels)]);
 * console.log(x.id === y.id, x.id >= 256); // true true
 * ```
 */
export class StoreIdentityAllocator implements AsyncDisposable {
  /** The node session references are attached to. */
  readonly session: NodeSession;
  readonly #prefix: string;
  readonly #minId: number;
  readonly #maxId: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #byId = new Map<number, string>();
  readonly #byLabels = new Map<string, number>();
  readonly #refs = new Map<string, LocalRef>();
  readonly #locks = new KeyedMutex();
  readonly #listeners = new ChangeListeners<IdentityChange>();
  readonly #unusedSince = new Map<number, { since: number; modRevision: number }>();
  readonly #mirror: PrefixMirror;
  #closed = false;

  private constructor(session: NodeSession, options: IdentityAllocatorOptions) {
    this.session = session;
    this.#prefix = options.prefix ?? 'identities/';
    this.#minId = options.minId ?? MIN_CLUSTER_IDENTITY;
    this.#maxId = options.maxId ?? MAX_CLUSTER_IDENTITY;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#mirror = new PrefixMirror(
      session.store,
      this.#prefix,
      (ev, notify) => this.#apply(ev, notify),
      () => this.#knownKeys(),
    );
  }

  /**
   * Loads the identity table from the store and starts watching it.
   *
   * @throws {@link KvError} `InvalidArgument` (bad id range or prefix), `Unavailable`, `Timeout`, `Closed`.
   * @example Opening on etcd
   * ```ts
   * import { EtcdStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'], prefix: 'datapath/prod/' });
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(store, { node: 'node-a' }));
   * ```
   */
  static async open(
    session: NodeSession,
    options: IdentityAllocatorOptions = {},
  ): Promise<StoreIdentityAllocator> {
    const min = options.minId ?? MIN_CLUSTER_IDENTITY;
    const max = options.maxId ?? MAX_CLUSTER_IDENTITY;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min || max > 0xffffffff) {
      throw invalidArgument('StoreIdentityAllocator.open', `bad identity range ${min}..${max}`);
    }
    if (options.prefix !== undefined && !options.prefix.endsWith('/')) {
      throw invalidArgument('StoreIdentityAllocator.open', "prefix must end with '/'");
    }
    const a = new StoreIdentityAllocator(session, options);
    await a.#mirror.start();
    session.onRenew((lease) => a.#reattach(lease));
    return a;
  }

  /**
   * Returns the identity of a label set, creating it cluster-wide if no node has it, and takes one
   * local reference (the node's reference key exists while this node holds at least one).
   *
   * @throws {@link KvError} `InvalidArgument` (bad labels), `Exhausted` (no free identity in the range),
   * `Conflict` (lost too many races in a row), `Unavailable`, `Timeout`, `Closed`.
   * @example Allocating
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const { id } = await ids.allocate(['k8s:app=web']);
   * ```
   */
  async allocate(labels: readonly string[]): Promise<AllocatedIdentity> {
    const key = canonicalLabels(labels).join(';');
    this.#open('allocate');
    return this.#locks.run(key, async () => {
      const local = this.#refs.get(key);
      if (local !== undefined) {
        local.count++;
        return { id: local.id, isNew: false };
      }
      await this.session.settled(); // a lease being renewed: use the new one
      const got = await this.#acquire(key, this.session.leaseId);
      this.#refs.set(key, { id: got.id, count: 1 });
      return got;
    });
  }

  /**
   * Drops one local reference; when it was the last, the node's reference key is deleted (the identity
   * itself stays until {@link StoreIdentityAllocator.gc} finds no node referencing it).
   *
   * @throws {@link KvError} `InvalidArgument` (bad labels), `NotFound` (this node holds no reference),
   * `Unavailable`, `Timeout`, `Closed`.
   * @example Releasing
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * await ids.allocate(['k8s:app=web']);
   * console.log(await ids.release(['k8s:app=web'])); // true: the node's last reference is gone
   * ```
   */
  async release(labels: readonly string[]): Promise<boolean> {
    const key = canonicalLabels(labels).join(';');
    this.#open('release');
    return this.#locks.run(key, async () => {
      const local = this.#refs.get(key);
      if (local === undefined) {
        throw new KvError('NotFound', `release: node ${this.session.node} holds no reference to ${key}`, {
          op: 'release',
          target: key,
        });
      }
      if (--local.count > 0) return false;
      await this.session.store.delete(this.#refKey(key, this.session.node));
      this.#refs.delete(key);
      return true;
    });
  }

  /**
   * The labels of a numeric identity, from the watched cache; `undefined` when unknown.
   *
   * @example Looking up an identity
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const { id } = await ids.allocate(['k8s:app=web']);
   * console.log(ids.lookup(id)); // ['k8s:app=web']
   * ```
   */
  lookup(id: number): readonly string[] | undefined {
    const key = this.#byId.get(id);
    return key === undefined ? undefined : key.split(';');
  }

  /**
   * The identity of a label set, from the watched cache, without allocating; `undefined` when unknown.
   *
   * @throws {@link KvError} `InvalidArgument` (bad labels).
   * @example Looking up labels
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * console.log(ids.lookupByLabels(['k8s:app=web'])); // undefined until someone allocates it
   * ```
   */
  lookupByLabels(labels: readonly string[]): number | undefined {
    return this.#byLabels.get(canonicalLabels(labels).join(';'));
  }

  /**
   * Every identity known cluster-wide (from the watched cache), id → sorted labels.
   *
   * @example Listing identities
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * for (const [id, labels] of ids.identities()) console.log(id, labels.join(','));
   * ```
   */
  identities(): Map<number, readonly string[]> {
    return new Map([...this.#byId].map(([id, key]) => [id, key.split(';')]));
  }

  /**
   * Calls `listener` when an identity is created or deleted anywhere in the cluster; returns an
   * unsubscribe function.
   *
   * @example Following other nodes' identities
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const stop = ids.onChange((c) => console.log(c.type, c.id, c.labels));
   * stop();
   * ```
   */
  onChange(listener: (change: IdentityChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  /**
   * Deletes identities that no node references (after `graceMs` of being seen unreferenced). Safe to
   * run on several nodes at once: a deletion is a transaction guarded by "no reference key exists".
   * Returns the deleted ids.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example Collecting garbage
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * await ids.allocate(['k8s:app=web']);
   * await ids.release(['k8s:app=web']);
   * console.log(await ids.gc()); // [256] (or whichever id it had)
   * ```
   */
  async gc(options: IdentityGcOptions = {}): Promise<number[]> {
    this.#open('gc');
    const grace = options.graceMs ?? 0;
    if (!(grace >= 0)) throw invalidArgument('gc', 'graceMs must be ≥ 0');
    const { entries } = await this.session.store.list(this.#prefix);
    const labelKeys: KvEntry[] = [];
    const referenced = new Set<string>();
    const lp = `${this.#prefix}labels/`;
    const rp = `${this.#prefix}refs/`;
    for (const e of entries) {
      if (e.key.startsWith(lp)) labelKeys.push(e);
      else if (e.key.startsWith(rp)) referenced.add(e.key.slice(rp.length, e.key.lastIndexOf('/')));
    }
    const now = this.#clock.now();
    const deleted: number[] = [];
    const seen = new Set<number>();
    for (const e of labelKeys) {
      const enc = e.key.slice(lp.length);
      const id = Number(e.value);
      seen.add(id);
      if (referenced.has(enc)) {
        this.#unusedSince.delete(id);
        continue;
      }
      if (grace > 0) {
        const mark = this.#unusedSince.get(id);
        if (mark === undefined || mark.modRevision !== e.modRevision) {
          this.#unusedSince.set(id, { since: now, modRevision: e.modRevision });
          continue;
        }
        if (now - mark.since < grace) continue;
      }
      const r = await this.session.store.txn(
        [
          { key: `${rp}${enc}/`, prefix: true, target: 'version', op: '==', value: 0 },
          { key: e.key, target: 'modRevision', op: '==', value: e.modRevision },
        ],
        [
          { type: 'delete', key: e.key },
          { type: 'delete', key: `${this.#prefix}id/${id}` },
        ],
      );
      this.#unusedSince.delete(id);
      if (r.succeeded) {
        deleted.push(id);
        this.#apply({ type: 'delete', key: `${this.#prefix}id/${id}`, modRevision: r.revision }, true);
      }
    }
    for (const id of this.#unusedSince.keys()) if (!seen.has(id)) this.#unusedSince.delete(id);
    return deleted;
  }

  /**
   * Stops the watch. References stay in the store until the session's lease ends.
   *
   * @example Closing
   * ```ts
   * import { MemoryStore, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * await ids.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#mirror.close();
  }

  /** Same as {@link StoreIdentityAllocator.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #open(op: string): void {
    if (this.#closed) throw closedError(op, 'identity allocator');
  }

  #labelsKey(key: string): string {
    return `${this.#prefix}labels/${encodeURIComponent(key)}`;
  }

  #refKey(key: string, node: string): string {
    return `${this.#prefix}refs/${encodeURIComponent(key)}/${node}`;
  }

  /** The keys of the identities this replica holds (for the mirror's reload). */
  *#knownKeys(): Iterable<string> {
    for (const id of this.#byId.keys()) yield `${this.#prefix}id/${id}`;
  }

  #apply(ev: KvWatchEvent, notify: boolean): void {
    const idp = `${this.#prefix}id/`;
    const key = ev.type === 'put' ? ev.entry.key : ev.key;
    if (!key.startsWith(idp)) return;
    const id = Number(key.slice(idp.length));
    if (ev.type === 'put') {
      const labels = ev.entry.value;
      if (this.#byId.get(id) === labels) return;
      this.#byId.set(id, labels);
      this.#byLabels.set(labels, id);
      if (notify) this.#listeners.emit({ type: 'add', id, labels: labels.split(';') });
    } else {
      const labels = this.#byId.get(id);
      if (labels === undefined) return;
      this.#byId.delete(id);
      if (this.#byLabels.get(labels) === id) this.#byLabels.delete(labels);
      if (notify) this.#listeners.emit({ type: 'delete', id, labels: labels.split(';') });
    }
  }

  #pickFree(): number | undefined {
    const size = this.#maxId - this.#minId + 1;
    if (this.#byId.size >= size) return undefined;
    const start = Math.floor(this.#random() * size);
    for (let i = 0; i < size; i++) {
      const id = this.#minId + ((start + i) % size);
      if (!this.#byId.has(id)) return id;
    }
    return undefined;
  }

  /** Finds or creates the identity of `key` and puts this node's reference under `lease`. */
  async #acquire(key: string, lease: string, preferId?: number): Promise<AllocatedIdentity> {
    const store = this.session.store;
    const lk = this.#labelsKey(key);
    const ref = this.#refKey(key, this.session.node);
    for (let attempt = 0; attempt < 64; attempt++) {
      const known = this.#byLabels.get(key);
      if (known !== undefined) {
        const r = await store.txn(
          [{ key: lk, target: 'value', op: '==', value: String(known) }],
          [{ type: 'put', key: ref, value: String(known), lease }],
          [{ type: 'get', key: lk }],
        );
        if (r.succeeded) return { id: known, isNew: false };
        const cur = r.gets[0];
        if (cur === undefined) {
          // deleted by GC in the meantime: forget it and create it again
          this.#byLabels.delete(key);
          if (this.#byId.get(known) === key) this.#byId.delete(known);
        } else this.#learn(Number(cur.value), key);
        continue;
      }
      const id =
        preferId !== undefined && !this.#byId.has(preferId) && attempt === 0 ? preferId : this.#pickFree();
      if (id === undefined) {
        throw new KvError('Exhausted', `allocate: no free identity in ${this.#minId}..${this.#maxId}`, {
          op: 'allocate',
          target: key,
        });
      }
      const idKey = `${this.#prefix}id/${id}`;
      const r = await store.txn(
        [
          { key: lk, target: 'version', op: '==', value: 0 },
          { key: idKey, target: 'version', op: '==', value: 0 },
        ],
        [
          { type: 'put', key: lk, value: String(id) },
          { type: 'put', key: idKey, value: key },
          { type: 'put', key: ref, value: String(id), lease },
        ],
        [
          { type: 'get', key: lk },
          { type: 'get', key: idKey },
        ],
      );
      if (r.succeeded) {
        this.#learn(id, key);
        return { id, isNew: true };
      }
      const [byLabels, byId] = r.gets;
      if (byLabels !== undefined) this.#learn(Number(byLabels.value), key);
      if (byId !== undefined) this.#learn(id, byId.value);
    }
    throw new KvError('Busy', `allocate: gave up after 64 conflicting attempts`, {
      op: 'allocate',
      reason: 'Conflict',
      target: key,
    });
  }

  #learn(id: number, key: string): void {
    if (this.#byId.get(id) === key) return;
    this.#byId.set(id, key);
    this.#byLabels.set(key, id);
    this.#listeners.emit({ type: 'add', id, labels: key.split(';') });
  }

  /** After a lease renewal: put every reference again under the new lease (re-creating GC'd identities). */
  async #reattach(lease: string): Promise<void> {
    for (const [key, ref] of this.#refs) {
      await this.#locks.run(key, async () => {
        const got = await this.#acquire(key, lease, ref.id);
        ref.id = got.id;
      });
    }
  }
}
