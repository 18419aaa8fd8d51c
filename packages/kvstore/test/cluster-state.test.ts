// The node registry and the cluster-wide ipcache on MemoryStore: registration and its clashes, takeover
// after a restart (same CIDRs), lease expiry turning into deletions on every other node, republish after
// a lost lease, and a reload after a cancelled watch reporting what was missed.
import { describe, expect, it } from 'vitest';
import {
  ClusterIpcache,
  type ClusterNodeChange,
  type IpcacheChange,
  KvError,
  type KvStore,
  MemoryStore,
  NodeRegistry,
  NodeSession,
  StoreClusterPool,
} from '../src/index.js';
import { cancellable } from './cancellable.js';

const SPEC = { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } };
const settle = () => new Promise((r) => setTimeout(r, 10));

async function node(store: KvStore, name: string) {
  const session = await NodeSession.open(store, { node: name });
  const pool = await StoreClusterPool.open(store, SPEC);
  const registry = await NodeRegistry.open(session, pool);
  const ipcache = await ClusterIpcache.open(session);
  return { session, pool, registry, ipcache };
}

describe('NodeRegistry', () => {
  it('registers nodes with pool CIDRs and every node sees every other', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    const b = await node(store, 'b');
    const seen: ClusterNodeChange[] = [];
    a.registry.onChange((c) => seen.push(c));
    const ra = await a.registry.register({ address: '198.18.0.1', bootId: '1' });
    const rb = await b.registry.register({ address: '198.18.0.2', bootId: '1' });
    await settle();
    expect(ra.podCidrs.ipv4).not.toBe(rb.podCidrs.ipv4);
    expect(a.registry.nodes().get('b')).toEqual(rb);
    expect(b.registry.nodes().get('a')).toEqual(ra);
    expect(seen.map((c) => `${c.type} ${c.node.name}`)).toEqual(['upsert a', 'upsert b']);
  });

  it('refuses a clashing name or address with AlreadyExists and writes nothing', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    await a.registry.register({ address: '198.18.0.1', bootId: '1' });
    const other = await node(store, 'b');
    const before = (await store.list('')).entries.filter((e) => e.key.startsWith('registry/')).length;
    await expect(other.registry.register({ address: '198.18.0.1', bootId: '1' })).rejects.toMatchObject({
      code: 'AlreadyExists',
      target: '198.18.0.1',
    });
    const impostor = await node(store, 'a'); // another process claiming name a from another address
    await expect(impostor.registry.register({ address: '198.18.0.9', bootId: '2' })).rejects.toMatchObject({
      code: 'AlreadyExists',
      target: 'a',
    });
    await expect(other.registry.register({ address: 'nope', bootId: '1' })).rejects.toBeInstanceOf(KvError);
    const after = (await store.list('')).entries.filter((e) => e.key.startsWith('registry/')).length;
    expect(after).toBe(before);
  });

  it('refuses fixed pod CIDRs that overlap another node', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    const ra = await a.registry.register({ address: '198.18.0.1', bootId: '1' });
    const b = await node(store, 'b');
    await expect(
      b.registry.register({ address: '198.18.0.2', bootId: '1', podCidrs: { ipv4: ra.podCidrs.ipv4! } }),
    ).rejects.toMatchObject({ code: 'AlreadyExists' });
    const ok = await b.registry.register({
      address: '198.18.0.2',
      bootId: '1',
      podCidrs: { ipv4: '10.245.0.0/24' },
    });
    expect(ok.podCidrs.ipv4).toBe('10.245.0.0/24');
  });

  it('a restart with the same name and address takes over and keeps the CIDRs; expiry deletes', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    const watcher = await node(store, 'w');
    const first = await a.registry.register({ address: '198.18.0.1', bootId: 'boot-1' });
    a.session.abandon(); // kill -9: the lease lives on until it expires
    const again = await node(store, 'a');
    const second = await again.registry.register({ address: '198.18.0.1', bootId: 'boot-2' });
    expect(second.podCidrs).toEqual(first.podCidrs);
    await settle();
    expect(watcher.registry.nodes().get('a')?.bootId).toBe('boot-2');
    // the old lease expiring does not remove the new registration
    const oldLease = (await store.get('nodes/a'))!.lease;
    expect(oldLease).toBe(again.session.leaseId);
    const changes: ClusterNodeChange[] = [];
    watcher.registry.onChange((c) => changes.push(c));
    store.revokeLease(again.session.leaseId);
    again.session.abandon();
    await settle();
    expect(watcher.registry.nodes().has('a')).toBe(false);
    expect(changes).toEqual([{ type: 'delete', node: second }]);
  });
});

