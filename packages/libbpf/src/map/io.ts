import { errnoCode } from '@datapath/errors';
import { BpfError, MAP_UPDATE_MEANING } from '../errors.js';
import { BatchAttr, Cmd, ElemAttr } from '../sys/bpf-attr.js';
import { syscallError } from '../sys/call.js';
import { type Pinned, pinnedAlloc, sysBpf, sysBpfAsync } from '../sys/libc.js';
import { possibleCpus } from './cpus.js';

/** What {@link MapIo} needs to know about the map behind an fd. */
export interface MapIoOptions {
  /** An open map fd; the {@link MapIo} uses it but does not own it. */
  fd: number;
  /** The map's key size in bytes (0 for queue/stack maps is not supported). */
  keySize: number;
  /** The map's declared value size in bytes. */
  valueSize: number;
  /** True for per-CPU maps: value buffers then hold one 8-byte-aligned slot per possible CPU. */
  perCpu?: boolean;
  /** Name used in error messages (the map name or pin path). */
  name?: string;
}

/**
 * Element and batch operations on one map fd through reused scratch buffers: a call allocates nothing.
 *
 * Write the key into {@link MapIo.key} (and the value into {@link MapIo.value}), call an operation, read
 * the result from {@link MapIo.value} or {@link MapIo.nextKey}. The buffers are plain `Uint8Array`s; their
 * addresses never leave this package. Per-CPU maps get value buffers of `roundup(valueSize, 8) ×`
 * {@link possibleCpus} bytes, so the kernel can never write past them.
 *
 * Every operation has an async twin (`lookupAsync`, `lookupBatchAsync`, …) whose bpf(2) call runs on libuv's
 * threadpool: same buffers, same results and errors. One async call at a time per `MapIo` (another one, or
 * {@link MapIo.ensureBatch}, is refused with `Busy` meanwhile) and its buffers must not be touched until it
 * settles; use a second `MapIo` on the same fd to keep making sync calls meanwhile.
 *
 * @example Reading one element of a hash map
 * ```ts
 * import { MapIo, MapType, mapCreate, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 });
 * const io = new MapIo({ fd, keySize: 4, valueSize: 8 });
 * io.keyView.setUint32(0, 7, true);
 * io.valueView.setBigUint64(0, 42n, true);
 * io.update(0);
 * if (io.lookup()) console.log(io.valueView.getBigUint64(0, true)); // 42n
 * fdClose(fd);
 * ```
 */
export class MapIo {
  /** The map fd (not owned). */
  readonly fd: number;
  /** Key size in bytes. */
  readonly keySize: number;
  /** Declared value size in bytes. */
  readonly valueSize: number;
  /** Bytes one element's value takes in {@link MapIo.value} and batch buffers (per-CPU: all CPUs). */
  readonly valueStride: number;
  /** For per-CPU maps, the slot size (`roundup(valueSize, 8)`); otherwise `valueSize`. */
  readonly cpuStride: number;
  /** Number of per-CPU slots in a value (1 for ordinary maps). */
  readonly cpus: number;
  /** The scratch key. */
  readonly key: Uint8Array;
  /** A DataView over {@link MapIo.key}. */
  readonly keyView: DataView;
  /** The scratch value. */
  readonly value: Uint8Array;
  /** A DataView over {@link MapIo.value}. */
  readonly valueView: DataView;
  /** Where {@link MapIo.nextKey} writes the key that follows {@link MapIo.key}. */
  readonly next: Uint8Array;
  /** A DataView over {@link MapIo.next}. */
  readonly nextView: DataView;
  /** Keys of the last batch (capacity × keySize bytes); see {@link MapIo.ensureBatch}. */
  batchKeys: Uint8Array = new Uint8Array(0);
  /** Values of the last batch (capacity × valueStride bytes). */
  batchValues: Uint8Array = new Uint8Array(0);
  /** True when the last {@link MapIo.lookupBatch} reached the end of the map. */
  batchDone = false;

