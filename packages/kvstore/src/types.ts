import type { KvError } from './errors.js';

/**
 * One key with its value and etcd-style metadata. Revisions are store-wide counters: every write
 * transaction increments the store revision by one, and each key remembers the revision that created it
 * and the one that last changed it.
 */
export interface KvEntry {
  /** The key, without the store's cluster prefix. */
  readonly key: string;
  /** The value, UTF-8. */
  readonly value: string;
  /** The store revision that created this key (since its last deletion). */
  readonly createRevision: number;
  /** The store revision of the last write to this key. */
  readonly modRevision: number;
  /** How many times the key was written since it was created (1 after the first put). */
  readonly version: number;
  /** The lease the key is attached to, if any: the key is deleted when the lease expires. */
  readonly lease: string | undefined;
}

/** The result of {@link KvStore.list}: the entries under a prefix, read at one revision. */
export interface KvListResult {
  /** Entries sorted by key. */
  readonly entries: readonly KvEntry[];
  /** The store revision the listing was read at; watch from `revision + 1` to miss nothing. */
  readonly revision: number;
}

/** Comparison operator of a {@link KvCompare}. */
export type KvCompareOp = '==' | '!=' | '<' | '>';

/**
 * One guard of a compare-and-swap transaction. An absent key compares as version 0, create and mod
 * revision 0; a `value` comparison on an absent key is always false (as in etcd).
 *
 * With `prefix: true` the comparison must hold for every key under `key` taken as a prefix, and an
 * empty prefix compares as one absent key: `{ key: 'refs/x/', prefix: true, target: 'version', op: '==',
 * value: 0 }` means "no key starts with `refs/x/`".
 */
export type KvCompare =
  | {
      /** Compare the value (a string, byte order). */
      readonly target: 'value';
      /** The key, or the prefix when `prefix` is true. */
      readonly key: string;
      /** The operator, applied as `<stored> op <value>`. */
      readonly op: KvCompareOp;
      /** The value to compare with. */
      readonly value: string;
      /** Apply to every key under `key` taken as a prefix. */
      readonly prefix?: boolean;
    }
  | {
      /** Compare a numeric field: the key's version, create revision or mod revision. */
      readonly target: 'version' | 'createRevision' | 'modRevision';
      /** The key, or the prefix when `prefix` is true. */
      readonly key: string;
      /** The operator, applied as `<stored> op <value>`. */
      readonly op: KvCompareOp;
      /** The number to compare with. */
      readonly value: number;
      /** Apply to every key under `key` taken as a prefix. */
      readonly prefix?: boolean;
    };

/** One operation of a transaction branch. */
export type KvOp =
  | {
      /** Write a key. */
      readonly type: 'put';
      /** The key. */
      readonly key: string;
      /** The value. */
      readonly value: string;
      /** Attach the key to this lease. */
      readonly lease?: string;
    }
  | {
      /** Delete one key. */
      readonly type: 'delete';
      /** The key. */
      readonly key: string;
    }
  | {
      /** Delete every key under a prefix. */
      readonly type: 'deletePrefix';
      /** The prefix. */
      readonly prefix: string;
    }
  | {
      /** Read one key into {@link KvTxnResult.gets}. */
      readonly type: 'get';
      /** The key. */
      readonly key: string;
    };

/** The result of {@link KvStore.txn}. */
export interface KvTxnResult {
  /** Whether every compare held (the success branch ran) or not (the failure branch ran). */
  readonly succeeded: boolean;
  /** The store revision after the transaction. */
  readonly revision: number;
  /** One entry (or `undefined` for an absent key) per `get` op of the branch that ran, in order. */
  readonly gets: readonly (KvEntry | undefined)[];
}

/** Options of {@link KvStore.put}. */
export interface KvPutOptions {
  /** Attach the key to this lease: it is deleted when the lease expires or is revoked. */
  readonly lease?: string;
}

/**
 * A time-to-live grant that keys can be attached to, kept alive automatically until revoked or released.
 * Node liveness is a key attached to the node's lease.
 */
export interface KvLease extends AsyncDisposable {
  /** The lease id (a decimal string, as etcd prints it). */
  readonly id: string;
  /** The granted time to live, in seconds. */
  readonly ttlSeconds: number;
  /** Whether the lease was revoked, released or lost. */
  readonly closed: boolean;
  /**
   * Registers a listener called once if the store says the lease expired or keep-alives failed for longer
   * than its TTL. Keys attached to it must be assumed gone; grant a new lease and put them again.
   */
  onLost(listener: (cause: KvError) => void): void;
  /** Revokes the lease now: the store deletes every key attached to it. */
  revoke(): Promise<void>;
  /** Stops the keep-alives and lets the lease expire after its TTL (what a crashed node does). */
  release(): void;
}

/** A change seen by a watch. */
export type KvWatchEvent =
  | {
      /** A key was written. */
      readonly type: 'put';
      /** The key as written. */
      readonly entry: KvEntry;
    }
  | {
      /** A key was deleted (explicitly or by lease expiry). */
      readonly type: 'delete';
      /** The deleted key. */
      readonly key: string;
      /** The revision of the deletion. */
      readonly modRevision: number;
    };

/** Options of {@link KvStore.watch}. */
export interface KvWatchOptions {
  /** Deliver changes from this revision on (older history replayed first); default: from now. */
  readonly startRevision?: number;
  /**
   * Called once if the store cancels the watch after it was established (e.g. etcd compacted the
   * revisions it still had to deliver); no event follows. List again and start a new watch.
   */
  readonly onError?: (err: KvError) => void;
}

/** An open watch; close it to stop receiving events. */
export interface KvWatch extends AsyncDisposable {
  /** Stops the watch; no event is delivered after the returned promise resolves. */
  close(): Promise<void>;
}

/**
 * The small key-value interface the cluster-wide allocators accept: get/put/delete/list by prefix,
 * compare-and-swap transactions, leases with keep-alive and prefix watches. {@link MemoryStore} (single
 * node) and {@link EtcdStore} (a cluster) implement it with the same semantics.
 */
export interface KvStore extends AsyncDisposable {
  /** Reads one key; `undefined` when absent. */
  get(key: string): Promise<KvEntry | undefined>;
  /** Lists every key starting with `prefix` at one revision. */
  list(prefix: string): Promise<KvListResult>;
  /** Writes a key and returns the new store revision. */
  put(key: string, value: string, options?: KvPutOptions): Promise<number>;
  /** Deletes a key; `true` if it existed. */
  delete(key: string): Promise<boolean>;
  /** Deletes every key starting with `prefix`; returns how many were deleted. */
  deletePrefix(prefix: string): Promise<number>;
  /** Runs `success` if every compare holds, `failure` otherwise, atomically. */
  txn(
    compare: readonly KvCompare[],
    success: readonly KvOp[],
    failure?: readonly KvOp[],
  ): Promise<KvTxnResult>;
  /** Grants a lease of `ttlSeconds` (≥ 1), kept alive until revoked, released or lost. */
  grantLease(ttlSeconds: number): Promise<KvLease>;
  /** Calls `listener` for every change under `prefix`, in revision order. */
  watch(prefix: string, listener: (event: KvWatchEvent) => void, options?: KvWatchOptions): Promise<KvWatch>;
  /** Closes the store: watches stop, leases stop being kept alive (they expire on their own). */
  close(): Promise<void>;
}