describe('ClusterIpcache', () => {
  it('publishes under the lease, mirrors everyone, drops a dead node', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    const b = await node(store, 'b');
    const seen: IpcacheChange[] = [];
    b.ipcache.onChange((c) => seen.push(c));
    const pod = { namespace: 'x', name: 'p', labels: { app: 'p' } };
    await a.ipcache.upsert({ ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1', pod });
    await a.ipcache.upsert({ ip: '10.244.0.11', identity: 301, nodeAddress: '198.18.0.1' });
    await settle();
    expect(b.ipcache.entries().get('10.244.0.10')).toEqual({
      ip: '10.244.0.10',
      identity: 300,
      node: 'a',
      nodeAddress: '198.18.0.1',
      pod,
    });
    await expect(
      b.ipcache.upsert({ ip: '10.244.0.10', identity: 5, nodeAddress: '198.18.0.2' }),
    ).rejects.toMatchObject({ code: 'AlreadyExists' });
    expect(await a.ipcache.delete('10.244.0.11')).toBe(true);
    await settle();
    expect(b.ipcache.entries().has('10.244.0.11')).toBe(false);
    store.revokeLease(a.session.leaseId); // a's lease expires
    a.session.abandon();
    await settle();
    expect(b.ipcache.entries().size).toBe(0);
    expect(seen.map((c) => `${c.type} ${c.entry.ip}`)).toEqual([
      'upsert 10.244.0.10',
      'upsert 10.244.0.11',
      'delete 10.244.0.11',
      'delete 10.244.0.10',
    ]);
  });

  it('republishes its entries after a lost lease, and adopts them after a restart', async () => {
    const store = new MemoryStore();
    const a = await node(store, 'a');
    const b = await node(store, 'b');
    await a.registry.register({ address: '198.18.0.1', bootId: '1' });
    await a.ipcache.upsert({ ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1' });
    store.revokeLease(a.session.leaseId); // lost: the session renews and the owners write again
    await settle();
    await a.session.settled();
    await settle();
    expect((await store.get('ipcache/10.244.0.10'))?.lease).toBe(a.session.leaseId);
    expect((await store.get('registry/nodes/a'))?.lease).toBe(a.session.leaseId);
    expect(b.ipcache.entries().has('10.244.0.10')).toBe(true);
    // restart: a new process adopts what the old one published, under its own lease
    a.session.abandon();
    const again = await node(store, 'a');
    const adopted = await again.ipcache.adopt();
    expect(adopted.map((e) => e.ip)).toEqual(['10.244.0.10']);
    expect((await store.get('ipcache/10.244.0.10'))?.lease).toBe(again.session.leaseId);
  });

  it('reloads after a cancelled watch and reports what it missed', async () => {
    const inner = new MemoryStore();
    const c = cancellable(inner);
    const a = await node(inner, 'a');
    const b = await node(c.store, 'b');
    await a.ipcache.upsert({ ip: '10.244.0.10', identity: 300, nodeAddress: '198.18.0.1' });
    await settle();
    const seen: IpcacheChange[] = [];
    b.ipcache.onChange((ch) => seen.push(ch));
    c.blind();
    await a.ipcache.delete('10.244.0.10');
    await a.ipcache.upsert({ ip: '10.244.0.12', identity: 302, nodeAddress: '198.18.0.1' });
    await settle();
    expect(b.ipcache.entries().has('10.244.0.10')).toBe(true); // blind
    c.cancel();
    await settle();
    expect([...b.ipcache.entries().keys()]).toEqual(['10.244.0.12']);
    expect(seen.map((c) => `${c.type} ${c.entry.ip}`).sort()).toEqual([
      'delete 10.244.0.10',
      'upsert 10.244.0.12',
    ]);
  });
});
