/**
 * A two-node cluster on one machine, without etcd, for the cluster datapath's privileged tests and its
 * benchmark: a "fabric" namespace with a bridge (the underlay, 198.18.0.0/24), two node namespaces each
 * with an underlay veth on the bridge and its own agent datapath (own pins), and pods on each node
 * (10.244.<node>.0/24). The ipcache is filled statically through the cluster writer (src/ipcache.ts),
 * policy entries are written straight into each node's policy trie.
 *
 *   pod ═ lxc ─ node 1 (198.18.0.1 on eth0) ═ u1 ┐
 *                                                ├ br0 (fabric netns)
 *   pod ═ lxc ─ node 2 (198.18.0.2 on eth0) ═ u2 ┘
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  addrAdd,
  applyEndpoint,
  linkAdd,
  linkGet,
  linkSetUp,
  planEndpoint,
  routeReplace,
} from '@datapath/netdev';
import { Handle, Netns } from '@datapath/netlink';
import type { PolicyKey } from '@datapath/policy';
import { createNetns, deleteNetns, type TestNetns, uniqueName } from '@datapath/testutils';
import { VETH_QUEUES } from '../../src/agent.js';
import { Datapath } from '../../src/datapath.js';
import { GATEWAY } from '../../src/gateway.js';
import { ClusterIpcache, REMOTE_NODE_IDENTITY } from '../../src/ipcache.js';
import { IpcacheFlags } from '../../src/maps.js';
import { sysctlIn } from '../../src/node.js';
import {
  type NodeDatapath,
  type RoutingMode,
  remoteNodeRoutes,
  setupNodeDatapath,
  teardownNodeDatapath,
} from '../../src/node-datapath.js';

export interface PodFx {
  /** Named namespace of the pod. */
  netns: TestNetns;
  ip: string;
  lxcId: number;
  secId: number;
}

export interface NodeFx {
  index: number;
  netns: TestNetns;
  ns: Netns;
  underlay: string;
  podCidr: string;
  dp: Datapath;
  ipc: ClusterIpcache;
  nd: NodeDatapath;
  pods: PodFx[];
  nextLxc: number;
}

export interface TwoNodes {
  prefix: string;
  mode: RoutingMode;
  fabric: TestNetns;
  nodes: [NodeFx, NodeFx];
  /** Adds a pod with identity `secId` on node `n` (0 or 1) and announces it to the other node's ipcache. */
  addPod(n: 0 | 1, secId: number): PodFx;
  /** Writes one policy entry of `pod` (on node `n`); bumps that node's policy revision. */
  policy(n: 0 | 1, pod: PodFx, key: PolicyKey, deny?: boolean): void;
  /** Allows everything in both directions for `pod` (identity 0, any protocol). */
  allowAll(n: 0 | 1, pod: PodFx): void;
  close(): void;
}

export const ANY = (direction: 'ingress' | 'egress'): PolicyKey => ({
  direction,
  identity: 0,
  protocol: 0,
  port: 0,
  prefixLen: 0,
});

/**
 * Builds the two nodes in `mode`. Every namespace and pin is named with a fresh test-run name; `close()`
 * removes them all (also after a failure half-way, through the same list). `prefix` (default: a test-run
 * name) names them; the benchmark passes its own.
 */
