import {
  BpfError,
  type FdWatcher,
  fdClose,
  fdDup,
  type MapInfo,
  MapIo,
  type Mapping,
  mmapFd,
  pageSize,
  perfEventOpenBpfOutput,
  possibleCpus,
  watchFd,
} from '@datapath/libbpf';
import { EventReader, mapInfoOfType, type RecordHandler } from './reader.js';

const TWO32 = 2 ** 32;
const HEAD = 1024; // struct perf_event_mmap_page: data_head
const TAIL = 1032; // data_tail
const PERF_RECORD_LOST = 2;
const PERF_RECORD_SAMPLE = 9;

/**
 * @internal The reader side of one CPU's perf ring (`struct perf_event_mmap_page` then 2^n data pages,
 * mapped read-write), no system call. Kept apart from the fds so unit tests can drive it over plain memory.
 * Records are 8-byte aligned and may wrap the end of the ring: such a record is copied into a scratch
 * buffer (reused) before the handler sees it.
 */
export class PerfCursor {
  readonly #meta: Uint32Array;
  readonly #tail64: BigUint64Array;
  readonly #data: DataView;
  readonly #size: number;
  readonly #mask: number;
  readonly cpu: number;
  #tail: number;
  #scratch = new DataView(new ArrayBuffer(256));
  /** Samples the kernel could not write because the ring was full (`PERF_RECORD_LOST`). */
  lost = 0;
  /** Set by the reader's close(): a drain in progress stops before the next record. */
  halted = false;

  constructor(memory: ArrayBuffer, page: number, cpu: number) {
    const size = memory.byteLength - page;
    if (size <= 0 || (size & (size - 1)) !== 0)
      throw new BpfError('InvalidArgument', `perf ring data must be a power of two, got ${size}`, {
        op: 'PerfCursor',
      });
    this.#meta = new Uint32Array(memory, 0, page / 4);
    this.#tail64 = new BigUint64Array(memory, TAIL, 1);
    this.#data = new DataView(memory, page, size);
    this.#size = size;
    this.#mask = size - 1;
    this.cpu = cpu;
    this.#tail = Number(Atomics.load(this.#tail64, 0));
  }

  /** data_head (acquire), read as two halves without tearing. */
  head(): number {
    const m = this.#meta;
    for (;;) {
      const hi = Atomics.load(m, HEAD / 4 + 1);
      const lo = Atomics.load(m, HEAD / 4);
      if (Atomics.load(m, HEAD / 4 + 1) === hi) return hi * TWO32 + lo;
    }
  }

  /** Whether records are waiting. */
  pending(): boolean {
    return this.head() > this.#tail;
  }

