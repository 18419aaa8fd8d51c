// Several node processes share one real etcd: concurrent node-CIDR and identity allocation with an etcd
// crash in the middle, watch propagation to other processes, and a node process killed (its lease
// expires, its CIDRs are reaped after the grace period, its identity references vanish).
import { randomBytes } from 'node:crypto';
import { startEtcd, type TestEtcd } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalLabels,
  EtcdStore,
  NodeSession,
  StoreClusterPool,
  StoreIdentityAllocator,
} from '../src/index.js';
import { type Agent, startAgent } from './agents.js';
import { POOL_SPEC } from './fixtures/spec.js';

const AGENTS = 4;
const NODES = 4; // node sessions (leases) per agent process
const SHARED = 10;
const UNIQUE = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let etcd: TestEtcd;
let store: EtcdStore;
const agents: Agent[] = [];
const prefix = `cluster-${randomBytes(3).toString('hex')}/`;

beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, retryTimeoutMs: 30_000 });
}, 30_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.kill()));
  await store?.close().catch(() => undefined);
  await etcd?.stop();
});

type Msg = Record<string, unknown>;
const of = (a: Agent, type: string) => a.messages.filter((m) => m.type === type);

describe('many node processes on one etcd', () => {
  it('allocate concurrently through an etcd crash with no duplicate and no loss', async () => {
    for (let i = 0; i < AGENTS; i++) {
      agents.push(
        startAgent(`a${i}`, {
          ETCD_ENDPOINT: etcd.endpoint,
          ETCD_PREFIX: prefix,
          NODES: String(NODES),
          SHARED: String(SHARED),
          UNIQUE: String(UNIQUE),
          PACE_MS: '40',
          TTL: '3',
        }),
      );
    }
    await Promise.all(agents.map((a) => a.waitFor((m) => m.type === 'ready', 45_000)));
    for (const a of agents) a.send('go');
    // crash etcd while the agents are mid-way
    await Promise.race([
      Promise.all(agents.map((a) => a.waitFor(() => a.messages.length >= 4))),
      sleep(3_000),
    ]);
    const before = agents.map((a) => of(a, 'cidr').length + of(a, 'identity').length);
    await etcd.kill();
    await sleep(1_000);
    await etcd.restart();
    await Promise.all(agents.map((a) => a.waitFor((m) => m.type === 'done', 45_000)));
    const perAgent = NODES + SHARED + UNIQUE;
    expect(before.some((n) => n < perAgent)).toBe(true); // the crash really hit work in progress

    // node CIDRs: one block per node and family, none shared, every reported one is in the store
    const reported = agents.flatMap((a) => of(a, 'cidr')) as {
      node: string;
      cidrs: { ipv4: string; ipv6: string };
    }[];
    expect(reported).toHaveLength(AGENTS * NODES);
    for (const fam of ['ipv4', 'ipv6'] as const) {
      expect(new Set(reported.map((r) => r.cidrs[fam])).size).toBe(reported.length);
    }
    const { entries: blocks } = await store.list('ipam/pods/cidrs/');
    expect(blocks).toHaveLength(2 * AGENTS * NODES);
    const owner = new Map(
      blocks.map((e) => [e.key.slice('ipam/pods/cidrs/'.length).replace('_', '/'), e.value]),
    );
    for (const r of reported) {
      expect(owner.get(r.cidrs.ipv4)).toBe(r.node);
      expect(owner.get(r.cidrs.ipv6)).toBe(r.node);
    }

    // identities: one id per label set on every agent, distinct ids, ≥ 256, store index agrees
    const ids = agents.flatMap((a) => of(a, 'identity')) as {
      labels: string[];
      id: number;
      isNew: boolean;
    }[];
    const byLabels = new Map<string, Set<number>>();
    for (const r of ids) {
      const k = canonicalLabels(r.labels).join(';');
      byLabels.set(k, (byLabels.get(k) ?? new Set()).add(r.id));
    }
    expect(byLabels.size).toBe(SHARED + AGENTS * UNIQUE);
    for (const set of byLabels.values()) expect(set.size).toBe(1);
    const distinct = [...byLabels.values()].map((s) => [...s][0]!);
    expect(new Set(distinct).size).toBe(distinct.length);
    expect(Math.min(...distinct)).toBeGreaterThanOrEqual(256);
    const { entries: index } = await store.list('identities/id/');
    expect(index).toHaveLength(byLabels.size);
    for (const e of index) expect(byLabels.get(e.value)).toEqual(new Set([Number(e.key.split('/').pop())]));
    // each shared set is referenced by every agent's node, each unique set by its own
    const { entries: refs } = await store.list('identities/refs/');
    expect(refs).toHaveLength(SHARED * AGENTS + UNIQUE * AGENTS);
  }, 120_000);

  it('propagates a new identity to every node process through its watch', async () => {
    const session = await NodeSession.open(store, { node: 'observer', ttlSeconds: 2 });
    const alloc = await StoreIdentityAllocator.open(session);
    const labels = ['k8s:app=propagated'];
    const t0 = Date.now();
    const { id, isNew } = await alloc.allocate(labels);
    expect(isNew).toBe(true);
    await Promise.all(
      agents.map((a) =>
        a.waitFor((m: Msg) => m.type === 'change' && m.change === 'add' && m.id === id, 10_000),
      ),
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    await alloc.release(labels);
    expect(await alloc.gc()).toEqual([id]);
    await Promise.all(
      agents.map((a) =>
        a.waitFor((m: Msg) => m.type === 'change' && m.change === 'delete' && m.id === id, 10_000),
      ),
    );
    await alloc.close();
    await session.close();
  }, 30_000);

  it('releases a killed node process: lease expires, CIDRs reaped after the grace period, refs gone', async () => {
    const victim = agents[0]!;
    const pool = await StoreClusterPool.open(store, POOL_SPEC);
    const alloc = await StoreIdentityAllocator.open(
      await NodeSession.open(store, { node: 'gc', ttlSeconds: 2 }),
    );
    const victimNodes = Array.from({ length: NODES }, (_, j) => `${victim.name}-n${j}`);
    const otherBlocks = [...pool.allocations()].filter(([n]) => !victimNodes.includes(n));
    expect(await pool.reapExpired({ graceMs: 1_000 })).toEqual([]); // everyone alive
    await victim.kill();
    const killedAt = Date.now();
    // the lease (TTL 3 s) expires: liveness keys and identity references vanish
    const refsOf = async () =>
      (await store.list('identities/refs/')).entries.filter((e) => e.key.endsWith(`/${victim.name}-n0`));
    while ((await refsOf()).length > 0 || (await store.list(`nodes/${victim.name}-`)).entries.length > 0) {
      expect(Date.now() - killedAt).toBeLessThan(10_000);
      await sleep(200);
    }
    // the grace period starts when a reaper first sees the node gone
    const reaped: string[] = [];
    const firstSeen = Date.now();
    while (reaped.length < NODES) {
      reaped.push(...(await pool.reapExpired({ graceMs: 1_000 })));
      expect(Date.now() - firstSeen).toBeLessThan(10_000);
      await sleep(100);
    }
    expect(Date.now() - firstSeen).toBeGreaterThanOrEqual(1_000);
    expect(reaped.sort()).toEqual(victimNodes);
    for (const n of victimNodes) expect((await store.list(`ipam/pods/nodes/${n}/`)).entries).toEqual([]);
    // the other nodes keep their blocks
    expect([...pool.allocations()].sort()).toEqual(otherBlocks.sort());
    // the victim's own identities are now unreferenced and collectable; shared ones stay
    const deleted = await alloc.gc();
    expect(deleted).toHaveLength(UNIQUE);
    const left = [...alloc.identities().values()].map((l) => l.join(';'));
    for (const l of left) expect(l).not.toContain(`app=${victim.name}-`);
    expect(left.filter((l) => l.includes('app=shared-'))).toHaveLength(SHARED);
    await pool.close();
    await alloc.close();
    await alloc.session.close();
    // the survivors leave gracefully: their leases are revoked at once
    await Promise.all(agents.slice(1).map((a) => a.stop()));
    expect((await store.list('nodes/')).entries).toEqual([]);
  }, 40_000);
});
