// The Linux Transport: a NETLINK_ROUTE socket opened through libc, in the calling thread's namespace or,
// through the native addon, inside another one without moving the calling thread.
import type { Transport } from '../conn.js';
import { errnoError } from '../errors.js';
import {
  AF_NETLINK,
  closeFd,
  netlinkRecv,
  netlinkSend,
  netlinkSocket,
  SOCK_CLOEXEC,
  SOCK_RAW,
} from './libc.js';
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
  const sock = routeSocket(op, nsFd);
  return sock === undefined ? undefined : transportOf(sock);
}

/**
 * {@link openRouteSocket} for a socket inside another namespace, with the short-lived thread started and
 * awaited on libuv's threadpool (entering a namespace can take milliseconds on a loaded machine): the event
 * loop goes on meanwhile. Undefined when the addon lacks the async form (the caller falls back).
 */
export async function openRouteSocketAsync(op: string, nsFd: number): Promise<Transport | undefined> {
  const start = nativeAddon?.socketInAsync;
  if (start === undefined) return undefined;
  const made = await new Promise<number>((resolve) =>
    start(nsFd, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE, resolve),
  );
  return transportOf(netlinkSocket(NETLINK_ROUTE, op, () => made));
}

function transportOf(sock: { fd: number; portId: number }): Transport {
  const addon = nativeAddon;
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
