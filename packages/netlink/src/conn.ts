// The request/response loop of one netlink socket: sequence numbers, ACKs, multi-part dumps with
// NLM_F_DUMP_INTR retry, extended-ACK errors. Works over any Transport, so unit tests can use a fake.
// Async requests are queued per connection (one exchange on the socket at a time, so every reply belongs
// to the one request in flight) and each exchange waits on libuv's threadpool, not on the event loop.

import type { Writer } from './codec/bytes.js';
import { decodeAck, Flag, frame, Msg, msgName, type RawMessage, splitMessages } from './codec/message.js';
import { abortError, errnoError, NetlinkError } from './errors.js';
import { acquireSlot } from './sys/pool.js';

/** What the loop needs from a socket: the Linux one lives in sys/, tests may pass a fake. */
export interface Transport {
  /** The socket's netlink port id (replies carry it). */
  readonly portId: number;
  /** The socket's file descriptor, when it is a kernel socket (subscriptions open theirs in its namespace). */
  readonly fd?: number | undefined;
  /** Sends one datagram. */
  send(buf: Uint8Array, op: string): void;
  /** Receives one datagram into `buf`; returns its full length (larger than `buf` when truncated). */
  recv(buf: Uint8Array, op: string): number;
  /** Closes the socket. */
  close(): void;
  /**
   * Sends one request and receives its whole answer off the calling thread (the datagrams up to the one
   * holding `NLMSG_ERROR` or `NLMSG_DONE` for `seq`). Absent on transports that cannot: the async forms
   * then run {@link Transport.send} and {@link Transport.recv} on the calling thread.
   */
  exchange?(request: Uint8Array, seq: number, op: string): Promise<Uint8Array[]>;
}

/** Options every async request takes. */
export interface RequestOptions {
  /** Cancels the request while it is still queued (a request already handed to the kernel completes). */
  signal?: AbortSignal | undefined;
}

/** One request of a batch ({@link Conn.requestBatch}). */
export interface BatchItem {
  type: number;
  flags: number;
  body: (w: Writer) => void;
  op: string;
  target?: string | undefined;
}

/** What one request of a batch got: its reply messages, and the kernel's error when it failed. */
export interface BatchOutcome {
  replies: RawMessage[];
  error: NetlinkError | undefined;
}

const DUMP_RETRIES = 5;

// One receive buffer for every connection of this thread: allocating 64 KiB per handle costs more than
// the whole request. Safe because every receive is synchronous and copies its messages out at once.
let shared = new Uint8Array(1 << 16);

/** A netlink connection: numbers requests and matches replies. Not thread-safe (nothing in Node is). */
export class Conn {
  private seq: number;
  private closed = false;
  /** Async requests waiting for the socket, in order; the one running is not in here. */
  private readonly waiting: Array<{ start: () => void; fail: (err: unknown) => void }> = [];
  private running = false;

  constructor(private readonly transport: Transport) {
    this.seq = Math.floor(Date.now() / 1000) & 0x7fff_ffff;
  }

  /** Closes the transport; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.splice(0))
      w.fail(
        new NetlinkError('BadFd', 'the netlink handle was closed before the request ran', { op: 'close' }),
      );
    // An exchange on the threadpool still uses the fd: it is closed when that exchange ends.
    if (!this.running) this.transport.close();
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Sends a request and returns the reply messages (for a GET or an ECHO), after the kernel's ACK.
   * Throws the kernel's error, with its extended-ACK message, as a NetlinkError.
   */
  request(type: number, flags: number, body: (w: Writer) => void, op: string, target?: string): RawMessage[] {
    this.ensureSync(op);
    const seq = this.nextSeq();
    this.transport.send(frame(type, flags | Flag.REQUEST | Flag.ACK, seq, body), op);
    const out: RawMessage[] = [];
    for (;;) if (this.collectReply(this.receive(op), seq, out, type, op, target)) return out;
  }

