// The node registry and the cluster ipcache on a real etcd (loopback, no privileges): a crashed node's
// lease expires and every other node sees its registration and entries go; on a three-member etcd with one
// member killed, registrations, identities and ipcache entries keep being allocated and propagated.
import { randomBytes } from 'node:crypto';
import { startEtcd, startEtcdCluster, type TestEtcd } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterIpcache,
  EtcdStore,
  NodeRegistry,
  NodeSession,
  StoreClusterPool,
  StoreIdentityAllocator,
} from '../src/index.js';

const SPEC = { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } };
const opened: EtcdStore[] = [];
const until = async (cond: () => boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, 50));
  }
};

async function node(endpoints: string[], prefix: string, name: string, ttlSeconds = 2) {
  const store = new EtcdStore({ endpoints, prefix, retryTimeoutMs: 20_000 });
  opened.push(store);
  const session = await NodeSession.open(store, { node: name, ttlSeconds });
  const pool = await StoreClusterPool.open(store, SPEC);
  const registry = await NodeRegistry.open(session, pool);
  const ipcache = await ClusterIpcache.open(session);
  return { store, session, pool, registry, ipcache };
}

let etcd: TestEtcd;
beforeAll(async () => {
  etcd = await startEtcd();
}, 30_000);
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await etcd?.stop();
});

describe('cluster state on a real etcd', () => {
  it('a crashed node: its registration and ipcache entries go when its lease expires', async () => {
    const prefix = `cs-${randomBytes(3).toString('hex')}/`;
    const a = await node([etcd.endpoint], prefix, 'a', 1);
    const b = await node([etcd.endpoint], prefix, 'b');
    await a.registry.register({ address: '198.18.0.1', bootId: '1' });
    await a.ipcache.upsert({ ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1' });
    await until(() => b.registry.nodes().has('a') && b.ipcache.entries().has('10.244.0.10'));
    a.session.abandon(); // SIGKILL: keep-alives stop, nothing is revoked
    await until(() => !b.registry.nodes().has('a') && !b.ipcache.entries().has('10.244.0.10'));
    // it comes back under the same name and address: same CIDR, its entries adopted
    const again = await node([etcd.endpoint], prefix, 'a');
    const before = (await a.pool.allocate('a')).ipv4;
    const me = await again.registry.register({ address: '198.18.0.1', bootId: '2' });
    expect(me.podCidrs.ipv4).toBe(before);
    await until(() => b.registry.nodes().get('a')?.bootId === '2');
  });

  it('three members, one killed: allocations and propagation continue', async () => {
    const cluster = await startEtcdCluster(3);
    try {
      const prefix = `cs3-${randomBytes(3).toString('hex')}/`;
      const a = await node(cluster.endpoints, prefix, 'a', 5);
      const b = await node(cluster.endpoints, prefix, 'b', 5);
      await a.registry.register({ address: '198.18.0.1', bootId: '1' });
      await cluster.kill(0);
      const ids = await StoreIdentityAllocator.open(b.session);
      const { id } = await ids.allocate(['k8s:app=after-kill']);
      const rb = await b.registry.register({ address: '198.18.0.2', bootId: '1' });
      await b.ipcache.upsert({ ip: '10.244.1.10', identity: id, nodeAddress: '198.18.0.2' });
      await until(() => a.registry.nodes().get('b')?.podCidrs.ipv4 === rb.podCidrs.ipv4);
      await until(() => a.ipcache.entries().get('10.244.1.10')?.identity === id);
      expect(a.registry.nodes().get('a')?.podCidrs.ipv4).not.toBe(rb.podCidrs.ipv4);
      await ids.close();
    } finally {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await cluster.stop();
    }
  }, 60_000);
});
