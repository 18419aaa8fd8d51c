// Routes: iproute2-named functions over a netlink Handle.
import {
  type Handle,
  type NewMode,
  type RouteMessage,
  RouteProtocol,
  RouteScope,
  RouteTable,
  RouteType,
} from '@datapath/netlink';
import { indexOf, type LinkRef, leaseHandle, type NetdevOptions } from './common.js';
import { bad, networkOf, parseCidrText, parseIpText } from './validate.js';

/** Route types by name. */
export type RouteTypeName = 'unicast' | 'local' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';

/** A route to add, replace or delete. */
export interface RouteSpec {
  /** Destination: `CIDR`, a bare IP (a host route), `default` (IPv4 unless `via` is IPv6) or `default6`. */
  dst: string;
  /** Gateway. */
  via?: string;
  /** Output device. */
  dev?: LinkRef;
  /** Preferred source address. */
  src?: string;
  /** Scope; default `link` for a route with a device and no gateway, otherwise `global`. */
  scope?: 'global' | 'link' | 'host';
  /** Route MTU (`mtu` metric). */
  mtu?: number;
  /** Table id, or `main` (default) / `local`. */
  table?: number | 'main' | 'local';
  /** Route type (default `unicast`). */
  type?: RouteTypeName;
  /** Metric / priority. */
  metric?: number;
  /** `rtm_protocol`; default `static` (4), as `ip route add`... uses `boot` (3); we mark ours static. */
  protocol?: number;
}

/** A route as reported by the kernel. */
export interface Route {
  /** `CIDR`, or `default`. */
  dst: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** Gateway. */
  via: string | undefined;
  /** Output interface index. */
  dev: number | undefined;
  /** Preferred source. */
  src: string | undefined;
  /** Scope number (0 global, 253 link, 254 host). */
  scope: number;
  /** Table id. */
  table: number;
  /** Type number (1 unicast, 2 local, …). */
  type: number;
  /** Protocol number (2 kernel, 3 boot, 4 static). */
  protocol: number;
  /** Metric. */
  metric: number | undefined;
  /** Route MTU. */
  mtu: number | undefined;
}

const TYPES: Record<RouteTypeName, number> = {
  unicast: RouteType.UNICAST,
  local: RouteType.LOCAL,
  blackhole: RouteType.BLACKHOLE,
  unreachable: RouteType.UNREACHABLE,
  prohibit: RouteType.PROHIBIT,
  throw: RouteType.THROW,
};
const SCOPES = { global: RouteScope.UNIVERSE, link: RouteScope.LINK, host: RouteScope.HOST } as const;

function toMessage(r: RouteSpec, op: string, forDelete: boolean, h: Handle): RouteMessage {
  if (r === null || typeof r !== 'object') bad(op, 'route must be an object');
  const via = r.via === undefined ? undefined : parseIpText(r.via, op, 'gateway');
  let family: 4 | 6;
  let dst: string | undefined;
  let dstLen: number;
  if (r.dst === 'default' || r.dst === 'default6') {
    family = r.dst === 'default6' ? 6 : (via?.family ?? 4);
    dstLen = 0;
  } else {
    const c = parseCidrText(r.dst, op, true, 'destination');
    if (networkOf(c) !== c.address) bad(op, `destination ${r.dst} has host bits set`, r.dst);
    family = c.family;
    dst = c.address;
    dstLen = c.prefixLen;
  }
  if (via && via.family !== family) bad(op, `gateway ${r.via} is not in the family of ${r.dst}`, r.dst);
  const type = TYPES[r.type ?? 'unicast'];
  if (type === undefined) bad(op, `unknown route type ${JSON.stringify(r.type)}`);
  const table =
    r.table === undefined || r.table === 'main'
      ? RouteTable.MAIN
      : r.table === 'local'
        ? RouteTable.LOCAL
        : r.table;
  if (!Number.isInteger(table) || table <= 0 || table > 0xffff_ffff) bad(op, `invalid table ${r.table}`);
  const m: RouteMessage = { family: family === 4 ? 2 : 10, dstLen, table };
  if (dst !== undefined) m.dst = dst;
  if (via) m.gateway = via.address;
  if (r.dev !== undefined) m.oif = indexOf(h, r.dev, op);
  if (r.src !== undefined) m.prefsrc = parseIpText(r.src, op, 'source').address;
  if (r.metric !== undefined) m.priority = r.metric;
  if (r.mtu !== undefined) m.mtu = r.mtu;
  if (!forDelete) {
    m.type = type;
    m.protocol = r.protocol ?? RouteProtocol.STATIC;
    m.scope =
      r.scope !== undefined
        ? SCOPES[r.scope]
        : type === RouteType.LOCAL
          ? RouteScope.HOST
          : r.dev !== undefined && via === undefined && type === RouteType.UNICAST
            ? RouteScope.LINK
            : RouteScope.UNIVERSE;
  } else {
    m.scope = RouteScope.NOWHERE;
    if (r.type !== undefined) m.type = type;
  }
  return m;
}

