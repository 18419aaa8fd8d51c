// datapath-cni: the reference plugin. ADD/DEL/CHECK/GC/STATUS over @datapath/netdev's endpoint connector
// (Cilium-style /32 or ptp-style, by config) and in-process host-local IPAM over @datapath/ipam.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type {
  AddArgs,
  BaseArgs,
  CheckArgs,
  CniInterface,
  CniIpConfig,
  CniPlugin,
  CniResult,
  CniRoute,
  DelArgs,
  GcArgs,
} from '@datapath/cni';
import { CniError, CniErrorCode, checkNetnsPath } from '@datapath/cni';
import { tryParseCidr } from '@datapath/ip';
import {
  addrList,
  applyEndpointAsync,
  type EndpointMode,
  type EndpointPlan,
  hostIfname,
  linkGet,
  planEndpoint,
  removeEndpointAsync,
  routeAdd,
  routeList,
  sysctlGet,
  sysctlSet,
} from '@datapath/netdev';
import { Handle, Netns } from '@datapath/netlink';
import type { PluginConfig } from './config.js';
import { pluginInfo } from './info.js';
import { type IpamLease, ipamFor } from './ipam.js';

/** Environment variable naming the host-side namespace; overrides the config's `hostNetns`. */
export const HOST_NETNS_ENV = 'DATAPATH_CNI_HOST_NETNS';

const isNotFound = (err: unknown) => (err as { code?: unknown } | null)?.code === 'NotFound';

/** The namespace that plays "host" (where the host veth goes), when it is not the plugin's own. */
function hostNetnsOf(args: BaseArgs<PluginConfig>): { path: string; ns: Netns } | undefined {
  const path = args.env[HOST_NETNS_ENV] || args.config.hostNetns;
  if (path === undefined || path === '') return undefined;
  const found = checkNetnsPath(path, { allowOwn: true });
  if (found.kind === 'missing') {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, `hostNetns ${path} does not exist`);
  }
  return { path, ns: Netns.open({ path }) };
}

function withPodHandle<T>(netns: string, fn: (h: Handle) => T): T {
  let ns: Netns;
  let h: Handle;
  try {
    ns = Netns.open({ path: netns });
  } catch (err) {
    throw new CniError(
      CniErrorCode.InvalidNetNs,
      `failed to open netns "${netns}": ${(err as Error).message}`,
    );
  }
  try {
    try {
      h = Handle.open(ns);
    } catch (err) {
      // setns(CLONE_NEWNET) refuses a namespace file of another type (uts, mnt, …).
      throw new CniError(
        CniErrorCode.InvalidNetNs,
        `"${netns}" is not a usable network namespace: ${(err as Error).message}`,
      );
    }
    try {
      return fn(h);
    } finally {
      h.close();
    }
  } finally {
    ns.close();
  }
}

const defaultDst = (dst: string) => dst === '0.0.0.0/0' || dst === '::/0';

function gatewaysOf(ips: readonly CniIpConfig[]): string[] {
  return ips.map((ip) => {
    if (ip.gateway === undefined) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `IPAM returned ${ip.address} without a gateway`);
    }
    return ip.gateway;
  });
}

/** ADD: IPAM, then the endpoint; any failure undoes both. */
async function add(a: AddArgs<PluginConfig>): Promise<CniResult> {
  // A config naming a BPF object that is not there is refused before anything is made.
  if (a.config.bpf && !existsSync(a.config.bpf.object)) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `bpf.object: ${a.config.bpf.object} does not exist`,
    );
  }
  const host = hostNetnsOf(a);
  try {
    if (host) checkNetnsPath(a.netns, { allowOwn: true, forbidden: [host.path] });
    // The spec: ADD must fail when the interface already exists. Checked before IPAM is touched.
    withPodHandle(a.netns, (h) => {
      try {
        linkGet(a.ifname, { handle: h });
      } catch (err) {
        if (isNotFound(err)) return;
        throw err;
      }
      throw new CniError(CniErrorCode.Internal, `interface ${a.ifname} already exists in ${a.netns}`);
    });
    const ipam = ipamFor(a);
    try {
      const lease = await ipam.add();
      try {
        return await connect(a, lease, host);
      } catch (err) {
        try {
          await ipam.undo(lease);
        } catch (undoErr) {
          a.log(`datapath-cni: ADD failed and releasing its addresses failed too: ${String(undoErr)}`);
        }
        throw err;
      }
    } finally {
      ipam.close();
    }
  } finally {
    host?.ns.close();
  }
}

