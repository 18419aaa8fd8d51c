import { BpfError, type FdWatcher, type MapInfo, mapInfo } from '@datapath/libbpf';
import type { Codec, StructCodec, StructFields, StructType } from './codec.js';
import { checkViewCodec, type RecordBatch, type RecordBuffer, ViewState } from './views.js';

/**
 * The info of the map behind `fd`, checked to be of `type` (`name` is the type's name in messages): the one
 * check every reader's `fromFd` makes before it maps anything.
 *
 * @throws {@link BpfError} with the kernel's code when `fd` is not a BPF map, `Incompatible` for another map type.
 */
export function mapInfoOfType(fd: number, type: number, name: string, op: string): MapInfo {
  let info: MapInfo;
  try {
    info = mapInfo(fd);
  } catch (err) {
    if (err instanceof BpfError)
      throw new BpfError(err.code, `${op}: fd ${fd} is not a BPF map`, { op, cause: err });
    throw err;
  }
  if (info.type !== type)
    throw new BpfError(
      'Incompatible',
      `${op}: fd ${fd} is a map of type ${info.type}, expected ${name} (${type})`,
      {
        op,
        target: info.name,
      },
    );
  return info;
}

/**
 * Called once per record by the batch forms ({@link EventReader.read}, {@link EventReader.subscribe}):
 * the record is `length` bytes at `offset` of `view`. `view` is the reader's shared memory (or, for a
 * perf record that wraps the end of its ring, a reused scratch buffer): read what you need during the
 * call and keep no reference to it. `cpu` is the CPU whose perf ring held the record (-1 for a ring buffer).
 */
export type RecordHandler = (view: DataView, offset: number, length: number, cpu: number) => void;

/** Options of {@link EventReader.events}. */
export interface EventsOptions {
  /**
   * Records decoded per drain at most (default 1024; for {@link EventReader.batches}, the largest array):
   * bounds the memory an iterator holds. However many records wait, an iterator lets the event loop run
   * (a `setImmediate`) after about a millisecond of draining and consuming within one loop turn.
   */
  batch?: number;
}

/** Options of {@link EventReader.subscribe}. */
export interface SubscribeOptions {
  /**
   * Records handled per wake-up at most (default 16384): under a sustained flood the handler returns to
   * the event loop at least this often; the rest are handled on the next loop turn.
   */
  max?: number;
  /**
   * Called with an error thrown by the handler; the subscription is closed first. Without it the error
   * is rethrown asynchronously (an uncaught exception, like an `EventEmitter` error without a listener).
   */
  onError?: (err: unknown) => void;
}

/** A running {@link EventReader.subscribe}; `close()` (or `using`) stops it. */
export interface EventSubscription extends Disposable {
  /** Stops calling the handler (idempotent). */
  close(): void;
}

type State = 'idle' | 'iterating' | 'subscribed' | 'closed';

/**
 * How long (ms) an iterator keeps draining and handing out records within one turn of the event loop
 * before it lets the loop run (a setImmediate): bounds the event-loop delay a flood of records causes.
 */
const TURN_BUDGET_MS = 1;

/**
 * What the ring buffer and perf buffer readers share: lazily opened shared memory, readiness through
 * the event loop (`watchFd` watchers from `@datapath/libbpf`, started only while someone waits), the async iterator and
 * the batch forms. One consumer at a time: an iterator or a subscription.
 */
export abstract class EventReader implements AsyncDisposable, Disposable {
  #state: State = 'idle';
  #watchers: FdWatcher[] | undefined;
  #running = false;
  #draining = 0;
  #onReadable: (() => void) | undefined;
  #endIterator: (() => void) | undefined;
  /** @internal Set by close(). */
  protected halted = false;

