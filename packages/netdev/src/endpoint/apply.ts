// applyEndpoint / removeEndpoint: turn an EndpointPlan into kernel objects, with rollback.
import {
  AddrFlag,
  Handle,
  IfFlag,
  NetlinkError,
  Netns,
  type RouteMessage,
  RouteProtocol,
  RouteScope,
  RouteTable,
  RouteType,
} from '@datapath/netlink';
import { leaseHandleIn } from '../common.js';
import { sysctlSet } from '../sysctl.js';
import { bad, checkIfname, checkMac, checkMtu } from '../validate.js';
import { type EndpointMode, type EndpointPlan, hostIfname, type PlannedRoute } from './plan.js';

/** The steps of {@link applyEndpoint}, in order; {@link ApplyOptions.onStep} sees each before it runs. */
export type EndpointStep =
  | 'createVeth'
  | 'hostSysctls'
  | 'hostUp'
  | 'hostAddresses'
  | 'containerLink'
  | 'containerSysctls'
  | 'containerAddresses'
  | 'containerRoutes'
  | 'hostRoutes';

/** Options of {@link applyEndpoint}. */
export interface ApplyOptions {
  /** The namespace playing "host" (where the host veth and host routes go); default: the caller's. */
  hostNetns?: Netns | undefined;
  /** Called before each step; throwing aborts the apply (and rolls back). For tracing and failure injection. */
  onStep?: ((step: EndpointStep) => void) | undefined;
}

/** One end of the veth pair as created. */
export interface EndpointInterface {
  /** Interface name. */
  name: string;
  /** Interface index (in its own namespace). */
  index: number;
  /** Hardware address. */
  mac: string;
  /** MTU. */
  mtu: number;
}

/** What {@link applyEndpoint} created. */
export interface EndpointResult {
  /** The host veth. */
  host: EndpointInterface;
  /** The pod interface, and the namespace path it lives in. */
  container: EndpointInterface & {
    /** The pod namespace path. */
    netns: string;
  };
  /** The pod's addresses as `ip/len`. */
  addresses: string[];
}

/** Options of {@link removeEndpoint}. */
export interface RemoveOptions {
  /** The namespace playing "host"; default: the caller's. */
  hostNetns?: Netns | undefined;
}

/** What {@link removeEndpoint} needs: the plan, or the container id and ifname it was made from. */
export interface EndpointRef {
  /** The container id. */
  containerId: string;
  /** The pod interface name, default `eth0`. */
  ifname?: string | undefined;
  /** The mode it was applied with; when omitted both naming schemes are tried. */
  mode?: EndpointMode | undefined;
  /** The pod namespace path; used to clean a leftover pod interface when the host end is gone. */
  netns?: string | undefined;
}

function checkPlan(plan: EndpointPlan, op: string): void {
  if (plan === null || typeof plan !== 'object' || !plan.host || !plan.container)
    bad(op, 'plan must come from planEndpoint');
  checkIfname(plan.host.name, op, 'host interface name');
  checkIfname(plan.container.name, op, 'ifname');
  checkIfname(plan.container.tmpName, op, 'temporary interface name');
  checkMac(plan.host.mac, op);
  checkMac(plan.container.mac, op);
  checkMtu(plan.host.mtu, op);
  checkMtu(plan.container.mtu, op);
  if (typeof plan.netns !== 'string' || !plan.netns.startsWith('/'))
    bad(op, `netns must be an absolute path`);
}

function splitCidr(cidr: string): { address: string; len: number } {
  const slash = cidr.indexOf('/');
  return { address: cidr.slice(0, slash), len: Number(cidr.slice(slash + 1)) };
}

function routeMessage(r: PlannedRoute, oif: number): RouteMessage {
  const m: RouteMessage = {
    family: r.family === 4 ? 2 : 10,
    table: RouteTable.MAIN,
    protocol: RouteProtocol.BOOT,
    type: RouteType.UNICAST,
    scope: r.scope === 'link' ? RouteScope.LINK : RouteScope.UNIVERSE,
    oif,
    dstLen: 0,
  };
  if (r.dst !== 'default') {
    const { address, len } = splitCidr(r.dst);
    m.dst = address;
    m.dstLen = len;
  }
  if (r.via !== undefined) m.gateway = r.via;
  if (r.src !== undefined) m.prefsrc = r.src;
  if (r.mtu !== undefined) m.mtu = r.mtu;
  return m;
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof NetlinkError && err.code === code;
}

