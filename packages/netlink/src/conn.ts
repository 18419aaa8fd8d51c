// The request/response loop of one netlink socket: sequence numbers, ACKs, multi-part dumps with
// NLM_F_DUMP_INTR retry, extended-ACK errors. Works over any Transport, so unit tests can use a fake.

import type { Writer } from './codec/bytes.js';
import { decodeAck, Flag, frame, Msg, msgName, type RawMessage, splitMessages } from './codec/message.js';
import { errnoError, NetlinkError } from './errors.js';

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
}

const DUMP_RETRIES = 5;

// One receive buffer for every connection of this thread: allocating 64 KiB per handle costs more than
// the whole request. Safe because every receive is synchronous and copies its messages out at once.
let shared = new Uint8Array(1 << 16);

/** A netlink connection: numbers requests and matches replies. Not thread-safe (nothing in Node is). */
export class Conn {
  private seq: number;
  private closed = false;

  constructor(private readonly transport: Transport) {
    this.seq = Math.floor(Date.now() / 1000) & 0x7fff_ffff;
  }

  /** Closes the transport; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
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
    this.ensureOpen(op);
    const seq = this.nextSeq();
    this.transport.send(frame(type, flags | Flag.REQUEST | Flag.ACK, seq, body), op);
    const out: RawMessage[] = [];
    for (;;) {
      for (const m of this.receive(op)) {
        if (m.seq !== seq) continue; // a stale reply of an earlier, abandoned request
        if (m.type === Msg.ERROR) {
          const ack = decodeAck(m);
          if (ack.errno === 0) return out;
          throw this.kernelError(ack, type, op, target);
        }
        if (m.type === Msg.DONE || m.type === Msg.NOOP) continue;
        out.push(m);
      }
    }
  }

  /** Sends a dump request and returns every message of the dump, retrying when it was interrupted. */
  dump(type: number, body: (w: Writer) => void, op: string): RawMessage[] {
    this.ensureOpen(op);
    for (let attempt = 0; ; attempt++) {
      const seq = this.nextSeq();
      this.transport.send(frame(type, Flag.REQUEST | Flag.DUMP, seq, body), op);
      const out: RawMessage[] = [];
      let interrupted = false;
      let done = false;
      while (!done) {
        for (const m of this.receive(op)) {
          if (m.seq !== seq) continue;
          if ((m.flags & Flag.DUMP_INTR) !== 0) interrupted = true;
          if (m.type === Msg.DONE) {
            const ack = decodeAck(m);
            if (ack.errno !== 0) throw this.kernelError(ack, type, op);
            done = true;
            break;
          }
          if (m.type === Msg.ERROR) {
            const ack = decodeAck(m);
            if (ack.errno !== 0) throw this.kernelError(ack, type, op);
            done = true;
            break;
          }
          out.push(m);
        }
      }
      if (!interrupted) return out;
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
  }

  private ensureOpen(op: string): void {
    if (this.closed) throw new NetlinkError('BadFd', `${op}: the netlink handle is closed`, { op });
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
    return splitMessages(shared.slice(0, n), op).filter(
      (m) => m.pid === this.transport.portId || m.pid === 0,
    );
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