async function connect(
  a: AddArgs<PluginConfig>,
  lease: IpamLease,
  host: { path: string; ns: Netns } | undefined,
): Promise<CniResult> {
  const hostNs = host?.ns;
  const mode: EndpointMode = a.config.mode;
  const gateways = gatewaysOf(lease.ips);
  const plan: EndpointPlan = planEndpoint({
    containerId: a.containerId,
    netns: a.netns,
    ifname: a.ifname,
    mtu: a.config.mtu,
    addresses: lease.ips.map((i) => i.address),
    gateway: [...new Set(gateways)],
    mode,
    // One queue per veth end: each queue is a set of sysfs objects made with the device (a create several
    // times cheaper), and more than one only serves XDP on the veth, which this plugin never attaches (its
    // `bpf` program goes on the tcx hook).
    queues: 1,
  });
  // The `mac` capability: the runtime asks for the container MAC (the plan is plain data, set before apply).
  const mac = a.config.runtimeConfig?.mac;
  if (mac !== undefined) plan.container.mac = mac.replaceAll('-', ':').toLowerCase();
  enableForwarding(lease.ips, hostNs);
  const ep = await applyEndpointAsync(plan, hostNs ? { hostNetns: hostNs } : {});
  try {
    // IPAM routes other than the default one (the connector already routes default via the gateway).
    const extra = lease.routes.filter((r) => !defaultDst(r.dst));
    if (extra.length > 0) {
      withPodHandle(a.netns, (h) => {
        for (const r of extra) {
          const fam = tryParseCidr(r.dst)?.prefix.family;
          const via = r.gw ?? lease.ips.find((i) => tryParseCidr(i.address)?.prefix.family === fam)?.gateway;
          routeAdd(via === undefined ? { dst: r.dst, dev: a.ifname } : { dst: r.dst, via, dev: a.ifname }, {
            handle: h,
          });
        }
      });
    }
    if (a.config.bpf) await attachBpf(a.config.bpf, ep.host.name, host?.path);
  } catch (err) {
    await removeEndpointAsync(plan, hostNs ? { hostNetns: hostNs } : {});
    if (a.config.bpf) unpinBpf(a.config.bpf, [ep.host.name]);
    throw err;
  }
  const ours: CniInterface[] = [
    { name: ep.host.name, mac: ep.host.mac, mtu: ep.host.mtu },
    { name: a.ifname, mac: ep.container.mac, mtu: ep.container.mtu, sandbox: a.netns },
  ];
  const prev = a.prevResult;
  const base = prev?.interfaces?.length ?? 0;
  const ips: CniIpConfig[] = ep.addresses.map((address, i) => ({
    address,
    gateway: gateways[i]!,
    interface: base + 1,
  }));
  const routes: CniRoute[] = lease.routes.length > 0 ? lease.routes : [];
  const result: CniResult = {
    interfaces: [...(prev?.interfaces ?? []), ...ours],
    ips: [...(prev?.ips ?? []), ...ips],
    routes: [...(prev?.routes ?? []), ...routes],
  };
  const dns = a.config.dns ?? lease.dns ?? prev?.dns;
  if (dns !== undefined && Object.keys(dns).length > 0) result.dns = dns;
  return result;
}

