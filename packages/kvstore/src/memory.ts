import { type Clock, systemClock } from './clock.js';
import { closedError, KvError } from './errors.js';
import type {
  KvCompare,
  KvEntry,
  KvLease,
  KvListResult,
  KvOp,
  KvPutOptions,
  KvStore,
  KvTxnResult,
  KvWatch,
  KvWatchEvent,
  KvWatchOptions,
} from './types.js';
import { checkKey, checkPrefix, checkTtl, checkTxn } from './validate.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Time source for lease TTLs and keep-alives; default {@link systemClock}. */
  readonly clock?: Clock;
  /** How many past events are kept for watches that start at an old revision; default 100 000. */
  readonly historyLimit?: number;
}

interface MemLease {
  readonly id: string;
  readonly ttlSeconds: number;
  readonly keys: Set<string>;
  expiry: unknown;
  keepAlive: unknown;
  closed: boolean;
  readonly lost: ((cause: KvError) => void)[];
}

interface MemWatcher {
  readonly prefix: string;
  readonly listener: (event: KvWatchEvent) => void;
  open: boolean;
}

/** Whether one compare holds over the entries it selects (an empty selection compares as an absent key). */
export function compareHolds(c: KvCompare, entries: readonly KvEntry[]): boolean {
  if (entries.length === 0) {
    if (c.target === 'value') return false;
    return cmp(0, c.op, c.value);
  }
  return entries.every((e) =>
    c.target === 'value' ? cmp(e.value, c.op, c.value) : cmp(e[c.target], c.op, c.value),
  );
}

function cmp<T extends string | number>(a: T, op: KvCompare['op'], b: T): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '>':
      return a > b;
  }
}

/**
 * The in-memory {@link KvStore}: the single-node default, with the same revisions, transactions, lease
 * and watch semantics as {@link EtcdStore}. Leases run on an injectable {@link Clock}.
 *
 * @example A compare-and-swap create
 * ```ts
 * import { MemoryStore } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const r = await store.txn(
 *   [{ key: 'cidrs/10.0.1.0/24', target: 'version', op: '==', value: 0 }],
 *   [{ type: 'put', key: 'cidrs/10.0.1.0/24', value: 'node-a' }],
 * );
 * console.log(r.succeeded); // true the first time, false afterwards
 * await store.close();
 * ```
 */
export class MemoryStore implements KvStore {
  readonly #clock: Clock;
  readonly #historyLimit: number;
  readonly #kv = new Map<string, KvEntry>();
  readonly #leases = new Map<string, MemLease>();
  readonly #watchers = new Set<MemWatcher>();
  #history: { readonly revision: number; readonly event: KvWatchEvent }[] = [];
  #revision = 1;
  #nextLease = 0x1000;
  #closed = false;

  /** Creates an empty store at revision 1. */
  constructor(options: MemoryStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#historyLimit = options.historyLimit ?? 100_000;
  }

  /** The current store revision. */
  get revision(): number {
    return this.#revision;
  }

  /**
   * Reads one key.
   *
   * @throws {@link KvError} `InvalidArgument` (empty key), `Closed`.
   * @example Reading a key
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * await store.put('a', '1');
   * console.log((await store.get('a'))?.value); // '1'
   * ```
   */
  async get(key: string): Promise<KvEntry | undefined> {
    this.#open('get');
    checkKey('get', key);
    return this.#kv.get(key);
  }

