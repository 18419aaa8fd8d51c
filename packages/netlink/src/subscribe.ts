// Subscriptions: an async iterator of rtnetlink notifications, driven by the event loop.
//
// The socket is opened in the namespace of the handle's socket and joins its multicast groups before
// anything else, then (with `list: true`) dumps each kind on the same socket; the merge of the listing
// with the notifications that arrive meanwhile is the pure Listing of subscribe-events.ts. Reads never
// wait: the socket is watched by a libuv poll handle in Node's own loop (@datapath/libbpf's watchFd),
// each readable callback drains it with MSG_DONTWAIT under a time budget, and a full event queue stops
// the watcher (the kernel queue then fills, overruns, and the subscription resyncs).
import { Errno } from '@datapath/errors';
import type { Writer } from './codec/bytes.js';
import { encodeLink } from './codec/link.js';
import { decodeAck, Flag, frame, Msg, splitMessages } from './codec/message.js';
import { encodeNeigh } from './codec/neigh.js';
import { encodeRoute } from './codec/route.js';
import { errnoError, invalidArgument, NetlinkError } from './errors.js';
import { Netns } from './netns.js';
import { netnsFd } from './netns-fd.js';
import {
  DUMP_TYPE,
  GROUPS,
  KINDS,
  Listing,
  type NetlinkEvent,
  type SubscribeKind,
  toEvent,
} from './subscribe-events.js';
import { closeFd } from './sys/libc.js';
import {
  loadedWatcher,
  loadWatcher,
  openSubscriber,
  type SubscriberSocket,
  socketNetns,
  type Watcher,
} from './sys/multicast.js';

/** Options of {@link Handle.subscribe}. */
export interface SubscribeOptions {
  /** Report the current objects first (a listing closed by a `synced` event), then the changes. Default false. */
  list?: boolean | undefined;
  /** Closes the subscription when aborted (the iterator then ends). */
  signal?: AbortSignal | undefined;
  /**
   * The socket's receive buffer in bytes (`SO_RCVBUFFORCE`, or `SO_RCVBUF` capped by
   * `net.core.rmem_max` without `CAP_NET_ADMIN`); default 1 MiB, as iproute2. A burst larger than it
   * overruns (an `overrun` event, then a resync).
   */
  receiveBufferSize?: number | undefined;
  /**
   * How many events may wait for the consumer before the subscription stops reading the socket
   * (default 10000); a consumer that stays behind then sees an overrun and a resync instead of
   * unbounded memory.
   */
  highWaterMark?: number | undefined;
  /**
   * The changes reported once listed (default both): `['del']` reports removals only, and the notifications of
   * new or changed objects are dropped before they are decoded (a watcher of removals then pays next to nothing
   * for the busy churn of new links, addresses and routes). The listing itself, and the notifications that arrive
   * while it runs (which it needs to be exact), are whole either way.
   */
  actions?: readonly ('new' | 'del')[] | undefined;
}

/** The message types of new-or-changed notifications. */
const NEW_TYPES: ReadonlySet<number> = new Set([Msg.NEWLINK, Msg.NEWADDR, Msg.NEWROUTE, Msg.NEWNEIGH]);

const BUDGET_MS = 4;
const DEFAULT_RCVBUF = 1 << 20;
const DUMP_RETRIES = 50;

const DUMP_BODY: Record<SubscribeKind, (w: Writer) => void> = {
  link: (w) => encodeLink(w, {}, 'subscribe'),
  addr: (w) => {
    w.u8(0).u8(0).u8(0).u8(0).u32(0);
  },
  route: (w) => encodeRoute(w, { family: 0, table: 0 }, 'subscribe'),
  neigh: (w) => encodeNeigh(w, { family: 0, index: 0 }, 'subscribe'),
};

