import {
  BpfError,
  type FdWatcher,
  fdClose,
  fdDup,
  type MapInfo,
  type Mapping,
  mmapFd,
  pageSize,
  watchFd,
} from '@datapath/libbpf';
import { type Codec, structDecoderIn } from './codec.js';
import { EventReader, mapInfoOfType, type RecordHandler } from './reader.js';
import type { RecordBuffer } from './views.js';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const LEN_MASK = 0x3fffffff;
const HDR = 8;
const TWO32 = 2 ** 32;
/** Consumer position stores while draining: one every this many records (and at the end). */
const STORE_EVERY = 64;

/**
 * @internal The consumer side of a `BPF_MAP_TYPE_RINGBUF` over its shared memory, no system call:
 * `consumer` is the writable consumer page (`consumer_pos` at 0), `producer` the read-only mapping of the
 * producer page (`producer_pos` at 0) followed by the data pages mapped twice, so a record that wraps the
 * end of the ring is contiguous. Kept apart from the fds so unit tests can drive it over plain memory.
 */
export class RingCursor {
  readonly data: DataView;
  /** The data pages (mapped twice) as bytes. */
  readonly bytes: Uint8Array;
  readonly #cons: BigUint64Array;
  readonly #cons32: Uint32Array;
  readonly #prod: Uint32Array;
  readonly #hdr: Uint32Array;
  readonly #mask: number;
  #pos: number;
  /** Records skipped because their producer discarded them. */
  discarded = 0;
  /** Set by the reader's close(): a drain in progress stops before the next record. */
  halted = false;
  /** Where each record of a {@link RingCursor.drainDecode} starts, reused between drains. */
  #offsets = new Int32Array(1024);

  constructor(consumer: ArrayBuffer, producer: ArrayBuffer, page: number, size: number) {
    if (size <= 0 || (size & (size - 1)) !== 0 || size > 2 ** 31)
      throw new BpfError('InvalidArgument', `ring size must be a power of two, got ${size}`, {
        op: 'RingCursor',
      });
    if (producer.byteLength < page + 2 * size)
      throw new BpfError('InvalidArgument', 'producer mapping too small', { op: 'RingCursor' });
    this.#cons = new BigUint64Array(consumer, 0, 1);
    this.#cons32 = new Uint32Array(consumer, 0, 2);
    this.#prod = new Uint32Array(producer, 0, 2);
    this.data = new DataView(producer, page, 2 * size);
    this.bytes = new Uint8Array(producer, page, 2 * size);
    this.#hdr = new Uint32Array(producer, page, (2 * size) / 4);
    this.#mask = size - 1;
    this.#pos = this.consumerPos();
  }

  /** The consumer position in shared memory (another consumer of the same ring may have moved it). */
  consumerPos(): number {
    const c = this.#cons32;
    return Atomics.load(c, 1) * TWO32 + Atomics.load(c, 0);
  }

  /** The producer position (acquire), read as two halves without tearing. */
  producerPos(): number {
    const p = this.#prod;
    for (;;) {
      const hi = Atomics.load(p, 1);
      const lo = Atomics.load(p, 0);
      if (Atomics.load(p, 1) === hi) return hi * TWO32 + lo;
    }
  }

  /** The consumer position this cursor has reached. */
  get position(): number {
    return this.#pos;
  }

  /** Whether committed or in-flight records are waiting. */
  pending(): boolean {
    return this.producerPos() > this.consumerPos();
  }

