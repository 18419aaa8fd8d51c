// Neighbours: iproute2-named functions over a netlink Handle.
import { type NeighMessage, NeighState } from '@datapath/netlink';
import { indexOf, type LinkRef, leaseHandle, type NetdevOptions } from './common.js';
import { bad, checkMac, parseIpText } from './validate.js';

/** Neighbour states by name. */
export type NeighStateName = 'permanent' | 'reachable' | 'stale' | 'noarp';

/** A neighbour entry as reported by the kernel. */
export interface Neigh {
  /** Interface index. */
  index: number;
  /** IP address. */
  address: string | undefined;
  /** Hardware address. */
  lladdr: string | undefined;
  /** `NUD_*` state bits. */
  state: number;
  /** 4 or 6. */
  family: 4 | 6;
}

const STATES: Record<NeighStateName, number> = {
  permanent: NeighState.PERMANENT,
  reachable: NeighState.REACHABLE,
  stale: NeighState.STALE,
  noarp: NeighState.NOARP,
};

/**
 * Adds (or, with `replace`, replaces) a neighbour entry.
 *
 * Equivalent to: `ip neigh add|replace ADDR lladdr MAC dev DEV nud STATE`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `AlreadyExists`, `NotFound`.
 * @example A static ARP entry
 * ```ts
 * import { neighAdd } from '@datapath/netdev';
 * neighAdd({ dev: 'eth0', address: '10.244.0.1', lladdr: '02:00:00:00:00:01' });
 * ```
 */
export function neighAdd(
  n: { dev: LinkRef; address: string; lladdr: string; state?: NeighStateName; replace?: boolean },
  options?: NetdevOptions,
): void {
  const op = 'neighAdd';
  const ip = parseIpText(n.address, op);
  const state = STATES[n.state ?? 'permanent'];
  if (state === undefined) bad(op, `unknown neighbour state ${JSON.stringify(n.state)}`);
  const lladdr = checkMac(n.lladdr, op);
  using lease = leaseHandle(options);
  const h = lease.handle;
  h.neighNew(
    { index: indexOf(h, n.dev, op), family: ip.family === 4 ? 2 : 10, dst: ip.address, lladdr, state },
    n.replace ? 'replace' : 'create',
  );
}

/**
 * Deletes a neighbour entry.
 *
 * Equivalent to: `ip neigh del ADDR dev DEV`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`.
 * @example Removing a static ARP entry
 * ```ts
 * import { neighDel } from '@datapath/netdev';
 * neighDel({ dev: 'eth0', address: '10.244.0.1' });
 * ```
 */
export function neighDel(n: { dev: LinkRef; address: string }, options?: NetdevOptions): void {
  const op = 'neighDel';
  const ip = parseIpText(n.address, op);
  using lease = leaseHandle(options);
  const h = lease.handle;
  h.neighDelete({ index: indexOf(h, n.dev, op), family: ip.family === 4 ? 2 : 10, dst: ip.address });
}

/**
 * Lists neighbour entries, optionally of one link and/or family.
 *
 * Equivalent to: `ip neigh show [dev DEV]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound` (no such link), `Interrupted`.
 * @example The ARP table of eth0
 * ```ts
 * import { neighList } from '@datapath/netdev';
 * console.log(neighList({ dev: 'eth0', family: 4 }));
 * ```
 */
export function neighList(filter: { dev?: LinkRef; family?: 4 | 6 } = {}, options?: NetdevOptions): Neigh[] {
  using lease = leaseHandle(options);
  const h = lease.handle;
  const index = filter.dev === undefined ? undefined : indexOf(h, filter.dev, 'neighList');
  return h
    .neighDump(filter.family === 4 ? 2 : filter.family === 6 ? 10 : 0)
    .filter((n) => (n.family === 2 || n.family === 10) && (index === undefined || n.index === index))
    .map(toNeigh);
}

/** Converts a decoded neighbour message to the public {@link Neigh} shape. */
export function toNeigh(n: NeighMessage): Neigh {
  return {
    index: n.index,
    address: n.dst,
    lladdr: n.lladdr,
    state: n.state ?? 0,
    family: n.family === 10 ? 6 : 4,
  };
}
