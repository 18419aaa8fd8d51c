import { unlinkSync } from 'node:fs';
import { notSupportedMessage } from '@datapath/errors';
import { BpfError, errnoError, fdClose, type MapInfo, MapIo, mapInfo, objPin } from '@datapath/libbpf';
import { checkPinPath } from './bpffs.js';
import type { Codec } from './codec.js';
import { FAST_NONE, FAST_U32, FAST_U64, fastKind, isU32, isU64, readFast, writeFast } from './fast.js';

/** How `set` treats an existing key: `any` (upsert), `noExist` (insert only), `exist` (update only). */
export type UpdateFlag = 'any' | 'noExist' | 'exist';

/** The `BPF_*` flag bits of `flag` (`undefined`: `any`); throws InvalidArgument for anything else. */
function flagBits(flag: UpdateFlag | undefined, op: string): number {
  switch (flag) {
    case undefined:
    case 'any':
      return 0;
    case 'noExist':
      return 1;
    case 'exist':
      return 2;
    default:
      throw new BpfError('InvalidArgument', `${op}: unknown flag ${String(flag)}`, { op });
  }
}

/** The map kinds this package has classes for. */
export type MapKind =
  | 'hash'
  | 'lruHash'
  | 'array'
  | 'lpmTrie'
  | 'perCpuHash'
  | 'lruPerCpuHash'
  | 'perCpuArray'
  | 'progArray'
  | 'arrayOfMaps'
  | 'hashOfMaps';

/** `bpf_map_type` number of each {@link MapKind}. */
export const MAP_KIND_TYPES: Readonly<Record<MapKind, number>> = {
  hash: 1,
  array: 2,
  progArray: 3,
  perCpuHash: 5,
  perCpuArray: 6,
  lruHash: 9,
  lruPerCpuHash: 10,
  lpmTrie: 11,
  arrayOfMaps: 12,
  hashOfMaps: 13,
};

/** The kinds whose values are plain data (every kind but the map-in-map ones). */
export type PlainMapKind = Exclude<MapKind, 'arrayOfMaps' | 'hashOfMaps'>;

/** The {@link PlainMapKind}s. */
export const PLAIN_MAP_KINDS: readonly PlainMapKind[] = [
  'hash',
  'lruHash',
  'array',
  'lpmTrie',
  'perCpuHash',
  'lruPerCpuHash',
  'perCpuArray',
  'progArray',
];

/** What a walk over a map saw; filled in while {@link BpfMap.entries} / {@link BpfMap.keys} iterate. */
export interface IterationStats {
  /** Entries handed to the caller. */
  yielded: number;
  /** Keys that vanished between being listed and being read (deleted concurrently): not yielded. */
  skipped: number;
  /** Times the walk restarted from the first key because its position was deleted; repeats are not yielded. */
  restarts: number;
  /** True when the walk stopped at its bound (4 × max entries steps) before reaching the end. */
  aborted: boolean;
}

/** Options of {@link BpfMap.entries} and {@link BpfMap.keys}. */
export interface IterateOptions {
  /** Filled in as the walk goes (pass your own object to read it afterwards). */
  stats?: IterationStats;
}

/** Options of {@link BpfMap.dump} and the other batch operations. */
export interface BatchOptions {
  /** Elements per bpf(2) call (default 4096). */
  batchSize?: number;
  /**
   * Set to false to use one bpf(2) call per element (what happens anyway on kernels or map types
   * without batch support).
   */
  batch?: boolean;
}

type BatchOp = 'lookup' | 'update' | 'delete';

/** Whether the kernel supports a batch op on a map type (`type:op`): learnt on first use, then cached. */
const batchSupport = new Map<string, boolean>();

// Owned maps that are garbage-collected without close() leak an fd until exit: say so.
const leaks = new FinalizationRegistry<string>((name) => {
  process.emitWarning(`BPF map ${name} was garbage-collected without close(); its fd leaked`, 'BpfMapLeak');
});

/** What every map class is built from. */
export interface MapParts<K, E> {
  fd: number;
  owned: boolean;
  info: MapInfo;
  key: Codec<K>;
  value: Codec<E>;
  perCpu: boolean;
}

/**
 * A typed view over one BPF map fd: the operations every map kind shares. Concrete classes
 * ({@link HashMap}, {@link ArrayMap}, {@link LpmTrieMap}, …) fix the key and value shapes.
 * Every operation reuses scratch buffers; a single-element call allocates only the decoded value.
 *
 * @typeParam K - the key type.
 * @typeParam V - the value type as users see it (per-CPU maps: one element per possible CPU).
 */
export abstract class BpfMap<K, V> {
  /** Which kind of map this is (a discriminant). */
  abstract readonly kind: MapKind;
  /** The key codec. */
  readonly keyCodec: Codec<K>;
  /** The codec of one value (of one CPU's value, for per-CPU maps). */
  readonly valueCodec: Codec<unknown>;
  /** The map's maximum number of entries. */
  readonly maxEntries: number;
  /** The kernel's map id. */
  readonly id: number;
  /** The map name (up to 15 bytes). */
  readonly name: string;

