// The default handle (host namespace of the caller) and link-reference resolution.
import { Handle, type Netns } from '@datapath/netlink';
import { currentNetnsKey } from './sys/procfs.js';
import { bad } from './validate.js';

/**
 * Options every link, address, route and neighbour function takes: which namespace to act in, as a
 * `Netns` (a handle is opened in it for the call) or as a netlink `Handle` already bound to it (cheaper
 * for many calls). Default: a shared handle in the caller's namespace.
 */
export interface NetdevOptions {
  /** The network namespace to act in (a netlink socket is opened there for this call). */
  netns?: Netns | undefined;
  /** A handle bound to the namespace to act in (wins over `netns`). */
  handle?: Handle | undefined;
}

/** A link, by name or by index. */
export type LinkRef = string | number;

let shared: { handle: Handle; ns: string } | undefined;

/**
 * A handle in `netns`, its socket made in a setns window on this thread: a helper thread inside the
 * namespace (`Handle.open(netns)`) costs a thread start and, on a busy machine, a wait for a CPU.
 */
export function openIn(netns: Netns): Handle {
  return netns.run(() => Handle.open());
}
const keep = (handle: Handle) => ({ handle, [Symbol.dispose]: () => {} });

/**
 * The handle to act with: the one in `options`; else one opened in `options.netns` for this call; else a shared handle bound to the namespace the process
 * first called from, when the calling thread is still there; else (inside a `Netns.run` window) a
 * handle opened for this call only, closed on dispose, so no socket pins a namespace that may go away.
 */
export function leaseHandle(options: NetdevOptions | undefined): { handle: Handle } & Disposable {
  if (options?.handle) return keep(options.handle);
  if (options?.netns) return leaseHandleIn(options.netns);
  const ns = currentNetnsKey();
  if (shared === undefined) shared = { handle: Handle.open(), ns };
  if (shared.ns === ns) return keep(shared.handle);
  const handle = Handle.open();
  return { handle, [Symbol.dispose]: () => handle.close() };
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

/** A handle in `netns` (opened for this call, closed on dispose), or the caller-namespace lease. */
export function leaseHandleIn(netns: Netns | undefined): { handle: Handle } & Disposable {
  if (netns === undefined) return leaseHandle(undefined);
  const handle = openIn(netns);
  return { handle, [Symbol.dispose]: () => handle.close() };
}

let sharedAsync: { handle: Handle; ns: string } | undefined;

/**
 * Like {@link leaseHandleIn}, for the async forms: a second shared handle in the caller's namespace, so
 * async requests in flight never make a synchronous call on the shared handle wait (or be refused).
 */
/**
 * {@link leaseAsyncHandleIn} with the socket of another namespace made off the event loop
 * (`Handle.openAsync`).
 */
export async function leaseAsyncHandleInAsync(
  netns: Netns | undefined,
): Promise<{ handle: Handle } & Disposable> {
  if (netns === undefined) return leaseAsyncHandleIn(undefined);
  const handle = await Handle.openAsync(netns);
  return { handle, [Symbol.dispose]: () => handle.close() };
}

export function leaseAsyncHandleIn(netns: Netns | undefined): { handle: Handle } & Disposable {
  if (netns !== undefined) {
    const handle = openIn(netns);
    return { handle, [Symbol.dispose]: () => handle.close() };
  }
  const ns = currentNetnsKey();
  if (sharedAsync === undefined) sharedAsync = { handle: Handle.open(), ns };
  if (sharedAsync.ns === ns) return keep(sharedAsync.handle);
  const handle = Handle.open();
  return { handle, [Symbol.dispose]: () => handle.close() };
}
