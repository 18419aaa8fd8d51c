import { describe, expect, it } from 'vitest';
import { PodCidrPool } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('PodCidrPool', () => {
  it('tries pod CIDRs in order and reports exhaustion naming them', () => {
    const pool = new PodCidrPool(['10.0.0.0/30', '10.0.1.0/30', '10.0.0.0/30'], { strategy: 'contiguous' });
    expect(pool.cidrs).toEqual(['10.0.0.0/30', '10.0.1.0/30']);
    expect([pool.allocateNext(), pool.allocateNext(), pool.allocateNext()]).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      '10.0.1.1',
    ]);
    pool.release('10.0.0.1');
    expect(pool.allocateNext()).toBe('10.0.0.1');
    pool.allocateNext();
    const e = expectCode(() => pool.allocateNext(), 'Full');
    expect(e.message).toContain('10.0.0.0/30, 10.0.1.0/30');
    expect(pool.size).toBe(4);
    expect(pool.used).toBe(4);
    expect(pool.free).toBe(0);
  });

  it('allocate/has/release route to the containing CIDR', () => {
    const pool = new PodCidrPool(['10.0.0.0/24', '10.0.5.0/24']);
    pool.allocate('10.0.5.9');
    expect(pool.has('10.0.5.9')).toBe(true);
    expect(pool.has('10.9.9.9')).toBe(false);
    expectCode(() => pool.allocate('10.0.5.9'), 'AlreadyAllocated');
    expectCode(() => pool.allocate('10.0.9.9'), 'NotInRange');
    expectCode(() => pool.allocate('zz'), 'InvalidCidr');
    expectCode(() => pool.has('zz'), 'InvalidCidr');
    expectCode(() => pool.release('zz'), 'InvalidCidr');
    pool.release('10.9.9.9');
    pool.release('10.0.5.9');
    expect(pool.used).toBe(0);
  });

  it('rejects bad input', () => {
    expectCode(() => new PodCidrPool([]), 'InvalidCidr');
    expectCode(() => new PodCidrPool(['10.0.0.0/24', 'fd00::/64']), 'Family');
    expectCode(() => new PodCidrPool(['10.0.0.0/24', 'bogus']), 'InvalidCidr');
  });

  it('updatePodCidrs keeps in-use removed CIDRs releasable but not offered, appends new ones', () => {
    const pool = new PodCidrPool(['10.0.0.0/30', '10.0.1.0/30'], { strategy: 'contiguous' });
    pool.allocate('10.0.0.1');
    pool.updatePodCidrs(['10.0.2.0/30']);
    expect(pool.stats()).toEqual({
      size: 2,
      used: 1,
      free: 2,
      cidrs: [
        { cidr: '10.0.0.0/30', size: 2, used: 1, free: 0, removed: true },
        { cidr: '10.0.2.0/30', size: 2, used: 0, free: 2, removed: false },
      ],
    });
    expect(pool.allocateNext()).toBe('10.0.2.1');
    expectCode(() => pool.allocate('10.0.0.2'), 'NotInRange');
    pool.release('10.0.0.1');
    expect(pool.cidrs).toEqual(['10.0.2.0/30']);
    // A removed CIDR that comes back is offered again; invalid updates change nothing.
    pool.allocate('10.0.2.2');
    pool.updatePodCidrs(['10.0.3.0/30']);
    pool.updatePodCidrs(['10.0.2.0/30', '10.0.3.0/30']);
    expect(pool.stats().cidrs.map((c) => c.removed)).toEqual([false, false]);
    expectCode(() => pool.updatePodCidrs(['10.0.9.0/30', 'fd00::/64']), 'Family');
    expect(pool.cidrs).toEqual(['10.0.2.0/30', '10.0.3.0/30']);
  });

  it('forEach walks CIDR by CIDR', () => {
    const pool = new PodCidrPool(['10.0.5.0/24', '10.0.1.0/24']);
    pool.allocate('10.0.1.3');
    pool.allocate('10.0.5.7');
    pool.allocate('10.0.5.2');
    const got: string[] = [];
    pool.forEach((ip) => {
      got.push(ip);
    });
    expect(got).toEqual(['10.0.5.2', '10.0.5.7', '10.0.1.3']);
  });
});

describe('PodCidrPool snapshots', () => {
  it('round-trips CIDRs, allocations and removed flags; bad snapshots change nothing', () => {
    const a = new PodCidrPool(['10.0.0.0/30', '10.0.1.0/24'], { strategy: 'contiguous' });
    a.allocate('10.0.0.1');
    a.allocate('10.0.1.77');
    a.updatePodCidrs(['10.0.1.0/24']);
    const b = new PodCidrPool(['10.9.0.0/24']);
    b.restore(a.snapshot());
    expect(b.stats()).toEqual(a.stats());
    expect(b.has('10.0.1.77')).toBe(true);
    expectCode(() => b.restore([]), 'InvalidSnapshot');
    expectCode(() => b.restore([{ range: 'fd00::/64', data: new Uint8Array(0), removed: false }]), 'Family');
    expectCode(
      () => b.restore([{ range: '10.0.5.0/30', data: Uint8Array.of(0xff), removed: false }]),
      'InvalidSnapshot',
    );
    expect(b.stats()).toEqual(a.stats());
  });
});
