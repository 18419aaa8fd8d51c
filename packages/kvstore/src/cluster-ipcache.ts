import { tryParseIp } from '@datapath/ip';
import { closedError, invalidArgument, KvError } from './errors.js';
import { ChangeListeners, KeyedMutex, PrefixMirror } from './mirror.js';
import type { NodeSession } from './session.js';
import type { KvWatchEvent } from './types.js';

/** The pod behind an ipcache entry, so other nodes' policy engines can select it by labels. */
export interface IpcachePod {
  /** The pod's namespace. */
  readonly namespace: string;
  /** The pod's name. */
  readonly name: string;
  /** The pod's labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** The namespace's labels (policies select namespaces by them). */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
}

/** One cluster-wide ipcache entry: an endpoint address, its security identity and where it lives. */
export interface IpcacheEntry {
  /** The endpoint's address (no prefix length). */
  readonly ip: string;
  /** Its security identity (cluster-wide). */
  readonly identity: number;
  /** The node that owns it. */
  readonly node: string;
  /** That node's underlay address: the next hop (native routing) or tunnel endpoint (VXLAN). */
  readonly nodeAddress: string;
  /** The pod, when the address is a pod's. */
  readonly pod?: IpcachePod;
}

/** A change of the cluster-wide ipcache. */
export type IpcacheChange =
  | {
      /** An entry was added or changed. */
      readonly type: 'upsert';
      /** The entry now. */
      readonly entry: IpcacheEntry;
    }
  | {
      /** An entry went (deleted by its node, or its node's lease expired). */
      readonly type: 'delete';
      /** The entry as it was last seen. */
      readonly entry: IpcacheEntry;
    };

/** Options of {@link ClusterIpcache.open}. */
export interface ClusterIpcacheOptions {
  /** Key prefix; default `ipcache/`. */
  readonly prefix?: string;
}

function parseEntry(value: string): IpcacheEntry | undefined {
  try {
    const v = JSON.parse(value) as IpcacheEntry;
    if (typeof v.ip !== 'string' || typeof v.identity !== 'number' || typeof v.node !== 'string')
      return undefined;
    return v;
  } catch {
    return undefined;
  }
}

/**
 * The cluster-wide ipcache: each node publishes its own endpoints (`<prefix><ip>` → identity, node, node
 * address, pod) under its {@link NodeSession} lease and mirrors everyone's (list, then watch from the
 * listing's revision; a reload after a compaction turns what was missed into changes). When a node's lease
 * expires its entries are deleted by the store and every mirror sees the deletions. After the session
 * renews a lost lease, this node's entries are written again under the new one.
 *
 * @example Publishing and seeing an entry
 * ```ts
 * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const a = await ClusterIpcache.open(await NodeSession.open(store, { node: 'a' }));
 * const b = await ClusterIpcache.open(await NodeSession.open(store, { node: 'b' }));
 * b.onChange((c) => console.log(c.type, c.entry.ip)); // upsert 10.244.0.10
 * await a.upsert({ ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1' });
 * ```
 */
export class ClusterIpcache implements AsyncDisposable {
  /** The session this node's entries live under. */
  readonly session: NodeSession;
  readonly #prefix: string;
  readonly #entries = new Map<string, IpcacheEntry>();
  readonly #own = new Map<string, IpcacheEntry>();
  readonly #listeners = new ChangeListeners<IpcacheChange>();
  readonly #locks = new KeyedMutex();
  readonly #mirror: PrefixMirror;
  #closed = false;

  private constructor(session: NodeSession, prefix: string) {
    this.session = session;
    this.#prefix = prefix;
    this.#mirror = new PrefixMirror(
      session.store,
      prefix,
      (ev, notify) => this.#apply(ev, notify),
      () => [...this.#entries.keys()].map((ip) => `${prefix}${ip}`),
    );
  }

  /**
   * Loads every node's entries and starts watching.
   *
   * @throws {@link KvError} `InvalidArgument` (bad prefix), `Unavailable`, `TimedOut`.
   * @example Opening
   * ```ts
   * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
   * const ipcache = await ClusterIpcache.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * console.log(ipcache.entries().size); // 0
   * ```
   */
  static async open(session: NodeSession, options: ClusterIpcacheOptions = {}): Promise<ClusterIpcache> {
    const prefix = options.prefix ?? 'ipcache/';
    if (!prefix.endsWith('/')) throw invalidArgument('ClusterIpcache.open', "prefix must end with '/'");
    const c = new ClusterIpcache(session, prefix);
    await c.#mirror.start();
    session.onRenew((lease) => c.#republish(lease));
    return c;
  }

  /**
   * Publishes (or changes) one of this node's endpoints under the node's lease.
   *
   * @throws {@link KvError} `InvalidArgument` (bad address or identity), `AlreadyExists` (another node
   * publishes this address), `Unavailable`, `TimedOut`, `InvalidState` (closed).
   * @example Publishing a pod
   * ```ts
   * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
   * const ipcache = await ClusterIpcache.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * await ipcache.upsert({
   *   ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1',
   *   pod: { namespace: 'default', name: 'web', labels: { app: 'web' } },
   * });
   * ```
   */
  async upsert(entry: Omit<IpcacheEntry, 'node'>): Promise<void> {
    const op = 'ClusterIpcache.upsert';
    if (this.#closed) throw closedError(op, 'ipcache');
    if (tryParseIp(entry.ip) === undefined) throw invalidArgument(op, `bad address ${String(entry.ip)}`);
    if (!Number.isInteger(entry.identity) || entry.identity < 0 || entry.identity > 0xffffffff)
      throw invalidArgument(op, `bad identity ${String(entry.identity)}`);
    const full: IpcacheEntry = { ...entry, node: this.session.node };
    const key = `${this.#prefix}${entry.ip}`;
    await this.#locks.run(entry.ip, async () => {
      const store = this.session.store;
      const cur = await store.get(key);
      const owner = cur === undefined ? undefined : parseEntry(cur.value)?.node;
      if (owner !== undefined && owner !== this.session.node) {
        throw new KvError('AlreadyExists', `${op}: ${entry.ip} is published by node ${owner}`, {
          op,
          target: entry.ip,
        });
      }
      const r = await store.txn(
        [
          cur === undefined
            ? { key, target: 'version', op: '==', value: 0 }
            : { key, target: 'modRevision', op: '==', value: cur.modRevision },
        ],
        [{ type: 'put', key, value: JSON.stringify(full), lease: this.session.leaseId }],
      );
      if (!r.succeeded) {
        throw new KvError('Busy', `${op}: ${entry.ip} changed under us`, {
          op,
          target: entry.ip,
          reason: 'Conflict',
        });
      }
      this.#own.set(entry.ip, full);
    });
  }

