import { describe, expect, it } from 'vitest';
import { type KvWatchEvent, ManualClock, MemoryStore } from '../src/index.js';
import { storeContract } from './conformance.js';

describe('MemoryStore: the KvStore contract', () => {
  storeContract(async () => new MemoryStore());
});

describe('MemoryStore leases on a manual clock', () => {
  it('keeps a lease alive while keep-alives run and expires it TTL after they stop', async () => {
    const clock = new ManualClock();
    const s = new MemoryStore({ clock });
    const lease = await s.grantLease(3);
    const lost: string[] = [];
    lease.onLost((e) => lost.push(`${e.code}/${e.reason}`));
    await s.put('nodes/a', 'up', { lease: lease.id });
    const events: KvWatchEvent[] = [];
    await s.watch('nodes/', (e) => events.push(e));
    clock.advance(60_000);
    expect(await s.get('nodes/a')).toBeDefined();
    lease.release();
    clock.advance(2_999);
    expect(await s.get('nodes/a')).toBeDefined();
    clock.advance(1);
    expect(await s.get('nodes/a')).toBeUndefined();
    await Promise.resolve();
    expect(events).toEqual([{ type: 'delete', key: 'nodes/a', modRevision: s.revision }]);
    expect(lost).toEqual([]); // released on purpose: no loss reported
  });

  it("reports a lost lease when the store revokes it behind the holder's back", async () => {
    const clock = new ManualClock();
    const s = new MemoryStore({ clock });
    const lease = await s.grantLease(5);
    const lost: string[] = [];
    lease.onLost((e) => lost.push(`${e.code}/${e.reason}`));
    await s.put('nodes/a', 'up', { lease: lease.id });
    expect(s.revokeLease(lease.id)).toBe(true);
    expect(lost).toEqual(['Stale/LeaseLost']);
    expect(lease.closed).toBe(true);
    expect(await s.get('nodes/a')).toBeUndefined();
    expect(s.revokeLease(lease.id)).toBe(false);
  });
});