function add(r: RouteSpec, mode: NewMode, op: string, options?: NetdevOptions): void {
  using lease = leaseHandle(options);
  lease.handle.routeNew(toMessage(r, op, false, lease.handle), mode);
}

/**
 * Adds a route; fails if it exists.
 *
 * Equivalent to: `ip route add DST [via GW] [dev DEV] [src SRC] [scope S] [mtu M] [table T]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `AlreadyExists`, `Unreachable` (gateway not on
 * link), `NetworkDown` (device down), `NotFound` (no such device).
 * @example A pod's routes
 * ```ts
 * import { routeAdd } from '@datapath/netdev';
 * routeAdd({ dst: '10.244.0.1/32', dev: 'eth0', scope: 'link' });
 * routeAdd({ dst: 'default', via: '10.244.0.1', dev: 'eth0' });
 * ```
 */
export function routeAdd(r: RouteSpec, options?: NetdevOptions): void {
  add(r, 'create', 'routeAdd', options);
}

/**
 * Adds or replaces a route.
 *
 * Equivalent to: `ip route replace …`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `Unreachable`, `NetworkDown`, `NotFound`.
 * @example Replacing the default route
 * ```ts
 * import { routeReplace } from '@datapath/netdev';
 * routeReplace({ dst: 'default', via: '10.244.0.1', dev: 'eth0', mtu: 1450 });
 * ```
 */
export function routeReplace(r: RouteSpec, options?: NetdevOptions): void {
  add(r, 'replace', 'routeReplace', options);
}

/**
 * Deletes a route (matching on the fields given).
 *
 * Equivalent to: `ip route del DST [via GW] [dev DEV] [table T]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`.
 * @example Removing a host route
 * ```ts
 * import { routeDel } from '@datapath/netdev';
 * routeDel({ dst: '10.244.1.5/32', dev: 'lxc1' });
 * ```
 */
export function routeDel(r: RouteSpec, options?: NetdevOptions): void {
  using lease = leaseHandle(options);
  lease.handle.routeDelete(toMessage(r, 'routeDel', true, lease.handle));
}

/**
 * Lists routes: by default the main table of both families; `table: 'all'` for every table.
 *
 * Equivalent to: `ip route show [table T] [dev DEV]` / `ip -6 route show`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound` (no such device), `Interrupted`.
 * @example The IPv4 main table
 * ```ts
 * import { routeList } from '@datapath/netdev';
 * console.log(routeList({ family: 4 }).map((r) => `${r.dst} via ${r.via ?? '-'}`));
 * ```
 */
export function routeList(
  filter: { family?: 4 | 6; dev?: LinkRef; table?: number | 'main' | 'local' | 'all' } = {},
  options?: NetdevOptions,
): Route[] {
  using lease = leaseHandle(options);
  const h = lease.handle;
  const oif = filter.dev === undefined ? undefined : indexOf(h, filter.dev, 'routeList');
  const table =
    filter.table === undefined || filter.table === 'main'
      ? RouteTable.MAIN
      : filter.table === 'local'
        ? RouteTable.LOCAL
        : filter.table;
  return h
    .routeDump(filter.family === 4 ? 2 : filter.family === 6 ? 10 : 0)
    .filter((r) => (table === 'all' || r.table === table) && (oif === undefined || r.oif === oif))
    .filter((r) => r.family === 2 || r.family === 10)
    .map(toRoute);
}

/** Converts a decoded route message to the public {@link Route} shape. */
export function toRoute(r: RouteMessage): Route {
  return {
    dst: r.dstLen === 0 ? 'default' : `${r.dst}/${r.dstLen}`,
    family: r.family === 10 ? 6 : 4,
    via: r.gateway,
    dev: r.oif,
    src: r.prefsrc,
    scope: r.scope ?? 0,
    table: r.table ?? 0,
    type: r.type ?? 0,
    protocol: r.protocol ?? 0,
    metric: r.priority,
    mtu: r.mtu,
  };
}
