// The Linux Transport: a NETLINK_ROUTE socket opened through libc.
import type { Transport } from '../conn.js';
import { closeFd, netlinkRecv, netlinkSend, netlinkSocket } from './libc.js';

const NETLINK_ROUTE = 0;

/** Opens a NETLINK_ROUTE socket in the calling thread's current network namespace. */
export function openRouteSocket(op: string): Transport {
  const { fd, portId } = netlinkSocket(NETLINK_ROUTE, op);
  let open = true;
  return {
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
}
