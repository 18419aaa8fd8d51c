/**
 * The scale benchmark's cluster (issue 22): simulated nodes' pods written to etcd the way real nodes publish
 * them, and the label changes the update rows time. Shared by cluster-control.ts and profile-scale.ts.
 */
import { EtcdStore, type KvLease, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
import { ClusterNodeAgent, podIdentityLabels } from '../src/cluster-node.js';

const now = () => performance.now();

/**
 * `nNodes` simulated nodes × `nPods` pods in etcd, each node's entries under its own lease (as real nodes
 * publish them), their 20 label sets' identities allocated first (as the publishing nodes do).
 */
export async function writeCluster(endpoint: string, prefix: string, nNodes: number, nPods: number) {
  const writer = new EtcdStore({ endpoints: [endpoint], prefix });
  const session = await NodeSession.open(writer, { node: 'bench-writer', ttlSeconds: 600 });
  const ids = await StoreIdentityAllocator.open(session);
  const idOf: number[] = [];
  for (let a = 0; a < 20; a++)
    idOf.push((await ids.allocate(podIdentityLabels(`ns${a % 10}`, { app: `a${a}` }, {}))).id);
  const entry = (n: number, p: number, app = p % 20) => {
    const ip = `10.${64 + (n >> 8)}.${n & 255}.${p + 2}`;
    const v = {
      ip,
      identity: idOf[app]!,
      node: `sim${n}`,
      nodeAddress: `198.19.${n >> 8}.${n & 255}`,
      pod: {
        namespace: `ns${p % 10}`,
        name: `pod-${n}-${p}`,
        labels: { app: `a${app}` },
        namespaceLabels: {},
      },
    };
    return { key: `ipcache/${ip}`, ip, value: JSON.stringify(v), identity: v.identity };
  };
  const leases: KvLease[] = [];
  for (let n = 0; n < nNodes; n++) {
    const lease = await writer.grantLease(600);
    leases.push(lease);
    for (let p = 0; p < nPods; p += 128)
      await writer.txn(
        [],
        Array.from({ length: Math.min(128, nPods - p) }, (_, i) => entry(n, p + i)).map((e) => ({
          type: 'put' as const,
          key: e.key,
          value: e.value,
          lease: lease.id,
        })),
      );
  }
  /**
   * Change i: pod ⌊i/2⌋ (spread over the nodes) takes the other label set of its namespace (even i, a new
   * identity for its address), or goes back (odd i).
   */
  const change = async (i: number) => {
    const k = Math.floor(i / 2);
    const n = (k * 37) % nNodes;
    const p = (k * 7) % nPods;
    const e = i % 2 === 0 ? entry(n, p, ((p % 20) + 10) % 20) : entry(n, p);
    const t = now();
    await writer.put(e.key, e.value, { lease: leases[n]!.id });
    return { key: e.key, ip: e.ip, identity: e.identity, t, ack: now() };
  };
  const close = async () => {
    for (const l of leases) await l.revoke().catch(() => undefined);
    await ids.close();
    await session.close();
    await writer.close();
  };
  return { entries: nNodes * nPods, change, close };
}

/** What {@link writeCluster} returns. */
export type ScaleCluster = Awaited<ReturnType<typeof writeCluster>>;

/**
 * A real node agent for the scale cluster (`ClusterNodeAgent`, native routing, underlay 198.18.0.1 on
 * `fabric`), with the agent's own `onRemoteApplied` timing of each remote change collected in `applied`.
 */
export async function startScaleAgent(o: {
  endpoint: string;
  etcdPrefix: string;
  prefix: string;
  stateDir: string;
  fabric: string;
}): Promise<{ node: ClusterNodeAgent; applied: Map<string, number> }> {
  const applied = new Map<string, number>();
  const node = await ClusterNodeAgent.start({
    name: 'scale',
    prefix: o.prefix,
    stateDir: o.stateDir,
    etcd: [o.endpoint],
    etcdPrefix: o.etcdPrefix,
    underlay: '198.18.0.1',
    fabric: o.fabric,
    mode: 'native',
    onRemoteApplied: (ip, ms) => applied.set(ip, ms),
  });
  return { node, applied };
}

/**
 * Makes the cluster's changes 0 … `count`-1 one after another, each waited for until `node` applied it (its
 * ipcache map holds the new identity; 10 s at most); returns the agent's apply time of each (ms, from its
 * watch delivering the change, as `onRemoteApplied` reports it).
 */
export async function timeAgentUpdates(
  cluster: ScaleCluster,
  node: ClusterNodeAgent,
  applied: Map<string, number>,
  count: number,
): Promise<number[]> {
  const dp = node.agent.datapath;
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const c = await cluster.change(i);
    for (;;) {
      if (applied.has(c.ip) && dp.ipcache.get(`${c.ip}/32`)?.identity === c.identity) break;
      await new Promise((r) => setImmediate(r));
      if (now() - c.t > 10_000) throw new Error(`agent never applied ${c.ip}`);
    }
    times.push(applied.get(c.ip)!);
    applied.delete(c.ip);
  }
  return times;
}