/**
 * Creates a planned endpoint: one `RTM_NEWLINK` makes the veth with its peer straight in the pod
 * namespace (temporary name, MTU and MAC on both ends), then the host end gets its sysctls, comes up
 * and gets its addresses; inside the pod (through a handle bound to it, no further `setns`) the peer is
 * renamed and brought up with `lo`, addressed and routed; finally the host routes to the pod are added.
 * Any failure deletes the veth again (which removes everything made after it) before the error is
 * rethrown: nothing is left half-made.
 *
 * Before anything is created, the pod path must be an nsfs namespace other than the host one.
 *
 * Equivalent to: `ip link add lxc… type veth peer name tmp… netns POD` + `ip link set` / `ip addr add`
 * / `ip route add` on both sides + `sysctl -w net.ipv4.conf.lxc….rp_filter=0`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad plan, a path that is not a namespace, or the
 * host namespace given as the pod), `NotFound` (no such namespace), `AlreadyExists` (the host veth or
 * the ifname exists), any kernel error of a step (with its extended-ACK message); an `AggregateError`
 * of the step error and the rollback error in the unexpected case that the veth cannot be deleted again.
 * @example Creating and removing a pod endpoint
 * ```ts
 * import { applyEndpoint, planEndpoint, removeEndpoint } from '@datapath/netdev';
 * const plan = planEndpoint({
 *   containerId: 'c0ffee', netns: '/run/netns/pod1', addresses: ['10.244.1.5'],
 *   gateway: '10.244.1.1', mode: 'cilium',
 * });
 * const ep = applyEndpoint(plan);
 * console.log(ep.host.name, ep.container.index);
 * removeEndpoint(plan);
 * ```
 */
