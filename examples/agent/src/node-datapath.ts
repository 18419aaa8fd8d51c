/**
 * One node's datapath for a cluster: the seam between the control plane (`agent node up`, which learns
 * the other nodes from etcd) and this node's BPF datapath. The control plane calls
 * {@link setupNodeDatapath} once when the node comes up, writes what it learns about other nodes through
 * `ClusterIpcache` (ipcache.ts), installs {@link remoteNodeRoutes} for each remote node, and calls
 * {@link teardownNodeDatapath} when the node goes down.
 *
 * Two routing modes, chosen per cluster (Cilium's `routing-mode`):
 *
 * - `tunnel`: one VXLAN device per node in external (collect-metadata) mode, `from_overlay` on its ingress.
 *   A pod's packet to a pod on another node is encapsulated by from_container (tunnel key: remote = the
 *   ipcache's tunnel endpoint, VNI = the source pod's security identity) and redirected to the device; the
 *   receiving node's from_overlay takes the identity from the VNI, applies the destination pod's ingress
 *   policy, and delivers with bpf_redirect_peer. Pods get an MTU {@link VXLAN_OVERHEAD} bytes below the
 *   underlay's. Geneve is not offered: this kernel has no geneve driver (`ip link add … type geneve`
 *   fails with "Unknown device type"); VXLAN only.
 * - `native`: nothing is encapsulated; the routes to remote nodes' pod CIDRs ({@link remoteNodeRoutes}) say
 *   where a packet goes. With the underlay device named (`underlayDev`, the default of the cluster agent),
 *   the node's IP stack is left out (Cilium's BPF host routing): from_container sends the packet straight
 *   out of the underlay device to the remote node's underlay address, the next hop those routes name, which
 *   it has from the ipcache (the entry's tunnel endpoint), with bpf_redirect_neigh (the MAC from the
 *   kernel's neighbour table, resolved when missing; no FIB lookup per packet, which is why every remote
 *   node's underlay address must be a neighbour on the underlay device's link); from_netdev on the receiving node's
 *   underlay ingress takes the *source* identity from the ipcache, applies the destination pod's ingress
 *   policy and delivers with bpf_redirect_peer. Without it, the node's stack forwards both ways and
 *   to_container applies the ingress policy.
 *
 * In both modes, traffic the node itself originates towards a remote pod (and the remote pod's replies to
 * it) is routed over the underlay by the same routes; the receiving pod's policy sees it as `remote-node`
 * (the ipcache entry of the sending node's address). Underlay addresses are IPv4.
 */
import { parsePrefix, tryParseIp } from '@datapath/ip';
import { linkAdd, linkDel, linkGet, type RouteSpec } from '@datapath/netdev';
import { Handle, type Netns } from '@datapath/netlink';
import type { AttachKind, Datapath } from './datapath.js';
import { AgentError } from './errors.js';

/** How pods on different nodes reach each other. */
export type RoutingMode = 'tunnel' | 'native';

/** Bytes VXLAN over an IPv4 underlay adds: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

/** UDP port of the VXLAN device (the Linux and Cilium default). */
export const VXLAN_PORT = 8472;

/** Default name of the node's VXLAN device. */
export const TUNNEL_DEV = 'dp_vxlan';

/** What {@link setupNodeDatapath} sets up. */
export interface NodeDatapathSpec {
  /** The cluster's routing mode. */
  mode: RoutingMode;
  /** MTU of the node's underlay device (default 1500); pods get this, less the encapsulation in tunnel mode. */
  underlayMtu?: number;
  /** Name of the VXLAN device (tunnel mode; default {@link TUNNEL_DEV}). */
  tunnelDev?: string;
  /** UDP port of the VXLAN device (tunnel mode; default {@link VXLAN_PORT}). */
  port?: number;
  /** How to attach from_overlay / from_netdev (default `auto`: tcx where the kernel has it). */
  attach?: 'auto' | AttachKind;
  /**
   * Native mode: the node's underlay device (inside the node namespace). Given, from_netdev goes on its
   * ingress and the pods' cross-node traffic bypasses the node's IP stack (host routing); absent, the
   * stack forwards it.
   */
  underlayDev?: string;
}

/** The node datapath {@link setupNodeDatapath} made. */
export interface NodeDatapath {
  /** The routing mode. */
  mode: RoutingMode;
  /** MTU to give every pod's interface on this node. */
  podMtu: number;
  /** Tunnel mode: the VXLAN device's name and ifindex (inside the node namespace). */
  tunnel?: { dev: string; ifindex: number; port: number; attach: AttachKind };
  /** Native mode with host routing: the underlay device from_netdev is attached to. */
  netdev?: { dev: string; ifindex: number; attach: AttachKind };
}

function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 1280 || mtu > 65535)
    throw new AgentError('InvalidArgument', `underlayMtu must be an integer in 1280..65535, got ${mtu}`);
  return mtu;
}

/**
 * Sets up this node's side of the cluster datapath inside `node` (the namespace that plays the node's
 * root namespace). Tunnel mode creates the VXLAN device in external mode (no learning, {@link VXLAN_PORT}),
 * attaches from_overlay to its ingress and records it in the datapath's config; native mode makes sure no
 * tunnel is recorded and, given `underlayDev`, attaches from_netdev to that device and turns host routing
 * on. On failure nothing it made is left.
 *
 * Equivalent to (tunnel): `ip link add dp_vxlan mtu 1450 type vxlan external dstport 8472 nolearning && ip link
 * set dp_vxlan up && bpftool net attach tcx_ingress … dev dp_vxlan`.
 * @throws AgentError `InvalidArgument` (bad mode, MTU or port), `DatapathFailed` (netlink or attach failure,
 * the SDK error as cause: e.g. `AlreadyExists` when another collect-metadata VXLAN device has the port).
 * @example A node in tunnel mode
 * ```ts
 * const nd = setupNodeDatapath(dp, nodeNs, { mode: 'tunnel' });
 * // create pods with mtu nd.podMtu, then mirror the cluster through new ClusterIpcache(dp)
 * ```
 */