  /** Sends a dump request and returns every message of the dump, retrying when it was interrupted. */
  dump(type: number, body: (w: Writer) => void, op: string): RawMessage[] {
    this.ensureSync(op);
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeq();
      this.transport.send(frame(type, Flag.REQUEST | Flag.DUMP, seq, body), op);
      const state = { out: [] as RawMessage[], interrupted: false };
      while (!this.collectDump(this.receive(op), seq, state, type, op));
      if (!state.interrupted) return state.out;
      this.checkRetries(attempt, type, op);
    }
  }

  /**
   * {@link Conn.request}, with the exchange queued behind this connection's other async requests and run
   * on libuv's threadpool: the event loop never waits for the kernel.
   */
  requestAsync(
    type: number,
    flags: number,
    body: (w: Writer) => void,
    op: string,
    target?: string,
    options: RequestOptions = {},
  ): Promise<RawMessage[]> {
    return this.enqueue(op, options.signal, async () => {
      const seq = this.nextSeq();
      const datagrams = await this.exchange(frame(type, flags | Flag.REQUEST | Flag.ACK, seq, body), seq, op);
      const out: RawMessage[] = [];
      for (const d of datagrams)
        if (this.collectReply(this.split(d, op), seq, out, type, op, target)) return out;
      throw new NetlinkError('Protocol', `${op}: the answer ended without an ACK`, { op });
    });
  }

  /** {@link Conn.dump}, queued and run on libuv's threadpool like {@link Conn.requestAsync}. */
  dumpAsync(
    type: number,
    body: (w: Writer) => void,
    op: string,
    options: RequestOptions = {},
  ): Promise<RawMessage[]> {
    return this.enqueue(op, options.signal, async () => {
      for (let attempt = 0; ; attempt++) {
        const seq = this.nextSeq();
        const datagrams = await this.exchange(frame(type, Flag.REQUEST | Flag.DUMP, seq, body), seq, op);
        const state = { out: [] as RawMessage[], interrupted: false };
        const done = datagrams.some((d) => this.collectDump(this.split(d, op), seq, state, type, op));
        if (!done) throw new NetlinkError('Protocol', `${op}: the dump ended without NLMSG_DONE`, { op });
        if (!state.interrupted) return state.out;
        this.checkRetries(attempt, type, op);
      }
    });
  }

  /**
   * Sends several requests in one datagram (the kernel runs them in order, each to its end, and
   * acknowledges each) and collects every request's replies and outcome: one system call and one wait
   * for the lot. A failing request does not stop the ones after it; its error is in its slot.
   */
  requestBatch(items: readonly BatchItem[]): BatchOutcome[] {
    const op = items[0]?.op ?? 'batch';
    this.ensureSync(op);
    const { request, first, last } = this.frameBatch(items);
    this.transport.send(request, op);
    const state = this.batchState(items);
    for (;;) if (this.collectBatch(this.receive(op), first, last, state, items)) return state.out;
  }

  /** {@link Conn.requestBatch}, queued and run on libuv's threadpool like {@link Conn.requestAsync}. */
  requestBatchAsync(items: readonly BatchItem[], options: RequestOptions = {}): Promise<BatchOutcome[]> {
    const op = items[0]?.op ?? 'batch';
    return this.enqueue(op, options.signal, async () => {
      const { request, first, last } = this.frameBatch(items);
      const datagrams = await this.exchange(request, last, op);
      const state = this.batchState(items);
      for (const d of datagrams)
        if (this.collectBatch(this.split(d, op), first, last, state, items)) return state.out;
      throw new NetlinkError('Protocol', `${op}: the batch's answer ended before its last ACK`, { op });
    });
  }

  private frameBatch(items: readonly BatchItem[]): { request: Uint8Array; first: number; last: number } {
    if (items.length === 0)
      throw new NetlinkError('InvalidArgument', 'batch: at least one request is needed', { op: 'batch' });
    // Consecutive sequence numbers (no wrap inside one batch), so a reply finds its request by offset.
    if (this.seq + items.length >= 0x7fff_ffff) this.seq = 0;
    const frames = items.map((it) =>
      frame(it.type, it.flags | Flag.REQUEST | Flag.ACK, this.nextSeq(), it.body),
    );
    const request = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0));
    let at = 0;
    for (const f of frames) {
      request.set(f, at);
      at += f.byteLength;
    }
    return { request, first: this.seq - items.length + 1, last: this.seq };
  }

  private batchState(items: readonly BatchItem[]): { out: BatchOutcome[]; acked: number } {
    return { out: items.map(() => ({ replies: [], error: undefined })), acked: 0 };
  }

  /** Files the messages of a batch's answer under their requests; true once every request is acknowledged. */
  private collectBatch(
    messages: RawMessage[],
    first: number,
    last: number,
    state: { out: BatchOutcome[]; acked: number },
    items: readonly BatchItem[],
  ): boolean {
    for (const m of messages) {
      if (m.seq < first || m.seq > last) continue;
      const i = m.seq - first;
      const slot = state.out[i]!;
      if (m.type === Msg.ERROR) {
        const ack = decodeAck(m);
        if (ack.errno !== 0) {
          const it = items[i]!;
          slot.error = this.kernelError(ack, it.type, it.op, it.target);
        }
        state.acked++;
        continue;
      }
      if (m.type === Msg.DONE || m.type === Msg.NOOP) continue;
      slot.replies.push(m);
    }
    return state.acked >= items.length;
  }

  /** Adds the replies to `seq` in `messages` to `out`; true once the ACK came (throws a kernel error). */
  private collectReply(
    messages: RawMessage[],
    seq: number,
    out: RawMessage[],
    type: number,
    op: string,
    target?: string,
  ): boolean {
    for (const m of messages) {
      if (m.seq !== seq) continue; // a stale reply of an earlier, abandoned request
      if (m.type === Msg.ERROR) {
        const ack = decodeAck(m);
        if (ack.errno === 0) return true;
        throw this.kernelError(ack, type, op, target);
      }
      if (m.type === Msg.DONE || m.type === Msg.NOOP) continue;
      out.push(m);
    }
    return false;
  }

  /** Adds the dump messages for `seq` to `state`; true at the end of the dump (throws a kernel error). */
  private collectDump(
    messages: RawMessage[],
    seq: number,
    state: { out: RawMessage[]; interrupted: boolean },
    type: number,
    op: string,
  ): boolean {
    for (const m of messages) {
      if (m.seq !== seq) continue;
      if ((m.flags & Flag.DUMP_INTR) !== 0) state.interrupted = true;
      if (m.type === Msg.DONE || m.type === Msg.ERROR) {
        const ack = decodeAck(m);
        if (ack.errno !== 0) throw this.kernelError(ack, type, op);
        return true;
      }
      state.out.push(m);
    }
    return false;
  }

  private checkRetries(attempt: number, type: number, op: string): void {
    if (attempt + 1 >= DUMP_RETRIES) {
      throw new NetlinkError(
        'Interrupted',
        `${op}: ${msgName(type)} dump interrupted ${DUMP_RETRIES} times`,
        {
          op,
          syscall: msgName(type),
        },
      );
    }
  }

  /** Runs `job` when the socket is free, this connection's earlier async requests done. */
  private enqueue<T>(op: string, signal: AbortSignal | undefined, job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.closed) {
        reject(new NetlinkError('BadFd', `${op}: the netlink handle is closed`, { op }));
        return;
      }
      if (signal?.aborted) {
        reject(abortError(op, signal));
        return;
      }
      const entry = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.running = true;
          job()
            .then(resolve, reject)
            .finally(() => {
              this.running = false;
              if (this.closed) this.transport.close();
              else this.waiting.shift()?.start();
            });
        },
        fail: (err: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortError(op, signal as AbortSignal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.running) this.waiting.push(entry);
      else entry.start();
    });
  }

  /** One exchange through the transport's threadpool path, or on this thread when it has none. */
  private async exchange(request: Uint8Array, seq: number, op: string): Promise<Uint8Array[]> {
    const ex = this.transport.exchange;
    if (ex === undefined) {
      this.transport.send(request, op);
      const out: Uint8Array[] = [];
      for (;;) {
        const n = this.transport.recv(shared, op);
        if (n > shared.byteLength) {
          shared = new Uint8Array(n * 2);
          throw new NetlinkError('TooBig', `${op}: netlink reply of ${n} bytes was truncated`, { op });
        }
        const d = shared.slice(0, n);
        out.push(d);
        if (this.split(d, op).some((m) => m.seq === seq && (m.type === Msg.ERROR || m.type === Msg.DONE)))
          return out;
      }
    }
    const release = await acquireSlot();
    try {
      return await ex.call(this.transport, request, seq, op);
    } finally {
      release();
    }
  }

  private ensureSync(op: string): void {
    if (this.closed) throw new NetlinkError('BadFd', `${op}: the netlink handle is closed`, { op });
    // A synchronous receive now could take the reply of the exchange running on the threadpool.
    if (this.running)
      throw new NetlinkError(
        'Busy',
        `${op}: async requests are in flight on this handle; await them, or use another handle for synchronous calls`,
        { op, reason: 'AsyncInFlight' },
      );
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) & 0x7fff_ffff || 1;
    return this.seq;
  }

  private receive(op: string): RawMessage[] {
    const n = this.transport.recv(shared, op);
    if (n > shared.byteLength) {
      // The datagram was truncated and is lost: grow the buffer for next time and report it.
      shared = new Uint8Array(n * 2);
      throw new NetlinkError('TooBig', `${op}: netlink reply of ${n} bytes was truncated`, { op });
    }
    return this.split(shared.slice(0, n), op);
  }

  private split(datagram: Uint8Array, op: string): RawMessage[] {
    return splitMessages(datagram, op).filter((m) => m.pid === this.transport.portId || m.pid === 0);
  }

  private kernelError(ack: { errno: number; message?: string }, type: number, op: string, target?: string) {
    return errnoError(ack.errno, {
      op,
      syscall: msgName(type),
      ...(target === undefined ? {} : { target }),
      ...(ack.message === undefined ? {} : { kernelMessage: ack.message }),
    });
  }
}