  /**
   * Withdraws one of this node's endpoints; `false` when this node did not publish it.
   *
   * @throws {@link KvError} `Unavailable`, `TimedOut`, `InvalidState` (closed).
   * @example Withdrawing
   * ```ts
   * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
   * const ipcache = await ClusterIpcache.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * console.log(await ipcache.delete('10.244.0.10')); // false
   * ```
   */
  async delete(ip: string): Promise<boolean> {
    if (this.#closed) throw closedError('ClusterIpcache.delete', 'ipcache');
    return this.#locks.run(ip, async () => {
      if (!this.#own.has(ip)) return false;
      this.#own.delete(ip);
      const key = `${this.#prefix}${ip}`;
      const cur = await this.session.store.get(key);
      if (cur === undefined || parseEntry(cur.value)?.node !== this.session.node) return true;
      await this.session.store.txn(
        [{ key, target: 'modRevision', op: '==', value: cur.modRevision }],
        [{ type: 'delete', key }],
      );
      return true;
    });
  }

  /**
   * Takes over the entries this node published before a restart (found in the store under its name, still
   * attached to the old process's lease): they are written again under the current lease, so they outlive
   * the old one. Returns them; the caller deletes those it no longer has.
   *
   * @throws {@link KvError} `Unavailable`, `TimedOut`, `InvalidState` (closed).
   * @example Adopting after a restart
   * ```ts
   * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
   * const ipcache = await ClusterIpcache.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * console.log((await ipcache.adopt()).length); // 0
   * ```
   */
  async adopt(): Promise<IpcacheEntry[]> {
    if (this.#closed) throw closedError('ClusterIpcache.adopt', 'ipcache');
    const mine = [...this.#entries.values()].filter((e) => e.node === this.session.node);
    for (const e of mine) this.#own.set(e.ip, e);
    await this.#republish(this.session.leaseId);
    return mine;
  }

  /** Every node's entries (this node's included), by address, from the watched copy. */
  entries(): Map<string, IpcacheEntry> {
    return new Map(this.#entries);
  }

  /**
   * Calls `listener` for every change seen by the watch (not for the first load: read
   * {@link ClusterIpcache.entries}). Returns the function that unregisters it.
   *
   * @example Following remote pods
   * ```ts
   * import { ClusterIpcache, MemoryStore, NodeSession } from '@datapath/kvstore';
   * const ipcache = await ClusterIpcache.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const stop = ipcache.onChange((c) => console.log(c.type, c.entry.ip, c.entry.node));
   * stop();
   * ```
   */
  onChange(listener: (change: IpcacheChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  /** Stops watching; this node's entries stay until its session ends. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#mirror.close();
  }

  /** Same as {@link ClusterIpcache.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #republish(lease: string): Promise<void> {
    if (this.#closed) return;
    const own = [...this.#own.values()];
    for (let i = 0; i < own.length; i += 64) {
      await this.session.store.txn(
        [],
        own.slice(i, i + 64).map((e) => ({
          type: 'put' as const,
          key: `${this.#prefix}${e.ip}`,
          value: JSON.stringify(e),
          lease,
        })),
      );
    }
  }

  #apply(ev: KvWatchEvent, notify: boolean): void {
    if (ev.type === 'put') {
      const entry = parseEntry(ev.entry.value);
      if (entry === undefined) return;
      const old = this.#entries.get(entry.ip);
      this.#entries.set(entry.ip, entry);
      if (notify && (old === undefined || JSON.stringify(old) !== ev.entry.value))
        this.#listeners.emit({ type: 'upsert', entry });
      return;
    }
    const ip = ev.key.slice(this.#prefix.length);
    const old = this.#entries.get(ip);
    if (old === undefined) return;
    this.#entries.delete(ip);
    if (notify) this.#listeners.emit({ type: 'delete', entry: old });
  }
}