  readonly #name: string | undefined;
  readonly #k: Pinned;
  readonly #v: Pinned;
  readonly #n: Pinned;
  readonly #elem: Pinned;
  readonly #delAttr: Pinned;
  readonly #nextAttr: Pinned;
  readonly #firstAttr: Pinned;
  readonly #batch: Pinned;
  readonly #tokIn: Pinned;
  readonly #tokOut: Pinned;
  #bk: Pinned | undefined;
  #bv: Pinned | undefined;
  #capacity = 0;

  constructor(options: MapIoOptions) {
    const { fd, keySize, valueSize } = options;
    for (const [what, v, min] of [
      ['fd', fd, 0],
      ['keySize', keySize, 1],
      ['valueSize', valueSize, 1],
    ] as const) {
      if (!Number.isInteger(v) || v < min || v > 0x7fff_ffff) {
        throw new BpfError('InvalidArgument', `MapIo: ${what} must be an integer ≥ ${min}, got ${v}`, {
          op: 'MapIo',
        });
      }
    }
    this.fd = fd;
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.#name = options.name;
    this.cpus = options.perCpu ? possibleCpus() : 1;
    this.cpuStride = options.perCpu ? (valueSize + 7) & ~7 : valueSize;
    this.valueStride = this.cpuStride * this.cpus;
    this.#k = pinnedAlloc(keySize);
    this.#v = pinnedAlloc(this.valueStride);
    this.#n = pinnedAlloc(keySize);
    this.key = this.#k.bytes;
    this.keyView = this.#k.view;
    this.value = this.#v.bytes;
    this.valueView = this.#v.view;
    this.next = this.#n.bytes;
    this.nextView = this.#n.view;

    this.#elem = pinnedAlloc(ElemAttr.size);
    this.#elem.view.setUint32(ElemAttr.mapFd, fd, true);
    setAddr(this.#elem.view, ElemAttr.key, this.#k.addr);
    setAddr(this.#elem.view, ElemAttr.value, this.#v.addr);

    // DELETE_ELEM's last field is `key`: the kernel rejects an attr with anything set after it.
    this.#delAttr = pinnedAlloc(ElemAttr.size);
    this.#delAttr.view.setUint32(ElemAttr.mapFd, fd, true);
    setAddr(this.#delAttr.view, ElemAttr.key, this.#k.addr);

    this.#nextAttr = pinnedAlloc(ElemAttr.size);
    this.#nextAttr.view.setUint32(ElemAttr.mapFd, fd, true);
    setAddr(this.#nextAttr.view, ElemAttr.key, this.#k.addr);
    setAddr(this.#nextAttr.view, ElemAttr.value, this.#n.addr);

    this.#firstAttr = pinnedAlloc(ElemAttr.size);
    this.#firstAttr.view.setUint32(ElemAttr.mapFd, fd, true);
    setAddr(this.#firstAttr.view, ElemAttr.value, this.#n.addr);

    // Batch tokens: a u32 bucket for hash maps, a key for arrays and generic maps.
    this.#batch = pinnedAlloc(BatchAttr.size);
    this.#tokIn = pinnedAlloc(Math.max(8, keySize));
    this.#tokOut = pinnedAlloc(Math.max(8, keySize));
  }

  /**
   * Looks up {@link MapIo.key} into {@link MapIo.value}; false when the key is absent.
   *
   * Equivalent to: `bpftool map lookup id ID key …`.
   *
   * @throws {@link BpfError} `BadFd`, `InvalidArgument`, `PermissionDenied` (write-only fd).
   * @example Looking up
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.keyView.setUint32(0, 1, true);
   * const found = io.lookup();
   * ```
   */
  lookup(flags = 0): boolean {
    if (flags !== this.#elemFlags) this.#setElemFlags(flags);
    const r = sysBpf(Cmd.MapLookupElem, this.#elem, ElemAttr.size);
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapLookupElem, 'mapLookup', this.#name);
  }

  /**
   * Writes {@link MapIo.value} at {@link MapIo.key} with `BPF_ANY` (0), `BPF_NOEXIST` (1) or `BPF_EXIST` (2).
   *
   * Equivalent to: `bpftool map update id ID key … value … [noexist|exist]`.
   *
   * @throws {@link BpfError} `Exhausted` (reason `Full`: the map is full), `AlreadyExists` (noexist), `NotFound` (exist),
   * `TooBig` (array index out of range), `BadFd`, `InvalidArgument`.
   * @example Updating
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.update(1); // BPF_NOEXIST
   * ```
   */
  update(flags = 0): void {
    if (flags !== this.#elemFlags) this.#setElemFlags(flags);
    const r = sysBpf(Cmd.MapUpdateElem, this.#elem, ElemAttr.size);
    if (r < 0) throw syscallError(-r, Cmd.MapUpdateElem, 'mapUpdate', this.#name, MAP_UPDATE_MEANING);
  }

  /**
   * Deletes {@link MapIo.key}; false when it was absent.
   *
   * Equivalent to: `bpftool map delete id ID key …`.
   *
   * @throws {@link BpfError} `InvalidArgument` (arrays cannot delete), `BadFd`.
   * @example Deleting
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.delete();
   * ```
   */
  delete(): boolean {
    const r = sysBpf(Cmd.MapDeleteElem, this.#delAttr, ElemAttr.size);
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapDeleteElem, 'mapDelete', this.#name);
  }

  /**
   * Reads {@link MapIo.key} into {@link MapIo.value} and deletes it atomically; false when absent.
   *
   * @throws {@link BpfError} `NotSupported` for map types without it (before 5.14 only queues/stacks),
   * `BadFd`, `InvalidArgument`.
   * @example Taking an element out
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * if (io.lookupAndDelete()) console.log(io.value);
   * ```
   */
  lookupAndDelete(): boolean {
    if (this.#elemFlags !== 0) this.#setElemFlags(0);
    const r = sysBpf(Cmd.MapLookupAndDeleteElem, this.#elem, ElemAttr.size);
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapLookupAndDeleteElem, 'mapLookupAndDelete', this.#name);
  }

  /**
   * Writes the key after {@link MapIo.key} (or the first key, when `first`) into {@link MapIo.next};
   * false at the end of the map. A deleted {@link MapIo.key} restarts from the first key (hash maps).
   *
   * Equivalent to: `bpftool map getnext id ID key …`.
   *
   * @throws {@link BpfError} `BadFd`, `InvalidArgument`.
   * @example Walking every key
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * for (let more = io.nextKey(true); more; more = io.nextKey(false)) io.key.set(io.next);
   * ```
   */
  nextKey(first: boolean): boolean {
    const attr = first ? this.#firstAttr : this.#nextAttr;
    const r = sysBpf(Cmd.MapGetNextKey, attr, ElemAttr.size);
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapGetNextKey, 'mapGetNextKey', this.#name);
  }

  #elemFlags = 0;

  #setElemFlags(flags: number): void {
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff_ffff) {
      throw new BpfError('InvalidArgument', `MapIo: flags must be a 32-bit unsigned integer, got ${flags}`, {
        op: 'mapUpdate',
      });
    }
    this.#elem.view.setUint32(ElemAttr.flags, flags, true);
    this.#elemFlags = flags;
  }

  /** Current batch capacity in elements. */
  get batchCapacity(): number {
    return this.#capacity;
  }

  /**
   * Makes the batch buffers hold at least `capacity` elements (they only grow).
   *
   * @throws {@link BpfError} `InvalidArgument` for a capacity that is not a positive integer.
   * @example Preparing a batch of 1024
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.ensureBatch(1024);
   * ```
   */
  ensureBatch(capacity: number): void {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
      throw new BpfError('InvalidArgument', `MapIo: batch capacity must be 1…16777216, got ${capacity}`, {
        op: 'mapBatch',
      });
    }
    if (capacity <= this.#capacity) return;
    if (this.#inFlight) throw this.#busy('mapBatch');
    this.#grow(capacity);
  }

  /**
   * Reads the next batch of up to `max` elements (default: the capacity) into {@link MapIo.batchKeys} /
   * {@link MapIo.batchValues}, optionally deleting them; returns how many. `restart` starts from the
   * beginning of the map. Sets {@link MapIo.batchDone} at the end. On a hash map whose bucket is larger
   * than the batch, the buffers grow and the call is retried.
   *
   * Equivalent to: `BPF_MAP_LOOKUP_BATCH` / `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (no bpftool command).
   *
   * @throws {@link BpfError} `NotSupported` or `InvalidArgument` when the map type has no batch ops,
   * `BadFd`.
   * @example Dumping a map in batches
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.ensureBatch(4096);
   * let n = io.lookupBatch(true);
   * while (!io.batchDone) n += io.lookupBatch(false);
   * ```
   */
  lookupBatch(restart: boolean, andDelete = false, max = this.#capacity): number {
    if (this.#capacity === 0) this.ensureBatch(1024);
    const cmd = andDelete ? Cmd.MapLookupAndDeleteBatch : Cmd.MapLookupBatch;
    for (;;) {
      const count = this.#lookupBatchAttr(restart, max);
      const got = this.#lookupBatchDone(sysBpf(cmd, this.#batch, BatchAttr.size), count, cmd, andDelete);
      if (got >= 0) return got;
      max = this.#capacity;
    }
  }

  /**
   * The async form of {@link MapIo.lookupBatch}: the `BPF_MAP_LOOKUP_BATCH` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.lookupBatch}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Dumping a map in batches without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.ensureBatch(4096);
   * let n = await io.lookupBatchAsync(true);
   * while (!io.batchDone) n += await io.lookupBatchAsync(false);
   * ```
   */
  async lookupBatchAsync(restart: boolean, andDelete = false, max = this.#capacity): Promise<number> {
    if (this.#capacity === 0) this.ensureBatch(1024);
    const cmd = andDelete ? Cmd.MapLookupAndDeleteBatch : Cmd.MapLookupBatch;
    this.#enter(andDelete ? 'mapLookupAndDeleteBatch' : 'mapLookupBatch');
    try {
      for (;;) {
        const count = this.#lookupBatchAttr(restart, max);
        const r = await sysBpfAsync(cmd, this.#batch, BatchAttr.size);
        const got = this.#lookupBatchDone(r, count, cmd, andDelete);
        if (got >= 0) return got;
        max = this.#capacity;
      }
    } finally {
      this.#inFlight = false;
    }
  }

  #lookupBatchAttr(restart: boolean, max: number): number {
    const a = this.#batch.view;
    const count = Math.min(max, this.#capacity);
    setAddr(a, BatchAttr.inBatch, restart ? 0 : this.#tokIn.addr);
    setAddr(a, BatchAttr.outBatch, this.#tokOut.addr);
    setAddr(a, BatchAttr.keys, this.#bk!.addr);
    setAddr(a, BatchAttr.values, this.#bv!.addr);
    a.setUint32(BatchAttr.count, count, true);
    a.setUint32(BatchAttr.mapFd, this.fd, true);
    a.setBigUint64(BatchAttr.elemFlags, 0n, true);
    a.setBigUint64(BatchAttr.flags, 0n, true);
    return count;
  }

  /** What a lookup batch call's result `r` means: elements read, or -1 to retry with larger buffers. */
  #lookupBatchDone(r: number, count: number, cmd: number, andDelete: boolean): number {
    const got = this.#batch.view.getUint32(BatchAttr.count, true);
    if (r >= 0 || errnoCode(-r) === 'NotFound') {
      this.batchDone = r < 0;
      this.#tokIn.bytes.set(this.#tokOut.bytes);
      return got;
    }
    if (errnoCode(-r) === 'Exhausted' && got === 0) {
      // ENOSPC: a hash bucket holds more elements than the batch: retry with room for it.
      if (count === this.#capacity) this.#grow(this.#capacity * 2);
      return -1;
    }
    throw syscallError(-r, cmd, andDelete ? 'mapLookupAndDeleteBatch' : 'mapLookupBatch', this.#name);
  }

  #grow(capacity: number): void {
    this.#bk = pinnedAlloc(capacity * this.keySize);
    this.#bv = pinnedAlloc(capacity * this.valueStride);
    this.batchKeys = this.#bk.bytes;
    this.batchValues = this.#bv.bytes;
    this.#capacity = capacity;
  }

  /**
   * Writes `count` elements of {@link MapIo.batchKeys} / {@link MapIo.batchValues}, from element `start`,
   * in one call. `flags` may only be 0 or `BPF_F_LOCK` (4): the kernel takes no NOEXIST/EXIST here.
   *
   * @throws {@link BpfError} `Exhausted` (reason `Full`: the map is full), `NotSupported`, `InvalidArgument` (also before the
   * call, for a range past the capacity); elements before the failing one were written
   * ({@link MapIo.lastBatchProcessed} says how many).
   * @example Writing a prepared batch
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.updateBatch(128, 0);
   * ```
   */
  updateBatch(count: number, flags = 0, start = 0): void {
    this.#batchWrite(Cmd.MapUpdateBatch, count, flags, start, 'mapUpdateBatch');
  }

  /**
   * Deletes `count` keys of {@link MapIo.batchKeys}, from element `start`, in one call.
   *
   * @throws {@link BpfError} `NotFound` when a key is absent (keys before it were deleted),
   * `NotSupported`, `InvalidArgument`.
   * @example Deleting a prepared batch
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.deleteBatch(128);
   * ```
   */
  deleteBatch(count: number, start = 0): void {
    this.#batchWrite(Cmd.MapDeleteBatch, count, 0, start, 'mapDeleteBatch');
  }

  /** How many elements the last failed batch write processed before failing. */
  lastBatchProcessed = 0;

  #batchWrite(cmd: number, count: number, flags: number, start: number, op: string): void {
    if (!this.#batchWriteAttr(cmd, count, flags, start, op)) return;
    this.#batchWriteDone(sysBpf(cmd, this.#batch, BatchAttr.size), cmd, op);
  }

  /**
   * The async form of {@link MapIo.updateBatch}: the `BPF_MAP_UPDATE_BATCH` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.updateBatch}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Writing a prepared batch without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * await io.updateBatchAsync(128);
   * ```
   */
  updateBatchAsync(count: number, flags = 0, start = 0): Promise<void> {
    return this.#batchWriteAsync(Cmd.MapUpdateBatch, count, flags, start, 'mapUpdateBatch');
  }

  /**
   * The async form of {@link MapIo.deleteBatch}: the `BPF_MAP_DELETE_BATCH` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.deleteBatch}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Deleting a prepared batch without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * await io.deleteBatchAsync(128);
   * ```
   */
  deleteBatchAsync(count: number, start = 0): Promise<void> {
    return this.#batchWriteAsync(Cmd.MapDeleteBatch, count, 0, start, 'mapDeleteBatch');
  }

  async #batchWriteAsync(
    cmd: number,
    count: number,
    flags: number,
    start: number,
    op: string,
  ): Promise<void> {
    this.#enter(op);
    let r: number;
    try {
      if (!this.#batchWriteAttr(cmd, count, flags, start, op)) return;
      r = await sysBpfAsync(cmd, this.#batch, BatchAttr.size);
    } finally {
      this.#inFlight = false;
    }
    this.#batchWriteDone(r, cmd, op);
  }

  /** Fills the batch attr for a write; false when there is nothing to write. */
  #batchWriteAttr(cmd: number, count: number, flags: number, start: number, op: string): boolean {
    if (
      !Number.isInteger(count) ||
      !Number.isInteger(start) ||
      count < 0 ||
      start < 0 ||
      start + count > this.#capacity
    ) {
      throw new BpfError(
        'InvalidArgument',
        `${op}: elements ${start}…${start + count} exceed the batch capacity ${this.#capacity}`,
        { op },
      );
    }
    if (count === 0) return false;
    const a = this.#batch.view;
    setAddr(a, BatchAttr.inBatch, 0);
    setAddr(a, BatchAttr.outBatch, 0);
    setAddr(a, BatchAttr.keys, this.#bk!.addr + start * this.keySize);
    setAddr(a, BatchAttr.values, cmd === Cmd.MapDeleteBatch ? 0 : this.#bv!.addr + start * this.valueStride);
    a.setUint32(BatchAttr.count, count, true);
    a.setUint32(BatchAttr.mapFd, this.fd, true);
    a.setUint32(BatchAttr.elemFlags, flags, true);
    a.setUint32(BatchAttr.elemFlags + 4, 0, true);
    a.setBigUint64(BatchAttr.flags, 0n, true);
    return true;
  }

  #batchWriteDone(r: number, cmd: number, op: string): void {
    this.lastBatchProcessed = this.#batch.view.getUint32(BatchAttr.count, true);
    if (r < 0)
      throw syscallError(
        -r,
        cmd,
        op,
        this.#name,
        cmd === Cmd.MapUpdateBatch ? MAP_UPDATE_MEANING : undefined,
      );
  }

  #inFlight = false;

  /** True while an async call of this `MapIo` is in flight (its buffers belong to the kernel until it settles). */
  get busy(): boolean {
    return this.#inFlight;
  }

  #busy(op: string): BpfError {
    return new BpfError('Busy', `${op}: an async call on ${this.#name ?? `map fd ${this.fd}`} is in flight`, {
      op,
      ...(this.#name === undefined ? {} : { target: this.#name }),
    });
  }

  #enter(op: string): void {
    if (this.#inFlight) throw this.#busy(op);
    this.#inFlight = true;
  }

  /**
   * The async form of {@link MapIo.lookup}: the `BPF_MAP_LOOKUP_ELEM` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.lookup}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Looking up without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * io.keyView.setUint32(0, 1, true);
   * const found = await io.lookupAsync();
   * ```
   */
  async lookupAsync(flags = 0): Promise<boolean> {
    this.#enter('mapLookup');
    let r: number;
    try {
      if (flags !== this.#elemFlags) this.#setElemFlags(flags);
      r = await sysBpfAsync(Cmd.MapLookupElem, this.#elem, ElemAttr.size);
    } finally {
      this.#inFlight = false;
    }
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapLookupElem, 'mapLookup', this.#name);
  }

  /**
   * The async form of {@link MapIo.update}: the `BPF_MAP_UPDATE_ELEM` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.update}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Updating without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * await io.updateAsync(0);
   * ```
   */
  async updateAsync(flags = 0): Promise<void> {
    this.#enter('mapUpdate');
    let r: number;
    try {
      if (flags !== this.#elemFlags) this.#setElemFlags(flags);
      r = await sysBpfAsync(Cmd.MapUpdateElem, this.#elem, ElemAttr.size);
    } finally {
      this.#inFlight = false;
    }
    if (r < 0) throw syscallError(-r, Cmd.MapUpdateElem, 'mapUpdate', this.#name, MAP_UPDATE_MEANING);
  }

  /**
   * The async form of {@link MapIo.delete}: the `BPF_MAP_DELETE_ELEM` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.delete}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Deleting without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * await io.deleteAsync();
   * ```
   */
  async deleteAsync(): Promise<boolean> {
    this.#enter('mapDelete');
    let r: number;
    try {
      r = await sysBpfAsync(Cmd.MapDeleteElem, this.#delAttr, ElemAttr.size);
    } finally {
      this.#inFlight = false;
    }
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapDeleteElem, 'mapDelete', this.#name);
  }

  /**
   * The async form of {@link MapIo.nextKey}: the `BPF_MAP_GET_NEXT_KEY` runs on libuv's threadpool.
   *
   * @throws {@link BpfError} as {@link MapIo.nextKey}; `Busy` while another async call of this `MapIo` is in flight.
   * @example Walking every key without blocking
   * ```ts
   * import { MapIo } from '@datapath/libbpf';
   * declare const io: MapIo;
   * for (let more = await io.nextKeyAsync(true); more; more = await io.nextKeyAsync(false)) io.key.set(io.next);
   * ```
   */
  async nextKeyAsync(first: boolean): Promise<boolean> {
    this.#enter('mapGetNextKey');
    let r: number;
    try {
      r = await sysBpfAsync(Cmd.MapGetNextKey, first ? this.#firstAttr : this.#nextAttr, ElemAttr.size);
    } finally {
      this.#inFlight = false;
    }
    if (r >= 0) return true;
    if (errnoCode(-r) === 'NotFound') return false;
    throw syscallError(-r, Cmd.MapGetNextKey, 'mapGetNextKey', this.#name);
  }
}

function setAddr(view: DataView, offset: number, addr: number): void {
  view.setUint32(offset, addr % 0x1_0000_0000, true);
  view.setUint32(offset + 4, Math.floor(addr / 0x1_0000_0000), true);
}
