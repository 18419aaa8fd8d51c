// The fd of an open namespace handle, for the calls that act inside it without entering it.
import { NetlinkError } from './errors.js';
import type { Netns } from './netns.js';

/** `netns.fd`, or a `BadFd` error when the handle was closed. */
export function netnsFd(netns: Netns, op: string): number {
  if (netns.isClosed) throw new NetlinkError('BadFd', `${op}: the namespace handle is closed`, { op });
  return netns.fd;
}