type BpfConf = NonNullable<PluginConfig['bpf']>;
const pinPath = (bpf: BpfConf, hostName: string) => join(bpf.pinDir, `${hostName}-${bpf.direction}`);

/**
 * Loads the configured object, attaches its program to the host veth's tcx hook and pins the link, so the
 * program stays attached after this process exits. @datapath/loader is imported only here.
 */
async function attachBpf(bpf: BpfConf, hostName: string, hostNetns: string | undefined): Promise<void> {
  const { tcxAttachAsync, loadAsync, openObject } = await import('@datapath/loader');
  const coll = await loadAsync(openObject(bpf.object));
  try {
    const dev = hostNetns === undefined ? { ifname: hostName } : { ifname: hostName, netns: hostNetns };
    const link = await tcxAttachAsync(coll.program(bpf.program), { ...dev, direction: bpf.direction });
    try {
      mkdirSync(bpf.pinDir, { recursive: true });
      link.pin(pinPath(bpf, hostName));
    } finally {
      link.close();
    }
  } finally {
    coll.close();
  }
}

/** Removes the link pins of the given host veths (the kernel detached them with the device); idempotent. */
function unpinBpf(bpf: BpfConf, hostNames: readonly string[]): void {
  for (const name of hostNames) rmSync(pinPath(bpf, name), { force: true });
}

/** As ptp: the host side forwards between pods (written only when not already on). */
function enableForwarding(ips: readonly CniIpConfig[], hostNs: Netns | undefined): void {
  const opts = hostNs ? { netns: hostNs } : {};
  for (const fam of new Set(ips.map((i) => tryParseCidr(i.address)?.prefix.family))) {
    const key = fam === 6 ? 'net.ipv6.conf.all.forwarding' : 'net.ipv4.ip_forward';
    if (sysctlGet(key, opts).trim() !== '1') sysctlSet(key, '1', opts);
  }
}

/** DEL: release IPAM first (even when the namespace is gone), then remove the endpoint. Idempotent. */
async function del(a: DelArgs<PluginConfig>): Promise<void> {
  const host = hostNetnsOf(a);
  try {
    const ipam = ipamFor(a);
    try {
      await ipam.del();
    } finally {
      ipam.close();
    }
    const ref =
      a.netns === undefined
        ? { containerId: a.containerId, ifname: a.ifname }
        : { containerId: a.containerId, ifname: a.ifname, netns: a.netns };
    await removeEndpointAsync(ref, host ? { hostNetns: host.ns } : {});
    if (a.config.bpf) {
      unpinBpf(a.config.bpf, [
        hostIfname(a.containerId, a.ifname, 'ptp'),
        hostIfname(a.containerId, a.ifname, 'cilium'),
      ]);
    }
  } finally {
    host?.ns.close();
  }
}