export function setupNodeDatapath(dp: Datapath, node: Netns, spec: NodeDatapathSpec): NodeDatapath {
  const underlayMtu = checkMtu(spec.underlayMtu ?? 1500);
  if (spec.mode === 'native') {
    dp.detachTunnel(node);
    if (spec.underlayDev === undefined) {
      dp.detachNetdev(node);
      return { mode: 'native', podMtu: underlayMtu };
    }
    const dev = spec.underlayDev;
    let ifindex: number;
    {
      using h = Handle.open(node);
      try {
        ifindex = linkGet(dev, { handle: h }).index;
      } catch (err) {
        throw new AgentError('DatapathFailed', `underlay device ${dev}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    const attach = dp.attachNetdev(node, ifindex, spec.attach ?? 'auto');
    return { mode: 'native', podMtu: underlayMtu, netdev: { dev, ifindex, attach } };
  }
  if (spec.mode !== 'tunnel')
    throw new AgentError(
      'InvalidArgument',
      `mode must be 'tunnel' or 'native', got ${JSON.stringify(spec.mode)}`,
    );
  const port = spec.port ?? VXLAN_PORT;
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new AgentError('InvalidArgument', `port must be an integer in 1..65535, got ${port}`);
  const dev = spec.tunnelDev ?? TUNNEL_DEV;
  const mtu = underlayMtu - VXLAN_OVERHEAD;
  using h = Handle.open(node);
  try {
    linkAdd(
      { name: dev, kind: 'vxlan', vni: 0, port, external: true, learning: false, mtu, up: true },
      { handle: h },
    );
  } catch (err) {
    throw new AgentError('DatapathFailed', `tunnel device ${dev}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const ifindex = linkGet(dev, { handle: h }).index;
    const attach = dp.attachTunnel(node, ifindex, spec.attach ?? 'auto');
    return { mode: 'tunnel', podMtu: mtu, tunnel: { dev, ifindex, port, attach } };
  } catch (err) {
    try {
      dp.detachTunnel(node);
    } finally {
      linkDel(dev, { handle: h });
    }
    throw err instanceof AgentError
      ? err
      : new AgentError('DatapathFailed', `tunnel device ${dev}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Undoes {@link setupNodeDatapath}: clears the tunnel and host routing from the datapath's config, detaches
 * from_overlay and from_netdev and deletes the VXLAN device. Idempotent (a missing device is fine).
 * @throws AgentError `DatapathFailed` for a netlink failure other than a missing device.
 * @example
 * ```ts
 * teardownNodeDatapath(dp, nodeNs, nd);
 * ```
 */
export function teardownNodeDatapath(dp: Datapath, node: Netns, nd: Pick<NodeDatapath, 'tunnel'>): void {
  dp.detachTunnel(node);
  dp.detachNetdev(node);
  if (nd.tunnel === undefined) return;
  using h = Handle.open(node);
  try {
    linkDel(nd.tunnel.dev, { handle: h });
  } catch (err) {
    if ((err as { code?: string }).code === 'NotFound') return;
    throw new AgentError('DatapathFailed', `tunnel device ${nd.tunnel.dev}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** A remote node as the routes need it. */
export interface RemoteNode {
  /** The node's IPv4 underlay address (reachable on the local underlay link). */
  underlay: string;
  /** The node's pod CIDRs (IPv4). */
  podCidrs: readonly string[];
}

/**
 * The routes this node needs towards one remote node, as plain specs for `routeReplace` (inside the node
 * namespace): each of its pod CIDRs via its underlay address. In native mode they carry the pods' traffic;
 * in tunnel mode pods' traffic is encapsulated by the datapath and only the node's own traffic to remote
 * pods uses them. Pure: nothing is installed.
 *
 * Equivalent to: `ip route replace 10.244.2.0/24 via 198.18.0.2` for each CIDR.
 * @throws AgentError `InvalidArgument` for an underlay that is not IPv4 or a CIDR that is not an IPv4 prefix.
 * @example
 * ```ts
 * for (const r of remoteNodeRoutes({ underlay: '198.18.0.2', podCidrs: ['10.244.2.0/24'] }))
 *   routeReplace(r, { handle });
 * ```
 */
export function remoteNodeRoutes(remote: RemoteNode): RouteSpec[] {
  if (tryParseIp(remote.underlay, 4) === undefined)
    throw new AgentError(
      'InvalidArgument',
      `underlay must be an IPv4 address, got ${JSON.stringify(remote.underlay)}`,
    );
  return remote.podCidrs.map((cidr) => {
    let p: ReturnType<typeof parsePrefix>;
    try {
      p = parsePrefix(cidr);
    } catch (err) {
      throw new AgentError('InvalidArgument', `pod CIDR ${JSON.stringify(cidr)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (p.family !== 4) throw new AgentError('InvalidArgument', `pod CIDR ${cidr} is not IPv4`);
    return { dst: cidr, via: remote.underlay };
  });
}