export function applyEndpoint(plan: EndpointPlan, options: ApplyOptions = {}): EndpointResult {
  const op = 'applyEndpoint';
  checkPlan(plan, op);
  const step = options.onStep ?? (() => {});
  const podNs = Netns.open({ path: plan.netns });
  let caller: Netns | undefined;
  let hostLease: ({ handle: Handle } & Disposable) | undefined;
  let host: Handle | undefined;
  let pod: Handle | undefined;
  let created = false;
  try {
    caller = Netns.current();
    if (podNs.sameAs(options.hostNetns ?? caller) || podNs.sameAs(caller)) {
      bad(
        op,
        `refusing to configure the host or the caller's own namespace (${plan.netns}) as a pod`,
        plan.netns,
      );
    }
    // The caller's own namespace reuses the shared handle; another "host" namespace gets its own.
    hostLease = leaseHandleIn(options.hostNetns);
    host = hostLease.handle;
    pod = Handle.open(podNs);
    const { host: hp, container: cp } = plan;

    step('createVeth');
    host.linkNew(
      {
        name: hp.name,
        mtu: hp.mtu,
        address: hp.mac,
        txqlen: hp.txqlen,
        info: { kind: 'veth', peer: { name: cp.tmpName, mtu: cp.mtu, address: cp.mac, netnsFd: podNs.fd } },
      },
      'create',
    );
    created = true;
    // One lookup gives both indexes: IFLA_LINK of the host end is the peer's index in the pod namespace.
    const hostLink = host.linkGet({ name: hp.name });
    const hostIndex = hostLink.index ?? 0;
    const podIndex = hostLink.link ?? 0;

    step('hostSysctls');
    for (const s of hp.sysctls)
      sysctlSet(s.key, s.value, options.hostNetns ? { netns: options.hostNetns } : {});

    step('hostUp');
    host.linkSet({ index: hostIndex, flags: IfFlag.UP, change: IfFlag.UP });

    step('hostAddresses');
    for (const a of hp.addresses) {
      host.addrNew(
        {
          index: hostIndex,
          prefixLen: a.prefixLen,
          local: a.address,
          address: a.address,
          flags: AddrFlag.PERMANENT | (a.nodad ? AddrFlag.NODAD : 0),
        },
        'create',
      );
    }

    step('containerLink');
    // Rename and up in one RTM_SETLINK: the kernel renames before it changes the flags.
    pod.linkSet({ index: podIndex, name: cp.name, flags: IfFlag.UP, change: IfFlag.UP });
    pod.linkSet({ index: 1, flags: IfFlag.UP, change: IfFlag.UP });

    step('containerSysctls');
    for (const s of cp.sysctls) sysctlSet(s.key, s.value, { netns: podNs });

    step('containerAddresses');
    for (const a of cp.addresses) {
      pod.addrNew(
        {
          index: podIndex,
          prefixLen: a.prefixLen,
          local: a.address,
          address: a.address,
          flags: AddrFlag.PERMANENT | (a.nodad ? AddrFlag.NODAD : 0),
        },
        'create',
      );
    }

    step('containerRoutes');
    for (const d of cp.routeDeletes) {
      const { address, len } = splitCidr(d.dst);
      try {
        pod.routeDelete({
          family: d.family === 4 ? 2 : 10,
          dst: address,
          dstLen: len,
          oif: podIndex,
          table: RouteTable.MAIN,
          scope: RouteScope.NOWHERE,
        });
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
    for (const r of cp.routes) pod.routeNew(routeMessage(r, podIndex), 'create');

    step('hostRoutes');
    for (const r of hp.routes) host.routeNew(routeMessage(r, hostIndex), 'create');

    return {
      host: { name: hp.name, index: hostIndex, mac: hp.mac, mtu: hp.mtu },
      container: { name: cp.name, index: podIndex, mac: cp.mac, mtu: cp.mtu, netns: plan.netns },
      addresses: cp.addresses.map((a) => `${a.address}/${a.prefixLen}`),
    };
  } catch (err) {
    if (created && host) {
      try {
        host.linkDelete({ name: plan.host.name });
      } catch (undoErr) {
        if (!isCode(undoErr, 'NotFound')) {
          throw new AggregateError(
            [err, undoErr],
            `${op}: failed, and the rollback failed too: ${String(undoErr)}`,
          );
        }
      }
    }
    throw err;
  } finally {
    pod?.close();
    hostLease?.[Symbol.dispose]();
    podNs.close();
    caller?.close();
  }
}

function isPlan(ref: EndpointRef | EndpointPlan): ref is EndpointPlan {
  return typeof (ref as EndpointPlan).host === 'object' && (ref as EndpointPlan).host !== null;
}

/**
 * Removes an endpoint by deleting its host veth (the kernel deletes the pod end and every address and
 * route on both ends with it). Idempotent: a missing veth or namespace is success. When the host end is
 * gone but `netns` still holds a veth named `ifname`, that one is deleted.
 *
 * Equivalent to: `ip link del lxc…` (and `ip -n POD link del eth0` for leftovers).
 *
 * @returns true when something was deleted, false when there was nothing to delete.
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad id or ifname), `PermissionDenied`, other kernel
 * errors than "not found".
 * @example Removing by container id
 * ```ts
 * import { removeEndpoint } from '@datapath/netdev';
 * removeEndpoint({ containerId: 'c0ffee', ifname: 'eth0', mode: 'cilium' });
 * ```
 */
export function removeEndpoint(ref: EndpointRef | EndpointPlan, options: RemoveOptions = {}): boolean {
  const op = 'removeEndpoint';
  let names: string[];
  let ifname: string;
  let netns: string | undefined;
  if (isPlan(ref)) {
    names = [checkIfname(ref.host.name, op, 'host interface name')];
    ifname = checkIfname(ref.container.name, op, 'ifname');
    netns = ref.netns;
  } else {
    if (
      ref === null ||
      typeof ref !== 'object' ||
      typeof ref.containerId !== 'string' ||
      ref.containerId === ''
    ) {
      bad(op, 'containerId is required');
    }
    ifname = checkIfname(ref.ifname ?? 'eth0', op, 'ifname');
    const modes: EndpointMode[] = ref.mode ? [ref.mode] : ['cilium', 'ptp'];
    names = modes.map((m) => hostIfname(ref.containerId, ifname, m));
    netns = ref.netns;
  }
  {
    using host = leaseHandleIn(options.hostNetns);
    for (const name of names) {
      try {
        host.handle.linkDelete({ name });
        return true;
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
  }
  if (netns === undefined || netns === '') return false;
  let podNs: Netns;
  try {
    podNs = Netns.open({ path: netns });
  } catch (err) {
    if (isCode(err, 'NotFound') || isCode(err, 'InvalidArgument')) return false; // the namespace is gone
    throw err;
  }
  try {
    using pod = Handle.open(podNs);
    const link = pod.linkGet({ name: ifname });
    if (link.info?.kind !== 'veth') return false;
    pod.linkDelete({ index: link.index ?? 0 });
    return true;
  } catch (err) {
    if (isCode(err, 'NotFound')) return false;
    throw err;
  } finally {
    podNs.close();
  }
}
