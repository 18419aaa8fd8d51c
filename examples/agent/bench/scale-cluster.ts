/**
 * The scale benchmark's cluster (issue 22): simulated nodes' pods written to etcd the way real nodes publish
 * them, and the label changes the update rows time. Shared by cluster-control.ts and profile-scale.ts.
 */
import { EtcdStore, type KvLease, NodeSession, StoreIdentityAllocator } from '@datapath/kvstore';
import { podIdentityLabels } from '../src/cluster-node.js';

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