/** CHECK: what ADD made (and prevResult lists) is still there: IPAM reservation, both veth ends, addresses, routes. */
async function check(a: CheckArgs<PluginConfig>): Promise<void> {
  const prev = a.prevResult;
  const idx = (prev.interfaces ?? []).findIndex((i) => i.name === a.ifname && i.sandbox === a.netns);
  if (idx < 0) {
    throw new CniError(CniErrorCode.Internal, `prevResult has no interface ${a.ifname} in ${a.netns}`);
  }
  const want = prev.interfaces![idx]!;
  const addresses = (prev.ips ?? []).filter((i) => i.interface === idx);
  if (addresses.length === 0)
    throw new CniError(CniErrorCode.Internal, `prevResult has no address on ${a.ifname}`);
  const fail = (msg: string) => {
    throw new CniError(CniErrorCode.Internal, `CHECK: ${msg}`);
  };

  const ipam = ipamFor(a);
  try {
    await ipam.check(addresses.map((i) => i.address));
  } finally {
    ipam.close();
  }

  const host = hostNetnsOf(a);
  try {
    const hostName = hostIfname(a.containerId, a.ifname, a.config.mode);
    const h = Handle.open(host?.ns);
    try {
      let link: ReturnType<typeof linkGet>;
      try {
        link = linkGet(hostName, { handle: h });
      } catch (err) {
        if (isNotFound(err)) fail(`host interface ${hostName} is missing`);
        throw err;
      }
      if (link.kind !== 'veth') fail(`host interface ${hostName} is a ${link.kind ?? 'device'}, not a veth`);
      if (!link.up) fail(`host interface ${hostName} is down`);
      if (a.config.bpf && !existsSync(pinPath(a.config.bpf, hostName))) {
        fail(`BPF link pin ${pinPath(a.config.bpf, hostName)} is missing`);
      }
    } finally {
      h.close();
    }
  } finally {
    host?.ns.close();
  }

  withPodHandle(a.netns, (h) => {
    let link: ReturnType<typeof linkGet>;
    try {
      link = linkGet(a.ifname, { handle: h });
    } catch (err) {
      if (isNotFound(err)) fail(`interface ${a.ifname} is missing in ${a.netns}`);
      throw err;
    }
    if (link.kind !== 'veth') fail(`${a.ifname} is a ${link.kind ?? 'device'}, not a veth`);
    if (want.mac !== undefined && link.mac?.toLowerCase() !== want.mac.toLowerCase()) {
      fail(`${a.ifname} has MAC ${link.mac}, expected ${want.mac}`);
    }
    if (link.mtu !== a.config.mtu) fail(`${a.ifname} has MTU ${link.mtu}, expected ${a.config.mtu}`);
    if (!link.up) fail(`${a.ifname} is down`);
    const have = new Set(addrList({ dev: link.index }, { handle: h }).map((x) => x.cidr));
    for (const ip of addresses) if (!have.has(ip.address)) fail(`${a.ifname} lacks address ${ip.address}`);
    const routes = routeList({}, { handle: h });
    for (const ip of addresses) {
      if (ip.gateway === undefined) continue;
      const fam = tryParseCidr(ip.address)?.prefix.family;
      const dflt = routes.some(
        (r) => r.family === fam && r.dst === 'default' && r.via === ip.gateway && r.dev === link.index,
      );
      if (!dflt) fail(`no default route via ${ip.gateway} on ${a.ifname}`);
    }
  });
}

/** GC: release every IPAM reservation whose attachment is not in the valid list. */
async function gc(a: GcArgs<PluginConfig>): Promise<void> {
  const ipam = ipamFor(a);
  try {
    const released = await ipam.gc(a.validAttachments);
    if (released.length > 0) a.log(`datapath-cni: GC released ${released.map((r) => r.ip).join(' ')}`);
    // The BPF link pins of the attachments released: unpinning drops the last reference to a link (and its
    // program) whose veth may still exist, so nothing stays loaded for a pod that is gone.
    if (a.config.bpf) {
      const bpf = a.config.bpf;
      unpinBpf(
        bpf,
        released.flatMap((r) => [
          hostIfname(r.containerId, r.ifname, 'ptp'),
          hostIfname(r.containerId, r.ifname, 'cilium'),
        ]),
      );
    }
  } finally {
    ipam.close();
  }
}

/** STATUS: ready when IPAM can hand out an address in every range set. */
async function status(a: BaseArgs<PluginConfig>): Promise<void> {
  const ipam = ipamFor(a);
  try {
    await ipam.status();
  } finally {
    ipam.close();
  }
}

/** The handlers of datapath-cni (loaded lazily by the binary: they pull in the netlink FFI). */
export const handlers = { add, del, check, gc, status };

/** What the binary passes to runPlugin besides the handlers (cheap to load). */
export { pluginInfo } from './info.js';

/** The datapath-cni plugin, for running in-process with runPlugin. */
export function datapathCni(): CniPlugin<PluginConfig> {
  return { ...pluginInfo(), ...handlers };
}
