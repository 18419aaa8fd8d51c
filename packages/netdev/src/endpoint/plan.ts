// planEndpoint: a pure, deterministic description of a pod endpoint (names, MACs, addresses, routes,
// sysctls). Turning it into kernel objects is applyEndpoint's job.
import { createHash } from 'node:crypto';
import { bad, checkIfname, checkMtu, networkOf, parseCidrText, parseIpText } from '../validate.js';

/** How the endpoint is wired: Cilium-style (/32, no host address) or ptp-style (gateway on the host veth). */
export type EndpointMode = 'cilium' | 'ptp';

/** What {@link planEndpoint} needs. */
export interface EndpointSpec {
  /** The container id (CNI_CONTAINERID): `[A-Za-z0-9][A-Za-z0-9_.-]*`. */
  containerId: string;
  /** The pod's network namespace path (CNI_NETNS), e.g. `/run/netns/pod1` or `/proc/PID/ns/net`. */
  netns: string;
  /** The interface name inside the pod (CNI_IFNAME), default `eth0`. */
  ifname?: string | undefined;
  /** MTU of both veth ends, default 1500. */
  mtu?: number | undefined;
  /** The pod's addresses, at most one per family: `10.244.1.5` or `10.244.1.5/24`. */
  addresses: readonly string[];
  /** The gateway of each address family used (one IPv4 and/or one IPv6 address). */
  gateway: string | readonly string[];
  /** Wiring style. */
  mode: EndpointMode;
  /** MTU of the pod's default route (Cilium's RouteMTU), when it must be lower than the link MTU. */
  routeMtu?: number | undefined;
  /**
   * Receive and transmit queues of each veth end (1-4096); default: the kernel's, one per possible CPU.
   * Each queue is a set of sysfs objects made with the device, so one queue makes the create several times
   * cheaper; more than one matters only to XDP on the veth (one NAPI context per receive queue).
   */
  queues?: number | undefined;
  /**
   * `false`: the pod end gets no IPv6 link-local address (IPv6 address generation mode `none`, set before it
   * comes up), so it sends no duplicate address detection, MLD report or router solicitation either: for an
   * interface on which the pod will not use IPv6 (e.g. a datapath that forwards IPv4 only, where each of those
   * packets would be dropped). Default (`true`): the kernel's, a link-local address once the interface is up.
   * An IPv6 address given in `addresses` is set all the same.
   */
  ipv6LinkLocal?: boolean | undefined;
}

/** An address to put on an interface. */
export interface PlannedAddress {
  /** The address. */
  address: string;
  /** Prefix length. */
  prefixLen: number;
  /** 4 or 6. */
  family: 4 | 6;
  /** IPv6 without duplicate address detection. */
  nodad: boolean;
}

/** A route to add. */
export interface PlannedRoute {
  /** Destination `CIDR` or `default`. */
  dst: string;
  /** 4 or 6. */
  family: 4 | 6;
  /** Gateway. */
  via?: string;
  /** Scope. */
  scope: 'link' | 'global';
  /** Preferred source address. */
  src?: string;
  /** Route MTU. */
  mtu?: number;
}