/** Checks the arguments of a subscription before any system call. */
export function checkSubscribe(
  kinds: unknown,
  options: unknown,
  op: string,
): {
  kinds: SubscribeKind[];
  options: SubscribeOptions;
} {
  if (!Array.isArray(kinds) || kinds.length === 0)
    throw invalidArgument(op, `kinds must be a non-empty array of ${KINDS.map((k) => `'${k}'`).join(', ')}`);
  for (const k of kinds)
    if (!KINDS.includes(k as SubscribeKind)) throw invalidArgument(op, `unknown kind ${JSON.stringify(k)}`);
  if (options === null || typeof options !== 'object') throw invalidArgument(op, 'options must be an object');
  const o = options as SubscribeOptions;
  if (o.list !== undefined && typeof o.list !== 'boolean')
    throw invalidArgument(op, 'list must be a boolean');
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    throw invalidArgument(op, 'signal must be an AbortSignal');
  const rb = o.receiveBufferSize;
  if (rb !== undefined && (!Number.isInteger(rb) || rb <= 0 || rb > 0x7fff_ffff))
    throw invalidArgument(op, `receiveBufferSize must be a positive integer, got ${rb}`);
  const hwm = o.highWaterMark;
  if (hwm !== undefined && (!Number.isInteger(hwm) || hwm <= 0))
    throw invalidArgument(op, `highWaterMark must be a positive integer, got ${hwm}`);
  const acts = o.actions;
  if (
    acts !== undefined &&
    (!Array.isArray(acts) || acts.length === 0 || acts.some((a) => a !== 'new' && a !== 'del'))
  )
    throw invalidArgument(op, `actions must be a non-empty array of 'new', 'del'`);
  return { kinds: KINDS.filter((k) => kinds.includes(k)), options: o };
}

/**
 * A live rtnetlink subscription in one network namespace: an async iterator of {@link NetlinkEvent}s.
 * Opened by {@link Handle.subscribe}; independent of the handle afterwards (it has its own socket).
 * `close()`, `break` out of `for await`, `await using` or the `signal` end it and release its fds.
 *
 * @example Printing link changes
 * ```ts
 * import { Handle } from '@datapath/netlink';
 * using h = Handle.open();
 * await using sub = h.subscribe(['link']);
 * for await (const ev of sub) if (ev.kind === 'link') console.log(ev.action, ev.link.name);
 * ```
 */
export class Subscription implements AsyncIterableIterator<NetlinkEvent>, AsyncDisposable {
  private readonly kindSet: ReadonlySet<SubscribeKind>;
  private readonly groups: number[];
  private sock: SubscriberSocket | undefined;
  private watcher: Watcher | undefined;
  private buf = new Uint8Array(1 << 16);
  private readonly queue: NetlinkEvent[] = [];
  private head = 0;
  private readonly waiters: {
    resolve: (r: IteratorResult<NetlinkEvent>) => void;
    reject: (e: unknown) => void;
  }[] = [];
  private failure: unknown;
  private closed = false;
  private paused = false;
  private readonly highWaterMark: number;
  private seq = Math.floor(Date.now() / 1000) & 0x7fff_ffff;
  // The listing in progress (kinds still to dump, the current dump's sequence number and retries).
  private listing: Listing | undefined;
  private pending: SubscribeKind[] = [];
  private dumpSeq = -1;
  private dumpKind: SubscribeKind | undefined;
  private interrupted = false;
  private retries = 0;
  // The finished listing that still filters the notifications queued when it ended.
  private window: Listing | undefined;
  private readonly onAbort: (() => void) | undefined;
  // Notifications left out once listed (SubscribeOptions.actions).
  private readonly skipNew: boolean;
  private readonly skipDel: boolean;

  /** @internal Use {@link Handle.subscribe}. */
  constructor(
    private readonly netns: Netns,
    kinds: readonly SubscribeKind[],
    private readonly options: SubscribeOptions,
  ) {
    this.kindSet = new Set(kinds);
    this.groups = kinds.flatMap((k) => GROUPS[k]);
    this.highWaterMark = options.highWaterMark ?? 10_000;
    this.skipNew = options.actions !== undefined && !options.actions.includes('new');
    this.skipDel = options.actions !== undefined && !options.actions.includes('del');
    const signal = options.signal;
    if (signal?.aborted) {
      this.closed = true;
      netns.close();
      return;
    }
    try {
      this.sock = this.openSocket();
      if (options.list) this.startListing('list');
    } catch (err) {
      this.close();
      throw err;
    }
    if (signal !== undefined) {
      this.onAbort = () => this.close();
      signal.addEventListener('abort', this.onAbort, { once: true });
    }
    const ready = loadedWatcher();
    if (ready !== undefined) this.watch(ready);
    else
      loadWatcher().then(
        (w) => {
          if (!this.closed) this.watch(w);
        },
        (err) => this.fail(err),
      );
  }