  /** @internal Maps memory and creates the (stopped) watchers; each calls `wake` when readable. */
  protected abstract openReader(wake: () => void): FdWatcher[];
  /** @internal Hands up to `max` waiting records to `handler`; no system call. */
  protected abstract drainRecords(handler: RecordHandler, max: number): number;
  /**
   * @internal Decodes up to `max` waiting records with `codec` into `out` and returns how many it
   * consumed; a record whose length the codec does not match is consumed and its length left in
   * {@link EventReader.mismatch} (the ring buffer's override stops there). Readers override it with a
   * loop without a handler call per record; this default goes through {@link EventReader.drainRecords}.
   */
  protected drainDecoded<T>(codec: Codec<T>, out: T[], max: number): number {
    this.mismatch = -1;
    return this.drainRecords((view, off, len) => {
      if (this.recordMatches(len, codec.size)) out.push(codec.decode(view, off));
      else if (this.mismatch < 0) this.mismatch = len;
    }, max);
  }
  /**
   * @internal Copies up to `max` waiting records of `size` bytes into `buf` (appending; `buf.offsets` says
   * where each starts) and returns how many it consumed; a record of another length is left in
   * {@link EventReader.mismatch}. This default copies record by record through
   * {@link EventReader.drainRecords}; the ring buffer copies each drain's span at once.
   */
  protected drainCopied(size: number, buf: RecordBuffer, max: number): number {
    this.mismatch = -1;
    let from: ArrayBufferLike | undefined;
    let src: Uint8Array = new Uint8Array(0);
    return this.drainRecords((view, off, len) => {
      if (!this.recordMatches(len, size)) {
        if (this.mismatch < 0) this.mismatch = len;
        return;
      }
      if (view.buffer !== from) {
        from = view.buffer;
        src = new Uint8Array(from);
      }
      const at = buf.used;
      buf.reserve(at + size, buf.length + 1);
      const s = view.byteOffset + off;
      buf.bytes.set(src.subarray(s, s + size), at);
      buf.offsets[buf.length++] = at;
      buf.used = at + size;
    }, max);
  }
  /**
   * @internal The consumer is done with the records the last {@link EventReader.drainCopied} handed out (the
   * ring buffer hands them out in place and releases them only now). Default: nothing to do (copied).
   */
  protected releaseCopied(): void {}
  /** @internal The record length that stopped the last {@link EventReader.drainDecoded}, or -1. */
  protected mismatch = -1;
  /** @internal Unmaps memory and closes the reader's fds. */
  protected abstract releaseReader(): void;
  /** @internal A name for messages. */
  protected abstract get label(): string;

  /** Whether {@link EventReader.close} was called. */
  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** @internal */
  protected checkOpen(op: string): void {
    if (this.#state === 'closed')
      throw new BpfError('BadFd', `${op}: ${this.label} reader is closed`, { op, target: this.label });
  }

  #ensure(op: string): void {
    this.checkOpen(op);
    if (this.#watchers === undefined) {
      this.#watchers = this.openReader(() => this.#onReadable?.());
    }
  }

  #claim(op: string, next: State): void {
    this.#ensure(op);
    if (this.#state !== 'idle')
      throw new BpfError('Busy', `${op}: ${this.label} already has a consumer (${this.#state})`, {
        op,
        target: this.label,
      });
    this.#state = next;
  }

