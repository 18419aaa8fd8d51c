// When the store cancels a watch (etcd compaction), the allocators list again and watch from there:
// changes made while they were blind show up as ordinary change events.
import { describe, expect, it } from 'vitest';
import {
  type IdentityChange,
  MemoryStore,
  type NodeCidrChange,
  NodeSession,
  StoreClusterPool,
  StoreIdentityAllocator,
} from '../src/index.js';
import { cancellable } from './cancellable.js';

const settle = () => new Promise((r) => setTimeout(r, 10));

describe('watch cancellation', () => {
  it('identity allocator reloads and reports what it missed', async () => {
    const inner = new MemoryStore();
    const c = cancellable(inner);
    const a = await StoreIdentityAllocator.open(await NodeSession.open(c.store, { node: 'a' }));
    const b = await StoreIdentityAllocator.open(await NodeSession.open(inner, { node: 'b' }));
    const old = await b.allocate(['k8s:app=old']);
    await settle();
    expect(a.lookup(old.id)).toEqual(['k8s:app=old']);
    const changes: IdentityChange[] = [];
    a.onChange((ch) => changes.push(ch));
    c.blind();
    const fresh = await b.allocate(['k8s:app=new']);
    await b.release(['k8s:app=old']);
    await b.gc();
    await settle();
    expect(a.lookup(fresh.id)).toBeUndefined(); // blind
    c.cancel();
    await settle();
    expect(a.lookup(fresh.id)).toEqual(['k8s:app=new']);
    expect(a.lookup(old.id)).toBeUndefined();
    expect(changes).toEqual([
      { type: 'add', id: fresh.id, labels: ['k8s:app=new'] },
      { type: 'delete', id: old.id, labels: ['k8s:app=old'] },
    ]);
    // and it keeps following after the reload
    const later = await b.allocate(['k8s:app=later']);
    await settle();
    expect(a.lookup(later.id)).toEqual(['k8s:app=later']);
  });

  it('cluster pool reloads and reports what it missed', async () => {
    const inner = new MemoryStore();
    const c = cancellable(inner);
    const spec = { ipv4: { cidrs: ['10.244.0.0/16'], nodeMaskSize: 24 } };
    const a = await StoreClusterPool.open(c.store, spec);
    const b = await StoreClusterPool.open(inner, spec);
    await b.allocate('n1');
    await settle();
    const changes: NodeCidrChange[] = [];
    a.onChange((ch) => changes.push(ch));
    c.blind();
    await b.allocate('n2');
    await b.release('n1');
    c.cancel();
    await settle();
    expect(a.allocations()).toEqual(new Map([['n2', { ipv4: '10.244.1.0/24' }]]));
    expect(changes).toEqual([
      { type: 'allocated', node: 'n2', cidr: '10.244.1.0/24' },
      { type: 'released', node: 'n1', cidr: '10.244.0.0/24' },
    ]);
    expect(a.free()).toEqual({ ipv4: 255 });
  });
});