  /** The scratch-buffered syscall layer over this map's fd. */
  protected readonly io: MapIo;
  #info: MapInfo;
  #owned: boolean;
  #closed = false;
  #pinnedAt: string | undefined;
  #batchBusy = false;
  readonly #perCpu: boolean;
  /** A second MapIo on the same fd for the async operations: their buffers belong to the kernel while a call is in flight. */
  #aio: MapIo | undefined;
  /** The async operations of this map run one after another, in call order. */
  #asyncTail: Promise<void> = Promise.resolve();
  #asyncPending = 0;
  #closeDeferred = false;
  #bkView: DataView = new DataView(new ArrayBuffer(0));
  #bvView: DataView = new DataView(new ArrayBuffer(0));
  /** Fast path of the key codec (see fast.ts), or FAST_NONE. */
  readonly #kk: number;
  /** Fast path of the value codec for plain (not per-CPU) maps, or FAST_NONE. */
  readonly #vk: number;

  /** @internal */
  constructor(parts: MapParts<K, unknown>) {
    this.keyCodec = parts.key;
    this.valueCodec = parts.value;
    this.#info = parts.info;
    this.#owned = parts.owned;
    this.#kk = fastKind(parts.key);
    this.#vk = parts.perCpu ? FAST_NONE : fastKind(parts.value);
    this.#perCpu = parts.perCpu;
    this.maxEntries = parts.info.maxEntries;
    this.id = parts.info.id;
    this.name = parts.info.name;
    if (parts.owned) leaks.register(this, parts.info.name || `id ${parts.info.id}`, this);
    this.io = new MapIo({
      fd: parts.fd,
      keySize: parts.info.keySize,
      valueSize: parts.info.valueSize,
      perCpu: parts.perCpu,
      name: parts.info.name || `map id ${parts.info.id}`,
    });
    // u32 → u64 maps (counters, ids) get get/set functions of their own: V8 optimises a function for the
    // codecs it has seen, and one shared get() that also served a struct-keyed map in the same process
    // was measurably slower (the bpf-maps section of BENCHMARKS.md has the figures). Own properties on every map keep one object shape.
    const u32u64 = this.#kk === FAST_U32 && this.#vk === FAST_U64;
    this.get = u32u64 ? (BpfMap.#getU32U64 as (key: K) => V | undefined) : BpfMap.prototype.get;
    this.set = u32u64
      ? (BpfMap.#setU32U64 as (key: K, value: V, flag?: UpdateFlag) => void)
      : BpfMap.prototype.set;
  }

  static readonly #getU32U64 = function (this: BpfMap<number, bigint>, key: number): bigint | undefined {
    if (this.#closed) this.#check('get');
    const io = this.io;
    if (isU32(key)) io.keyView.setUint32(0, key, true);
    else this.keyCodec.encode(key, io.keyView, 0);
    return io.lookup(0) ? io.valueView.getBigUint64(0, true) : undefined;
  };

  static readonly #setU32U64 = function (
    this: BpfMap<number, bigint>,
    key: number,
    value: bigint,
    flag?: UpdateFlag,
  ): void {
    if (this.#closed) this.#check('set');
    const bits = flag === undefined ? 0 : flagBits(flag, 'set');
    const io = this.io;
    if (isU32(key)) io.keyView.setUint32(0, key, true);
    else this.keyCodec.encode(key, io.keyView, 0);
    if (isU64(value)) io.valueView.setBigUint64(0, value, true);
    else this.writeValue(value, io.valueView, 0);
    io.update(bits);
  };

  /** The map's fd, for handing to a loader or a program (it stays owned by this object). */
  get fd(): number {
    this.#check('fd');
    return this.io.fd;
  }

  /** Decodes one user-facing value from `view` at `off`. */
  protected abstract readValue(view: DataView, off: number): V;
  /** Encodes one user-facing value into `view` at `off` (the value buffer layout of this map). */
  protected abstract writeValue(value: V, view: DataView, off: number): void;

  #check(op: string): void {
    if (this.#closed)
      throw new BpfError('BadFd', `${op}: map ${this.name} is closed`, { op, target: this.name });
  }

  #key(key: K, view: DataView, off: number): void {
    // u32 keys (the commonest) inline; the other scalars through writeFast, the rest through the codec.
    if (this.#kk === FAST_U32 && isU32(key)) view.setUint32(off, key, true);
    else if (!writeFast(this.#kk, key, view, off)) this.keyCodec.encode(key, view, off);
  }

  #readKey(view: DataView, off: number): K {
    return this.#kk === FAST_NONE ? this.keyCodec.decode(view, off) : (readFast(this.#kk, view, off) as K);
  }

  #readValue(view: DataView, off: number): V {
    return this.#vk === FAST_NONE ? this.readValue(view, off) : (readFast(this.#vk, view, off) as V);
  }

  #writeValue(value: V, view: DataView, off: number): void {
    if (this.#vk === FAST_U64 && isU64(value)) view.setBigUint64(off, value, true);
    else if (!writeFast(this.#vk, value, view, off)) this.writeValue(value, view, off);
  }

  /**
   * Reads the value at `key`; undefined when absent.
   *
   * Equivalent to: `bpftool map lookup id ID key …`.
   *
   * @throws {@link BpfError} `InvalidArgument` for a key the codec rejects (before any syscall),
   * `BadFd` after close, `PermissionDenied` on a write-only map.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const v = map.get(7);
   * ```
   */
  get(key: K): V | undefined {
    if (this.#closed) this.#check('get');
    const io = this.io;
    this.#key(key, io.keyView, 0);
    if (!io.lookup(0)) return undefined;
    return this.#vk === FAST_U64
      ? (io.valueView.getBigUint64(0, true) as V)
      : this.#readValue(io.valueView, 0);
  }

  /**
   * True when `key` is present.
   *
   * @throws {@link BpfError} as {@link BpfMap.get}.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * if (map.has(7)) console.log('present');
   * ```
   */
  has(key: K): boolean {
    if (this.#closed) this.#check('has');
    this.#key(key, this.io.keyView, 0);
    return this.io.lookup(0);
  }

  /**
   * Writes `value` at `key`. `flag` is `any` (default), `noExist` or `exist`.
   *
   * Equivalent to: `bpftool map update id ID key … value … [any|noexist|exist]`.
   *
   * @throws {@link BpfError} `InvalidArgument` for a key or value the codecs reject (before any
   * syscall), `Exhausted` (reason `Full`) when the map is full, `AlreadyExists` (`noExist`), `NotFound` (`exist`),
   * `TooBig` for an array index past the end, `PermissionDenied` on a read-only map.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.set(7, 1n, 'noExist');
   * ```
   */
  set(key: K, value: V, flag?: UpdateFlag): void {
    if (this.#closed) this.#check('set');
    const bits = flag === undefined ? 0 : flagBits(flag, 'set');
    const io = this.io;
    this.#key(key, io.keyView, 0);
    this.#writeValue(value, io.valueView, 0);
    io.update(bits);
  }

  /**
   * Deletes `key`; false when it was absent.
   *
   * Equivalent to: `bpftool map delete id ID key …`.
   *
   * @throws {@link BpfError} `InvalidArgument` for array maps (their elements cannot be deleted) and
   * for a key the codec rejects, `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.delete(7);
   * ```
   */
  delete(key: K): boolean {
    if (this.#closed) this.#check('delete');
    this.#key(key, this.io.keyView, 0);
    return this.io.delete();
  }

  /**
   * Reads and deletes `key` in one atomic step; undefined when absent.
   *
   * @throws {@link BpfError} `NotSupported` for map types without it (arrays, LPM tries), plus the codes
   * of {@link BpfMap.get}.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const last = map.lookupAndDelete(7);
   * ```
   */
  lookupAndDelete(key: K): V | undefined {
    this.#check('lookupAndDelete');
    this.#key(key, this.io.keyView, 0);
    let found: boolean;
    try {
      found = this.io.lookupAndDelete();
    } catch (err) {
      if (err instanceof BpfError && err.code === 'NotSupported') {
        // Hash maps have it from Linux 5.14; arrays and LPM tries never.
        const minKernel = /hash/i.test(this.kind) ? '5.14' : undefined;
        const feature = `lookup-and-delete on ${this.kind} maps`;
        throw new BpfError('NotSupported', notSupportedMessage(feature, minKernel, 'lookupAndDelete'), {
          op: 'lookupAndDelete',
          target: this.name,
          feature,
          minKernel,
          errno: err.errno,
          errnoName: err.errnoName,
          cause: err,
        });
      }
      throw err;
    }
    return found ? this.#readValue(this.io.valueView, 0) : undefined;
  }

  /**
   * Iterates over `[key, value]` pairs with `BPF_MAP_GET_NEXT_KEY`, safe against concurrent deletes:
   * the next key is fetched before an entry is handed out (so deleting it in the loop is fine); a key
   * deleted before it could be read is skipped and counted, and the walk continues from the previous
   * key; when that one is gone too the kernel restarts at the first key, and nothing is yielded twice;
   * the walk stops after 4 × max entries steps. Use {@link BpfMap.dump} for
   * a faster snapshot.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a write-only map.
   * @example Deleting expired entries while iterating
   * ```ts
   * import { type IterationStats, HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const stats: IterationStats = { yielded: 0, skipped: 0, restarts: 0, aborted: false };
   * for (const [k, v] of map.entries({ stats })) if (v === 0n) map.delete(k);
   * console.log(stats.skipped);
   * ```
   */
  entries(options: IterateOptions = {}): IterableIterator<[K, V]> {
    return this.#walk(options, true) as IterableIterator<[K, V]>;
  }

  /**
   * Iterates over keys; same guarantees as {@link BpfMap.entries}.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const all = [...map.keys()];
   * ```
   */
  keys(options: IterateOptions = {}): IterableIterator<K> {
    return this.#walk(options, false) as IterableIterator<K>;
  }

  /** Iterates over `[key, value]` pairs, like {@link BpfMap.entries}. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  *#walk(options: IterateOptions, withValues: boolean): Generator<unknown, void, undefined> {
    this.#check('entries');
    const stats = options.stats ?? { yielded: 0, skipped: 0, restarts: 0, aborted: false };
    const io = this.io;
    const ks = io.keySize;
    const seen = new Set<string>();
    const maxSteps = 4 * Math.max(1, this.maxEntries) + 16;
    const cur = new Uint8Array(ks);
    const curView = new DataView(cur.buffer);
    // The last key found present: when the current one vanished, the walk goes on from it (as Cilium's
    // DumpReliably does) instead of from the vanished key, which would restart at the first key.
    const prev = new Uint8Array(ks);
    let havePrev = false;
    let have = io.nextKey(true);
    let steps = 0;
    let prevRepeat = false;
    while (have) {
      if (++steps > maxSteps) {
        stats.aborted = true;
        return;
      }
      cur.set(io.next);
      const id = keyId(cur);
      const repeat = seen.has(id);
      let value: V | undefined;
      let found = true;
      if (!repeat && withValues) {
        io.key.set(cur);
        found = io.lookup();
        if (found) value = this.#readValue(io.valueView, 0);
      }
      // Fetch the successor before handing the entry out: the caller may delete it.
      if (found || !havePrev) io.key.set(cur);
      else io.key.set(prev);
      have = io.nextKey(false);
      const nextBytes = have ? io.next.slice() : undefined;
      if (found) {
        prev.set(cur);
        havePrev = true;
      }
      if (repeat) {
        // get_next_key restarted from the first key (its position was deleted): skip what we saw.
        if (!prevRepeat) stats.restarts++;
      } else {
        seen.add(id);
        if (!found) stats.skipped++;
        else {
          stats.yielded++;
          const k = this.#readKey(curView, 0);
          yield withValues ? [k, value] : k;
          this.#check('entries');
        }
      }
      prevRepeat = repeat;
      if (nextBytes) io.next.set(nextBytes);
    }
  }

  /** Runs a batch operation; the batch buffers are shared, so nesting one inside another is refused. */
  #exclusive<R>(op: string, fn: () => R): R {
    this.#check(op);
    if (this.#batchBusy) {
      throw new BpfError(
        'Busy',
        `${op}: a batch operation on ${this.name} is already running (called from a forEach callback?)`,
        {
          op,
          target: this.name,
        },
      );
    }
    this.#batchBusy = true;
    try {
      return fn();
    } finally {
      this.#batchBusy = false;
    }
  }

  /** Refreshes the DataViews over the sync batch buffers (they change when the buffers grow); returns the keys' one. */
  #batchViews(): DataView {
    const io = this.io;
    if (this.#bkView.buffer !== io.batchKeys.buffer) {
      this.#bkView = new DataView(io.batchKeys.buffer, io.batchKeys.byteOffset, io.batchKeys.byteLength);
      this.#bvView = new DataView(
        io.batchValues.buffer,
        io.batchValues.byteOffset,
        io.batchValues.byteLength,
      );
    }
    return this.#bkView;
  }

  #batchOk(op: BatchOp, options: BatchOptions): boolean {
    return options.batch !== false && batchSupport.get(`${this.#info.type}:${op}`) !== false;
  }

  #batchWorks(op: BatchOp): void {
    batchSupport.set(`${this.#info.type}:${op}`, true);
  }

  /** True (and remembered) when `err` says this map type has no batch `op`; EINVAL counts only before any success. */
  #noBatch(op: BatchOp, err: unknown): boolean {
    const key = `${this.#info.type}:${op}`;
    if (
      err instanceof BpfError &&
      (err.code === 'NotSupported' || (err.code === 'InvalidArgument' && !batchSupport.has(key)))
    ) {
      batchSupport.set(key, false);
      return true;
    }
    return false;
  }

  /**
   * Calls `fn` for every entry, reading the map with `BPF_MAP_LOOKUP_BATCH` (falling back to key-by-key
   * iteration on kernels or map types without batch support; probed once per type, then cached).
   * The fastest way to read a whole map: nothing is collected.
   *
   * The callback may call single-element methods (`get`, `set`, `delete`) but not other batch methods
   * of the same map.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a write-only map, `Busy` when
   * called from inside another batch operation of this map.
   * @example Summing a counter map
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * let total = 0n;
   * map.forEach((_k, v) => { total += v; });
   * ```
   */
  forEach(fn: (key: K, value: V) => void, options: BatchOptions = {}): void {
    this.#exclusive('forEach', () => this.#walkAll(fn, options));
  }

  /** Runs the whole batch walk into `sink` (a callback, or an array that collects `[key, value]` pairs). */
  #walkAll(sink: ((key: K, value: V) => void) | [K, V][], options: BatchOptions): void {
    const steps = this.#forEachSteps(sink, options);
    while (!steps.next().done) {
      // every batch in one go
    }
  }

  /**
   * The forEach walk, pausing (yielding) after each batch so an async caller can let the event loop run.
   * `sink` is the user's callback or, for dump, the result array (no callback per element).
   */
  *#forEachSteps(
    sink: ((key: K, value: V) => void) | [K, V][],
    options: BatchOptions,
  ): Generator<void, void, undefined> {
    const io = this.io;
    // The buffers may be larger (a setMany grew them): ask for batchSize elements per call anyway.
    const bs = batchSize(options);
    if (this.#batchOk('lookup', options)) {
      io.ensureBatch(bs);
      let n: number;
      try {
        n = io.lookupBatch(true, false, bs);
      } catch (err) {
        if (!this.#noBatch('lookup', err)) throw err;
        n = -1;
      }
      if (n >= 0) {
        this.#batchWorks('lookup');
        for (;;) {
          this.#emit(n, sink);
          if (io.batchDone) return;
          yield;
          n = io.lookupBatch(false, false, bs);
        }
      }
    }
    let i = 0;
    for (const e of this.entries()) {
      if (Array.isArray(sink)) sink.push(e);
      else sink(e[0], e[1]);
      if (++i % bs === 0) yield;
    }
  }

  /**
   * Decodes the `n` elements of the batch buffers into `sink`. A plain method (V8 optimises it better than
   * the generator) with the common scalar codecs read inline rather than through the codec closures.
   */
  #emit(
    n: number,
    sink: ((key: K, value: V) => void) | [K, V][],
    bk: DataView = this.#batchViews(),
    bv: DataView = this.#bvView,
  ): void {
    const ks = this.io.keySize;
    const vs = this.io.valueStride;
    const kk = this.#kk;
    const vk = this.#vk;
    const keyCodec = this.keyCodec;
    const out = Array.isArray(sink) ? sink : undefined;
    const fn = out === undefined ? (sink as (key: K, value: V) => void) : undefined;
    for (let i = 0; i < n; i++) {
      const k =
        kk === FAST_U32
          ? (bk.getUint32(i * ks, true) as K)
          : kk === FAST_NONE
            ? keyCodec.decode(bk, i * ks)
            : (readFast(kk, bk, i * ks) as K);
      const v =
        vk === FAST_U64
          ? (bv.getBigUint64(i * vs, true) as V)
          : vk === FAST_NONE
            ? this.readValue(bv, i * vs)
            : (readFast(vk, bv, i * vs) as V);
      if (fn === undefined) out!.push([k, v]);
      else fn(k, v);
    }
  }