  #watch(on: boolean): void {
    if (this.#watchers === undefined || this.#running === on) return;
    this.#running = on;
    for (const w of this.#watchers) on ? w.start() : w.stop();
  }

  #drain(handler: RecordHandler, max: number): number {
    this.#draining++;
    try {
      return this.drainRecords(handler, max);
    } finally {
      this.#draining--;
      if (this.#draining === 0 && this.#state === 'closed') this.#release();
    }
  }

  /**
   * Hands every record waiting now (up to `max`) to `handler` and returns how many: a synchronous drain
   * of shared memory, no system call, no allocation (like libbpf's `ring_buffer__consume`).
   *
   * @throws {@link BpfError} `BadFd` after close, `Busy` while an iterator or subscription consumes.
   * @example Draining what is there
   * ```ts
   * import type { RingBuf } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * let bytes = 0;
   * ring.read((_view, _off, len) => { bytes += len; });
   * ```
   */
  read(handler: RecordHandler, max = Number.POSITIVE_INFINITY): number {
    this.#claim('read', 'idle');
    return this.#drain(handler, max);
  }

  /**
   * Calls `handler` for every record as records arrive, driven by the event loop (the batch form:
   * nothing is allocated per record). Runs until the subscription or the reader is closed.
   *
   * @throws {@link BpfError} `BadFd` after close, `Busy` while another consumer is active.
   * @example Counting records without allocating
   * ```ts
   * import type { RingBuf } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * let n = 0;
   * using sub = ring.subscribe((view, off) => { if (view.getUint8(off) === 1) n++; });
   * ```
   */
  subscribe(handler: RecordHandler, options: SubscribeOptions = {}): EventSubscription {
    const max = options.max ?? 16_384;
    if (!(max >= 1))
      throw new BpfError('InvalidArgument', `subscribe: max must be at least 1, got ${max}`, {
        op: 'subscribe',
      });
    this.#claim('subscribe', 'subscribed');
    let active = true;
    const stop = () => {
      if (!active) return;
      active = false;
      this.#onReadable = undefined;
      this.#watch(false);
      if (this.#state === 'subscribed') this.#state = 'idle';
    };
    this.#onReadable = () => {
      try {
        this.#drain(handler, max);
      } catch (err) {
        stop();
        if (options.onError !== undefined) options.onError(err);
        else
          queueMicrotask(() => {
            throw err;
          });
      }
    };
    this.#endIterator = stop;
    this.#watch(true);
    // Records already waiting are handled on the next loop turn (a level-triggered watcher fires at once).
    return { close: stop, [Symbol.dispose]: stop };
  }

  /**
   * The records as an async iterator, decoded with `codec` (whose size must equal every record's
   * length), or as copied bytes without one. Reads are driven by the event loop; the iterator ends
   * when the reader is closed (or on `break`). A record of another length fails the iteration with
   * `Incompatible` (that record is consumed). One promise per record: for the highest rates iterate
   * {@link EventReader.batches} instead (the same records, an array per wake-up).
   *
   * @throws {@link BpfError} `InvalidArgument` for a codec without a positive size or larger than the
   * ring (before any system call), `BadFd` after close, `Busy` while another consumer is active.
   * @example Decoding fixed-size records
   * ```ts
   * import { type RingBuf, ipv4, struct, u32 } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * const pkt = struct({ saddr: ipv4, daddr: ipv4, len: u32, pad: u32 });
   * for await (const ev of ring.events(pkt)) console.log(ev.saddr, '->', ev.daddr, ev.len);
   * ```
   */
  events(): AsyncIterableIterator<Uint8Array>;
  events<T>(codec: Codec<T>, options?: EventsOptions): AsyncIterableIterator<T>;
  events<T>(codec?: Codec<T>, options: EventsOptions = {}): AsyncIterableIterator<T | Uint8Array> {
    return this.#iterate('events', codec, options, 'events') as AsyncIterableIterator<T | Uint8Array>;
  }

  /**
   * The records as an async iterator of arrays: each step yields every record decoded since the last
   * one (at most `batch`, never empty), in order, as a new array the caller may keep. The same reads,
   * codec checks and end as {@link EventReader.events}, with one promise per batch instead of one per
   * record: the form to use above a million records a second.
   *
   * @throws {@link BpfError} `InvalidArgument` for a codec without a positive size or larger than the
   * ring (before any system call), `BadFd` after close, `Busy` while another consumer is active.
   * @example Decoding records a batch at a time
   * ```ts
   * import { type RingBuf, ipv4, struct, u32 } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * const pkt = struct({ saddr: ipv4, daddr: ipv4, len: u32, pad: u32 });
   * for await (const batch of ring.batches(pkt)) for (const ev of batch) console.log(ev.saddr, ev.len);
   * ```
   */
  batches(): AsyncIterableIterator<Uint8Array[]>;
  batches<T>(codec: Codec<T>, options?: EventsOptions): AsyncIterableIterator<T[]>;
  batches<T>(codec?: Codec<T>, options: EventsOptions = {}): AsyncIterableIterator<(T | Uint8Array)[]> {
    return this.#iterate('batches', codec, options, 'batches') as AsyncIterableIterator<(T | Uint8Array)[]>;
  }

  /**
   * The records a batch at a time, read in place: each step yields a {@link RecordBatch} whose records
   * are {@link RecordView}s, the struct's fields as properties that decode on access, through one view
   * object the batch moves from record to record. Nothing is allocated or copied per record: a ring
   * buffer's records are read where the producer wrote them, and the ring space they occupy is released
   * only when the iterator takes its next step (or ends), so a consumer that holds a batch for long makes
   * producers fail to reserve (a perf buffer's records are copied out at once, into a buffer the iterator
   * reuses). This is the fastest way to read decoded fields. A batch and its view are valid until the
   * iterator's next step; keep a record with `view.toObject()` (or the batch with `toArray()`); once the
   * iterator has ended a kept view throws on every field. The same reads, codec checks and end as
   * {@link EventReader.batches}.
   *
   * @throws {@link BpfError} `InvalidArgument` for a codec not made by `struct()` or larger than the ring
   * (before any system call), `BadFd` after close, `Busy` while another consumer is active.
   * @example Reading fields in place, keeping some records
   * ```ts
   * import { type RingBuf, struct, u32 } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * const pkt = struct({ saddr: u32, daddr: u32, len: u32, drop: u32 });
   * const drops: { saddr: number; daddr: number; len: number; drop: number }[] = [];
   * for await (const batch of ring.views(pkt))
   *   for (const ev of batch) if (ev.drop !== 0) drops.push(ev.toObject());
   * ```
   */
  views<F extends StructFields>(
    codec: StructCodec<F>,
    options: EventsOptions = {},
  ): AsyncIterableIterator<RecordBatch<StructType<F>>> {
    return this.#iterate('views', codec, options, 'views') as AsyncIterableIterator<
      RecordBatch<StructType<F>>
    >;
  }

  // The iterator behind events() (one record per step) and batches() (one array per step). Records are
  // decoded into a queue by synchronous drains of shared memory; a drain runs when the queue is empty and
  // the consumer asks for more, as long as this turn of the event loop has run less than TURN_BUDGET_MS
  // since it began (a watcher wake-up or a setImmediate); past that, the next drain waits for a
  // setImmediate, so a consumer that keeps up with a flood still lets timers and I/O run every
  // millisecond or so. With nothing to read it waits on the watcher (epoll).
  #iterate<T>(
    op: string,
    codec: Codec<T> | undefined,
    options: EventsOptions,
    mode: 'events' | 'batches' | 'views',
  ): AsyncIterableIterator<unknown> {
    const batched = mode === 'batches';
    if (mode === 'views') {
      if (codec === undefined)
        throw new BpfError('InvalidArgument', `${op}: a struct() codec is required`, { op });
      checkViewCodec(codec, op);
    }
    if (codec !== undefined) {
      if (!Number.isInteger(codec.size) || codec.size <= 0 || typeof codec.decode !== 'function')
        throw new BpfError(
          'InvalidArgument',
          `${op}: codec must have a positive integer size, got ${codec.size}`,
          {
            op,
          },
        );
      this.checkCodec(codec.size, op);
    }
    const batch = options.batch ?? 1024;
    if (!Number.isInteger(batch) || batch < 1)
      throw new BpfError('InvalidArgument', `${op}: batch must be a positive integer, got ${batch}`, { op });
    this.#claim(op, 'iterating');

    let queue: (T | Uint8Array)[] = [];
    let head = 0;
    let failure: unknown;
    let ended = false;
    let waiter: { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void } | undefined;
    const label = this.label;
    // views(): the records of a step live in one reusable buffer until the consumer asks for the next step.
    const vs =
      mode === 'views' && codec !== undefined
        ? new ViewState(codec, label, op, Math.min(batch, 1024) * (codec.size + 8), Math.min(batch, 1024))
        : undefined;
    let handedOut = false;
    // Without a codec: each record as a copy of its bytes.
    const handler: RecordHandler = (view, off, len) => {
      queue.push(new Uint8Array(view.buffer.slice(view.byteOffset + off, view.byteOffset + off + len)));
    };
    const take: () => IteratorResult<unknown> | undefined = vs
      ? () => {
          if (vs.buf.length === 0) return undefined;
          handedOut = true;
          return { value: vs.batch(), done: false };
        }
      : batched
        ? () => {
            if (queue.length === 0) return undefined;
            const value = queue;
            queue = [];
            return { value, done: false };
          }
        : () => {
            if (head < queue.length) {
              const value = queue[head++]!;
              if (head === queue.length) {
                queue.length = 0;
                head = 0;
              }
              return { value, done: false };
            }
            return undefined;
          };
    const end = () => {
      if (ended) return;
      ended = true;
      if (vs !== undefined) {
        // The records handed out last are consumed; the view no longer reads the reader's memory.
        vs.retire();
        vs.detach();
        this.releaseCopied();
      }
      this.#onReadable = undefined;
      this.#endIterator = undefined;
      this.#watch(false);
      if (this.#state === 'iterating') this.#state = 'idle';
      const w = waiter;
      waiter = undefined;
      w?.resolve({ value: undefined, done: true });
    };
    // When this turn of the event loop began for the iterator (a wake-up or a setImmediate).
    let turnStart = performance.now();
    const fill =
      codec === undefined
        ? () => {
            if (!ended && failure === undefined && !this.closed) this.#drain(handler, batch);
          }
        : () => {
            if (ended || failure !== undefined || this.closed) return;
            this.#draining++;
            try {
              if (vs !== undefined) this.drainCopied(codec.size, vs.buf, batch);
              else this.drainDecoded(codec, queue as T[], batch);
            } finally {
              this.#draining--;
              if (this.#draining === 0 && this.#state === 'closed') this.#release();
            }
            if (this.mismatch >= 0)
              failure ??= new BpfError(
                'Incompatible',
                `${op}: a ${label} record has ${this.mismatch} bytes, the codec ${codec.size}`,
                { op, target: label },
              );
          };
    this.#endIterator = end;
    this.#onReadable = () => {
      turnStart = performance.now();
      if (waiter === undefined) {
        this.#watch(false);
        return;
      }
      try {
        fill();
      } catch (err) {
        failure ??= err;
      }
      const r = take();
      if (r === undefined && failure === undefined) {
        this.#watch(true); // spurious, the fallback timer, or a setImmediate that found nothing: wait
        return;
      }
      const w = waiter;
      waiter = undefined;
      this.#watch(false);
      if (r !== undefined) w.resolve(r);
      else {
        const f = failure;
        failure = undefined;
        end();
        w.reject(f);
      }
    };
    const it: AsyncIterableIterator<unknown> = {
      next: () => {
        if (handedOut) {
          // The consumer is done with the batch it was given: its buffer takes the next records.
          handedOut = false;
          vs!.retire();
          this.releaseCopied();
        }
        const ready = take();
        if (ready !== undefined) return Promise.resolve(ready);
        if (failure !== undefined) {
          const f = failure;
          failure = undefined;
          end();
          return Promise.reject(f);
        }
        if (ended) return Promise.resolve({ value: undefined, done: true });
        if (waiter !== undefined)
          return Promise.reject(
            new BpfError('Busy', `${op}: next() called before the previous one settled`, {
              op,
              target: label,
            }),
          );
        const yieldNow = performance.now() - turnStart >= TURN_BUDGET_MS;
        if (!yieldNow) {
          try {
            fill();
          } catch (err) {
            end();
            return Promise.reject(err);
          }
          const now = take();
          if (now !== undefined) return Promise.resolve(now);
          if (failure !== undefined) return it.next();
        }
        return new Promise((resolve, reject) => {
          waiter = { resolve, reject };
          if (yieldNow) setImmediate(() => this.#onReadable?.());
          else this.#watch(true);
        });
      },
      return: () => {
        end();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** @internal Whether a record of `len` bytes is one a codec of `size` bytes decodes. */
  protected recordMatches(len: number, size: number): boolean {
    return len === size;
  }

  /** @internal Rejects a codec that can never match a record (before any system call). */
  protected checkCodec(_size: number, _op: string): void {}

  #release(): void {
    const ws = this.#watchers;
    this.#watchers = undefined;
    if (ws === undefined) return;
    for (const w of ws) w.close();
    this.releaseReader();
  }

  /**
   * Ends any iterator or subscription, unmaps the memory and closes the reader's fds (idempotent).
   *
   * @example
   * ```ts
   * import type { RingBuf } from '@datapath/bpf-maps';
   * declare const ring: RingBuf;
   * ring.close();
   * ```
   */
  close(): void {
    if (this.#state === 'closed') return;
    const end = this.#endIterator;
    this.#endIterator = undefined;
    end?.();
    this.#state = 'closed';
    this.halted = true;
    this.haltRecords();
    this.#onReadable = undefined;
    if (this.#draining === 0) this.#release();
    else if (this.#watchers !== undefined) for (const w of this.#watchers) w.stop();
    this.onClosed();
  }

  /** @internal Makes a drain in progress stop before its next record (close() from a handler). */
  protected haltRecords(): void {}

  /** @internal Closes what the reader owns beyond its memory (an owned map fd). */
  protected onClosed(): void {}

  /** Same as {@link EventReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as {@link EventReader.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
