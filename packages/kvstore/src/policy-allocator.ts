import { type IdentityAllocator, type IdentityScope, LocalIdentityAllocator } from '@datapath/policy';
import { KvError } from './errors.js';
import { canonicalLabels, type StoreIdentityAllocator } from './identity.js';

/** Options of {@link PolicyIdentityAllocator}. */
export interface PolicyIdentityAllocatorOptions {
  /** Allocator of node-local (`local` scope, CIDR) identities; default a `LocalIdentityAllocator` of `@datapath/policy`. */
  readonly local?: IdentityAllocator;
  /** Called with errors of the background store calls (taking or dropping this node's reference). */
  readonly onError?: (err: KvError) => void;
}

interface Held {
  readonly key: string;
  readonly labels: readonly string[];
  refs: number;
}

/**
 * The `IdentityAllocator` of `@datapath/policy` backed by a {@link StoreIdentityAllocator}, so a
 * `PolicyEngine` on every node uses the cluster-wide identities. The policy interface is synchronous, so
 * cluster-scope label sets must be resolved first with {@link PolicyIdentityAllocator.prepare} (one store
 * round trip); `allocate` then answers from the cache, and the node's store reference is taken and
 * dropped in the background. Node-local (`local` scope) identities never leave the node.
 *
 * @example Plugging cluster identities into the policy engine
 * ```ts
 * import { MemoryStore, NodeSession, PolicyIdentityAllocator, StoreIdentityAllocator } from '@datapath/kvstore';
 * import { PolicyEngine } from '@datapath/policy';
 * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
 * const allocator = new PolicyIdentityAllocator(ids);
 * await allocator.prepare(['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default']);
 * const engine = new PolicyEngine({ allocator });
 * ```
 */
export class PolicyIdentityAllocator implements IdentityAllocator {
  /** The cluster-wide allocator behind this one. */
  readonly store: StoreIdentityAllocator;
  readonly #local: IdentityAllocator;
  readonly #onError: ((err: KvError) => void) | undefined;
  readonly #held = new Map<number, Held>();
  readonly #byKey = new Map<string, number>();
  readonly #prepared = new Map<string, number>(); // store references taken by prepare(), not yet used
  readonly #localIds = new Set<number>();
  readonly #pending = new Set<Promise<unknown>>();

  /** Wraps a store-backed allocator. */
  constructor(store: StoreIdentityAllocator, options: PolicyIdentityAllocatorOptions = {}) {
    this.store = store;
    this.#local = options.local ?? new LocalIdentityAllocator();
    this.#onError = options.onError;
  }

  /**
   * Resolves a cluster-scope label set cluster-wide (creating the identity if no node has it) and takes a
   * store reference that the next {@link PolicyIdentityAllocator.allocate} of the same set uses.
   *
   * @throws {@link KvError} as {@link StoreIdentityAllocator.allocate}.
   * @example Resolving before the engine needs it
   * ```ts
   * import { MemoryStore, NodeSession, PolicyIdentityAllocator, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const allocator = new PolicyIdentityAllocator(ids);
   * const id = await allocator.prepare(['k8s:app=web']);
   * console.log(allocator.allocate(['k8s:app=web'], 'cluster') === id); // true
   * ```
   */
  async prepare(labels: readonly string[]): Promise<number> {
    const key = canonicalLabels(labels).join(';');
    const { id } = await this.store.allocate(labels);
    this.#prepared.set(key, (this.#prepared.get(key) ?? 0) + 1);
    return id;
  }

  /**
   * Returns the identity of a label set: `cluster` scope from the cluster-wide cache (same number on every
   * node), `local` scope from the local allocator.
   *
   * @throws {@link KvError} `NotFound` when a cluster-scope set was never resolved (call `prepare` first;
   * resolution is started in the background), `InvalidArgument` for a bad label set.
   * @example Allocating a resolved set
   * ```ts
   * import { MemoryStore, NodeSession, PolicyIdentityAllocator, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const allocator = new PolicyIdentityAllocator(ids);
   * await allocator.prepare(['k8s:app=db']);
   * const id = allocator.allocate(['k8s:app=db'], 'cluster');
   * ```
   */
  allocate(labels: readonly string[], scope: IdentityScope): number {
    if (scope === 'local') {
      const id = this.#local.allocate(labels, scope);
      this.#localIds.add(id);
      return id;
    }
    const sorted = canonicalLabels(labels);
    const key = sorted.join(';');
    const have = this.#byKey.get(key);
    if (have !== undefined) {
      this.#held.get(have)!.refs++;
      return have;
    }
    const id = this.store.lookupByLabels(sorted);
    if (id === undefined) {
      this.#background(this.prepare(sorted));
      throw new KvError(
        'NotFound',
        `allocate: identity of ${key} is not resolved yet; await prepare() first`,
        {
          op: 'allocate',
          target: key,
        },
      );
    }
    const prepared = this.#prepared.get(key) ?? 0;
    if (prepared > 0) {
      if (prepared === 1) this.#prepared.delete(key);
      else this.#prepared.set(key, prepared - 1);
    } else {
      this.#background(this.store.allocate(sorted));
    }
    this.#held.set(id, { key, labels: sorted, refs: 1 });
    this.#byKey.set(key, id);
    return id;
  }

  /**
   * Drops one reference; the node's store reference goes (in the background) with the last one.
   *
   * @throws {@link KvError} `NotFound` for an identity this allocator did not hand out.
   * @example Releasing
   * ```ts
   * import { MemoryStore, NodeSession, PolicyIdentityAllocator, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * const allocator = new PolicyIdentityAllocator(ids);
   * await allocator.prepare(['k8s:app=db']);
   * allocator.release(allocator.allocate(['k8s:app=db'], 'cluster'));
   * ```
   */
  release(id: number): void {
    if (this.#localIds.has(id)) {
      this.#local.release(id);
      return;
    }
    const h = this.#held.get(id);
    if (h === undefined) {
      throw new KvError('NotFound', `release: identity ${id} is not held`, {
        op: 'release',
        target: String(id),
      });
    }
    if (--h.refs > 0) return;
    this.#held.delete(id);
    this.#byKey.delete(h.key);
    this.#background(this.store.release(h.labels));
  }

  /**
   * Waits until every background store call has finished.
   *
   * @example Flushing before shutdown
   * ```ts
   * import { MemoryStore, NodeSession, PolicyIdentityAllocator, StoreIdentityAllocator } from '@datapath/kvstore';
   * const ids = await StoreIdentityAllocator.open(await NodeSession.open(new MemoryStore(), { node: 'a' }));
   * await new PolicyIdentityAllocator(ids).settled();
   * ```
   */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #background(p: Promise<unknown>): void {
    const tracked = p
      .catch((err: unknown) => {
        const e =
          err instanceof KvError
            ? err
            : new KvError('Unknown', String(err), { op: 'PolicyIdentityAllocator', cause: err });
        this.#onError?.(e);
      })
      .finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }
}
