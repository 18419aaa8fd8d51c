// EtcdStore against a real etcd on loopback (no privileges needed): the same contract as MemoryStore,
// plus real leases, per-cluster prefixes and an etcd crash/restart in the middle of writes and watches.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { freePort, startEtcd, type TestEtcd } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EtcdStore,
  type KvError,
  type KvWatchEvent,
  NodeSession,
  StoreIdentityAllocator,
} from '../src/index.js';
import { storeContract } from './conformance.js';

let etcd: TestEtcd;
const opened: EtcdStore[] = [];
const open = (prefix = `t-${randomBytes(4).toString('hex')}/`) => {
  const s = new EtcdStore({ endpoints: [etcd.endpoint], prefix, retryTimeoutMs: 20_000 });
  opened.push(s);
  return s;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting for condition');
    await sleep(50);
  }
};
const etcdctl = (...args: string[]) =>
  execFileSync('etcdctl', ['--endpoints', etcd.endpoint, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ETCDCTL_API: '3' },
  });

beforeAll(async () => {
  etcd = await startEtcd();
}, 30_000);
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await etcd?.stop();
});

describe('EtcdStore: the KvStore contract on a real etcd', () => {
  storeContract(async () => open());
});

describe('EtcdStore specifics', () => {
  it('lists a prefix larger than one page and than one gRPC message (2 500 keys, 5 MB) in order, at one revision', async () => {
    const s = open();
    for (let i = 0; i < 2_500; i += 100)
      await s.txn(
        [],
        Array.from({ length: 100 }, (_, j) => ({
          type: 'put' as const,
          key: `big/${String(i + j).padStart(5, '0')}`,
          value: 'v'.repeat(2_000), // 5 MB in all: more than one gRPC message may carry
        })),
      );
    const { entries, revision } = await s.list('big/');
    expect(entries).toHaveLength(2_500);
    expect(entries.map((e) => e.key)).toEqual([...entries.map((e) => e.key)].sort());
    expect(new Set(entries.map((e) => e.key)).size).toBe(2_500);
    expect(Math.max(...entries.map((e) => e.modRevision))).toBeLessThanOrEqual(revision);
  });

  it('keeps each cluster under its own prefix', async () => {
    const a = open('datapath/cluster-a/');
    const b = open('datapath/cluster-b/');
    await a.put('nodes/x', 'a');
    expect(await b.get('nodes/x')).toBeUndefined();
    expect((await b.list('')).entries).toEqual([]);
    expect(etcdctl('get', '--print-value-only', 'datapath/cluster-a/nodes/x').trim()).toBe('a');
    await expect(() => new EtcdStore({ endpoints: [etcd.endpoint], prefix: 'no-slash' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => new EtcdStore({ endpoints: [] })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
  });

  it('fails with Unavailable once etcd stays unreachable past the retry timeout', async () => {
    const port = await freePort(); // nothing listens there
    const s = new EtcdStore({
      endpoints: [`http://127.0.0.1:${port}`],
      retryTimeoutMs: 600,
      callTimeoutMs: 300,
    });
    opened.push(s);
    const t0 = Date.now();
    await expect(s.put('k', 'v')).rejects.toMatchObject({ name: 'KvError', code: 'Unavailable', op: 'put' });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('rejects a watch from a compacted revision with NotFound', async () => {
    const s = open();
    const first = await s.put('c/a', '1');
    const last = await s.put('c/a', '2');
    etcdctl('compact', String(last));
    // etcd accepts the watch, then cancels it: the watch reports NotFound (at creation or via onError)
    const codes: string[] = [];
    await s
      .watch('c/', () => undefined, { startRevision: first, onError: (e) => codes.push(e.code) })
      .catch((e: KvError) => codes.push(e.code));
    await until(() => codes.length > 0);
    expect(codes).toEqual(['NotFound']);
    const seen: string[] = [];
    const w = await s.watch('c/', (e) => seen.push(e.type), { startRevision: last + 1 });
    await s.put('c/b', '3');
    await until(() => seen.length === 1);
    await w.close();
  });

  it('expires a released lease after its TTL and keeps a kept-alive one', async () => {
    const s = open();
    const kept = await s.grantLease(2);
    const dropped = await s.grantLease(2);
    await s.put('n/kept', '1', { lease: kept.id });
    await s.put('n/dropped', '1', { lease: dropped.id });
    dropped.release();
    await until(async () => (await s.get('n/dropped')) === undefined, 6_000);
    expect(await s.get('n/kept')).toBeDefined();
    await kept.revoke();
    expect(await s.get('n/kept')).toBeUndefined();
  });

  it('renews a node session whose lease was revoked behind its back and re-attaches identity refs', async () => {
    const s = open();
    const session = await NodeSession.open(s, { node: 'n1', ttlSeconds: 2 });
    const ids = await StoreIdentityAllocator.open(session);
    const { id } = await ids.allocate(['k8s:app=renew']);
    const old = session.leaseId;
    etcdctl('lease', 'revoke', BigInt(old).toString(16));
    await until(() => session.leaseId !== old, 10_000);
    await session.settled();
    const refs = (await s.list('identities/refs/')).entries;
    expect(refs.map((e) => [e.value, e.lease])).toEqual([[String(id), session.leaseId]]);
    expect((await s.get('nodes/n1'))?.lease).toBe(session.leaseId);
    await ids.close();
    await session.close();
  });

  it('survives an etcd crash and restart: writes retried, lease kept, watch resumed without loss or repeats', async () => {
    const s = open();
    const watcher = open(s.prefix);
    const seen: KvWatchEvent[] = [];
    await watcher.watch('w/', (e) => seen.push(e));
    const lease = await s.grantLease(5);
    let lost = false;
    lease.onLost(() => {
      lost = true;
    });
    await s.put('w/alive', 'up', { lease: lease.id });
    const writes: Promise<number>[] = [];
    let i = 0;
    const writer = setInterval(() => {
      writes.push(s.put(`w/k${String(i).padStart(3, '0')}`, String(i)));
      i++;
    }, 25);
    await sleep(300);
    await etcd.kill();
    await sleep(800);
    await etcd.restart();
    await sleep(500);
    clearInterval(writer);
    await Promise.all(writes);
    // no write lost; a put whose reply was cut by the crash may have been retried and applied twice
    // (at-least-once for plain puts, which is why the allocators only write through guarded transactions)
    const { entries } = await s.list('w/k');
    expect(entries.map((e) => e.value)).toEqual(Array.from({ length: i }, (_, n) => String(n)));
    expect(entries.every((e) => e.version <= 2)).toBe(true);
    const puts = () => seen.filter((e) => e.type === 'put' && e.entry.key.startsWith('w/k'));
    const expected = entries.reduce((n, e) => n + e.version, 0);
    await until(() => puts().length >= expected);
    await sleep(200);
    // the watch resumed after the restart: every change exactly once, in revision order
    expect(puts()).toHaveLength(expected);
    const revs = seen.map((e) => (e.type === 'put' ? e.entry.modRevision : e.modRevision));
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
    expect(new Set(revs).size).toBe(revs.length);
    for (const e of entries)
      expect(puts().filter((p) => p.type === 'put' && p.entry.key === e.key)).toHaveLength(e.version);
    expect((await s.get('w/alive'))?.lease).toBe(lease.id); // the lease outlived the restart
    expect(lost).toBe(false);
  }, 40_000);
});
