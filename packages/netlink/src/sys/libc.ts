// The only FFI in @datapath/netlink: the few libc calls Node lacks (netlink sockets, setns, unshare,
// mount, flock). Every wrapper is synchronous and turns a failure into a NetlinkError through errnoError.

import { Errno } from '@datapath/errors';
import koffi from 'koffi';
import { errnoError, NAMESPACE_PRIVILEGE } from '../errors.js';

const libc = koffi.load('libc.so.6');

type IntFn<A extends unknown[]> = (...args: A) => number;

const socketFn = libc.func('int socket(int domain, int type, int protocol)') as IntFn<
  [number, number, number]
>;
const bindFn = libc.func('int bind(int fd, void *addr, uint32_t len)') as IntFn<[number, Uint8Array, number]>;
const getsocknameFn = libc.func('int getsockname(int fd, void *addr, _Inout_ uint32_t *len)') as IntFn<
  [number, Uint8Array, number[]]
>;
const setsockoptFn = libc.func(
  'int setsockopt(int fd, int level, int name, void *val, uint32_t len)',
) as IntFn<[number, number, number, Uint8Array, number]>;
const sendtoFn = libc.func(
  'long sendto(int fd, void *buf, unsigned long len, int flags, void *addr, uint32_t alen)',
) as IntFn<[number, Uint8Array, number, number, Uint8Array, number]>;
const recvFn = libc.func('long recv(int fd, void *buf, unsigned long len, int flags)') as IntFn<
  [number, Uint8Array, number, number]
>;
const closeFn = libc.func('int close(int fd)') as IntFn<[number]>;
const setnsFn = libc.func('int setns(int fd, int nstype)') as IntFn<[number, number]>;
const unshareFn = libc.func('int unshare(int flags)') as IntFn<[number]>;
const mountFn = libc.func(
  'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, void *data)',
) as IntFn<[string | null, string, string | null, number, null]>;
const umount2Fn = libc.func('int umount2(const char *target, int flags)') as IntFn<[string, number]>;
const flockFn = libc.func('int flock(int fd, int op)') as IntFn<[number, number]>;
// ioctl(2) is variadic; NS_GET_NSTYPE takes no argument, so the fixed two-argument form is exact.
const ioctlFn = libc.func('int ioctl(int fd, unsigned long request)') as IntFn<[number, number]>;
const NS_GET_NSTYPE = 0xb703; // _IO(0xb7, 0x3), Linux ≥ 4.11
const NS_KINDS: Readonly<Record<number, string>> = {
  131072: 'mnt',
  33554432: 'cgroup',
  67108864: 'uts',
  134217728: 'ipc',
  268435456: 'user',
  536870912: 'pid',
  1073741824: 'net',
  128: 'time',
};

/** `CLONE_NEWNET`, the namespace type for setns/unshare. */
export const CLONE_NEWNET = 0x4000_0000;
/** Mount flags used by the named-namespace code. */
export const MS_BIND = 0x1000;
/** Recursive mount propagation change. */
export const MS_REC = 0x4000;
/** Shared mount propagation. */
export const MS_SHARED = 1 << 20;
/** `umount2` flag: lazy detach. */
export const MNT_DETACH = 2;

/** Socket constants for a netlink socket made elsewhere (socket.ts's async form). */
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
/** `recv` flag: return the real datagram length even when it was truncated. */
export const MSG_TRUNC = 0x20;

function check(r: number, op: string, syscall: string, target?: string, privilege?: string): number {
  if (r < 0) throw errnoError(koffi.errno(), { op, syscall, target, privilege });
  return r;
}

function intOpt(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}

/**
 * Opens a bound NETLINK_ROUTE-style socket with extended ACK, capped ACK and strict checking on. With
 * `create`, the socket comes from there (e.g. the addon's socket made inside another namespace: a
 * non-negative fd or `-errno`); otherwise it is made in the calling thread's namespace.
 */
export function netlinkSocket(
  protocol: number,
  op: string,
  create?: (domain: number, type: number, protocol: number) => number,
): { fd: number; portId: number } {
  let fd: number;
  if (create === undefined) {
    fd = check(socketFn(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol), op, 'socket(AF_NETLINK)');
  } else {
    fd = create(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0)
      throw errnoError(-fd, { op, syscall: 'setns+socket(AF_NETLINK)', privilege: NAMESPACE_PRIVILEGE });
  }
  try {
    const one = intOpt(1);
    check(setsockoptFn(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4), op, 'setsockopt(NETLINK_EXT_ACK)');
    check(setsockoptFn(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4), op, 'setsockopt(NETLINK_CAP_ACK)');
    // Strict checking is best effort: it only makes the kernel honour dump filters.
    setsockoptFn(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, one, 4);
    // A receive timeout, so a lost reply is a TimedOut error instead of a hung process.
    const tv = new Uint8Array(16);
    new DataView(tv.buffer).setBigInt64(0, 30n, true);
    check(setsockoptFn(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16), op, 'setsockopt(SO_RCVTIMEO)');
    const sa = new Uint8Array(12);
    new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
    check(bindFn(fd, sa, 12), op, 'bind(AF_NETLINK)');
    const len = [12];
    check(getsocknameFn(fd, sa, len), op, 'getsockname');
    return { fd, portId: new DataView(sa.buffer).getUint32(4, true) };
  } catch (err) {
    closeFn(fd);
    throw err;
  }
}