  /**
   * Hands waiting samples to `handler` (the raw bytes the program wrote, padded by the kernel to keep
   * records 8-byte aligned: up to 7 bytes more than written), counts lost records, stops after `max`
   * samples or when {@link PerfCursor.halted} is set; releases data_tail at the end (also when `handler` throws).
   */
  drain(handler: RecordHandler, max: number): number {
    const data = this.#data;
    const mask = this.#mask;
    const size = this.#size;
    let tail = this.#tail;
    let head = this.head();
    let n = 0;
    try {
      while (n < max) {
        if (tail >= head) {
          head = this.head();
          if (tail >= head) break;
        }
        const off = tail & mask;
        // The 8-byte header never straddles the end (records are 8-aligned, the ring a power of two).
        const type = data.getUint32(off, true);
        const recSize = data.getUint16(off + 6, true);
        if (recSize < 8) break; // corrupt: never loop forever
        let view = data;
        let at = off;
        if (off + recSize > size) {
          view = this.#copy(off, recSize);
          at = 0;
        }
        tail += recSize;
        if (type === PERF_RECORD_SAMPLE) {
          n++;
          handler(view, at + 12, view.getUint32(at + 8, true), this.cpu);
        } else if (type === PERF_RECORD_LOST) {
          this.lost += Number(view.getBigUint64(at + 16, true));
        }
        if (this.halted) break;
      }
    } finally {
      if (tail !== this.#tail) {
        this.#tail = tail;
        Atomics.store(this.#tail64, 0, BigInt(tail));
      }
    }
    return n;
  }

  #copy(off: number, len: number): DataView {
    if (this.#scratch.byteLength < len) this.#scratch = new DataView(new ArrayBuffer(len * 2));
    const dst = new Uint8Array(this.#scratch.buffer, 0, len);
    const src = new Uint8Array(this.#data.buffer, this.#data.byteOffset, this.#size);
    const first = this.#size - off;
    dst.set(src.subarray(off, this.#size), 0);
    dst.set(src.subarray(0, len - first), first);
    return this.#scratch;
  }
}

/** Options of {@link PerfEventArray.fromFd}. */
export interface PerfEventArrayOptions {
  /** Close `fd` when the reader is closed (default false: the caller keeps owning it). */
  owned?: boolean;
  /** Data pages per CPU, a power of two (default 64: 256 KiB with 4 KiB pages, as Cilium's monitor). */
  pagesPerCpu?: number;
  /**
   * Wake the reader once this many bytes wait in a CPU's ring (the perf `watermark`); default 1 (any
   * record). Larger values trade latency for fewer wake-ups. Exclusive with `wakeupEvents`.
   */
  watermarkBytes?: number;
  /** Wake the reader every N samples instead. */
  wakeupEvents?: number;
  /** Period of the timer fallback when the native addon is missing (see `watchFd` in `@datapath/libbpf`). */
  fallbackIntervalMs?: number;
}

/**
 * A reader of a `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: one perf ring per possible CPU
 * (`perf_event_open(PERF_COUNT_SW_BPF_OUTPUT)` stored at the CPU's index, then mapped), read from shared
 * memory when the event loop reports one readable (libuv poll handles; the documented timer fallback
 * without the native addon). Programs write with `bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, …)`.
 *
 * Same forms as {@link RingBuf}: `events(codec)`, `subscribe(handler)`, `read(handler)`; the handler's
 * `cpu` says which ring held the record. Order holds per CPU, not across CPUs. Records the kernel
 * dropped because a ring was full are counted per CPU in {@link PerfEventArray.lost}. A sample's length
 * is what the program wrote padded to keep records 8-byte aligned (up to 7 bytes more), so a codec
 * matches records of `size` to `size + 7` bytes.
 *
 * Equivalent to: libbpf's `perf_buffer__new` + `perf_buffer__poll`.
 *
 * @example Counting records and losses per CPU
 * ```ts
 * import { PerfEventArray } from '@datapath/bpf-maps';
 * declare const fd: number;
 * using perf = PerfEventArray.fromFd(fd, { pagesPerCpu: 8 });
 * const perCpu: number[] = [];
 * perf.read((_view, _off, _len, cpu) => { perCpu[cpu] = (perCpu[cpu] ?? 0) + 1; });
 * console.log(perCpu, perf.lost);
 * ```
 */
export class PerfEventArray extends EventReader {
  /** Always `perfEventArray`. */
  readonly kind = 'perfEventArray' as const;
  /** The map fd given to {@link PerfEventArray.fromFd}. */
  readonly fd: number;
  /** Kernel-wide map id. */
  readonly id: number;
  /** Map name. */
  readonly name: string;
  /** The map's `max_entries` (CPU slots). */
  readonly maxEntries: number;
  readonly #options: PerfEventArrayOptions;
  #fd = -1;
  #io: MapIo | undefined;
  #cpus: { cpu: number; fd: number; map: Mapping; cursor: PerfCursor }[] = [];
  #lostAtClose: number[] = [];

  /** @internal */
  constructor(fd: number, info: MapInfo, options: PerfEventArrayOptions) {
    super();
    this.fd = fd;
    this.id = info.id;
    this.name = info.name;
    this.maxEntries = info.maxEntries;
    this.#options = options;
  }

  /**
   * Wraps a perf event array map fd. Nothing is opened until the first read.
   *
   * @throws {@link BpfError} `Incompatible` when `fd` is a map of another type, `BadFd` when it is closed
   * or not a BPF map, `InvalidArgument` for bad options (before any system call).
   * @example
   * ```ts
   * import { PerfEventArray } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const perf = PerfEventArray.fromFd(fd, { watermarkBytes: 4096 });
   * perf.close();
   * ```
   */
  static fromFd(fd: number, options: PerfEventArrayOptions = {}): PerfEventArray {
    const op = 'PerfEventArray.fromFd';
    const bad = (msg: string) => new BpfError('InvalidArgument', `${op}: ${msg}`, { op });
    if (!Number.isInteger(fd) || fd < 0) throw bad(`fd must be a non-negative integer, got ${fd}`);
    const pages = options.pagesPerCpu ?? 64;
    if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0)
      throw bad(`pagesPerCpu must be a power of two, got ${pages}`);
    if (options.watermarkBytes !== undefined && options.wakeupEvents !== undefined)
      throw bad('watermarkBytes and wakeupEvents are exclusive');
    for (const [k, v] of [
      ['watermarkBytes', options.watermarkBytes],
      ['wakeupEvents', options.wakeupEvents],
    ] as const)
      if (v !== undefined && (!Number.isInteger(v) || v < 1))
        throw bad(`${k} must be a positive integer, got ${v}`);
    if (options.watermarkBytes !== undefined && options.watermarkBytes > pages * pageSize())
      throw bad(`watermarkBytes (${options.watermarkBytes}) exceeds the ring (${pages * pageSize()} bytes)`);
    const iv = options.fallbackIntervalMs;
    if (iv !== undefined && !(iv > 0)) throw bad(`fallbackIntervalMs must be positive, got ${iv}`);
    const info = mapInfoOfType(fd, 4, 'perf_event_array', op);
    return new PerfEventArray(fd, info, options);
  }

  /** @internal */
  protected get label(): string {
    return `perf event array ${this.name || this.id}`;
  }

  /**
   * Records lost per CPU so far (index = CPU), from the kernel's `PERF_RECORD_LOST` records; counted as
   * the reader reaches them.
   */
  get lost(): readonly number[] {
    if (this.#cpus.length === 0) return this.#lostAtClose;
    const out: number[] = [];
    for (const c of this.#cpus) out[c.cpu] = c.cursor.lost;
    return out;
  }

  /** @internal */
  protected override recordMatches(len: number, size: number): boolean {
    return len >= size && len < size + 8;
  }

  /** @internal */
  protected openReader(wake: () => void): FdWatcher[] {
    const page = pageSize();
    const o = this.#options;
    const length = page * (1 + (o.pagesPerCpu ?? 64));
    const watchers: FdWatcher[] = [];
    this.#fd = fdDup(this.fd);
    try {
      this.#io = new MapIo({ fd: this.#fd, keySize: 4, valueSize: 4, name: this.name });
      const n = Math.min(possibleCpus(), this.maxEntries);
      const wakeOpts =
        o.wakeupEvents !== undefined
          ? { wakeupEvents: o.wakeupEvents }
          : { watermarkBytes: o.watermarkBytes ?? 1 };
      for (let cpu = 0; cpu < n; cpu++) {
        let pfd: number;
        try {
          pfd = perfEventOpenBpfOutput(cpu, wakeOpts);
        } catch (err) {
          if (err instanceof BpfError && err.code === 'NotFound') continue; // offline CPU
          throw err;
        }
        let map: Mapping;
        try {
          map = mmapFd(pfd, { offset: 0, length, writable: true });
        } catch (err) {
          fdClose(pfd);
          throw err;
        }
        const entry = { cpu, fd: pfd, map, cursor: new PerfCursor(map.buffer, page, cpu) };
        this.#cpus.push(entry);
        this.#io.keyView.setUint32(0, cpu, true);
        this.#io.valueView.setUint32(0, pfd, true);
        this.#io.update();
        const opts = o.fallbackIntervalMs === undefined ? {} : { fallbackIntervalMs: o.fallbackIntervalMs };
        watchers.push(watchFd(pfd, wake, opts));
      }
    } catch (err) {
      for (const w of watchers) w.close();
      this.releaseReader();
      throw err;
    }
    return watchers;
  }

  /** @internal */
  protected drainRecords(handler: RecordHandler, max: number): number {
    let n = 0;
    for (const c of this.#cpus) {
      if (n >= max || this.halted) break;
      n += c.cursor.drain(handler, max - n);
    }
    return n;
  }

  /** @internal */
  protected override haltRecords(): void {
    for (const c of this.#cpus) c.cursor.halted = true;
  }

  /** @internal */
  protected releaseReader(): void {
    const io = this.#io;
    this.#lostAtClose = [];
    for (const c of this.#cpus) {
      this.#lostAtClose[c.cpu] = c.cursor.lost;
      if (io !== undefined) {
        // Take our perf event out of the array so programs stop writing into a ring nobody reads.
        io.keyView.setUint32(0, c.cpu, true);
        try {
          io.delete();
        } catch {
          // The slot may already hold someone else's event: leave it.
        }
      }
      c.map.close();
      fdClose(c.fd);
    }
    this.#cpus = [];
    this.#io = undefined;
    if (this.#fd >= 0) fdClose(this.#fd);
    this.#fd = -1;
  }

  /** @internal */
  protected override onClosed(): void {
    if (this.#options.owned === true) fdClose(this.fd);
  }
}
