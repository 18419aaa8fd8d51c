import { invalidArgument, KvError } from './errors.js';
import type { KvLease, KvStore } from './types.js';

/** Options of {@link NodeSession.open}. */
export interface NodeSessionOptions {
  /** The node name, unique in the cluster (no `/`). */
  readonly node: string;
  /** Lease TTL in seconds: how long after a crash the node is seen as gone; default 15. */
  readonly ttlSeconds?: number;
  /** Called when the lease was lost and a new one could not be granted yet (the session keeps trying). */
  readonly onError?: (err: KvError) => void;
}

/** The key prefix of node liveness keys; `nodes/<node>` exists while the node's lease is alive. */
export const NODES_PREFIX = 'nodes/';

/** Rejects a node name that would break the key layout. */
export function checkNodeName(op: string, node: unknown): asserts node is string {
  if (typeof node !== 'string' || node.length === 0 || node.length > 253 || /[/\s]/.test(node)) {
    throw invalidArgument(
      op,
      `node name must be 1-253 characters without '/' or spaces, got ${String(node)}`,
    );
  }
}

/**
 * A node's membership in the cluster: a lease kept alive by the store client and the liveness key
 * `nodes/<node>` attached to it. Keys that must vanish when the node dies (identity references) are put
 * with {@link NodeSession.leaseId}. If the lease is lost (etcd said it expired, or keep-alives failed
 * for longer than the TTL), the session grants a new lease, puts the liveness key again and calls the
 * {@link NodeSession.onRenew} listeners so owners can re-attach their keys.
 *
 * @example Joining the cluster
 * ```ts
 * import { MemoryStore, NodeSession } from '@datapath/kvstore';
 * const store = new MemoryStore();
 * const session = await NodeSession.open(store, { node: 'node-a', ttlSeconds: 10 });
 * console.log((await store.get('nodes/node-a'))?.lease === session.leaseId); // true
 * await session.close(); // leaves: the lease is revoked, nodes/node-a is deleted
 * ```
 */
export class NodeSession implements AsyncDisposable {
  /** The store this session lives in. */
  readonly store: KvStore;
  /** The node name. */
  readonly node: string;
  /** The lease TTL in seconds. */
  readonly ttlSeconds: number;
  #lease: KvLease;
  #closed = false;
  #renewing: Promise<void> | undefined;
  readonly #renewListeners: ((leaseId: string) => Promise<void> | void)[] = [];
  readonly #onError: ((err: KvError) => void) | undefined;

  private constructor(
    store: KvStore,
    node: string,
    ttl: number,
    lease: KvLease,
    onError?: (err: KvError) => void,
  ) {
    this.store = store;
    this.node = node;
    this.ttlSeconds = ttl;
    this.#lease = lease;
    this.#onError = onError;
    this.#watchLease(lease);
  }

  /**
   * Grants the node's lease and puts its liveness key.
   *
   * @throws {@link KvError} `InvalidArgument` (bad node name or TTL), `Unavailable`, `Timeout`, `Closed`.
   * @example Opening a session
   * ```ts
   * import { MemoryStore, NodeSession } from '@datapath/kvstore';
   * const session = await NodeSession.open(new MemoryStore(), { node: 'node-a' });
   * ```
   */
  static async open(store: KvStore, options: NodeSessionOptions): Promise<NodeSession> {
    checkNodeName('NodeSession.open', options.node);
    const ttl = options.ttlSeconds ?? 15;
    const lease = await store.grantLease(ttl);
    try {
      await store.put(`${NODES_PREFIX}${options.node}`, JSON.stringify({ lease: lease.id }), {
        lease: lease.id,
      });
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    return new NodeSession(store, options.node, ttl, lease, options.onError);
  }

  /** The id of the current lease (changes after a renewal). */
  get leaseId(): string {
    return this.#lease.id;
  }

  /** Whether the session was closed or abandoned. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Registers a listener called with the new lease id after the session re-granted a lost lease.
   *
   * @example Re-attaching a key
   * ```ts
   * import { MemoryStore, NodeSession } from '@datapath/kvstore';
   * const store = new MemoryStore();
   * const session = await NodeSession.open(store, { node: 'node-a' });
   * session.onRenew(async (lease) => {
   *   await store.put('refs/x/node-a', '1', { lease });
   * });
   * ```
   */
  onRenew(listener: (leaseId: string) => Promise<void> | void): void {
    this.#renewListeners.push(listener);
  }

  /** Resolves when a renewal in progress (if any) has finished; for tests and orderly shutdown. */
  async settled(): Promise<void> {
    while (this.#renewing !== undefined) await this.#renewing;
  }

  /**
   * Leaves the cluster: revokes the lease, so the liveness key and every key attached to it go at once.
   *
   * @throws {@link KvError} `Unavailable`, `Timeout` (the lease then expires on its own).
   * @example Leaving
   * ```ts
   * import { MemoryStore, NodeSession } from '@datapath/kvstore';
   * const session = await NodeSession.open(new MemoryStore(), { node: 'node-a' });
   * await session.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#renewing?.catch(() => undefined);
    await this.#lease.revoke();
  }

  /**
   * Stops keep-alives without revoking, as a crashed node would: the lease expires after its TTL.
   *
   * @example Simulating a crash
   * ```ts
   * import { MemoryStore, NodeSession } from '@datapath/kvstore';
   * const session = await NodeSession.open(new MemoryStore(), { node: 'node-a', ttlSeconds: 2 });
   * session.abandon();
   * ```
   */
  abandon(): void {
    this.#closed = true;
    this.#lease.release();
  }

  /** Same as {@link NodeSession.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #watchLease(lease: KvLease): void {
    lease.onLost(() => {
      if (this.#closed || this.#lease !== lease) return;
      this.#renewing = this.#renew().finally(() => {
        this.#renewing = undefined;
      });
    });
  }

  async #renew(): Promise<void> {
    let delay = 100;
    while (!this.#closed) {
      try {
        const lease = await this.store.grantLease(this.ttlSeconds);
        if (this.#closed) {
          await lease.revoke().catch(() => undefined);
          return;
        }
        this.#lease = lease;
        this.#watchLease(lease);
        await this.store.put(`${NODES_PREFIX}${this.node}`, JSON.stringify({ lease: lease.id }), {
          lease: lease.id,
        });
        for (const l of this.#renewListeners) await l(lease.id);
        return;
      } catch (err) {
        const e =
          err instanceof KvError
            ? err
            : new KvError('Unknown', `renew: ${String(err)}`, { op: 'renew', target: this.node, cause: err });
        this.#onError?.(e);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 2_000);
      }
    }
  }
}
