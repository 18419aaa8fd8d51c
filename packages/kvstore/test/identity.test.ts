import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalLabels,
  type IdentityChange,
  ManualClock,
  MemoryStore,
  NodeSession,
  StoreIdentityAllocator,
} from '../src/index.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

async function nodes(store: MemoryStore, n: number, opts = {}) {
  const out: StoreIdentityAllocator[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await StoreIdentityAllocator.open(await NodeSession.open(store, { node: `node-${i}` }), opts));
  }
  return out;
}

describe('StoreIdentityAllocator on the memory store', () => {
  it('gives one label set the same identity on every node, even concurrently', async () => {
    const store = new MemoryStore();
    const all = await nodes(store, 8);
    const sets = Array.from({ length: 20 }, (_, i) => [`k8s:app=a${i % 5}`, `k8s:tier=t${i % 4}`]);
    const results = await Promise.all(all.flatMap((a) => sets.map((l) => a.allocate(l))));
    const byLabels = new Map<string, Set<number>>();
    results.forEach((r, i) => {
      const key = canonicalLabels(sets[i % sets.length]!).join(';');
      byLabels.set(key, (byLabels.get(key) ?? new Set()).add(r.id));
    });
    const ids = [...byLabels.values()].map((s) => [...s]);
    for (const s of ids) expect(s).toHaveLength(1); // one id per label set
    const flat = ids.map((s) => s[0]!);
    expect(new Set(flat).size).toBe(byLabels.size); // distinct label sets, distinct ids
    for (const id of flat) expect(id).toBeGreaterThanOrEqual(256);
    expect(results.filter((r) => r.isNew)).toHaveLength(byLabels.size); // created exactly once each
    await tick();
    for (const a of all) expect(a.identities().size).toBe(byLabels.size); // every cache converged
  });

  it('canonicalises labels: order and duplicates do not matter', async () => {
    const [a] = await nodes(new MemoryStore(), 1);
    const x = await a!.allocate(['k8s:b=2', 'k8s:a=1']);
    const y = await a!.allocate(['k8s:a=1', 'k8s:b=2', 'k8s:a=1']);
    expect(y.id).toBe(x.id);
    expect(a!.lookup(x.id)).toEqual(['k8s:a=1', 'k8s:b=2']);
    expect(a!.lookupByLabels(['k8s:b=2', 'k8s:a=1'])).toBe(x.id);
  });

  it('rejects bad label sets before touching the store', async () => {
    const store = new MemoryStore();
    const [a] = await nodes(store, 1);
    const rev = store.revision;
    await expect(a!.allocate([])).rejects.toMatchObject({ name: 'KvError', code: 'InvalidArgument' });
    await expect(a!.allocate(['k8s:a=1;k8s:b=2'])).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(a!.allocate([''])).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(a!.release(['k8s:never=1'])).rejects.toMatchObject({ code: 'NotFound' });
    expect(store.revision).toBe(rev);
    await expect(StoreIdentityAllocator.open(a!.session, { minId: 10, maxId: 5 })).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
  });

  it('reference-counts per node and garbage-collects unreferenced identities only', async () => {
    const store = new MemoryStore();
    const [a, b] = await nodes(store, 2);
    const web = ['k8s:app=web'];
    const { id } = await a!.allocate(web);
    await a!.allocate(web);
    await b!.allocate(web);
    expect(await a!.release(web)).toBe(false); // a still holds one
    expect(await a!.gc()).toEqual([]);
    expect(await a!.release(web)).toBe(true);
    expect(await a!.gc()).toEqual([]); // b still references it
    expect(await b!.release(web)).toBe(true);
    const changes: IdentityChange[] = [];
    a!.onChange((c) => changes.push(c));
    expect(await b!.gc()).toEqual([id]);
    await tick();
    expect(changes).toEqual([{ type: 'delete', id, labels: web }]);
    expect(a!.lookup(id)).toBeUndefined();
    expect((await store.list('identities/')).entries).toEqual([]);
  });

  it("a listener that throws is its own failure: other listeners, the copy and other nodes' writes go on", async () => {
    const store = new MemoryStore();
    const [a, b] = await nodes(store, 2);
    const seen: IdentityChange[] = [];
    b!.onChange(() => {
      throw new Error('listener bug');
    });
    b!.onChange((c) => seen.push(c));
    const { id } = await a!.allocate(['k8s:app=thrower']);
    await tick();
    expect(seen).toEqual([{ type: 'add', id, labels: ['k8s:app=thrower'] }]);
    expect(b!.lookup(id)).toEqual(['k8s:app=thrower']);
    expect((await a!.allocate(['k8s:app=next'])).id).not.toBe(id);
  });

  it('honours the GC grace period on its clock', async () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    const [a] = await nodes(store, 1, { clock });
    const { id } = await a!.allocate(['k8s:app=db']);
    await a!.release(['k8s:app=db']);
    expect(await a!.gc({ graceMs: 10_000 })).toEqual([]); // first seen unused now
    clock.advance(9_999);
    expect(await a!.gc({ graceMs: 10_000 })).toEqual([]);
    clock.advance(1);
    expect(await a!.gc({ graceMs: 10_000 })).toEqual([id]);
  });

  it("drops a dead node's references when its lease expires", async () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    const [a, b] = await nodes(store, 2);
    const { id } = await a!.allocate(['k8s:app=x']);
    await b!.allocate(['k8s:app=x']);
    a!.session.abandon(); // crash: keep-alives stop
    clock.advance(15_000);
    expect((await store.list('identities/refs/')).entries.map((e) => e.key.split('/').pop())).toEqual([
      'node-1',
    ]);
    expect(await b!.gc()).toEqual([]);
    await b!.release(['k8s:app=x']);
    expect(await b!.gc()).toEqual([id]);
  });

  it('re-attaches references after the node lease is lost and re-granted', async () => {
    const store = new MemoryStore();
    const [a] = await nodes(store, 1);
    const { id } = await a!.allocate(['k8s:app=y']);
    const old = a!.session.leaseId;
    store.revokeLease(old); // the store drops the lease (e.g. expired during a partition)
    expect((await store.list('identities/refs/')).entries).toEqual([]);
    await tick();
    await a!.session.settled();
    expect(a!.session.leaseId).not.toBe(old);
    const refs = (await store.list('identities/refs/')).entries;
    expect(refs.map((e) => [e.value, e.lease])).toEqual([[String(id), a!.session.leaseId]]);
    expect((await store.get('nodes/node-0'))?.lease).toBe(a!.session.leaseId);
  });

  it('reports Exhausted when the id range is full', async () => {
    const [a] = await nodes(new MemoryStore(), 1, { minId: 300, maxId: 301 });
    await a!.allocate(['k8s:a=1']);
    await a!.allocate(['k8s:a=2']);
    await expect(a!.allocate(['k8s:a=3'])).rejects.toMatchObject({ code: 'Exhausted' });
  });

  it('keeps one id per label set and distinct ids across random interleavings (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(2), fc.nat(5), fc.boolean()), { minLength: 1, maxLength: 40 }),
        async (steps) => {
          const store = new MemoryStore();
          const all = await nodes(store, 3, { minId: 256, maxId: 270 });
          const held = new Map<string, number>(); // `${node}:${set}` → count
          await Promise.all(
            steps.map(async ([n, set, alloc]) => {
              const labels = [`k8s:set=${set}`];
              const k = `${n}:${set}`;
              if (alloc || (held.get(k) ?? 0) === 0) {
                held.set(k, (held.get(k) ?? 0) + 1);
                await all[n]!.allocate(labels);
              } else {
                held.set(k, held.get(k)! - 1);
                await all[n]!.release(labels);
              }
            }),
          );
          await all[0]!.gc();
          const { entries } = await store.list('identities/labels/');
          const ids = entries.map((e) => e.value);
          expect(new Set(ids).size).toBe(ids.length);
          // every label set some node still holds keeps its identity
          for (const [k, c] of held) {
            const set = k.split(':')[1];
            if (c > 0)
              expect(entries.some((e) => decodeURIComponent(e.key).endsWith(`set=${set}`))).toBe(true);
          }
          for (const a of all) await a.close();
        },
      ),
      { numRuns: 40 },
    );
  });
});