  /**
   * Hands committed records to `handler` in order until the ring is empty, a record is still being
   * written (busy bit: stop there, it is the next one), `max` records were handled or {@link RingCursor.halted} is set.
   * Discarded records are skipped. The consumer position is released after every {@link STORE_EVERY}
   * records and at the end, also when `handler` throws (the record that threw counts as consumed).
   */
  drain(handler: RecordHandler, max: number): number {
    const hdr = this.#hdr;
    const data = this.data;
    const mask = this.#mask;
    // Start from the shared position: only this process writes it while we read, but a consumer that
    // ran before (another process, a reader closed since) may have moved it. The walk itself is in int32
    // arithmetic, relative to it (positions are 64-bit; a double there costs V8 several ns a record).
    const start = this.consumerPos();
    this.#pos = start;
    const base = start & mask;
    let avail = this.#available(start);
    let rel = 0;
    let n = 0;
    let sinceStore = 0;
    try {
      while (n < max) {
        if (rel >= avail) {
          // Drained what we saw: look once more, records may have been committed meanwhile.
          avail = this.#available(start);
          if (rel >= avail) break;
        }
        const off = (base + rel) & mask;
        // A plain load: the acquire of producer_pos above orders it (x86-64 and V8 keep loads in order
        // after an Atomics.load), and a busy header is read again on the next drain.
        const h = hdr[off >>> 2]!;
        if ((h & BUSY) !== 0) break;
        const len = h & LEN_MASK;
        rel += (len + HDR + 7) & ~7;
        if ((h & DISCARD) !== 0) {
          this.discarded++;
        } else {
          n++;
          handler(data, off + HDR, len, -1);
        }
        if (++sinceStore === STORE_EVERY) {
          sinceStore = 0;
          this.#store(start + rel);
        }
        if (this.halted) break;
      }
    } finally {
      if (start + rel !== this.#pos) this.#store(start + rel);
    }
    return n;
  }

  /** Bytes committed or in flight past `start` (at most the ring's size). */
  #available(start: number): number {
    return Math.min(this.producerPos() - start, this.#mask + 1);
  }

  /**
   * {@link RingCursor.drain} specialised for the decoding iterators: walks the headers of up to `max`
   * committed records of `size` bytes, then decodes each with `decode(offset in {@link RingCursor.data})`
   * into `out` (grown once, no handler call and no push per record) and only then releases the consumer
   * position. A record of another length is consumed, its length left in {@link RingCursor.badLength},
   * and the drain stops there.
   */
  drainDecode<T>(decode: (o: number) => T, size: number, out: T[], max: number): number {
    const hdr = this.#hdr;
    const mask = this.#mask;
    const start = this.consumerPos();
    this.#pos = start;
    const base = start & mask;
    let avail = this.#available(start);
    let rel = 0;
    let n = 0;
    let k = 0;
    let offs = this.#offsets;
    try {
      while (n < max) {
        if (rel >= avail) {
          avail = this.#available(start);
          if (rel >= avail) break;
        }
        const off = (base + rel) & mask;
        const h = hdr[off >>> 2]!;
        if ((h & BUSY) !== 0) break;
        const len = h & LEN_MASK;
        rel += (len + HDR + 7) & ~7;
        if ((h & DISCARD) !== 0) {
          this.discarded++;
        } else {
          n++;
          if (len !== size) {
            this.badLength = len;
            break;
          }
          if (k === offs.length) {
            const grown = new Int32Array(k * 2);
            grown.set(offs);
            this.#offsets = offs = grown;
          }
          offs[k++] = off + HDR;
        }
        if (this.halted) break;
      }
      if (k > 0) {
        const at = out.length;
        out.length = at + k;
        let i = 0;
        try {
          for (; i < k; i++) out[at + i] = decode(offs[i]!);
        } finally {
          if (i < k) out.length = at + i;
        }
      }
    } finally {
      if (rel !== 0) this.#store(start + rel);
    }
    return n;
  }

  /**
   * {@link RingCursor.drain} specialised for record views read in place: walks the headers of up to `max`
   * committed records of `size` bytes and notes where each starts in {@link RingCursor.data}
   * (`buf.data` is set to it), but does not release them: the consumer position stays where it was until
   * {@link RingCursor.release}, so producers cannot overwrite the records while they are read. A drain
   * that found nothing to hand out (only discarded records, or a record of another length first) releases
   * at once. A record of another length is consumed, its length left in {@link RingCursor.badLength}, and
   * the drain stops there.
   */
  drainInPlace(size: number, buf: RecordBuffer, max: number): number {
    const hdr = this.#hdr;
    const mask = this.#mask;
    const start = this.#held >= 0 ? this.#held : this.consumerPos();
    if (this.#held < 0) this.#pos = start;
    const base = start & mask;
    let avail = this.#available(start);
    let rel = 0;
    let n = 0;
    let k = buf.length;
    // Room for every record this drain can see now (8 bytes each at least), so the loop makes no call.
    if (k + Math.min(max, avail >>> 3) > buf.offsets.length) buf.reserve(0, k + Math.min(max, avail >>> 3));
    let offs = buf.offsets;
    let discarded = 0;
    while (n < max) {
      if (rel >= avail) {
        avail = this.#available(start);
        if (rel >= avail) break;
      }
      const off = (base + rel) & mask;
      const h = hdr[off >>> 2]!;
      if ((h & BUSY) !== 0) break;
      if ((h & DISCARD) === 0 && k === offs.length) {
        // More was committed since the walk began than there is room for.
        buf.reserve(0, k * 2);
        offs = buf.offsets;
      }
      const len = h & LEN_MASK;
      rel += (len + HDR + 7) & ~7;
      if ((h & DISCARD) !== 0) {
        discarded++;
        continue;
      }
      n++;
      if (len !== size) {
        this.badLength = len;
        break;
      }
      offs[k++] = off + HDR;
      if (this.halted) break;
    }
    this.discarded += discarded;
    buf.data = this.data;
    buf.length = k;
    if (rel !== 0) this.#held = start + rel;
    if (k === 0) this.release();
    return n;
  }

  /** Releases the records a {@link RingCursor.drainInPlace} handed out (moves the consumer position past them). */
  release(): void {
    const held = this.#held;
    if (held < 0) return;
    this.#held = -1;
    if (held !== this.#pos) this.#store(held);
  }

  /** Where the records handed out in place end, or -1 when none are held. */
  #held = -1;

  /** The length of the record that stopped the last {@link RingCursor.drainDecode} or {@link RingCursor.drainInPlace}, or -1. */
  badLength = -1;

  #store(pos: number): void {
    this.#pos = pos;
    Atomics.store(this.#cons, 0, BigInt(pos));
  }
}

/** Options of {@link RingBuf.fromFd}. */
export interface RingBufOptions {
  /** Close `fd` when the reader is closed (default false: the caller keeps owning it). */
  owned?: boolean;
  /** Period of the timer fallback when the native addon is missing (see `watchFd` in `@datapath/libbpf`). */
  fallbackIntervalMs?: number;
}

/**
 * A reader of a `BPF_MAP_TYPE_RINGBUF` (kernel ≥ 5.8): the consumer and producer pages are mapped into
 * this process and records are read straight from shared memory, in the order the programs reserved
 * them, driven by the event loop (a libuv poll handle on the ring's fd from the native addon; a
 * documented timer fallback without it). Nothing blocks and nothing spins.
 *
 * Three forms: `for await (const ev of ring.events(codec))`, `ring.subscribe(handler)` (a callback per
 * record that allocates nothing) and `ring.read(handler)` (a synchronous drain). The kernel does not count
 * records a program could not reserve: count `bpf_ringbuf_output`/`bpf_ringbuf_reserve` failures in
 * the program. Memory is mapped on first read; `close()` (or `await using`) ends any iterator, unmaps and
 * closes the reader's own fd.
 *
 * Equivalent to: libbpf's `ring_buffer__new` + `ring_buffer__poll`.
 *
 * @example Following a program's events
 * ```ts
 * import { RingBuf, struct, ipv4, u32 } from '@datapath/bpf-maps';
 * declare const ringFd: number;
 * await using ring = RingBuf.fromFd(ringFd);
 * for await (const ev of ring.events(struct({ saddr: ipv4, daddr: ipv4, len: u32, seq: u32 }))) {
 *   console.log(`${ev.saddr} -> ${ev.daddr} ${ev.len} bytes`);
 * }
 * ```
 */
export class RingBuf extends EventReader {
  /** Always `ringBuf`. */
  readonly kind = 'ringBuf' as const;
  /** The map fd given to {@link RingBuf.fromFd} (the reader reads through its own duplicate). */
  readonly fd: number;
  /** Kernel-wide map id. */
  readonly id: number;
  /** Map name. */
  readonly name: string;
  /** Ring size in bytes (the map's `max_entries`). */
  readonly maxEntries: number;
  readonly #owned: boolean;
  readonly #interval: number | undefined;
  #fd = -1;
  #maps: Mapping[] = [];
  #cursor: RingCursor | undefined;
  #watcher: FdWatcher | undefined;
  /** Each codec's decoder bound to the mapped ring (typed-array reads where the struct allows). */
  #decoders = new WeakMap<object, (o: number) => unknown>();

  /** @internal */
  constructor(fd: number, info: MapInfo, options: RingBufOptions) {
    super();
    this.fd = fd;
    this.id = info.id;
    this.name = info.name;
    this.maxEntries = info.maxEntries;
    this.#owned = options.owned ?? false;
    this.#interval = options.fallbackIntervalMs;
  }

  /**
   * Wraps a ring buffer map fd (from a loader, a pin or `bpf_map_create`). Nothing is mapped until the
   * first read.
   *
   * @throws {@link BpfError} `Incompatible` when `fd` is a map of another type, `BadFd` when it is closed
   * or not a BPF map, `InvalidArgument` for a bad `fallbackIntervalMs` (before any system call).
   * @example
   * ```ts
   * import { RingBuf } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const ring = RingBuf.fromFd(fd);
   * console.log(ring.maxEntries);
   * ring.close();
   * ```
   */
  static fromFd(fd: number, options: RingBufOptions = {}): RingBuf {
    const op = 'RingBuf.fromFd';
    if (!Number.isInteger(fd) || fd < 0)
      throw new BpfError('InvalidArgument', `${op}: fd must be a non-negative integer, got ${fd}`, { op });
    const iv = options.fallbackIntervalMs;
    if (iv !== undefined && !(iv > 0))
      throw new BpfError('InvalidArgument', `${op}: fallbackIntervalMs must be positive, got ${iv}`, { op });
    const info = mapInfoOfType(fd, 27, 'ringbuf', op);
    return new RingBuf(fd, info, options);
  }

  /** @internal */
  protected get label(): string {
    return `ring buffer ${this.name || this.id}`;
  }

  /** Records the producers discarded (skipped by the reader) so far. */
  get discarded(): number {
    return this.#cursor?.discarded ?? 0;
  }

  /** @internal */
  protected override checkCodec(size: number, op: string): void {
    if (size > this.maxEntries - HDR)
      throw new BpfError(
        'InvalidArgument',
        `${op}: codec of ${size} bytes cannot fit in a ${this.maxEntries}-byte ring`,
        {
          op,
          target: this.label,
        },
      );
  }

  /** @internal */
  protected openReader(wake: () => void): FdWatcher[] {
    const page = pageSize();
    const fd = fdDup(this.fd);
    try {
      const consumer = mmapFd(fd, { offset: 0, length: page, writable: true });
      this.#maps.push(consumer);
      const producer = mmapFd(fd, { offset: page, length: page + 2 * this.maxEntries });
      this.#maps.push(producer);
      this.#cursor = new RingCursor(consumer.buffer, producer.buffer, page, this.maxEntries);
      const opts = this.#interval === undefined ? {} : { fallbackIntervalMs: this.#interval };
      this.#watcher = watchFd(fd, wake, opts);
    } catch (err) {
      this.#fd = fd;
      this.releaseReader();
      throw err;
    }
    this.#fd = fd;
    return [this.#watcher];
  }

  /** @internal */
  protected drainRecords(handler: RecordHandler, max: number): number {
    return this.#cursor!.drain(handler, max);
  }

  /** @internal */
  protected override drainDecoded<T>(codec: Codec<T>, out: T[], max: number): number {
    const c = this.#cursor!;
    let decode = this.#decoders.get(codec) as ((o: number) => T) | undefined;
    if (decode === undefined) {
      const data = c.data;
      decode = structDecoderIn(codec, c.bytes) ?? ((o: number) => codec.decode(data, o));
      this.#decoders.set(codec, decode);
    }
    c.badLength = -1;
    const n = c.drainDecode(decode, codec.size, out, max);
    this.mismatch = c.badLength;
    return n;
  }

  /** @internal */
  protected override drainCopied(size: number, buf: RecordBuffer, max: number): number {
    const c = this.#cursor!;
    c.badLength = -1;
    const n = c.drainInPlace(size, buf, max);
    this.mismatch = c.badLength;
    return n;
  }

  /** @internal */
  protected override releaseCopied(): void {
    this.#cursor?.release();
  }

  /** @internal */
  protected override haltRecords(): void {
    if (this.#cursor !== undefined) this.#cursor.halted = true;
  }

  /** @internal */
  protected releaseReader(): void {
    this.#cursor = undefined;
    this.#decoders = new WeakMap();
    for (const m of this.#maps) m.close();
    this.#maps = [];
    if (this.#fd >= 0) fdClose(this.#fd);
    this.#fd = -1;
  }

  /** @internal */
  protected override onClosed(): void {
    if (this.#owned) fdClose(this.fd);
  }
}