export async function twoNodes(
  mode: RoutingMode,
  opts: { events?: boolean; prefix?: string; hostRouting?: boolean } = {},
): Promise<TwoNodes> {
  const prefix = opts.prefix ?? uniqueName();
  const made: (() => void)[] = [];
  const close = () => {
    const errors: unknown[] = [];
    for (const f of made.splice(0).reverse()) {
      try {
        f();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'twoNodes: cleanup failed');
  };
  try {
    const fabric = createNetns(`${prefix}f`);
    made.push(() => deleteNetns(fabric.name));
    const fabricNs = Netns.open({ path: fabric.path });
    made.push(() => fabricNs.close());
    const fh = Handle.open(fabricNs);
    made.push(() => fh.close());
    linkAdd({ name: 'br0', kind: 'bridge', up: true }, { handle: fh });
    const br = linkGet('br0', { handle: fh }).index;

    const nodes: NodeFx[] = [];
    for (const index of [1, 2]) {
      const netns = createNetns(`${prefix}n${index}`);
      made.push(() => deleteNetns(netns.name));
      const ns = Netns.open({ path: netns.path });
      made.push(() => ns.close());
      sysctlIn(ns, 'net.ipv4.ip_forward', '1');
      sysctlIn(ns, 'net.ipv4.conf.all.rp_filter', '0');
      sysctlIn(ns, 'net.ipv4.conf.default.rp_filter', '0');
      const underlay = `198.18.0.${index}`;
      {
        using nh = Handle.open(ns);
        linkAdd({ name: `u${index}`, kind: 'veth', peer: { name: 'eth0', netns: ns } }, { handle: fh });
        const u = linkGet(`u${index}`, { handle: fh }).index;
        fh.linkSet({ index: u, master: br });
        linkSetUp(u, { handle: fh });
        addrAdd('eth0', `${underlay}/24`, { handle: nh });
        linkSetUp('eth0', { handle: nh });
      }
      const pinDir = join('/sys/fs/bpf', `${prefix}p${index}`);
      mkdirSync(pinDir, { recursive: true });
      made.push(() => rmSync(pinDir, { recursive: true, force: true }));
      const dp = await Datapath.open({
        pinDir,
        ...(opts.events === undefined ? {} : { events: opts.events }),
      });
      made.push(() => dp.close());
      const nd = setupNodeDatapath(dp, ns, {
        mode,
        ...(mode === 'native' && opts.hostRouting !== false ? { underlayDev: 'eth0' } : {}),
      });
      made.push(() => teardownNodeDatapath(dp, ns, nd));
      // The node's own underlay address is the host (the policy engine's entry on a real agent).
      dp.ipcache.set(`${underlay}/32`, { identity: 1, flags: IpcacheFlags.IPCACHE_F_HOST });
      nodes.push({
        index,
        netns,
        ns,
        underlay,
        podCidr: `10.244.${index}.0/24`,
        dp,
        ipc: new ClusterIpcache(dp),
        nd,
        pods: [],
        nextLxc: 1,
      });
    }
    const [n1, n2] = nodes as [NodeFx, NodeFx];
    for (const [self, other] of [
      [n1, n2],
      [n2, n1],
    ] as const) {
      using h = Handle.open(self.ns);
      for (const r of remoteNodeRoutes({ underlay: other.underlay, podCidrs: [other.podCidr] }))
        routeReplace(r, { handle: h });
      self.ipc.upsert({ prefix: `${other.underlay}/32`, identity: REMOTE_NODE_IDENTITY });
    }

    const addPod = (n: 0 | 1, secId: number): PodFx => {
      const node = nodes[n]!;
      const other = nodes[1 - n]!;
      const ip = `10.244.${node.index}.${10 + node.pods.length}`;
      const netns = createNetns(`${prefix}q${node.index}${node.pods.length}`);
      made.push(() => deleteNetns(netns.name));
      const plan = planEndpoint({
        containerId: netns.name,
        netns: netns.path,
        addresses: [ip],
        gateway: GATEWAY,
        mode: 'cilium',
        mtu: node.nd.podMtu,
        queues: VETH_QUEUES, // as the agent makes them
      });
      const ep = applyEndpoint(plan, { hostNetns: node.ns });
      const lxcId = node.nextLxc++;
      node.dp.attachEndpoint(node.ns, { lxcId, hostIfindex: ep.host.index });
      node.dp.setEndpoint({
        ifindex: ep.host.index,
        lxcId,
        flags: 0,
        secId,
        mac: ep.container.mac,
        nodeMac: ep.host.mac,
        ip,
      });
      other.ipc.upsert({ prefix: `${ip}/32`, identity: secId, node: node.underlay });
      const pod = { netns, ip, lxcId, secId };
      node.pods.push(pod);
      return pod;
    };
    const policy = (n: 0 | 1, pod: PodFx, key: PolicyKey, deny = false) => {
      const dp = nodes[n]!.dp;
      dp.policy.set({ lxcId: pod.lxcId, key }, { deny, prefixLen: key.prefixLen, proxyPort: 0, authType: 0 });
      dp.bumpPolicyRevision();
    };
    return {
      prefix,
      mode,
      fabric,
      nodes: [n1, n2],
      addPod,
      policy,
      allowAll: (n, pod) => {
        policy(n, pod, ANY('ingress'));
        policy(n, pod, ANY('egress'));
      },
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}