  /**
   * Lists every key under a prefix, sorted, with the revision it was read at.
   *
   * @throws {@link KvError} `InvalidArgument`, `Closed`.
   * @example Listing a prefix
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * await store.put('nodes/a', '');
   * console.log((await store.list('nodes/')).entries.map((e) => e.key)); // ['nodes/a']
   * ```
   */
  async list(prefix: string): Promise<KvListResult> {
    this.#open('list');
    checkPrefix('list', prefix);
    return { entries: this.#select(prefix, true), revision: this.#revision };
  }

  /**
   * Writes a key, optionally attached to a lease.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (unknown lease), `Closed`.
   * @example Writing a key
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const revision = await store.put('a', '1');
   * ```
   */
  async put(key: string, value: string, options: KvPutOptions = {}): Promise<number> {
    const op: KvOp =
      options.lease === undefined
        ? { type: 'put', key, value }
        : { type: 'put', key, value, lease: options.lease };
    return (await this.txn([], [op])).revision;
  }

  /**
   * Deletes a key.
   *
   * @throws {@link KvError} `InvalidArgument`, `Closed`.
   * @example Deleting a key
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * console.log(await store.delete('missing')); // false
   * ```
   */
  async delete(key: string): Promise<boolean> {
    this.#open('delete');
    checkKey('delete', key);
    const existed = this.#kv.has(key);
    await this.txn([], [{ type: 'delete', key }]);
    return existed;
  }

  /**
   * Deletes every key under a prefix.
   *
   * @throws {@link KvError} `InvalidArgument`, `Closed`.
   * @example Deleting a prefix
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * console.log(await store.deletePrefix('tmp/')); // 0
   * ```
   */
  async deletePrefix(prefix: string): Promise<number> {
    this.#open('deletePrefix');
    checkPrefix('deletePrefix', prefix);
    const n = this.#select(prefix, true).length;
    await this.txn([], [{ type: 'deletePrefix', prefix }]);
    return n;
  }

  /**
   * Runs a compare-and-swap transaction atomically.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (a put names an unknown lease), `Closed`.
   * @example Create-if-absent
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const r = await store.txn(
   *   [{ key: 'k', target: 'version', op: '==', value: 0 }],
   *   [{ type: 'put', key: 'k', value: 'mine' }],
   *   [{ type: 'get', key: 'k' }],
   * );
   * ```
   */
  async txn(
    compare: readonly KvCompare[],
    success: readonly KvOp[],
    failure: readonly KvOp[] = [],
  ): Promise<KvTxnResult> {
    this.#open('txn');
    checkTxn(compare, success, failure);
    const succeeded = compare.every((c) => compareHolds(c, this.#select(c.key, c.prefix === true)));
    const ops = succeeded ? success : failure;
    for (const o of ops) {
      if (o.type === 'put' && o.lease !== undefined && !this.#leases.has(o.lease)) {
        throw new KvError('NotFound', `txn: lease ${o.lease} not found`, { op: 'txn', target: o.key });
      }
    }
    const gets: (KvEntry | undefined)[] = [];
    const events: KvWatchEvent[] = [];
    const rev = this.#revision + 1;
    for (const o of ops) {
      if (o.type === 'get') gets.push(this.#kv.get(o.key));
      else if (o.type === 'put') events.push(this.#putOne(o.key, o.value, o.lease, rev));
      else if (o.type === 'delete') {
        if (this.#removeOne(o.key)) events.push({ type: 'delete', key: o.key, modRevision: rev });
      } else {
        for (const e of this.#select(o.prefix, true)) {
          this.#removeOne(e.key);
          events.push({ type: 'delete', key: e.key, modRevision: rev });
        }
      }
    }
    if (events.length > 0) this.#commit(rev, events);
    return { succeeded, revision: this.#revision, gets };
  }

  /**
   * Grants a lease kept alive on the store's clock until revoked or released.
   *
   * @throws {@link KvError} `InvalidArgument` (TTL not a whole number ≥ 1), `Closed`.
   * @example Node liveness key
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const lease = await store.grantLease(3);
   * await store.put('nodes/a', 'up', { lease: lease.id });
   * await lease.revoke(); // nodes/a is gone
   * ```
   */
  async grantLease(ttlSeconds: number): Promise<KvLease> {
    this.#open('grantLease');
    checkTtl('grantLease', ttlSeconds);
    const lease: MemLease = {
      id: String(this.#nextLease++),
      ttlSeconds,
      keys: new Set(),
      expiry: undefined,
      keepAlive: undefined,
      closed: false,
      lost: [],
    };
    this.#leases.set(lease.id, lease);
    this.#refresh(lease);
    const tick = () => {
      if (lease.closed || this.#closed) return;
      this.#refresh(lease);
      lease.keepAlive = this.#clock.setTimeout(tick, (ttlSeconds * 1000) / 3);
    };
    lease.keepAlive = this.#clock.setTimeout(tick, (ttlSeconds * 1000) / 3);
    const stop = () => {
      lease.closed = true;
      this.#clock.clearTimeout(lease.keepAlive);
    };
    return {
      id: lease.id,
      ttlSeconds,
      get closed() {
        return lease.closed;
      },
      onLost: (listener) => {
        lease.lost.push(listener);
      },
      revoke: async () => {
        stop();
        this.#expire(lease, false);
      },
      release: stop,
      [Symbol.asyncDispose]: async () => {
        stop();
        this.#expire(lease, false);
      },
    };
  }

  /**
   * Revokes a lease as an administrator would, behind its holder's back: its keys are deleted and the
   * holder's {@link KvLease.onLost} listeners are called. Returns whether the lease existed.
   * Equivalent to: `etcdctl lease revoke <id>`.
   *
   * @example Forcing a node out
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const lease = await store.grantLease(10);
   * lease.onLost((err) => console.log(err.code, err.reason)); // 'Stale' 'LeaseLost'
   * store.revokeLease(lease.id);
   * ```
   */
  revokeLease(id: string): boolean {
    const lease = this.#leases.get(id);
    if (lease === undefined) return false;
    this.#expire(lease, true);
    return true;
  }

  /**
   * Watches a prefix; events of one transaction share a revision and arrive in order.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (start revision older than the kept history), `Closed`.
   * @example Watching node liveness
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const w = await store.watch('nodes/', (ev) => console.log(ev.type));
   * await store.put('nodes/a', 'up'); // prints 'put'
   * await w.close();
   * ```
   */
  async watch(
    prefix: string,
    listener: (event: KvWatchEvent) => void,
    options: KvWatchOptions = {},
  ): Promise<KvWatch> {
    this.#open('watch');
    checkPrefix('watch', prefix);
    const w: MemWatcher = { prefix, listener, open: true };
    const start = options.startRevision;
    if (start !== undefined && start <= this.#revision) {
      const oldest = this.#history[0]?.revision ?? this.#revision + 1;
      if (start < oldest && this.#history.length >= this.#historyLimit) {
        throw new KvError('NotFound', `watch: revision ${start} was compacted`, {
          op: 'watch',
          target: prefix,
        });
      }
      const replay = this.#history.filter((h) => h.revision >= start).map((h) => h.event);
      queueMicrotask(() => {
        for (const ev of replay) if (w.open && keyOf(ev).startsWith(prefix)) w.listener(ev);
      });
    }
    this.#watchers.add(w);
    const close = async () => {
      w.open = false;
      this.#watchers.delete(w);
    };
    return { close, [Symbol.asyncDispose]: close };
  }

  /**
   * Closes the store: watches stop and lease timers are cancelled.
   *
   * @example Closing
   * ```ts
   * import { MemoryStore } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * await store.close();
   * ```
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const l of this.#leases.values()) {
      l.closed = true;
      this.#clock.clearTimeout(l.keepAlive);
      this.#clock.clearTimeout(l.expiry);
    }
    for (const w of this.#watchers) w.open = false;
    this.#watchers.clear();
  }

  /** Same as {@link MemoryStore.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #open(op: string): void {
    if (this.#closed) throw closedError(op, 'store');
  }

  #select(key: string, prefix: boolean): KvEntry[] {
    if (!prefix) {
      const e = this.#kv.get(key);
      return e === undefined ? [] : [e];
    }
    const out: KvEntry[] = [];
    for (const [k, e] of this.#kv) if (k.startsWith(key)) out.push(e);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #putOne(key: string, value: string, lease: string | undefined, rev: number): KvWatchEvent {
    const prev = this.#kv.get(key);
    if (prev?.lease !== undefined) this.#leases.get(prev.lease)?.keys.delete(key);
    const entry: KvEntry = {
      key,
      value,
      createRevision: prev?.createRevision ?? rev,
      modRevision: rev,
      version: (prev?.version ?? 0) + 1,
      lease,
    };
    this.#kv.set(key, entry);
    if (lease !== undefined) this.#leases.get(lease)?.keys.add(key);
    return { type: 'put', entry };
  }

  #removeOne(key: string): boolean {
    const prev = this.#kv.get(key);
    if (prev === undefined) return false;
    if (prev.lease !== undefined) this.#leases.get(prev.lease)?.keys.delete(key);
    this.#kv.delete(key);
    return true;
  }

  #commit(rev: number, events: KvWatchEvent[]): void {
    this.#revision = rev;
    for (const event of events) this.#history.push({ revision: rev, event });
    if (this.#history.length > this.#historyLimit) {
      this.#history = this.#history.slice(this.#history.length - this.#historyLimit);
    }
    const targets = [...this.#watchers];
    queueMicrotask(() => {
      for (const w of targets) {
        for (const ev of events) if (w.open && keyOf(ev).startsWith(w.prefix)) w.listener(ev);
      }
    });
  }

  #refresh(lease: MemLease): void {
    this.#clock.clearTimeout(lease.expiry);
    lease.expiry = this.#clock.setTimeout(() => this.#expire(lease, true), lease.ttlSeconds * 1000);
  }

  #expire(lease: MemLease, lost: boolean): void {
    if (!this.#leases.has(lease.id)) return;
    this.#clock.clearTimeout(lease.expiry);
    this.#clock.clearTimeout(lease.keepAlive);
    this.#leases.delete(lease.id);
    const wasOpen = !lease.closed;
    lease.closed = true;
    if (this.#closed) return;
    const rev = this.#revision + 1;
    const events: KvWatchEvent[] = [];
    for (const key of [...lease.keys].sort()) {
      if (this.#removeOne(key)) events.push({ type: 'delete', key, modRevision: rev });
    }
    if (events.length > 0) this.#commit(rev, events);
    if (lost && wasOpen) {
      const err = new KvError('Stale', `lease ${lease.id} expired`, {
        op: 'keepAlive',
        reason: 'LeaseLost',
        target: lease.id,
      });
      for (const l of lease.lost) l(err);
    }
  }
}

function keyOf(ev: KvWatchEvent): string {
  return ev.type === 'put' ? ev.entry.key : ev.key;
}
