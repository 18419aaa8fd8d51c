import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CidrSet } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('CidrSet layout (TestIndexToCIDRBlock)', () => {
  const cases: [string, number, number, string][] = [
    ['127.123.0.0/16', 24, 15, '127.123.15.0/24'],
    ['192.168.5.219/28', 32, 5, '192.168.5.213/32'],
    ['2001:db8:85a3::/50', 63, 6425, '2001:db8:85a3:3232::/63'],
    ['2001:db8:1234:ff00::/56', 72, 6425, '2001:db8:1234:ff19:1900::/72'],
    ['beef::/16', 24, 151, 'beef:9700::/24'],
  ];
  for (const [cluster, mask, index, cidr] of cases)
    it(`${cluster} → /${mask}: index ${index} = ${cidr}`, () => {
      const s = new CidrSet(cluster, mask);
      expect(s.cidrAt(index)).toBe(cidr);
      s.occupy(cidr);
      expect(s.isAllocated(cidr)).toBe(true);
      expect(s.allocatedCount).toBe(1);
      const got: string[] = [];
      s.forEach((c) => {
        got.push(c);
      });
      expect(got).toEqual([cidr]);
    });

  it('rejects a CIDR outside the cluster CIDR', () => {
    const s = new CidrSet('192.168.0.0/16', 24);
    expectCode(() => s.occupy('127.168.224.0/24'), 'NotInRange');
    expectCode(() => s.occupy('fd00::/64'), 'NotInRange');
    expect(s.inRange('fd00::/64')).toBe(false);
    expectCode(() => s.cidrAt(256), 'OutOfRange');
    expectCode(() => s.inRange('nope'), 'InvalidCidr');
  });
});

describe('CidrSet validation', () => {
  it('checks mask sizes as upstream, plus node mask shorter than the cluster prefix', () => {
    expectCode(() => new CidrSet('10.0.0.0/8', 33), 'MaskInvalid');
    expectCode(() => new CidrSet('fd00::/64', 129), 'MaskInvalid');
    expectCode(() => new CidrSet('10.0.0.0/16', 8), 'MaskInvalid');
    expectCode(() => new CidrSet('10.0.0.0/16', 24.5), 'MaskInvalid');
    expectCode(() => new CidrSet('fd00::/48', 65), 'SubnetTooBig');
    expect(new CidrSet('fd00::/48', 64).maxCidrs).toBe(65536);
    expect(new CidrSet('10.0.0.0/8', 32).maxCidrs).toBe(2 ** 24);
    expectCode(() => new CidrSet('10.0.0.0/88', 24), 'InvalidCidr');
  });
});

