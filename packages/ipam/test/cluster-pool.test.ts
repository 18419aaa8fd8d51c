import { describe, expect, it } from 'vitest';
import { ClusterPool } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('ClusterPool construction (Test_newCIDRSets)', () => {
  it('detects collisions, family errors and empty configs', () => {
    expect(
      expectCode(
        () => new ClusterPool({ v4: { cidrs: ['10.0.0.0/16', '10.0.0.0/8'], maskSize: 24 } }),
        'Collision',
      ).target,
    ).toBe('10.0.0.0/8');
    expectCode(
      () => new ClusterPool({ v6: { cidrs: ['fd00::/100', 'fd00::/96'], maskSize: 112 } }),
      'Collision',
    );
    expect(
      new ClusterPool({ v6: { cidrs: ['fd00::/100', 'fd00::1:0:0/96'], maskSize: 112 } }).freeCidrs(6),
    ).toBe(4096 + 65536);
    expectCode(() => new ClusterPool({ v4: { cidrs: ['fd00::/64'], maskSize: 24 } }), 'Family');
    expectCode(() => new ClusterPool({ v6: { cidrs: ['10.0.0.0/8'], maskSize: 24 } }), 'Family');
    expectCode(() => new ClusterPool({}), 'InvalidCidr');
    expectCode(() => new ClusterPool({ v4: { cidrs: [], maskSize: 24 } }), 'InvalidCidr');
    expectCode(() => new ClusterPool({ v4: { cidrs: ['10.0.0.0/16'], maskSize: 8 } }), 'MaskInvalid');
    expectCode(() => new ClusterPool({ v6: { cidrs: ['fd00::/48'], maskSize: 96 } }), 'SubnetTooBig');
  });
});

describe('ClusterPool allocation', () => {
  it('consumes cluster CIDRs in order and prefers freed blocks in earlier CIDRs', () => {
    const pool = new ClusterPool({ v4: { cidrs: ['10.0.0.0/25', '10.1.0.0/24'], maskSize: 26 } });
    expect(pool.allocateNode('a').v4).toEqual(['10.0.0.0/26']);
    expect(pool.allocateNode('b').v4).toEqual(['10.0.0.64/26']);
    expect(pool.allocateNode('c').v4).toEqual(['10.1.0.0/26']);
    pool.releaseNode('a');
    expect(pool.allocateNode('d').v4).toEqual(['10.0.0.0/26']);
    expect(pool.freeCidrs(4)).toBe(3);
    expect(pool.freeCidrs(6)).toBe(0);
    expect(pool.nodeNames()).toEqual(['b', 'c', 'd']);
  });

  it('is idempotent per node and dual stack', () => {
    const pool = new ClusterPool({
      v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 },
      v6: { cidrs: ['fd00::/104'], maskSize: 120 },
    });
    const a = pool.allocateNode('a');
    expect(a).toEqual({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'] });
    expect(pool.allocateNode('a')).toEqual(a);
    expect(pool.getNode('a')).toEqual(a);
    expect(pool.allocateNode('b')).toEqual({ v4: ['10.0.1.0/24'], v6: ['fd00::100/120'] });
    expect(pool.releaseNode('a')).toBe(true);
    expect(pool.releaseNode('a')).toBe(false);
    expect(pool.getNode('a')).toBeUndefined();
  });

  it('rolls back IPv4 when IPv6 is exhausted', () => {
    const pool = new ClusterPool({
      v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 },
      v6: { cidrs: ['fd00::/120'], maskSize: 120 },
    });
    pool.allocateNode('a');
    const e = expectCode(() => pool.allocateNode('b'), 'Full');
    expect(e.message).toContain('fd00::/120');
    expect(pool.freeCidrs(4)).toBe(255);
    expect(pool.getNode('b')).toBeUndefined();
    pool.releaseNode('a');
    // The rolled-back 10.0.1.0/24 is reused only after the wrap: release does not move the pointer.
    expect(pool.allocateNode('b')).toEqual({ v4: ['10.0.2.0/24'], v6: ['fd00::/120'] });
  });

  it('occupyNode restores announced CIDRs before new allocations, all or nothing', () => {
    const pool = new ClusterPool({
      v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 },
      v6: { cidrs: ['fd00::/104'], maskSize: 120 },
    });
    expect(pool.occupyNode('a', ['10.0.0.0/24', 'fd00::/120'])).toEqual({
      v4: ['10.0.0.0/24'],
      v6: ['fd00::/120'],
    });
    expect(pool.occupyNode('a', ['10.0.0.0/24', 'fd00::/120']).v4).toEqual(['10.0.0.0/24']); // idempotent
    expectCode(() => pool.occupyNode('a', ['10.0.9.0/24']), 'Mismatch');
    expectCode(() => pool.occupyNode('b', ['10.0.5.0/24', '10.0.0.0/24']), 'AlreadyAllocated');
    expect(pool.freeCidrs(4)).toBe(255); // 10.0.5.0/24 rolled back
    expectCode(() => pool.occupyNode('b', ['10.0.0.0/23']), 'AlreadyAllocated'); // overlaps a's block
    expectCode(() => pool.occupyNode('b', ['192.168.0.0/24']), 'NotInPool');
    expectCode(() => pool.occupyNode('b', ['bad']), 'InvalidCidr');
    expect(pool.allocateNode('b').v4).toEqual(['10.0.1.0/24']);
  });

  it('snapshot/restore reproduces the state and next allocations', () => {
    const config = {
      v4: { cidrs: ['10.0.0.0/16', '10.1.0.0/16'], maskSize: 24 },
      v6: { cidrs: ['fd00::/104'], maskSize: 120 },
    };
    const a = new ClusterPool(config);
    for (const n of ['n1', 'n2', 'n3']) a.allocateNode(n);
    a.releaseNode('n1');
    const snap = JSON.parse(
      JSON.stringify(a.snapshot(), (_k, v) => (v instanceof Uint8Array ? { $b: [...v] } : v)),
      (_k, v) => (v !== null && typeof v === 'object' && Array.isArray(v.$b) ? Uint8Array.from(v.$b) : v),
    );
    const b = new ClusterPool(config);
    b.restore(snap);
    expect(b.getNode('n2')).toEqual(a.getNode('n2'));
    expect(b.allocateNode('n4')).toEqual(a.allocateNode('n4'));
    expect(b.freeCidrs(4)).toBe(a.freeCidrs(4));
  });

  it('restore rejects inconsistent snapshots and leaves the pool unchanged', () => {
    const config = { v4: { cidrs: ['10.0.0.0/16'], maskSize: 24 } };
    const a = new ClusterPool(config);
    a.allocateNode('n1');
    const b = new ClusterPool(config);
    b.allocateNode('x');
    const snap = a.snapshot();
    expectCode(
      () => b.restore({ ...snap, nodes: { n1: { v4: ['10.0.7.0/24'], v6: [] } } }),
      'InvalidSnapshot',
    );
    expectCode(
      () =>
        b.restore({
          ...snap,
          nodes: { n1: { v4: ['10.0.0.0/24'], v6: [] }, n2: { v4: ['10.0.0.0/24'], v6: [] } },
        }),
      'InvalidSnapshot',
    );
    expectCode(() => b.restore({ ...snap, version: 2 as 1 }), 'InvalidSnapshot');
    expectCode(
      () => new ClusterPool({ v4: { cidrs: ['10.9.0.0/16'], maskSize: 24 } }).restore(snap),
      'Mismatch',
    );
    expect(b.nodeNames()).toEqual(['x']);
    expect(b.freeCidrs(4)).toBe(255);
  });
});
