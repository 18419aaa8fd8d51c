/**
 * The agent's private "node": a network namespace that plays the node's root namespace (host-side
 * veths, the node address, routes to pods), and a "world" namespace behind it that owns the
 * outside addresses scenarios probe. No real host interface, route or sysctl is ever touched.
 *
 *   pod netns ── eth0 ═ lxc… ── node netns (hostIp on lo, ip_forward=1) ── <prefix>w ═ eth0 ── world netns
 *                                                                 169.254.2.1/30    169.254.2.2/30 (+ world IPs on lo)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import { addrAdd, linkAdd, linkGet, linkSetUp, routeAdd, routeReplace } from '@datapath/netdev';
import { Handle, type Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { AgentError } from './errors.js';

/** Link addresses of the node ↔ world veth. */
export const WORLD_LINK = { node: '169.254.2.1', world: '169.254.2.2', prefixLen: 30 } as const;

/** Writes a sysctl inside `ns` (the calling thread enters it for the write only). */
export function sysctlIn(ns: Netns, name: string, value: string): void {
  ns.run(() => writeFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, value));
}

/** Reads a sysctl inside `ns` (the calling thread enters it for the read only). */
export function sysctlReadIn(ns: Netns, name: string): string {
  return ns.run(() => readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim());
}

function loUp(h: Handle): number {
  const lo = linkGet('lo', { handle: h });
  linkSetUp(lo.index, { handle: h });
  return lo.index;
}

/** Adds `ip/32` to the namespace's loopback (idempotent). */
export function addLoopbackAddress(h: Handle, ip: string): void {
  if (h.addrDump(2).some((a) => a.local === ip)) return;
  addrAdd('lo', `${ip}/32`, { handle: h });
}

/**
 * Creates the node namespace: loopback up with `hostIp`, forwarding on, reverse-path filtering off.
 * Returns it open; the caller owns it.
 */
export function createNodeNetns(name: string, hostIp: string): Netns {
  const ns = netnsAdd(name);
  try {
    const h = Handle.open(ns);
    try {
      loUp(h);
      addLoopbackAddress(h, hostIp);
    } finally {
      h.close();
    }
    sysctlIn(ns, 'net.ipv4.ip_forward', '1');
    sysctlIn(ns, 'net.ipv4.conf.all.rp_filter', '0');
    sysctlIn(ns, 'net.ipv4.conf.default.rp_filter', '0');
    return ns;
  } catch (err) {
    ns.close();
    netnsDelete(name);
    throw err;
  }
}

/**
 * Creates the world namespace behind the node: a veth `<linkName>` in the node namespace whose
 * peer `eth0` is in the world namespace, default route from the world to the node.
 */
export function createWorldNetns(name: string, node: Netns, linkName: string): Netns {
  const ns = netnsAdd(name);
  try {
    const nh = Handle.open(node);
    const wh = Handle.open(ns);
    try {
      loUp(wh);
      linkAdd({ name: linkName, kind: 'veth', peer: { name: 'eth0', netns: ns } }, { handle: nh });
      addrAdd(linkName, `${WORLD_LINK.node}/${WORLD_LINK.prefixLen}`, { handle: nh });
      addrAdd('eth0', `${WORLD_LINK.world}/${WORLD_LINK.prefixLen}`, { handle: wh });
      linkSetUp(linkName, { handle: nh });
      linkSetUp('eth0', { handle: wh });
      routeAdd({ dst: 'default', via: WORLD_LINK.node, dev: 'eth0' }, { handle: wh });
    } finally {
      nh.close();
      wh.close();
    }
    return ns;
  } catch (err) {
    ns.close();
    netnsDelete(name);
    throw err;
  }
}

/**
 * The addresses the simulated world may take: the pod and underlay test ranges only, so a scenario's
 * "outside" address is never a real host's and no probe can leave the namespaces with a real target.
 */
const WORLD_RANGES = [parsePrefix('10.244.0.0/16'), parsePrefix('198.18.0.0/15')];

/** Gives the world namespace `ip` and routes it from the node through the world link (idempotent). */
export function addWorldAddress(world: Netns, node: Netns, linkName: string, ip: string): void {
  const a = tryParseIp(ip, 4);
  if (a === undefined || !WORLD_RANGES.some((p) => prefixContains(p, a))) {
    throw new AgentError(
      'InvalidArgument',
      `world:${ip}: a simulated world address must be IPv4 inside 10.244.0.0/16 or 198.18.0.0/15`,
    );
  }
  const wh = Handle.open(world);
  const nh = Handle.open(node);
  try {
    addLoopbackAddress(wh, ip);
    routeReplace({ dst: `${ip}/32`, via: WORLD_LINK.world, dev: linkName }, { handle: nh });
  } finally {
    wh.close();
    nh.close();
  }
}

/** Deletes a named namespace if it exists (everything inside goes with it). */
export function deleteNetnsIfPresent(name: string): boolean {
  try {
    netnsDelete(name);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'NotFound') return false;
    throw err;
  }
}
