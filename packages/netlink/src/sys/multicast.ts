// The kernel side of subscriptions: a NETLINK_ROUTE socket that joins rtnetlink multicast groups,
// receives without blocking, and names its network namespace (SIOCGSKNS), plus the event-loop
// readiness watcher (the libuv poll handle of @datapath/libbpf's native addon, loaded on first use so
// that importing @datapath/netlink does not load libbpf). Every call returns a result or `-errno`, except
// the open, which throws a NetlinkError.
import koffi from 'koffi';
import { errnoError } from '../errors.js';
import { closeFd, MSG_TRUNC, netlinkSend } from './libc.js';
import { routeSocket } from './socket.js';

const libc = koffi.load('libc.so.6');
const setsockoptFn = libc.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)') as (
  fd: number,
  level: number,
  name: number,
  val: Uint8Array,
  len: number,
) => number;
const recvFn = libc.func('long recv(int fd, void *buf, unsigned long len, int flags)') as (
  fd: number,
  buf: Uint8Array,
  len: number,
  flags: number,
) => number;
const ioctlFn = libc.func('int ioctl(int fd, unsigned long req, long arg)') as (
  fd: number,
  req: number,
  arg: number,
) => number;

const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const MSG_DONTWAIT = 0x40;
const SIOCGSKNS = 0x894c;

function intOpt(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/** A subscriber socket: joined to its groups at open, read without blocking. */
export interface SubscriberSocket {
  /** The socket fd (for the readiness watcher). */
  readonly fd: number;
  /** Its netlink port id: dump replies carry it, notifications carry the sender's. */
  readonly portId: number;
  /** Sends one request datagram (a dump request). Throws a NetlinkError. */
  send(buf: Uint8Array, op: string): void;
  /** Receives one datagram without waiting: its full length (larger than `buf` when truncated), or `-errno` (`-EAGAIN` when empty, `-ENOBUFS` after an overrun). */
  recv(buf: Uint8Array): number;
  /** Closes the socket; idempotent. */
  close(): void;
}

/**
 * Opens a NETLINK_ROUTE socket and joins `groups` (RTNLGRP_* numbers) before returning, so every change
 * made after this call is queued on it. The socket is made in the namespace `nsFd` names, on a
 * short-lived thread of the native addon (the calling thread never moves), or in the calling thread's
 * namespace when `nsFd` is undefined; undefined when `nsFd` is given but the addon is missing (the
 * caller then opens it inside a `Netns.run` window). `receiveBuffer` (bytes) sets SO_RCVBUFFORCE
 * (SO_RCVBUF without CAP_NET_ADMIN).
 */
export function openSubscriber(
  groups: readonly number[],
  receiveBuffer: number | undefined,
  op: string,
  nsFd?: number,
): SubscriberSocket | undefined {
  const sock = routeSocket(op, nsFd);
  if (sock === undefined) return undefined;
  const { fd, portId } = sock;
  try {
    for (const g of groups) {
      if (setsockoptFn(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, intOpt(g), 4) < 0)
        throw errnoError(koffi.errno(), {
          op,
          syscall: 'setsockopt(NETLINK_ADD_MEMBERSHIP)',
          target: `group ${g}`,
        });
    }
    if (receiveBuffer !== undefined) {
      const v = intOpt(receiveBuffer);
      if (
        setsockoptFn(fd, SOL_SOCKET, SO_RCVBUFFORCE, v, 4) < 0 &&
        setsockoptFn(fd, SOL_SOCKET, SO_RCVBUF, v, 4) < 0
      )
        throw errnoError(koffi.errno(), { op, syscall: 'setsockopt(SO_RCVBUF)' });
    }
  } catch (err) {
    closeFd(fd, op);
    throw err;
  }
  let open = true;
  return {
    fd,
    portId,
    send: (buf, o) => netlinkSend(fd, buf, o),
    recv: (buf) => {
      const r = recvFn(fd, buf, buf.byteLength, MSG_TRUNC | MSG_DONTWAIT);
      return r < 0 ? -koffi.errno() : r;
    },
    close: () => {
      if (!open) return;
      open = false;
      closeFd(fd, 'subscriptionClose');
    },
  };
}

/** ioctl(SIOCGSKNS): a new fd on the network namespace a socket lives in, or `-errno`. */
export function socketNetns(fd: number): number {
  const r = ioctlFn(fd, SIOCGSKNS, 0);
  return r < 0 ? -koffi.errno() : r;
}

/** What the subscription needs from a readiness watcher (`FdWatcher` of @datapath/libbpf). */
export interface Watcher {
  start(): void;
  stop(): void;
  close(): void;
}

type WatchFd = (fd: number, onReadable: () => void) => Watcher;
let watchFdFn: WatchFd | undefined;

/**
 * Loads the readiness watcher on first use: `watchFd` of @datapath/libbpf, a libuv poll handle on the
 * fd (epoll in Node's own loop), or that package's documented timer fallback where its native addon is
 * missing for the running Node.
 */
export async function loadWatcher(): Promise<WatchFd> {
  if (watchFdFn === undefined) {
    const mod = await import('@datapath/libbpf');
    watchFdFn = (fd, onReadable) => mod.watchFd(fd, onReadable);
  }
  return watchFdFn;
}

/** The watcher factory when {@link loadWatcher} has completed once, else undefined. */
export function loadedWatcher(): WatchFd | undefined {
  return watchFdFn;
}
