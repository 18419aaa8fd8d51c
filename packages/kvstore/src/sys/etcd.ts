import type { ErrorCode } from '@datapath/errors';
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  isRecoverableError,
  type Lease,
} from 'etcd3';
import { closedError, KvError, type KvReason } from '../errors.js';
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
} from '../types.js';
import { checkKey, checkPrefix, checkTtl, checkTxn } from '../validate.js';

/** Options of {@link EtcdStore}. */
export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. `['http://127.0.0.1:2379']`. */
  readonly endpoints: readonly string[];
  /**
   * Prefix prepended to every key, so several clusters can share one etcd; default `'datapath/default/'`.
   * Must end with `/`.
   */
  readonly prefix?: string;
  /** How long one operation keeps retrying while etcd is unreachable (e.g. restarting); default 30 000 ms. */
  readonly retryTimeoutMs?: number;
  /** Deadline of one attempt of a unary call; default 5 000 ms. */
  readonly callTimeoutMs?: number;
}

const COMPARE_TARGET = {
  value: 'Value',
  version: 'Version',
  createRevision: 'Create',
  modRevision: 'Mod',
} as const;
const COMPARE_RESULT = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

/** Maps an etcd3 client error to a {@link KvError}. This is the only place etcd errors are interpreted. */
export function etcdError(err: unknown, op: string, target?: string): KvError {
  if (err instanceof KvError) return err;
  let code: ErrorCode = 'Unknown';
  let reason: KvReason | undefined;
  if (err instanceof ClientClosedError) [code, reason] = ['InvalidState', 'Closed'];
  else if (err instanceof GRPCDeadlineExceededError) code = 'TimedOut';
  else if (err instanceof EtcdLeaseInvalidError)
    [code, reason] = op === 'keepAlive' ? ['Stale', 'LeaseLost'] : ['NotFound', undefined];
  else if (err instanceof EtcdPermissionDeniedError || err instanceof GRPCUnauthenticatedError)
    code = 'PermissionDenied';
  else if (err instanceof GRPCInvalidArgumentError) code = 'InvalidArgument';
  else if (err instanceof Error && (isRecoverableError(err) || err.name === 'BrokenCircuitError'))
    code = 'Unavailable';
  const msg = err instanceof Error ? err.message : String(err);
  const where = target === undefined ? '' : ` (${target})`;
  return new KvError(code, `${op}: etcd: ${msg}${where}`, { op, target, reason, cause: err });
}

/** A policy object in the shape etcd3 expects that runs the call once: retries are done here instead. */
const passThrough = {
  execute: async <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => T | Promise<T>): Promise<T> =>
    fn({ signal: new AbortController().signal, attempt: 0 }),
};
/** A constant short watch-reconnect backoff, so watches resume promptly after an etcd restart. */
const watchBackoff = { duration: 200, next: () => watchBackoff };

/** Keys per range request of {@link EtcdStore.list}. */
const LIST_PAGE = 2_000;

function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // every key
}

/**
 * The etcd v3 {@link KvStore}: every key under a per-cluster prefix, compare-and-swap transactions,
 * leases kept alive by the etcd3 client, prefix watches that resume from the last seen revision after a
 * reconnect. Unary calls are retried with backoff for up to `retryTimeoutMs` while etcd is unreachable,
 * so an etcd restart shows up as latency, not as an error. A retried transaction may find its own
 * earlier write (the reply was lost); guard transactions so that outcome is recognisable.
 *
 * Equivalent to: `etcdctl --endpoints=… get/put/del/txn/lease/watch`.
 *
 * @example Connecting to a local etcd
 * ```ts
 * import { EtcdStore } from '@datapath/kvstore';
 * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'], prefix: 'datapath/prod/' });
 * await store.put('hello', 'world');
 * await store.close();
 * ```
 */
export class EtcdStore implements KvStore {
  /** The key prefix of this cluster. */
  readonly prefix: string;
  readonly #client: Etcd3;
  readonly #prefixBuf: Buffer;
  readonly #retryTimeoutMs: number;
  readonly #callTimeoutMs: number;
  readonly #leases = new Set<Lease>();
  readonly #watches = new Set<KvWatch>();
  #closed = false;

