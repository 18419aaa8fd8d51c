/**
 * The cluster's underlay on one machine: a "fabric" namespace holding a bridge, and one veth per node
 * from the node's namespace (its root namespace) into that bridge, with the node's underlay address.
 * Native routing puts one route per remote node's pod CIDR in the node namespace, via that node's
 * underlay address.
 *
 *   node n1 netns: ul0 198.18.0.1/24 ═ ul-n1 ┐
 *   node n2 netns: ul0 198.18.0.2/24 ═ ul-n2 ┼ br0 (fabric netns)
 *   node n3 netns: ul0 198.18.0.3/24 ═ ul-n3 ┘
 */
import { parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import { addrAdd, linkAdd, linkGet, linkSetUp, routeDel, routeReplace } from '@datapath/netdev';
import { Handle, Netns, netnsAdd } from '@datapath/netlink';
import { AgentError } from './errors.js';
import { deleteNetnsIfPresent, sysctlIn } from './node.js';

/** Name of a node's underlay device inside its node namespace. */
export const UNDERLAY_DEV = 'ul0';
/** Name of the bridge inside the fabric namespace. */
export const FABRIC_BRIDGE = 'br0';
/** Where node underlay addresses come from. */
export const UNDERLAY_RANGE = '198.18.0.0/24';

/** The underlay address of the i-th node (0-based): 198.18.0.(i+1). */
export function underlayAddress(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i > 253)
    throw new AgentError('InvalidArgument', `node index ${i}: 0–253 nodes on the underlay`);
  return `198.18.0.${i + 1}`;
}

/** Checks an underlay address: IPv4 inside 198.18.0.0/24. */
export function checkUnderlayAddress(address: string): void {
  const a = tryParseIp(address, 4);
  if (a === undefined || !prefixContains(parsePrefix(UNDERLAY_RANGE), a))
    throw new AgentError(
      'InvalidArgument',
      `underlay address ${address}: must be IPv4 inside ${UNDERLAY_RANGE}`,
    );
}

/** Creates the fabric namespace with its bridge up. Fails if it exists. */
export function createFabric(name: string): void {
  const ns = netnsAdd(name);
  try {
    using h = Handle.open(ns);
    linkSetUp(linkGet('lo', { handle: h }).index, { handle: h });
    linkAdd({ name: FABRIC_BRIDGE, kind: 'bridge', up: true }, { handle: h });
  } catch (err) {
    ns.close();
    deleteNetnsIfPresent(name);
    throw err;
  } finally {
    ns.close();
  }
}

/** Removes the fabric namespace (its bridge and ports go with it). */
export function deleteFabric(name: string): boolean {
  return deleteNetnsIfPresent(name);
}

/**
 * Plugs a node namespace into the fabric: `ul0` with `address/24` in the node, its peer `port` enslaved
 * to the bridge. Idempotent: an existing `ul0` is kept (a restarted agent).
 * @throws AgentError `NotFound` when the fabric namespace is missing.
 */
export function plugNode(node: Netns, fabricName: string, port: string, address: string): void {
  checkUnderlayAddress(address);
  using nh = Handle.open(node);
  try {
    linkGet(UNDERLAY_DEV, { handle: nh });
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== 'NotFound') throw err;
  }
  let fabric: Netns;
  try {
    fabric = Netns.open({ name: fabricName });
  } catch (err) {
    throw new AgentError(
      'NotFound',
      `fabric namespace ${fabricName} does not exist (start it with agent cluster up)`,
      {
        cause: err,
      },
    );
  }
  try {
    using fh = Handle.open(fabric);
    linkAdd({ name: UNDERLAY_DEV, kind: 'veth', peer: { name: port, netns: fabric } }, { handle: nh });
    const bridge = linkGet(FABRIC_BRIDGE, { handle: fh });
    const peer = linkGet(port, { handle: fh });
    fh.linkSet({ index: peer.index, master: bridge.index });
    linkSetUp(peer.index, { handle: fh });
    sysctlIn(node, `net.ipv4.conf.${UNDERLAY_DEV}.rp_filter`, '0');
    addrAdd(UNDERLAY_DEV, `${address}/24`, { handle: nh });
    linkSetUp(UNDERLAY_DEV, { handle: nh });
  } finally {
    fabric.close();
  }
}

/** Routes a remote node's pod CIDR via its underlay address (native routing). */
export function routeToNode(node: Netns, cidr: string, via: string): void {
  using h = Handle.open(node);
  routeReplace({ dst: cidr, via, dev: UNDERLAY_DEV }, { handle: h });
}

/** Removes the route of a remote node's pod CIDR; `false` when there was none. */
export function unrouteNode(node: Netns, cidr: string): boolean {
  using h = Handle.open(node);
  try {
    routeDel({ dst: cidr, dev: UNDERLAY_DEV }, { handle: h });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'NotFound') return false;
    throw err;
  }
}
