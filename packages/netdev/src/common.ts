// The default handle (host namespace of the caller) and link-reference resolution.
import { Handle } from '@datapath/netlink';
import { bad } from './validate.js';

/** Options every netdev function takes: which handle (hence which namespace) to act in. */
export interface NetdevOptions {
  /** A handle bound to the namespace to act in; default: a shared handle in the caller's namespace. */
  handle?: Handle;
}

/** A link, by name or by index. */
export type LinkRef = string | number;

let shared: Handle | undefined;

/** The handle of `options`, or the shared one opened (once) in the namespace the caller is in. */
export function handleOf(options: NetdevOptions | undefined): Handle {
  if (options?.handle) return options.handle;
  shared ??= Handle.open();
  return shared;
}

/** Resolves a link reference to an ifindex (a lookup for names). */
export function indexOf(h: Handle, ref: LinkRef, op: string): number {
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref <= 0) bad(op, `invalid interface index ${ref}`);
    return ref;
  }
  if (typeof ref !== 'string' || ref === '' || Buffer.byteLength(ref) > 15) {
    bad(op, `invalid interface name ${JSON.stringify(ref)}`);
  }
  return h.linkGet({ name: ref }).index ?? 0;
}