describe('CidrSet allocation order', () => {
  it('allocates v4 /8 → /32 from the network address (TestCIDRSetv6 v4 part)', () => {
    const s = new CidrSet('127.0.0.0/8', 32);
    expect(s.allocateNext()).toBe('127.0.0.0/32');
    expect(s.allocateNext()).toBe('127.0.0.1/32');
  });

  it('same order after release-all (TestCIDRSet_RandomishAllocation)', () => {
    const s = new CidrSet('127.123.234.0/16', 24);
    const first = Array.from({ length: 256 }, () => s.allocateNext());
    expect(s.isFull).toBe(true);
    expectCode(() => s.allocateNext(), 'Full');
    for (const c of first) s.release(c);
    expect(s.allocatedCount).toBe(0);
    const second = Array.from({ length: 256 }, () => s.allocateNext());
    expect(second).toEqual(first);
    expect(first[0]).toBe('127.123.0.0/24');
  });

  it('wraps the next candidate: freed blocks are reused after the end', () => {
    const s = new CidrSet('10.0.0.0/28', 30);
    expect([s.allocateNext(), s.allocateNext(), s.allocateNext()]).toEqual([
      '10.0.0.0/30',
      '10.0.0.4/30',
      '10.0.0.8/30',
    ]);
    s.release('10.0.0.0/30');
    expect(s.allocateNext()).toBe('10.0.0.12/30');
    expect(s.allocateNext()).toBe('10.0.0.0/30');
  });

  it('occupy does not move the pointer (TestCidrSetMetricsHistogram)', () => {
    const s = new CidrSet('10.0.0.0/16', 24);
    expect(s.occupy('10.0.0.0/17')).toBe(128);
    expect(s.allocateNext()).toBe('10.0.128.0/24');
  });

  it('occupy and release are idempotent and count flips (TestDoubleOccupyRelease)', () => {
    const s = new CidrSet('10.10.0.0/16', 24);
    s.occupy('10.10.0.0/24');
    expect(s.allocatedCount).toBe(1);
    s.occupy('10.10.1.0/24');
    expect(s.allocatedCount).toBe(2);
    s.occupy('10.10.0.0/22');
    expect(s.allocatedCount).toBe(4 + 0);
    s.occupy('10.10.0.0/22');
    expect(s.allocatedCount).toBe(4);
    s.release('10.10.1.0/24');
    expect(s.allocatedCount).toBe(3);
    s.release('10.10.1.0/24');
    expect(s.allocatedCount).toBe(3);
    s.release('10.10.4.0/22'); // nothing there
    expect(s.allocatedCount).toBe(3);
    let n = 0;
    while (!s.isFull) {
      s.allocateNext();
      n++;
    }
    expect(n).toBe(253);
  });

  it('occupying a supernet covers everything; a /32 maps to its block; a /15 spans two blocks', () => {
    const a = new CidrSet('127.0.0.0/8', 16);
    expect(a.occupy('127.0.0.0/2')).toBe(256);
    expect(a.isFull).toBe(true);
    const b = new CidrSet('10.0.0.0/16', 24);
    b.occupy('10.0.5.77/32');
    expect(b.isAllocated('10.0.5.0/24')).toBe(true);
    const c = new CidrSet('2.0.0.0/7', 16);
    expect(c.occupy('3.0.0.0/15')).toBe(2);
    expect(c.isAllocated('3.0.0.0/16')).toBe(true);
    expect(c.isAllocated('3.1.0.0/16')).toBe(true);
    expect(c.isAllocated('3.2.0.0/16')).toBe(false);
  });

  it('isAllocated needs every covered block', () => {
    const s = new CidrSet('10.0.0.0/16', 24);
    s.occupy('10.0.2.0/24');
    expect(s.isAllocated('10.0.2.0/23')).toBe(false);
    s.occupy('10.0.3.0/24');
    expect(s.isAllocated('10.0.2.0/23')).toBe(true);
  });

  it('snapshot/restore keeps bitmap and pointer; rejects mismatches', () => {
    const s = new CidrSet('10.0.0.0/16', 24);
    s.allocateNext();
    s.allocateNext();
    s.release('10.0.0.0/24');
    const t = new CidrSet('10.0.0.0/16', 24);
    t.restore(s.snapshot());
    expect(t.allocateNext()).toBe('10.0.2.0/24');
    expectCode(() => new CidrSet('10.1.0.0/16', 24).restore(s.snapshot()), 'Mismatch');
    expectCode(() => new CidrSet('10.0.0.0/16', 25).restore(s.snapshot()), 'Mismatch');
    expectCode(() => t.restore({ ...s.snapshot(), nextCandidate: 256 }), 'InvalidSnapshot');
    expect(t.allocatedCount).toBe(2);
  });
});

describe('CidrSet properties', () => {
  it('matches a slot-by-slot next-candidate reference under random allocate/release/occupy', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }),
        fc.array(fc.tuple(fc.constantFrom('next', 'release', 'occupy'), fc.nat()), { maxLength: 200 }),
        (extra, ops) => {
          const mask = 24 + extra;
          const s = new CidrSet('10.0.0.0/24', mask);
          const max = 2 ** extra;
          const ref = new Uint8Array(max);
          let next = 0;
          const cidr = (i: number) => `10.0.0.${i * 2 ** (32 - mask)}/${mask}`;
          for (const [op, n] of ops) {
            const i = n % max;
            if (op === 'next') {
              let want = -1;
              for (let k = 0; k < max; k++) {
                const c = (next + k) % max;
                if (ref[c] === 0) {
                  want = c;
                  break;
                }
              }
              if (want < 0) expectCode(() => s.allocateNext(), 'Full');
              else {
                expect(s.allocateNext()).toBe(cidr(want));
                ref[want] = 1;
                next = (want + 1) % max;
              }
            } else if (op === 'release') {
              s.release(cidr(i));
              ref[i] = 0;
            } else {
              s.occupy(cidr(i));
              ref[i] = 1;
            }
            expect(s.allocatedCount).toBe(ref.reduce((a, b) => a + b, 0));
            expect(s.isFull).toBe(s.allocatedCount === max);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
