// The KvStore contract, run against MemoryStore (unit) and a real etcd (etcd.test.ts): both must agree.
import { expect, it } from 'vitest';
import { KvError, type KvStore, type KvWatchEvent } from '../src/index.js';

const until = async (cond: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, 10));
  }
};

export function storeContract(open: () => Promise<KvStore>): void {
  it('put/get/delete keep etcd revision and version semantics', async () => {
    await using s = await open();
    const r1 = await s.put('a/x', '1');
    const r2 = await s.put('a/x', '2');
    expect(r2).toBe(r1 + 1);
    const e = await s.get('a/x');
    expect(e).toMatchObject({ key: 'a/x', value: '2', createRevision: r1, modRevision: r2, version: 2 });
    expect(e?.lease).toBeUndefined();
    expect(await s.delete('a/x')).toBe(true);
    expect(await s.delete('a/x')).toBe(false);
    expect(await s.get('a/x')).toBeUndefined();
    const r3 = await s.put('a/x', '3');
    expect(await s.get('a/x')).toMatchObject({ createRevision: r3, version: 1 });
  });

  it('lists a prefix sorted, at one revision, and deletes by prefix', async () => {
    await using s = await open();
    await s.put('p/b', '2');
    await s.put('p/a', '1');
    await s.put('pq', 'outside');
    const l = await s.list('p/');
    expect(l.entries.map((e) => e.key)).toEqual(['p/a', 'p/b']);
    expect(l.revision).toBe(l.entries[0]!.modRevision + 1);
    expect(await s.deletePrefix('p/')).toBe(2);
    expect((await s.list('p/')).entries).toEqual([]);
    expect(await s.get('pq')).toBeDefined();
  });

  it('runs compare-and-swap transactions atomically', async () => {
    await using s = await open();
    const create = () =>
      s.txn(
        [{ key: 'c/k', target: 'version', op: '==', value: 0 }],
        [
          { type: 'put', key: 'c/k', value: 'first' },
          { type: 'put', key: 'c/idx', value: 'k' },
        ],
        [{ type: 'get', key: 'c/k' }],
      );
    const a = await create();
    expect(a).toMatchObject({ succeeded: true, gets: [] });
    const k = await s.get('c/k');
    const idx = await s.get('c/idx');
    expect(k?.modRevision).toBe(a.revision);
    expect(idx?.modRevision).toBe(a.revision); // one revision per transaction
    const b = await create();
    expect(b.succeeded).toBe(false);
    expect(b.revision).toBe(a.revision);
    expect(b.gets[0]?.value).toBe('first');
    // value compare on an absent key is false; numeric compare on an absent key sees zeros
    expect((await s.txn([{ key: 'c/none', target: 'value', op: '!=', value: 'x' }], [])).succeeded).toBe(
      false,
    );
    expect((await s.txn([{ key: 'c/none', target: 'modRevision', op: '<', value: 1 }], [])).succeeded).toBe(
      true,
    );
  });

  it('compares over a whole prefix', async () => {
    await using s = await open();
    const empty = { key: 'refs/x/', prefix: true, target: 'version', op: '==', value: 0 } as const;
    expect((await s.txn([empty], [])).succeeded).toBe(true);
    await s.put('refs/x/node-a', '1');
    expect((await s.txn([empty], [])).succeeded).toBe(false);
    await s.put('refs/x/node-b', '1');
    const allOne = { key: 'refs/x/', prefix: true, target: 'value', op: '==', value: '1' } as const;
    expect((await s.txn([allOne], [])).succeeded).toBe(true);
    await s.put('refs/x/node-b', '2');
    expect((await s.txn([allOne], [])).succeeded).toBe(false);
  });

  it('rejects bad input with typed errors and writes nothing', async () => {
    await using s = await open();
    const before = (await s.list('')).entries.length;
    await expect(s.put('', 'x')).rejects.toMatchObject({ name: 'KvError', code: 'InvalidArgument' });
    await expect(s.get(42 as unknown as string)).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(
      s.txn(
        [{ key: 'k', target: 'bogus' as 'version', op: '==', value: 0 }],
        [{ type: 'put', key: 'k', value: 'v' }],
      ),
    ).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(s.grantLease(0)).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(s.grantLease(1.5)).rejects.toBeInstanceOf(KvError);
    await expect(
      s.txn(
        [],
        [
          { type: 'put', key: 'l/a', value: 'v' },
          { type: 'put', key: 'l/b', value: 'v', lease: '12345' },
        ],
      ),
    ).rejects.toMatchObject({ code: 'NotFound' });
    expect((await s.list('')).entries.length).toBe(before);
  });

  it('attaches keys to leases and deletes them on revoke', async () => {
    await using s = await open();
    const lease = await s.grantLease(30);
    await s.put('n/a', 'up', { lease: lease.id });
    await s.put('n/b', 'up');
    expect((await s.get('n/a'))?.lease).toBe(lease.id);
    await lease.revoke();
    expect(lease.closed).toBe(true);
    expect(await s.get('n/a')).toBeUndefined();
    expect(await s.get('n/b')).toBeDefined();
    await expect(s.put('n/c', 'up', { lease: lease.id })).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('watches a prefix in order, from now or from a past revision', async () => {
    await using s = await open();
    const seen: KvWatchEvent[] = [];
    const w = await s.watch('w/', (e) => seen.push(e));
    const r1 = await s.put('w/a', '1');
    await s.put('other', 'x');
    await s.txn(
      [],
      [
        { type: 'put', key: 'w/b', value: '2' },
        { type: 'delete', key: 'w/a' },
      ],
    );
    await until(() => seen.length >= 3);
    expect(
      seen.map((e) => (e.type === 'put' ? `put ${e.entry.key}=${e.entry.value}` : `del ${e.key}`)),
    ).toEqual(['put w/a=1', 'put w/b=2', 'del w/a']);
    await w.close();
    await s.put('w/c', '3');
    const replay: KvWatchEvent[] = [];
    const w2 = await s.watch('w/', (e) => replay.push(e), { startRevision: r1 });
    await until(() => replay.length >= 4);
    expect(replay.map((e) => e.type)).toEqual(['put', 'put', 'delete', 'put']);
    await w2.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length).toBe(3); // nothing after close
  });

  it('fails with InvalidState (reason Closed) after close', async () => {
    const s = await open();
    await s.close();
    await expect(s.get('x')).rejects.toMatchObject({ code: 'InvalidState', reason: 'Closed' });
  });
}
