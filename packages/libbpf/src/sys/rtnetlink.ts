// A private rtnetlink dump, only for listing tc filters (libbpf 1.1 can query a filter only by handle and
// priority). The package does not depend on @datapath/netlink: this is the one raw netlink request it needs.
import koffi from 'koffi';
import { errnoError } from '../errors.js';
import { libc } from './libc.js';

type Fn<A extends unknown[], R> = (...args: A) => R;
const closeFn = libc.func('int close(int fd)') as Fn<[number], number>;

const socketFn = libc.func('int socket(int domain, int type, int protocol)') as Fn<
  [number, number, number],
  number
>;
const sendFn = libc.func('long send(int fd, const void *buf, size_t len, int flags)') as Fn<
  [number, Uint8Array, number, number],
  number
>;
const recvFn = libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)') as Fn<
  [number, Uint8Array, number, number],
  number
>;
const AF_NETLINK = 16;
const NETLINK_PRIVILEGE = 'CAP_NET_ADMIN, or root';
const SOCK_RAW_CLOEXEC = 3 | 0x80000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;

/**
 * Sends one rtnetlink dump request (a complete nlmsghdr + payload) and returns every reply message
 * (header included) until NLMSG_DONE. A kernel error reply throws the matching BpfError.
 */
export function rtnetlinkDump(request: Uint8Array, op: string, target: string): Uint8Array[] {
  const fd = socketFn(AF_NETLINK, SOCK_RAW_CLOEXEC, 0);
  if (fd < 0)
    throw errnoError(koffi.errno(), {
      op,
      syscall: 'socket(AF_NETLINK)',
      target,
      privilege: NETLINK_PRIVILEGE,
    });
  try {
    if (sendFn(fd, request, request.byteLength, 0) < 0)
      throw errnoError(koffi.errno(), { op, syscall: 'send(netlink)', target, privilege: NETLINK_PRIVILEGE });
    const out: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = recvFn(fd, buf, buf.byteLength, 0);
      if (n < 0)
        throw errnoError(koffi.errno(), {
          op,
          syscall: 'recv(netlink)',
          target,
          privilege: NETLINK_PRIVILEGE,
        });
      const view = new DataView(buf.buffer, 0, n);
      for (let at = 0; at + 16 <= n; ) {
        const len = view.getUint32(at, true);
        const type = view.getUint16(at + 4, true);
        if (len < 16 || at + len > n) return out;
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const err = -view.getInt32(at + 16, true);
          if (err === 0) return out;
          throw errnoError(err, { op, syscall: 'netlink', target, privilege: NETLINK_PRIVILEGE });
        }
        out.push(buf.slice(at, at + len));
        at += (len + 3) & ~3;
      }
    }
  } finally {
    closeFn(fd);
  }
}
