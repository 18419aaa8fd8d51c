// Addresses: iproute2-named functions over a netlink Handle.
import { type AddressMessage, AddrFlag } from '@datapath/netlink';
import { indexOf, type LinkRef, leaseHandle, type NetdevOptions } from './common.js';
import { parseCidrText, parseIpText } from './validate.js';

/** Options of {@link addrAdd}. */
export interface AddrAddOptions extends NetdevOptions {
  /** IPv6: skip duplicate address detection (`nodad`), so the address is usable at once. */
  nodad?: boolean;
  /** Address scope: `global` (default), `link` or `host`. */
  scope?: 'global' | 'link' | 'host';
  /** Point-to-point peer address. */
  peer?: string;
  /** Do not create the prefix route (`noprefixroute`). */
  noPrefixRoute?: boolean;
}

/** An address as reported by the kernel. */
export interface Address {
  /** Interface index. */
  index: number;
  /** `ip/len`. */
  cidr: string;
  /** The address alone. */
  address: string;
  /** Prefix length. */
  prefixLen: number;
  /** 4 or 6. */
  family: 4 | 6;
  /** Scope number (0 global, 253 link, 254 host). */
  scope: number;
  /** `IFA_F_*` flags. */
  flags: number;
  /** Label (IPv4). */
  label: string | undefined;
}

const SCOPES = { global: 0, link: 253, host: 254 } as const;

/**
 * Adds an address to a link.
 *
 * Equivalent to: `ip addr add CIDR dev DEV [nodad] [scope S]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `AlreadyExists`, `NotFound` (no such link).
 * @example A /32 on a pod interface
 * ```ts
 * import { addrAdd } from '@datapath/netdev';
 * addrAdd('eth0', '10.244.1.5/32');
 * ```
 */
export function addrAdd(dev: LinkRef, cidr: string, options: AddrAddOptions = {}): void {
  const op = 'addrAdd';
  const c = parseCidrText(cidr, op, true, 'address');
  using lease = leaseHandle(options);
  const h = lease.handle;
  let flags = AddrFlag.PERMANENT;
  if (options.nodad) flags |= AddrFlag.NODAD;
  if (options.noPrefixRoute) flags |= AddrFlag.NOPREFIXROUTE;
  const m: AddressMessage = {
    index: indexOf(h, dev, op),
    prefixLen: c.prefixLen,
    local: c.address,
    address: options.peer === undefined ? c.address : parseIpText(options.peer, op, 'peer').address,
    flags,
    scope: SCOPES[options.scope ?? 'global'],
  };
  h.addrNew(m, 'create');
}

/**
 * Removes an address from a link.
 *
 * Equivalent to: `ip addr del CIDR dev DEV`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`.
 * @example Removing a pod address
 * ```ts
 * import { addrDel } from '@datapath/netdev';
 * addrDel('eth0', '10.244.1.5/32');
 * ```
 */
export function addrDel(dev: LinkRef, cidr: string, options?: NetdevOptions): void {
  const op = 'addrDel';
  const c = parseCidrText(cidr, op, true, 'address');
  using lease = leaseHandle(options);
  const h = lease.handle;
  h.addrDelete({ index: indexOf(h, dev, op), prefixLen: c.prefixLen, local: c.address });
}

/**
 * Lists addresses, optionally of one link and/or family.
 *
 * Equivalent to: `ip addr show [dev DEV]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound` (no such link), `Interrupted`.
 * @example The IPv4 addresses of eth0
 * ```ts
 * import { addrList } from '@datapath/netdev';
 * console.log(addrList({ dev: 'eth0', family: 4 }).map((a) => a.cidr));
 * ```
 */
export function addrList(filter: { dev?: LinkRef; family?: 4 | 6 } = {}, options?: NetdevOptions): Address[] {
  using lease = leaseHandle(options);
  const h = lease.handle;
  const index = filter.dev === undefined ? undefined : indexOf(h, filter.dev, 'addrList');
  return h
    .addrDump(filter.family === 4 ? 2 : filter.family === 6 ? 10 : 0)
    .filter((a) => index === undefined || a.index === index)
    .map(toAddress);
}

/** Converts a decoded address message to the public {@link Address} shape. */
export function toAddress(a: AddressMessage): Address {
  const address = a.local ?? a.address ?? '';
  return {
    index: a.index,
    cidr: `${address}/${a.prefixLen}`,
    address,
    prefixLen: a.prefixLen,
    family: a.family === 10 ? 6 : 4,
    scope: a.scope ?? 0,
    flags: a.flags ?? 0,
    label: a.label,
  };
}