const KERNEL_ADDR = (() => {
  const sa = new Uint8Array(12);
  new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
  return sa;
})();

/** socket(2) in the calling thread's namespace; a fd or `-errno`. */
export function rawSocket(domain: number, type: number, protocol: number): number {
  const fd = socketFn(domain, type, protocol);
  return fd < 0 ? -koffi.errno() : fd;
}

/** bind(2) to a prepared sockaddr; 0 or `-errno`. */
export function rawBind(fd: number, sockaddr: Uint8Array): number {
  return bindFn(fd, sockaddr, sockaddr.byteLength) < 0 ? -koffi.errno() : 0;
}

/** setsockopt(2) of an int option; 0 or `-errno`. */
export function rawSetsockoptInt(fd: number, level: number, name: number, value: number): number {
  return setsockoptFn(fd, level, name, intOpt(value), 4) < 0 ? -koffi.errno() : 0;
}

/** close(2), ignoring errors (cleanup of a socket that never reached its owner). */
export function rawClose(fd: number): void {
  closeFn(fd);
}

/** Sends one datagram to the kernel (port 0). */
export function netlinkSend(fd: number, buf: Uint8Array, op: string): void {
  for (;;) {
    const r = sendtoFn(fd, buf, buf.byteLength, 0, KERNEL_ADDR, 12);
    if (r >= 0) return;
    const errno = koffi.errno();
    if (errno === Errno.EINTR) continue;
    throw errnoError(errno, { op, syscall: 'sendto(AF_NETLINK)' });
  }
}

/** Receives one datagram into `buf`; returns its full length (which exceeds the buffer when truncated). */
export function netlinkRecv(fd: number, buf: Uint8Array, op: string): number {
  for (;;) {
    const r = recvFn(fd, buf, buf.byteLength, MSG_TRUNC);
    if (r >= 0) return r;
    const errno = koffi.errno();
    if (errno === Errno.EINTR) continue;
    // The socket's SO_RCVTIMEO expired: EAGAIN here means no answer in time.
    throw errnoError(errno, { op, syscall: 'recv(AF_NETLINK)', meaning: { EAGAIN: 'TimedOut' } });
  }
}

/** close(2). */
export function closeFd(fd: number, op: string): void {
  check(closeFn(fd), op, 'close');
}

/** setns(2) for a network namespace fd: moves the calling thread (Node's main thread) into it. */
export function setns(fd: number, op: string, target?: string): void {
  check(setnsFn(fd, CLONE_NEWNET), op, 'setns(CLONE_NEWNET)', target, NAMESPACE_PRIVILEGE);
}

/**
 * The kind of namespace an nsfs fd names (`net`, `mnt`, `pid`, `user`, …), asked with the
 * NS_GET_NSTYPE ioctl; undefined when the fd is not a namespace (ENOTTY).
 */
export function namespaceKind(fd: number, op: string, target?: string): string | undefined {
  const r = ioctlFn(fd, NS_GET_NSTYPE);
  if (r < 0) {
    const errno = koffi.errno();
    if (errno === 25) return undefined; // ENOTTY: not an nsfs file
    throw errnoError(
      errno,
      target === undefined
        ? { op, syscall: 'ioctl(NS_GET_NSTYPE)' }
        : { op, syscall: 'ioctl(NS_GET_NSTYPE)', target },
    );
  }
  return NS_KINDS[r] ?? `unknown (${r})`;
}

/** unshare(CLONE_NEWNET): moves the calling thread into a brand-new network namespace. */
export function unshareNet(op: string): void {
  check(unshareFn(CLONE_NEWNET), op, 'unshare(CLONE_NEWNET)', undefined, NAMESPACE_PRIVILEGE);
}

/** mount(2). */
export function mount(
  src: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  op: string,
): void {
  check(mountFn(src, target, fstype, flags, null), op, 'mount', target, NAMESPACE_PRIVILEGE);
}

/** mount(2) that reports the errno instead of throwing (for "is it already a mount point" probing). */
export function tryMount(src: string | null, target: string, fstype: string | null, flags: number): number {
  return mountFn(src, target, fstype, flags, null) < 0 ? koffi.errno() : 0;
}

/** umount2(2); returns the errno instead of throwing. */
export function tryUmount2(target: string, flags: number): number {
  return umount2Fn(target, flags) < 0 ? koffi.errno() : 0;
}

/** flock(2), retrying on EINTR. */
export function flock(fd: number, operation: number, op: string, target?: string): void {
  for (;;) {
    if (flockFn(fd, operation) >= 0) return;
    const errno = koffi.errno();
    if (errno === Errno.EINTR) continue;
    throw errnoError(
      errno,
      target === undefined ? { op, syscall: 'flock' } : { op, syscall: 'flock', target },
    );
  }
}
