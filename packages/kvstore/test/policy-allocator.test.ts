import type { IdentityAllocator } from '@datapath/policy';
import { PolicyEngine } from '@datapath/policy';
import { describe, expect, it } from 'vitest';
import {
  type KvError,
  MemoryStore,
  NodeSession,
  PolicyIdentityAllocator,
  StoreIdentityAllocator,
} from '../src/index.js';

async function node(store: MemoryStore, name: string) {
  return StoreIdentityAllocator.open(await NodeSession.open(store, { node: name }));
}
const refs = async (store: MemoryStore) =>
  (await store.list('identities/refs/')).entries.map((e) => e.key.split('/').pop());

describe('PolicyIdentityAllocator', () => {
  it('is a @datapath/policy IdentityAllocator and the engine accepts it', async () => {
    const a: IdentityAllocator = new PolicyIdentityAllocator(await node(new MemoryStore(), 'a'));
    expect(() => new PolicyEngine({ allocator: a })).not.toThrow();
  });

  it('hands out the same cluster identity on two nodes, with store references following local use', async () => {
    const store = new MemoryStore();
    const a = new PolicyIdentityAllocator(await node(store, 'a'));
    const b = new PolicyIdentityAllocator(await node(store, 'b'));
    const web = ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=default'];
    const [pa, pb] = await Promise.all([a.prepare(web), b.prepare([...web].reverse())]);
    expect(pa).toBe(pb);
    expect(a.allocate(web, 'cluster')).toBe(pa);
    expect(a.allocate(web, 'cluster')).toBe(pa);
    expect(b.allocate(web, 'cluster')).toBe(pa);
    expect((await refs(store)).sort()).toEqual(['a', 'b']);
    a.release(pa);
    await a.settled();
    expect((await refs(store)).sort()).toEqual(['a', 'b']); // a still holds one
    a.release(pa);
    await a.settled();
    expect(await refs(store)).toEqual(['b']);
    expect(() => a.release(pa)).toThrow(expect.objectContaining({ code: 'NotFound' }));
  });

  it('answers from the watched cache once another node created the identity', async () => {
    const store = new MemoryStore();
    const a = new PolicyIdentityAllocator(await node(store, 'a'));
    const bAlloc = await node(store, 'b');
    const b = new PolicyIdentityAllocator(bAlloc);
    const id = await a.prepare(['k8s:app=x']);
    await new Promise((r) => setTimeout(r, 0)); // b's watch delivers the new identity
    expect(b.allocate(['k8s:app=x'], 'cluster')).toBe(id);
    await b.settled();
    expect((await refs(store)).sort()).toEqual(['a', 'b']);
  });

  it('throws NotFound for an unresolved set and resolves it in the background', async () => {
    const errors: KvError[] = [];
    const a = new PolicyIdentityAllocator(await node(new MemoryStore(), 'a'), {
      onError: (e) => errors.push(e),
    });
    expect(() => a.allocate(['k8s:app=new'], 'cluster')).toThrow(
      expect.objectContaining({ code: 'NotFound' }),
    );
    await a.settled();
    const id = a.allocate(['k8s:app=new'], 'cluster');
    expect(id).toBeGreaterThanOrEqual(256);
    expect(errors).toEqual([]);
  });

  it('keeps local-scope identities on the node', async () => {
    const store = new MemoryStore();
    const a = new PolicyIdentityAllocator(await node(store, 'a'));
    const id = a.allocate(['cidr:10.0.0.0/8'], 'local');
    expect(id).toBeGreaterThanOrEqual(1 << 24);
    expect((await store.list('identities/')).entries).toEqual([]);
    a.release(id);
  });
});