/** A route to delete (ptp replaces the kernel's on-link prefix route). */
export interface PlannedRouteDelete {
  /** Destination `CIDR`. */
  dst: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** A sysctl to write: key as in `sysctl` (`net.ipv4.conf.lxc….rp_filter`), value. */
export interface PlannedSysctl {
  /** The key (with `/` separators when an interface name would contain a dot). */
  key: string;
  /** The value. */
  value: string;
}

/** The host end of the veth. */
export interface HostSidePlan {
  /** Deterministic name: `lxc` + 12 hex (cilium) or `veth` + 11 hex (ptp) of sha256(containerId:ifname). */
  name: string;
  /** Deterministic locally administered MAC. */
  mac: string;
  /** MTU. */
  mtu: number;
  /** Transmit queue length. */
  txqlen: number;
  /** Receive and transmit queues (`numrxqueues`/`numtxqueues`); absent: the kernel's default. */
  queues?: number;
  /** Addresses on the host veth (ptp: the gateways as /32 or /128; cilium: none). */
  addresses: PlannedAddress[];
  /** Routes in the host namespace (to the pod, over the host veth). */
  routes: PlannedRoute[];
  /** Host-side sysctls (after the link exists). */
  sysctls: PlannedSysctl[];
}

/** The pod end of the veth. */
export interface ContainerSidePlan {
  /** Final name (the ifname). */
  name: string;
  /** A temporary name for the pod end (applyEndpoint creates it under its final name straight in the pod namespace). */
  tmpName: string;
  /** Deterministic locally administered MAC. */
  mac: string;
  /** MTU. */
  mtu: number;
  /** Receive and transmit queues; absent: the kernel's default. */
  queues?: number;
  /** Addresses. */
  addresses: PlannedAddress[];
  /** Routes to delete first (kernel prefix routes, ptp). */
  routeDeletes: PlannedRouteDelete[];
  /** Routes, most specific first. */
  routes: PlannedRoute[];
  /** Pod-side sysctls. */
  sysctls: PlannedSysctl[];
  /** `false`: no IPv6 link-local address (see {@link EndpointSpec.ipv6LinkLocal}); absent: the kernel's default. */
  ipv6LinkLocal?: boolean;
}

/** A plain, serialisable, deterministic endpoint plan. */
export interface EndpointPlan {
  /** Wiring style. */
  mode: EndpointMode;
  /** The container id. */
  containerId: string;
  /** The pod namespace path. */
  netns: string;
  /** Host end. */
  host: HostSidePlan;
  /** Pod end. */
  container: ContainerSidePlan;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** sha256(`containerId:ifname`) in hex: the seed of every deterministic name and MAC. */
function digest(containerId: string, ifname: string, salt = ''): string {
  return createHash('sha256').update(`${containerId}:${ifname}${salt}`).digest('hex');
}

/** The host-side interface name of an endpoint (deterministic, ≤ 15 bytes). */
export function hostIfname(containerId: string, ifname: string, mode: EndpointMode): string {
  const h = digest(containerId, ifname);
  return mode === 'cilium' ? `lxc${h.slice(0, 12)}` : `veth${h.slice(0, 11)}`;
}

function macFrom(hex: string): string {
  const bytes = hex
    .slice(0, 12)
    .match(/../g)!
    .map((b) => Number.parseInt(b, 16));
  bytes[0] = ((bytes[0] ?? 0) & 0xfe) | 0x02; // unicast, locally administered
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A veth queue count: an integer from 1 to 4096 (the kernel's limit). */
function checkQueues(n: unknown, op: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4096)
    bad(op, `queues must be an integer from 1 to 4096, got ${String(n)}`, String(n));
  return n;
}

/**
 * Plans a pod endpoint: deterministic host name and MACs from the container id and ifname, the
 * pod's addresses and routes, host routes and sysctls. Pure: no syscall, same input → same plan.
 *
 * Cilium mode: pod address /32 (/128 with NODAD), routes `gw/32 scope link` then `default via gw`,
 * host route `pod/32 dev lxc…`, `rp_filter=0` on the host veth. ptp mode: pod address with its own
 * prefix, the kernel's prefix route replaced by `gw/32 scope link src ip` + `subnet via gw src ip`,
 * `default via gw`, and the gateway as /32 on the host veth.
 *
 * Equivalent to: the `ip link add … type veth peer …` / `ip addr add` / `ip route add` sequence of
 * the ptp and Cilium CNI plugins, written down instead of run.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`: bad container id, ifname, MTU, address, gateway,
 * or a namespace path that is not absolute.
 * @example A Cilium-style endpoint
 * ```ts
 * import { planEndpoint } from '@datapath/netdev';
 * const plan = planEndpoint({
 *   containerId: 'c0ffee', netns: '/run/netns/pod1', ifname: 'eth0', mtu: 1500,
 *   addresses: ['10.244.1.5'], gateway: '10.244.1.1', mode: 'cilium',
 * });
 * console.log(plan.host.name); // lxc + 12 hex
 * ```
 */
export function planEndpoint(spec: EndpointSpec): EndpointPlan {
  const op = 'planEndpoint';
  if (spec === null || typeof spec !== 'object') bad(op, 'spec must be an object');
  const { containerId, netns, mode } = spec;
  if (typeof containerId !== 'string' || !CONTAINER_ID.test(containerId)) {
    bad(op, `invalid container id ${JSON.stringify(containerId)}`, String(containerId));
  }
  if (mode !== 'cilium' && mode !== 'ptp')
    bad(op, `mode must be 'cilium' or 'ptp', got ${JSON.stringify(mode)}`);
  if (typeof netns !== 'string' || !netns.startsWith('/') || netns.includes('\0')) {
    bad(op, `netns must be an absolute path, got ${JSON.stringify(netns)}`, String(netns));
  }
  const ifname = checkIfname(spec.ifname ?? 'eth0', op, 'ifname');
  if (!Array.isArray(spec.addresses) || spec.addresses.length === 0)
    bad(op, 'at least one address is needed');
  const addrs = spec.addresses.map((a) => parseCidrText(a, op, true, 'address'));
  for (const f of [4, 6] as const) {
    if (addrs.filter((a) => a.family === f).length > 1) bad(op, `at most one IPv${f} address per endpoint`);
  }
  const gwList = typeof spec.gateway === 'string' ? [spec.gateway] : spec.gateway;
  if (!Array.isArray(gwList)) bad(op, 'gateway must be an address or a list of addresses');
  const gws = gwList.map((g) => parseIpText(g, op, 'gateway'));
  const hasV6 = addrs.some((a) => a.family === 6);
  const mtu = checkMtu(spec.mtu ?? 1500, op, hasV6 ? 1280 : 68);
  const routeMtu = spec.routeMtu === undefined ? undefined : checkMtu(spec.routeMtu, op, hasV6 ? 1280 : 68);
  const queues = spec.queues === undefined ? undefined : checkQueues(spec.queues, op);
  if (routeMtu !== undefined && routeMtu > mtu) bad(op, `routeMtu ${routeMtu} exceeds the link MTU ${mtu}`);

  const hostName = hostIfname(containerId, ifname, mode);
  const seed = digest(containerId, ifname);
  const host: HostSidePlan = {
    name: hostName,
    mac: macFrom(digest(containerId, ifname, ':host')),
    mtu,
    txqlen: 1000,
    addresses: [],
    routes: [],
    sysctls: [],
  };
  const container: ContainerSidePlan = {
    name: ifname,
    tmpName: `tmp${seed.slice(12, 24)}`,
    mac: macFrom(digest(containerId, ifname, ':container')),
    mtu,
    addresses: [],
    routeDeletes: [],
    routes: [],
    sysctls: [],
  };
  if (queues !== undefined) {
    host.queues = queues;
    container.queues = queues;
  }
  if (spec.ipv6LinkLocal !== undefined) {
    if (typeof spec.ipv6LinkLocal !== 'boolean')
      bad(op, `ipv6LinkLocal must be a boolean, got ${JSON.stringify(spec.ipv6LinkLocal)}`);
    if (!spec.ipv6LinkLocal) container.ipv6LinkLocal = false;
  }
  if (addrs.some((a) => a.family === 4))
    host.sysctls.push({ key: `net/ipv4/conf/${hostName}/rp_filter`, value: '0' });
  if (hasV6) {
    container.sysctls.push({ key: 'net.ipv6.conf.all.disable_ipv6', value: '0' });
    if (mode === 'ptp') host.sysctls.push({ key: `net/ipv6/conf/${hostName}/accept_ra`, value: '0' });
  }

  for (const a of addrs) {
    const gw = gws.find((g) => g.family === a.family);
    if (gw === undefined) bad(op, `no IPv${a.family} gateway for address ${a.address}`);
    if (gw.address === a.address) bad(op, `gateway ${gw.address} equals the pod address`);
    const full = a.family === 4 ? 32 : 128;
    const dflt = 'default';
    if (mode === 'cilium') {
      container.addresses.push({
        address: a.address,
        prefixLen: full,
        family: a.family,
        nodad: a.family === 6,
      });
      container.routes.push({ dst: `${gw.address}/${full}`, family: a.family, scope: 'link' });
      const r: PlannedRoute = { dst: dflt, family: a.family, via: gw.address, scope: 'global' };
      if (routeMtu !== undefined) r.mtu = routeMtu;
      container.routes.push(r);
    } else {
      container.addresses.push({
        address: a.address,
        prefixLen: a.prefixLen,
        family: a.family,
        nodad: a.family === 6,
      });
      host.addresses.push({ address: gw.address, prefixLen: full, family: a.family, nodad: a.family === 6 });
      if (a.prefixLen < full) {
        const subnet = `${networkOf(a)}/${a.prefixLen}`;
        if (a.family === 4) container.routeDeletes.push({ dst: subnet, family: 4 });
        container.routes.push({
          dst: `${gw.address}/${full}`,
          family: a.family,
          scope: 'link',
          src: a.address,
        });
        if (a.family === 4)
          container.routes.push({ dst: subnet, family: 4, via: gw.address, scope: 'global', src: a.address });
      } else {
        container.routes.push({
          dst: `${gw.address}/${full}`,
          family: a.family,
          scope: 'link',
          src: a.address,
        });
      }
      const r: PlannedRoute = { dst: dflt, family: a.family, via: gw.address, scope: 'global' };
      if (routeMtu !== undefined) r.mtu = routeMtu;
      container.routes.push(r);
    }
    host.routes.push({ dst: `${a.address}/${full}`, family: a.family, scope: 'link' });
  }
  return { mode, containerId, netns, host, container };
}