  /**
   * Runs `fn` with the async MapIo once every async operation queued on this map before it has settled.
   * The fd stays open until the last one settles, even when the map is closed meanwhile (a pool thread may
   * still be using it); a queued operation of a closed map rejects with `BadFd` without a syscall.
   */
  #queued<R>(op: string, fn: (aio: MapIo) => Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(this.#closedError(op));
    this.#asyncPending++;
    const run = () => {
      this.#check(op);
      this.#aio ??= new MapIo({
        fd: this.io.fd,
        keySize: this.io.keySize,
        valueSize: this.io.valueSize,
        perCpu: this.#perCpu,
        name: this.name || `map id ${this.id}`,
      });
      return fn(this.#aio);
    };
    const result = this.#asyncTail.then(run);
    this.#asyncTail = result.then(
      () => this.#settled(),
      () => this.#settled(),
    );
    return result;
  }

  #settled(): void {
    if (--this.#asyncPending === 0 && this.#closeDeferred) {
      this.#closeDeferred = false;
      fdClose(this.io.fd);
    }
  }

  #closedError(op: string): BpfError {
    return new BpfError('BadFd', `${op}: map ${this.name} is closed`, { op, target: this.name });
  }

  /**
   * The async form of {@link BpfMap.forEach}: every `BPF_MAP_LOOKUP_BATCH` (or, for map types without batch
   * lookup, every `BPF_MAP_GET_NEXT_KEY` and lookup) runs on libuv's threadpool; `fn` runs on the event loop
   * between calls. The async operations of one map run one after another in call order; sync calls (also
   * batch ones) stay usable meanwhile. Closing the map stops the walk with `BadFd`.
   *
   * @throws {@link BpfError} (as a rejection) `BadFd` after close, `InvalidArgument` for a bad `batchSize`
   * (before any syscall), `PermissionDenied` on a write-only map.
   * @example Walking a big conntrack map without blocking
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const ct: HashMap<number, bigint>;
   * let live = 0;
   * await ct.forEachAsync(() => {
   *   live++;
   * });
   * ```
   */
  forEachAsync(fn: (key: K, value: V) => void, options: BatchOptions = {}): Promise<void> {
    const op = 'forEachAsync';
    let bs: number;
    try {
      bs = batchSize(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queued(op, (aio) => this.#walkAsync(aio, fn, options, bs, op));
  }

  async #walkAsync(
    aio: MapIo,
    fn: (key: K, value: V) => void,
    options: BatchOptions,
    bs: number,
    op: string,
  ): Promise<void> {
    if (this.#batchOk('lookup', options)) {
      aio.ensureBatch(bs);
      let n: number;
      try {
        n = await aio.lookupBatchAsync(true, false, bs);
      } catch (err) {
        if (!this.#noBatch('lookup', err)) throw err;
        n = -1;
      }
      if (n >= 0) {
        this.#batchWorks('lookup');
        for (;;) {
          this.#emit(n, fn, ...viewsOf(aio));
          if (aio.batchDone) return;
          this.#check(op);
          n = await aio.lookupBatchAsync(false, false, bs);
        }
      }
    }
    // Key by key: a key that vanished under the walk restarts it from the first key (hash maps), so keys seen
    // once are skipped, and the walk is bounded like the sync one.
    const seen = new Set<string>();
    const maxSteps = 4 * Math.max(1, this.maxEntries) + 16;
    const cur = new Uint8Array(aio.keySize);
    const curView = new DataView(cur.buffer);
    let steps = 0;
    for (let have = await aio.nextKeyAsync(true); have && ++steps <= maxSteps; ) {
      cur.set(aio.next);
      const id = keyId(cur);
      if (!seen.has(id)) {
        seen.add(id);
        aio.key.set(cur);
        if (await aio.lookupAsync()) {
          fn(this.#readKey(curView, 0), this.#readValue(aio.valueView, 0));
          this.#check(op);
        }
      }
      aio.key.set(cur);
      have = await aio.nextKeyAsync(false);
    }
  }

  /**
   * The async form of {@link BpfMap.dump} (see {@link BpfMap.forEachAsync}): the same entries, read on libuv's
   * threadpool.
   *
   * @throws {@link BpfError} (as a rejection) `BadFd`, `InvalidArgument`, `PermissionDenied`.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const all = await map.dumpAsync({ batchSize: 8192 });
   * ```
   */
  async dumpAsync(options: BatchOptions = {}): Promise<[K, V][]> {
    const out: [K, V][] = [];
    await this.forEachAsync((k, v) => {
      out.push([k, v]);
    }, options);
    return out;
  }

  /**
   * The async form of {@link BpfMap.setMany}: every entry is encoded first (a bad one rejects with
   * `InvalidArgument` before any syscall), then the `BPF_MAP_UPDATE_BATCH` calls (or single updates, where
   * batches are unsupported and for `noExist` / `exist`) run on libuv's threadpool.
   *
   * @throws {@link BpfError} (as a rejection) as {@link BpfMap.setMany}; `BadFd` after close.
   * @example Writing many entries without blocking
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * await map.setManyAsync([[1, 10n], [2, 20n]]);
   * ```
   */
  setManyAsync(
    entries: Iterable<readonly [K, V]>,
    flag: UpdateFlag = 'any',
    options: BatchOptions = {},
  ): Promise<void> {
    const op = 'setManyAsync';
    let list: readonly (readonly [K, V])[];
    let bits: number;
    let cap: number;
    try {
      bits = flagBits(flag, op);
      cap = batchSize(options);
      list = [...entries];
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queued(op, async (aio) => {
      if (list.length === 0) return;
      aio.ensureBatch(list.length);
      const [bk, bv] = viewsOf(aio);
      const ks = aio.keySize;
      const vs = aio.valueStride;
      for (let i = 0; i < list.length; i++) {
        const e = list[i]!;
        this.#key(e[0], bk, i * ks);
        this.#writeValue(e[1], bv, i * vs);
      }
      if (bits === 0 && this.#batchOk('update', options)) {
        for (let start = 0; start < list.length; start += cap) {
          try {
            await aio.updateBatchAsync(Math.min(cap, list.length - start), 0, start);
          } catch (err) {
            if (start === 0 && aio.lastBatchProcessed === 0 && this.#noBatch('update', err)) break;
            throw err;
          }
          this.#batchWorks('update');
          if (start + cap >= list.length) return;
        }
      }
      for (let i = 0; i < list.length; i++) {
        aio.key.set(aio.batchKeys.subarray(i * ks, (i + 1) * ks));
        aio.value.set(aio.batchValues.subarray(i * vs, (i + 1) * vs));
        await aio.updateAsync(bits);
      }
    });
  }

  /**
   * The async form of {@link BpfMap.deleteMany}: every key is encoded first (a bad one rejects with
   * `InvalidArgument` before any syscall), then the `BPF_MAP_DELETE_BATCH` calls (or single deletes where
   * batches are unsupported) run on libuv's threadpool. Absent keys are skipped; resolves with how many went.
   *
   * @throws {@link BpfError} (as a rejection) as {@link BpfMap.deleteMany}; `BadFd` after close.
   * @example Deleting many keys without blocking
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const n = await map.deleteManyAsync([1, 2, 3]);
   * ```
   */
  deleteManyAsync(keys: Iterable<K>, options: BatchOptions = {}): Promise<number> {
    const op = 'deleteManyAsync';
    let list: readonly K[];
    let cap: number;
    try {
      cap = batchSize(options);
      list = [...keys];
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queued(op, (aio) => this.#deleteManyIn(aio, list, options, cap));
  }

  async #deleteManyIn(aio: MapIo, list: readonly K[], options: BatchOptions, cap: number): Promise<number> {
    if (list.length === 0) return 0;
    aio.ensureBatch(list.length);
    const [bk] = viewsOf(aio);
    const ks = aio.keySize;
    for (let i = 0; i < list.length; i++) this.#key(list[i]!, bk, i * ks);
    let deleted = 0;
    let start = 0;
    if (this.#batchOk('delete', options)) {
      while (start < list.length) {
        const n = Math.min(cap, list.length - start);
        try {
          await aio.deleteBatchAsync(n, start);
          deleted += n;
          start += n;
          this.#batchWorks('delete');
        } catch (err) {
          const done = aio.lastBatchProcessed;
          if (err instanceof BpfError && err.code === 'NotFound') {
            // Element `start + done` is absent: count what went, skip it, go on with the rest.
            deleted += done;
            start += done + 1;
            continue;
          }
          if (deleted === 0 && done === 0 && this.#noBatch('delete', err)) break;
          throw err;
        }
      }
      if (start >= list.length) return deleted;
    }
    for (let i = start; i < list.length; i++) {
      aio.key.set(aio.batchKeys.subarray(i * ks, (i + 1) * ks));
      if (await aio.deleteAsync()) deleted++;
    }
    return deleted;
  }

  /**
   * The async form of {@link BpfMap.clear}: the walk and the deletes run on libuv's threadpool.
   *
   * @throws {@link BpfError} (as a rejection) `BadFd` after close, `PermissionDenied` on a read-only map.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * await map.clearAsync();
   * ```
   */
  clearAsync(options: BatchOptions = {}): Promise<number> {
    const op = 'clearAsync';
    let cap: number;
    try {
      cap = batchSize(options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queued(op, async (aio) => {
      const keys: K[] = [];
      await this.#walkAsync(aio, (k) => keys.push(k), options, cap, op);
      return this.#deleteManyIn(aio, keys, options, cap);
    });
  }

  /**
   * Reads the whole map into an array of `[key, value]` pairs with batch calls (see {@link BpfMap.forEach}).
   *
   * Equivalent to: `bpftool map dump id ID`.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a write-only map.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * for (const [k, v] of map.dump()) console.log(k, v);
   * ```
   */
  dump(options: BatchOptions = {}): [K, V][] {
    const out: [K, V][] = [];
    this.#exclusive('dump', () => this.#walkAll(out, options));
    return out;
  }

  /**
   * Reads many keys; the result has one slot per key, undefined where absent. (The kernel has no
   * lookup-by-keys batch command, so this is one lookup per key through the same scratch buffers.)
   *
   * @throws {@link BpfError} `InvalidArgument` for a key the codec rejects, `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const [a, b] = map.getMany([1, 2]);
   * ```
   */
  getMany(keys: Iterable<K>): (V | undefined)[] {
    const out: (V | undefined)[] = [];
    for (const k of keys) out.push(this.get(k));
    return out;
  }

  /**
   * Writes many entries with `BPF_MAP_UPDATE_BATCH` (one call per `batchSize` entries; falls back to
   * single updates where unsupported, and for `noExist` / `exist`, which the kernel's batch update does
   * not take). Every key and value is encoded before the first call.
   *
   * @throws {@link BpfError} `InvalidArgument` for an entry the codecs reject (nothing written),
   * `Exhausted` (reason `Full`), `AlreadyExists` (`noExist`), `NotFound` (`exist`); entries before the failing one
   * were written.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.setMany([[1, 10n], [2, 20n]]);
   * ```
   */
  setMany(entries: Iterable<readonly [K, V]>, flag: UpdateFlag = 'any', options: BatchOptions = {}): void {
    this.#exclusive('setMany', () => this.#setMany(entries, flag, options));
  }

  #setMany(entries: Iterable<readonly [K, V]>, flag: UpdateFlag, options: BatchOptions): void {
    const bits = flagBits(flag, 'setMany');
    const list = Array.isArray(entries) ? (entries as readonly (readonly [K, V])[]) : [...entries];
    if (list.length === 0) return;
    const io = this.io;
    // Encode everything first (into the batch buffers, grown to hold the whole list): a bad entry
    // is rejected before anything is written.
    io.ensureBatch(list.length);
    this.#batchViews();
    const ks = io.keySize;
    const vs = io.valueStride;
    const bk = this.#bkView;
    const bv = this.#bvView;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      this.#key(e[0], bk, i * ks);
      this.#writeValue(e[1], bv, i * vs);
    }
    // The kernel's batch update takes no NOEXIST/EXIST per element (only BPF_F_LOCK): those go one by one.
    if (bits === 0 && this.#batchOk('update', options)) {
      const cap = batchSize(options);
      for (let start = 0; start < list.length; start += cap) {
        try {
          io.updateBatch(Math.min(cap, list.length - start), 0, start);
        } catch (err) {
          if (start === 0 && io.lastBatchProcessed === 0 && this.#noBatch('update', err)) {
            this.#setEach(list, flag);
            return;
          }
          throw err;
        }
        this.#batchWorks('update');
      }
      return;
    }
    this.#setEach(list, flag);
  }

  #setEach(list: readonly (readonly [K, V])[], flag: UpdateFlag): void {
    for (const [k, v] of list) this.set(k, v, flag);
  }

  /**
   * Deletes many keys with `BPF_MAP_DELETE_BATCH`; absent keys are skipped. Returns how many were deleted.
   *
   * @throws {@link BpfError} `InvalidArgument` for a key the codec rejects (nothing deleted) or on array
   * maps, `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * const n = map.deleteMany([1, 2, 3]);
   * ```
   */
  deleteMany(keys: Iterable<K>, options: BatchOptions = {}): number {
    return this.#exclusive('deleteMany', () => this.#deleteMany(keys, options));
  }

  #deleteMany(keys: Iterable<K>, options: BatchOptions): number {
    const list = Array.isArray(keys) ? (keys as readonly K[]) : [...keys];
    if (list.length === 0) return 0;
    const io = this.io;
    io.ensureBatch(list.length);
    this.#batchViews();
    const ks = io.keySize;
    const bk = this.#bkView;
    for (let i = 0; i < list.length; i++) this.#key(list[i]!, bk, i * ks);
    if (!this.#batchOk('delete', options)) return this.#deleteEach(list);
    const cap = batchSize(options);
    let deleted = 0;
    let start = 0;
    while (start < list.length) {
      const n = Math.min(cap, list.length - start);
      try {
        io.deleteBatch(n, start);
        deleted += n;
        start += n;
        this.#batchWorks('delete');
      } catch (err) {
        const done = io.lastBatchProcessed;
        if (err instanceof BpfError && err.code === 'NotFound') {
          // Element `start + done` is absent: count what went, skip it, go on with the rest.
          deleted += done;
          start += done + 1;
          continue;
        }
        if (deleted === 0 && done === 0 && this.#noBatch('delete', err)) return this.#deleteEach(list);
        throw err;
      }
    }
    return deleted;
  }

  #deleteEach(list: readonly K[]): number {
    let n = 0;
    for (const k of list) if (this.delete(k)) n++;
    return n;
  }

  /**
   * Deletes every entry (arrays: zeroes every value); returns how many entries it cleared.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a read-only map.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.clear();
   * ```
   */
  clear(options: BatchOptions = {}): number {
    const keys: K[] = [];
    this.forEach((k) => {
      keys.push(k);
    }, options);
    return this.deleteMany(keys, options);
  }

  /**
   * Counts the entries present, with batch reads (arrays: always max entries).
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * console.log(map.count());
   * ```
   */
  count(): number {
    let n = 0;
    this.forEach(() => {
      n++;
    });
    return n;
  }

  /**
   * The map's fill level, entries / max entries (0…1), as Cilium's map pressure metric reports it;
   * for maps this process writes, alert above a threshold before updates fail with `Exhausted`.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * if (map.pressure() > 0.9) console.warn(`${map.name} is almost full`);
   * ```
   */
  pressure(): number {
    return this.maxEntries === 0 ? 0 : this.count() / this.maxEntries;
  }

  /**
   * The kernel's description of the map (type, key/value sizes, max entries, flags, id, name).
   *
   * Equivalent to: `bpftool map show id ID`.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * console.log(map.info().maxEntries);
   * ```
   */
  info(): MapInfo {
    this.#check('info');
    this.#info = mapInfo(this.io.fd);
    return this.#info;
  }

  /**
   * Pins the map at `path` on bpffs so it outlives the process; {@link BpfMap.unpin} removes it.
   *
   * Equivalent to: `bpftool map pin id ID PATH`.
   *
   * @throws {@link BpfError} `InvalidArgument` for a path that is relative, contains `..` or is not on
   * bpffs (before any syscall), `AlreadyExists` when the path is taken, `BadFd` after close.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.pin('/sys/fs/bpf/my_map');
   * ```
   */
  pin(path: string): void {
    this.#check('pin');
    checkPinPath(path, 'pin');
    objPin(this.io.fd, path);
    this.#pinnedAt = path;
  }

  /**
   * Removes the pin this object made (or the one it was opened from); no-op when there is none.
   *
   * Equivalent to: `rm PATH` on bpffs.
   *
   * @throws {@link BpfError} `NotFound` when the pin is already gone, `PermissionDenied`.
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.unpin();
   * ```
   */
  unpin(): void {
    const path = this.#pinnedAt;
    if (path === undefined) return;
    try {
      unlinkSync(path);
    } catch (cause) {
      const errno = (cause as NodeJS.ErrnoException).errno;
      if (errno === undefined) throw cause;
      throw errnoError(-errno, { op: 'unpin', syscall: 'unlink', target: path, cause });
    }
    this.#pinnedAt = undefined;
  }

  /** The path this map is pinned at (by {@link BpfMap.pin} or because it was opened from it). */
  get pinnedPath(): string | undefined {
    return this.#pinnedAt;
  }

  /** @internal */
  setPinnedPath(path: string): void {
    this.#pinnedAt = path;
  }

  /**
   * Releases the fd (when this object owns it); the map lives on while pinned or used by programs.
   * Calling it twice is harmless.
   *
   * @example
   * ```ts
   * import { HashMap } from '@datapath/bpf-maps';
   * declare const map: HashMap<number, bigint>;
   * map.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) {
      leaks.unregister(this);
      // A pool thread may still be using the fd: it is closed when the last async operation settles.
      if (this.#asyncPending > 0) this.#closeDeferred = true;
      else fdClose(this.io.fd);
    }
  }

  /** Same as {@link BpfMap.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function batchSize(options: BatchOptions): number {
  const n = options.batchSize ?? 4096;
  if (!Number.isInteger(n) || n < 1 || n > 1 << 20) {
    throw new BpfError('InvalidArgument', `batchSize must be 1…1048576, got ${n}`, { op: 'batch' });
  }
  return n;
}

/** DataViews over an async MapIo's batch buffers (keys, values). */
function viewsOf(io: MapIo): [DataView, DataView] {
  return [
    new DataView(io.batchKeys.buffer, io.batchKeys.byteOffset, io.batchKeys.byteLength),
    new DataView(io.batchValues.buffer, io.batchValues.byteOffset, io.batchValues.byteLength),
  ];
}

function keyId(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}