  /**
   * Ends the subscription: the iterator finishes (events not yet read are dropped), the socket and the
   * namespace fd are closed. Idempotent.
   *
   * @example Stopping after the first event
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * const sub = h.subscribe(['addr']);
   * for await (const ev of sub) { console.log(ev); break; }
   * sub.close();
   * ```
   */
  close(): void {
    if (this.closed && this.sock === undefined) return;
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    this.sock?.close();
    this.sock = undefined;
    this.netns.close();
    if (this.onAbort !== undefined) this.options.signal?.removeEventListener('abort', this.onAbort);
    this.queue.length = 0;
    this.head = 0;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  /** Same as {@link Subscription.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** This object: a subscription is its own iterator (iterate it once). */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next event; resolves `done` once the subscription is closed, rejects once if it failed. */
  next(): Promise<IteratorResult<NetlinkEvent>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head++]!;
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      } else if (this.head >= 4096) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      if (this.paused && this.queue.length - this.head <= this.highWaterMark / 2) this.resume();
      return Promise.resolve({ value, done: false });
    }
    if (this.failure !== undefined) {
      const err = this.failure;
      this.failure = undefined;
      return Promise.reject(err);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Closes the subscription (what `break` in `for await` calls). */
  async return(): Promise<IteratorResult<NetlinkEvent>> {
    this.close();
    return { value: undefined, done: true };
  }

  // Made on a short-lived thread inside the namespace (the native addon); without the addon, inside a
  // synchronous Netns.run window on this thread.
  private openSocket(): SubscriberSocket {
    const op = 'subscribe';
    const rcvbuf = this.options.receiveBufferSize ?? DEFAULT_RCVBUF;
    return (
      openSubscriber(this.groups, rcvbuf, op, netnsFd(this.netns, op)) ??
      this.netns.run(() => openSubscriber(this.groups, rcvbuf, op)!)
    );
  }

  private watch(watchFd: (fd: number, onReadable: () => void) => Watcher): void {
    const sock = this.sock;
    if (sock === undefined) return;
    try {
      const w = watchFd(sock.fd, () => this.drain());
      this.watcher = w;
      if (!this.paused) w.start();
    } catch (err) {
      this.fail(err);
    }
  }

  private push(ev: NetlinkEvent): void {
    const w = this.waiters.shift();
    if (w !== undefined) {
      w.resolve({ value: ev, done: false });
      return;
    }
    this.queue.push(ev);
    if (!this.paused && this.queue.length - this.head >= this.highWaterMark) {
      this.paused = true;
      this.watcher?.stop();
    }
  }

  private resume(): void {
    this.paused = false;
    try {
      this.watcher?.start();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w !== undefined) w.reject(err);
    else this.failure = err;
    this.close();
  }

  // Reads what the socket holds, for at most BUDGET_MS; the level-triggered watcher calls again.
  private drain(): void {
    const start = performance.now();
    try {
      for (let i = 1; !this.closed && !this.paused; i++) {
        const sock = this.sock!;
        const n = sock.recv(this.buf);
        if (n === -Errno.EAGAIN) {
          this.window = undefined; // the notifications queued when the listing ended are behind us
          return;
        }
        if (n === -Errno.EINTR) continue;
        if (n === -Errno.ENOBUFS) {
          this.overrun();
          return;
        }
        if (n < 0) throw errnoError(-n, { op: 'subscribe', syscall: 'recv(AF_NETLINK)' });
        if (n > this.buf.byteLength) {
          // A truncated datagram lost messages: as bad as an overrun.
          this.buf = new Uint8Array(n * 2);
          this.overrun();
          return;
        }
        this.receive(this.buf.subarray(0, n), sock.portId);
        if ((i & 7) === 0 && performance.now() - start > BUDGET_MS) return;
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private receive(datagram: Uint8Array, portId: number): void {
    const op = 'subscribe';
    for (const m of splitMessages(datagram, op)) {
      if (m.pid === portId) {
        // A reply to this socket's own dump request.
        if (this.listing === undefined || m.seq !== this.dumpSeq) continue;
        if ((m.flags & Flag.DUMP_INTR) !== 0) this.interrupted = true;
        if (m.type === Msg.DONE || m.type === Msg.ERROR) {
          const ack = decodeAck(m);
          if (ack.errno !== 0)
            throw errnoError(ack.errno, {
              op,
              syscall: `RTM_GET${this.dumpKind!.toUpperCase()} dump`,
              ...(ack.message === undefined ? {} : { kernelMessage: ack.message }),
            });
          this.dumpDone();
          continue;
        }
        const ev = toEvent(m, this.listing.source, this.kindSet, op);
        if (ev !== undefined) this.listing.addDumped(this.dumpKind!, ev);
        continue;
      }
      // Left out undecoded (SubscribeOptions.actions), unless a listing in progress needs it.
      if (this.listing === undefined && (NEW_TYPES.has(m.type) ? this.skipNew : this.skipDel)) continue;
      const ev = toEvent(m, 'notify', this.kindSet, op);
      if (ev === undefined) continue;
      if (this.listing !== undefined) this.listing.addNotification(ev);
      else if (this.window === undefined || this.window.filter(ev)) this.push(ev);
    }
  }

  private startListing(source: 'list' | 'resync'): void {
    this.listing = new Listing(source);
    this.window = undefined;
    this.pending = [...this.kindSet];
    this.retries = 0;
    this.dumpNext();
  }

  private dumpNext(): void {
    const kind = this.pending.shift()!;
    this.dumpKind = kind;
    this.interrupted = false;
    this.listing!.startKind(kind);
    this.seq = (this.seq + 1) & 0x7fff_ffff || 1;
    this.dumpSeq = this.seq;
    this.sock!.send(frame(DUMP_TYPE[kind], Flag.REQUEST | Flag.DUMP, this.seq, DUMP_BODY[kind]), 'subscribe');
  }

  private dumpDone(): void {
    if (this.interrupted) {
      if (++this.retries >= DUMP_RETRIES)
        throw new NetlinkError(
          'Interrupted',
          `subscribe: the ${this.dumpKind} dump was interrupted ${DUMP_RETRIES} times`,
          {
            op: 'subscribe',
          },
        );
      this.pending.unshift(this.dumpKind!);
      this.dumpNext();
      return;
    }
    if (this.pending.length > 0) {
      this.dumpNext();
      return;
    }
    const listing = this.listing!;
    this.listing = undefined;
    this.dumpSeq = -1;
    for (const ev of listing.finish()) this.push(ev);
    this.window = listing;
  }

  // Notifications were lost: start over on a fresh socket (joined first, so nothing after this point
  // is missed) and list everything again. One overrun event per resync.
  private overrun(): void {
    const resyncing = this.listing?.source === 'resync';
    if (!resyncing) this.push({ kind: 'overrun' });
    const old = this.sock;
    this.watcher?.close();
    this.watcher = undefined;
    this.listing = undefined;
    this.sock = this.openSocket();
    old?.close();
    this.startListing('resync');
    const w = loadedWatcher();
    if (w !== undefined) this.watch(w);
  }
}

/** Opens a subscription in the namespace of the socket `fd` (a handle's request socket). */
export function subscribeOn(
  fd: number | undefined,
  kinds: readonly SubscribeKind[],
  options: SubscribeOptions,
): Subscription {
  const op = 'subscribe';
  if (fd === undefined)
    throw new NetlinkError('NotSupported', `${op}: this handle's transport has no socket to subscribe with`, {
      op,
    });
  const nsfd = socketNetns(fd);
  if (nsfd < 0) throw errnoError(-nsfd, { op, syscall: 'ioctl(SIOCGSKNS)' });
  let netns: Netns;
  try {
    netns = Netns.open({ path: `/proc/self/fd/${nsfd}` });
  } finally {
    closeFd(nsfd, op);
  }
  try {
    return new Subscription(netns, kinds, options);
  } catch (err) {
    netns.close();
    throw err;
  }
}
