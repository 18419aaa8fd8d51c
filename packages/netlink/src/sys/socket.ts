// The Linux Transport: a NETLINK_ROUTE socket opened through libc, in the calling thread's namespace or,
// through the native addon, inside another one without moving the calling thread.
import type { Transport } from '../conn.js';
import { errnoError } from '../errors.js';
import { closeFd, netlinkRecv, netlinkSend, netlinkSocket } from './libc.js';
import { nativeAddon } from './native.js';

const NETLINK_ROUTE = 0;

/**
 * A bound NETLINK_ROUTE socket (see `netlinkSocket`): in the calling thread's namespace when `nsFd` is
 * undefined, otherwise made by the native addon on a short-lived thread inside that namespace; undefined
 * when `nsFd` is given but the addon is missing (the caller then uses a `Netns.run` window).
 */
export function routeSocket(op: string, nsFd?: number): { fd: number; portId: number } | undefined {
  if (nsFd === undefined) return netlinkSocket(NETLINK_ROUTE, op);
  const addon = nativeAddon;
  if (addon === undefined) return undefined;
  return netlinkSocket(NETLINK_ROUTE, op, (d, t, p) => addon.socketIn(nsFd, d, t, p));
}

/**
 * Opens a NETLINK_ROUTE socket in the namespace `nsFd` names (created on a short-lived thread inside it,
 * the calling thread never moves), or in the calling thread's current namespace when `nsFd` is undefined.
 * Returns undefined when `nsFd` is given but the addon is missing: the caller then creates it inside a
 * `Netns.run` window.
 */
export function openRouteSocket(op: string): Transport;
export function openRouteSocket(op: string, nsFd: number): Transport | undefined;
export function openRouteSocket(op: string, nsFd?: number): Transport | undefined {
  const addon = nativeAddon;
  const sock = routeSocket(op, nsFd);
  if (sock === undefined) return undefined;
  const { fd, portId } = sock;
  let open = true;
  const transport: Transport = {
    portId,
    fd,
    send: (buf, o) => netlinkSend(fd, buf, o),
    recv: (buf, o) => netlinkRecv(fd, buf, o),
    close: () => {
      if (!open) return;
      open = false;
      closeFd(fd, 'close');
    },
  };
  if (addon !== undefined) {
    transport.exchange = (request, seq, o) =>
      new Promise((resolve, reject) => {
        addon.exchange(
          fd,
          Buffer.from(request.buffer, request.byteOffset, request.byteLength),
          seq,
          (errno, datagrams) => {
            if (errno === 0 && datagrams !== undefined) resolve(datagrams);
            // EAGAIN: the socket's SO_RCVTIMEO expired, no answer in time; EMSGSIZE: a datagram over 1 MiB.
            else
              reject(
                errnoError(errno, {
                  op: o,
                  syscall: 'sendto+recv(AF_NETLINK)',
                  meaning: { EAGAIN: 'TimedOut' },
                }),
              );
          },
        );
      });
  }
  return transport;
}