  /**
   * Creates a client; no connection is made until the first call.
   *
   * @throws {@link KvError} `InvalidArgument` (no endpoint, prefix not ending in `/`, bad timeouts).
   */
  constructor(options: EtcdStoreOptions) {
    const prefix = options.prefix ?? 'datapath/default/';
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new KvError('InvalidArgument', 'EtcdStore: at least one endpoint is required', {
        op: 'EtcdStore',
      });
    }
    if (typeof prefix !== 'string' || !prefix.endsWith('/')) {
      throw new KvError('InvalidArgument', `EtcdStore: prefix must end with '/', got ${String(prefix)}`, {
        op: 'EtcdStore',
      });
    }
    this.#retryTimeoutMs = options.retryTimeoutMs ?? 30_000;
    this.#callTimeoutMs = options.callTimeoutMs ?? 5_000;
    if (!(this.#retryTimeoutMs >= 0) || !(this.#callTimeoutMs > 0)) {
      throw new KvError('InvalidArgument', 'EtcdStore: timeouts must be positive', { op: 'EtcdStore' });
    }
    this.prefix = prefix;
    this.#prefixBuf = Buffer.from(prefix);
    const callTimeout = this.#callTimeoutMs;
    const etcdOptions: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: this.#callTimeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callTimeout }),
      faultHandling: {
        host: () => passThrough as never,
        global: passThrough as never,
        watchBackoff: watchBackoff as never,
      },
    };
    this.#client = new Etcd3(etcdOptions);
  }

  /**
   * Reads one key. Equivalent to: `etcdctl get <prefix><key>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable` (etcd unreachable past the retry timeout), `Timeout`, `Closed`.
   * @example Reading a key
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * console.log((await store.get('nodes/a'))?.value);
   * ```
   */
  async get(key: string): Promise<KvEntry | undefined> {
    checkKey('get', key);
    const res = await this.#retry('get', key, () => this.#client.kv.range({ key: this.#full(key) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : this.#entry(kv);
  }

  /**
   * Lists every key under a prefix at one revision. Equivalent to: `etcdctl get --prefix <prefix><p>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example Listing nodes
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * const { entries, revision } = await store.list('nodes/');
   * ```
   */
  async list(prefix: string): Promise<KvListResult> {
    checkPrefix('list', prefix);
    const full = this.#full(prefix);
    const end = prefixEnd(full);
    // Pages of LIST_PAGE keys, all read at the first page's revision: one snapshot, and no response larger
    // than the client's message limit however big the prefix (a large cluster's ipcache is megabytes).
    const entries: KvEntry[] = [];
    let from = full;
    let revision: string | undefined;
    for (;;) {
      const at = revision;
      const res = await this.#retry('list', prefix, () =>
        this.#client.kv.range({
          key: from,
          range_end: end,
          limit: LIST_PAGE,
          ...(at === undefined ? {} : { revision: at }),
        }),
      );
      revision ??= String(res.header.revision);
      for (const kv of res.kvs) entries.push(this.#entry(kv));
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    return { entries, revision: Number(revision) };
  }

  /**
   * Writes a key, optionally attached to a lease. Equivalent to: `etcdctl put [--lease=<id>] <key> <value>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (unknown lease), `Unavailable`, `Timeout`, `Closed`.
   * @example Writing a key
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * await store.put('nodes/a', 'up');
   * ```
   */
  async put(key: string, value: string, options: KvPutOptions = {}): Promise<number> {
    checkKey('put', key);
    const req = {
      key: this.#full(key),
      value: Buffer.from(value),
      ...(options.lease ? { lease: options.lease } : {}),
    };
    const res = await this.#retry('put', key, () => this.#client.kv.put(req));
    return Number(res.header.revision);
  }

  /**
   * Deletes a key. Equivalent to: `etcdctl del <key>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example Deleting a key
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * await store.delete('nodes/a');
   * ```
   */
  async delete(key: string): Promise<boolean> {
    checkKey('delete', key);
    const res = await this.#retry('delete', key, () => this.#client.kv.deleteRange({ key: this.#full(key) }));
    return Number(res.deleted) > 0;
  }

  /**
   * Deletes every key under a prefix. Equivalent to: `etcdctl del --prefix <p>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example Deleting a prefix
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * await store.deletePrefix('tmp/');
   * ```
   */
  async deletePrefix(prefix: string): Promise<number> {
    checkPrefix('deletePrefix', prefix);
    const full = this.#full(prefix);
    const res = await this.#retry('deletePrefix', prefix, () =>
      this.#client.kv.deleteRange({ key: full, range_end: prefixEnd(full) }),
    );
    return Number(res.deleted);
  }

  /**
   * Runs a compare-and-swap transaction. Equivalent to: `etcdctl txn`.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (unknown lease), `Unavailable`, `Timeout`, `Closed`.
   * @example Create-if-absent
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
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
    checkTxn(compare, success, failure);
    const req = {
      compare: compare.map((c) => this.#compare(c)),
      success: success.map((o) => this.#op(o)),
      failure: failure.map((o) => this.#op(o)),
    };
    const res = await this.#retry('txn', compare[0]?.key, () => this.#client.kv.txn(req));
    const ran = res.succeeded ? success : failure;
    const gets: (KvEntry | undefined)[] = [];
    ran.forEach((o, i) => {
      if (o.type !== 'get') return;
      const kv = res.responses[i]?.response_range?.kvs[0];
      gets.push(kv === undefined ? undefined : this.#entry(kv));
    });
    return { succeeded: res.succeeded, revision: Number(res.header.revision), gets };
  }

  /**
   * Grants a lease kept alive by the client (a keep-alive every TTL/3) until revoked or released.
   * Equivalent to: `etcdctl lease grant <ttl>` + `etcdctl lease keep-alive <id>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `Unavailable`, `Timeout`, `Closed`.
   * @example A node liveness key
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * const lease = await store.grantLease(10);
   * await store.put('nodes/a', 'up', { lease: lease.id });
   * ```
   */
  async grantLease(ttlSeconds: number): Promise<KvLease> {
    checkTtl('grantLease', ttlSeconds);
    this.#check('grantLease');
    const lease = await this.#retry('grantLease', undefined, async () => {
      const l = this.#client.lease(ttlSeconds);
      l.on('lost', () => undefined); // a failed grant also emits 'lost'; the rejection is handled here
      try {
        await l.grant();
        return l;
      } catch (err) {
        l.release();
        throw err;
      }
    });
    this.#leases.add(lease);
    const id = await lease.grant();
    const listeners: ((cause: KvError) => void)[] = [];
    let closed = false;
    lease.on('lost', (err) => {
      if (closed) return;
      closed = true;
      this.#leases.delete(lease);
      const cause = etcdError(err, 'keepAlive', id);
      const lost =
        cause.reason === 'LeaseLost'
          ? cause
          : new KvError('Stale', `keepAlive: lease ${id} lost: ${cause.message}`, {
              op: 'keepAlive',
              reason: 'LeaseLost',
              target: id,
              cause: err,
            });
      for (const l of listeners) l(lost);
    });
    const revoke = async () => {
      closed = true;
      this.#leases.delete(lease);
      await this.#retry('revokeLease', id, () => lease.revoke());
    };
    return {
      id,
      ttlSeconds,
      get closed() {
        return closed;
      },
      onLost: (listener) => {
        listeners.push(listener);
      },
      revoke,
      release: () => {
        closed = true;
        this.#leases.delete(lease);
        lease.release();
      },
      [Symbol.asyncDispose]: revoke,
    };
  }

  /**
   * Watches a prefix; after a reconnect the watch resumes from the revision after the last one delivered,
   * so no change is lost or delivered twice. Equivalent to: `etcdctl watch --prefix <p>`.
   *
   * @throws {@link KvError} `InvalidArgument`, `NotFound` (start revision compacted), `Unavailable`, `Closed`.
   * @example Watching node liveness
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * const w = await store.watch('nodes/', (ev) => console.log(ev.type));
   * await w.close();
   * ```
   */
  async watch(
    prefix: string,
    listener: (event: KvWatchEvent) => void,
    options: KvWatchOptions = {},
  ): Promise<KvWatch> {
    checkPrefix('watch', prefix);
    this.#check('watch');
    let builder = this.#client.watch().prefix(this.#full(prefix));
    if (options.startRevision !== undefined) builder = builder.startRevision(String(options.startRevision));
    const watcher = builder.watcher();
    let open = true;
    watcher.on('put', (kv) => {
      if (open) listener({ type: 'put', entry: this.#entry(kv) });
    });
    watcher.on('delete', (kv) => {
      if (open) listener({ type: 'delete', key: this.#strip(kv.key), modRevision: Number(kv.mod_revision) });
    });
    // Stream failures are retried by the watch manager; an 'error' means etcd cancelled this watch
    // (typically: the revisions it must deliver were compacted), which no reconnection can repair.
    let established = false;
    let failCreate: ((err: KvError) => void) | undefined;
    watcher.on('error', (err) => {
      const e = new KvError('NotFound', `watch: etcd cancelled the watch on ${prefix}: ${err.message}`, {
        op: 'watch',
        target: prefix,
        cause: err,
      });
      if (!established) failCreate?.(e);
      else if (open) {
        open = false;
        this.#watches.delete(handle);
        options.onError?.(e);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new KvError('Unavailable', `watch: etcd did not accept the watch`, {
              op: 'watch',
              target: prefix,
            }),
          ),
        this.#retryTimeoutMs,
      );
      failCreate = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      watcher.once('connected', () => {
        clearTimeout(timer);
        established = true;
        resolve();
      });
    }).catch(async (err) => {
      open = false;
      await watcher.cancel().catch(() => undefined);
      throw err;
    });
    const close = async () => {
      if (!open) return;
      open = false;
      this.#watches.delete(handle);
      await watcher.cancel().catch(() => undefined);
    };
    const handle: KvWatch = { close, [Symbol.asyncDispose]: close };
    this.#watches.add(handle);
    return handle;
  }

  /**
   * Closes the client: watches are cancelled and keep-alives stop (the leases expire on their own TTL).
   *
   * @example Closing
   * ```ts
   * import { EtcdStore } from '@datapath/kvstore';
   * const store = new EtcdStore({ endpoints: ['http://127.0.0.1:2379'] });
   * await store.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#watches].map((w) => w.close()));
    for (const l of this.#leases) l.release();
    this.#leases.clear();
    this.#client.close();
  }

  /** Same as {@link EtcdStore.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #check(op: string): void {
    if (this.#closed) throw closedError(op, 'store');
  }

  async #retry<T>(op: string, target: string | undefined, fn: () => Promise<T>): Promise<T> {
    this.#check(op);
    const deadline = Date.now() + this.#retryTimeoutMs;
    let delay = 50;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const e = etcdError(err, op, target);
        const retryable = e.code === 'Unavailable' || e.code === 'TimedOut';
        if (!retryable || this.#closed || Date.now() + delay > deadline) throw e;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 1_000);
      }
    }
  }

  #full(key: string): Buffer {
    return Buffer.concat([this.#prefixBuf, Buffer.from(key)]);
  }

  #strip(key: Buffer): string {
    return key.subarray(this.#prefixBuf.length).toString();
  }

  #entry(kv: IKeyValue): KvEntry {
    return {
      key: this.#strip(kv.key),
      value: kv.value.toString(),
      createRevision: Number(kv.create_revision),
      modRevision: Number(kv.mod_revision),
      version: Number(kv.version),
      lease: kv.lease === '0' || kv.lease === undefined ? undefined : String(kv.lease),
    };
  }

  #compare(c: KvCompare): ICompare {
    const key = this.#full(c.key);
    const base: ICompare = { key, target: COMPARE_TARGET[c.target], result: COMPARE_RESULT[c.op] };
    if (c.prefix === true) base.range_end = prefixEnd(key);
    switch (c.target) {
      case 'value':
        return { ...base, value: Buffer.from(c.value) };
      case 'version':
        return { ...base, version: c.value };
      case 'createRevision':
        return { ...base, create_revision: c.value };
      case 'modRevision':
        return { ...base, mod_revision: c.value };
    }
  }

  #op(o: KvOp): IRequestOp {
    switch (o.type) {
      case 'put':
        return {
          request_put: {
            key: this.#full(o.key),
            value: Buffer.from(o.value),
            ...(o.lease === undefined ? {} : { lease: o.lease }),
          },
        };
      case 'delete':
        return { request_delete_range: { key: this.#full(o.key) } };
      case 'deletePrefix': {
        const full = this.#full(o.prefix);
        return { request_delete_range: { key: full, range_end: prefixEnd(full) } };
      }
      case 'get':
        return { request_range: { key: this.#full(o.key) } };
    }
  }
}
