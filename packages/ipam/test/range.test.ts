import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RangeAllocator } from '../src/index.js';
import { expectCode, hex } from './helpers.js';

describe('RangeAllocator sizes (cilium TestNewCIDRRange)', () => {
  const cases: [string, string, number][] = [
    ['192.168.0.0/27', '192.168.0.1', 30],
    ['192.168.0.0/31', '192.168.0.0', 2],
    ['192.168.0.5/32', '192.168.0.5', 1],
    ['fd00::/64', 'fd00::1', 65534],
    ['fd00::/120', 'fd00::1', 254],
    ['fd00::/127', 'fd00::', 2],
    ['fd00::7/128', 'fd00::7', 1],
    ['2001:db8:1::/48', '2001:db8:1::1', 65534],
  ];
  for (const [cidr, first, size] of cases)
    it(`${cidr} → first ${first}, ${size} usable`, () => {
      const r = new RangeAllocator(cidr);
      expect(r.first).toBe(first);
      expect(r.size).toBe(size);
      expect(r.free).toBe(size);
    });

  it('caps IPv6 to the first 65536 addresses: the window is prefix+1 … prefix+0xfffe', () => {
    const r = new RangeAllocator('2001:db8:1::/48');
    expect(r.last).toBe('2001:db8:1::fffe');
    expectCode(() => r.allocate('2001:db8:1::1:0'), 'NotInRange');
    expectCode(() => r.allocate('2001:db8:1::ffff'), 'NotInRange');
    r.allocate('2001:db8:1::fffe');
  });

  it('allowFirstLast makes every address usable (WithAllowFirstLastIPs)', () => {
    expect(new RangeAllocator('10.0.0.0/28', { allowFirstLast: true }).size).toBe(16);
    expect(new RangeAllocator('10.0.0.0/24', { allowFirstLast: true }).first).toBe('10.0.0.0');
    expect(new RangeAllocator('fd00::/80', { allowFirstLast: true }).size).toBe(65536);
    expect(new RangeAllocator('10.0.0.1/32', { allowFirstLast: true }).size).toBe(1);
    const r = new RangeAllocator('10.0.0.0/28', { allowFirstLast: true, strategy: 'contiguous' });
    const all = Array.from({ length: 16 }, () => r.allocateNext());
    expect(all[0]).toBe('10.0.0.0');
    expect(all[15]).toBe('10.0.0.15');
  });

  it('rejects /0 and /1 ranges instead of making them silently empty', () => {
    for (const c of ['0.0.0.0/0', '128.0.0.0/1', '::/0', '8000::/1'])
      expectCode(() => new RangeAllocator(c), 'SubnetTooBig');
    expect(new RangeAllocator('64.0.0.0/2').size).toBe(2 ** 30 - 2);
  });

  it('rejects unparsable CIDRs like Go ParseCIDR', () => {
    for (const c of [
      '10.0.0.0',
      '10.0.0.0/33',
      '010.0.0.0/8',
      ' 10.0.0.0/8',
      '10.0.0.0/8 ',
      'fd00::/129',
      'fe80::1%eth0/64',
      '10.0.0.0/08',
      'x/8',
      '1.2.3/8',
    ])
      expectCode(() => new RangeAllocator(c), 'InvalidCidr');
    expect(new RangeAllocator('10.0.0.77/24').cidr).toBe('10.0.0.0/24');
  });
});

describe('RangeAllocator operations', () => {
  it('TestAllocate scenario on a /24', () => {
    const r = new RangeAllocator('192.168.1.0/24');
    const seen = new Set<string>();
    for (let i = 0; i < 254; i++) seen.add(r.allocateNext());
    expect(seen.size).toBe(254);
    expectCode(() => r.allocateNext(), 'Full');
    r.release('192.168.1.5');
    expect(r.free).toBe(1);
    expect(r.used).toBe(253);
    expect(r.allocateNext()).toBe('192.168.1.5');
    for (const ip of ['192.168.1.0', '192.168.1.255', '192.168.0.1', '192.168.2.2'])
      expectCode(() => r.allocate(ip), 'NotInRange');
    expectCode(() => r.allocate('192.168.1.1'), 'AlreadyAllocated');
    r.release('192.168.1.5');
    r.allocate('192.168.1.5');
    expect(r.free).toBe(0);
    expect(r.used).toBe(254);
  });

  it('TestAllocateSmall /30 and TestAllocateTiny /32', () => {
    const r = new RangeAllocator('10.0.0.240/30');
    expect(new Set([r.allocateNext(), r.allocateNext()])).toEqual(new Set(['10.0.0.241', '10.0.0.242']));
    for (let i = 0; i < 100; i++) expectCode(() => r.allocateNext(), 'Full');
    const t = new RangeAllocator('10.0.0.9/32');
    expect(t.allocateNext()).toBe('10.0.0.9');
    expectCode(() => t.allocateNext(), 'Full');
  });

  it('has, release and contains are quiet outside the range; bad text is InvalidCidr', () => {
    const r = new RangeAllocator('10.0.0.0/24');
    expect(r.has('10.9.9.9')).toBe(false);
    r.release('10.9.9.9');
    r.release('fd00::1');
    expect(r.contains('10.0.0.0')).toBe(false);
    expect(r.contains('10.0.0.1')).toBe(true);
    expectCode(() => r.release('nope'), 'InvalidCidr');
    expectCode(() => r.has('10.0.0.01'), 'InvalidCidr');
    expectCode(() => r.allocate('10.0.0.256'), 'InvalidCidr');
    expect(r.used).toBe(0);
  });

  it('other family and IPv4-mapped IPv6 addresses are NotInRange (as current cilium)', () => {
    const r = new RangeAllocator('192.168.1.0/24');
    expectCode(() => r.allocate('::ffff:192.168.1.5'), 'NotInRange');
    expectCode(() => new RangeAllocator('fd00::/120').allocate('10.0.0.1'), 'NotInRange');
  });

  it('fixes the upstream IPv6 aliasing bug: other /64s of a /48 do not map to the same offset', () => {
    const r = new RangeAllocator('2001:db8:1::/48');
    r.allocate('2001:db8:1::5');
    expect(r.has('2001:db8:1:1::5')).toBe(false);
    expectCode(() => r.allocate('2001:db8:1:1::6'), 'NotInRange');
    expect(r.has('2001:db8:1::6')).toBe(false);
  });

  it('handles IPv6 prefixes with leading zero groups (upstream commit 54a7601)', () => {
    const a = new RangeAllocator('::/120', { strategy: 'contiguous' });
    expect(a.allocateNext()).toBe('::1');
    const b = new RangeAllocator('0:0:0:1::/64', { strategy: 'contiguous' });
    expect(b.allocateNext()).toBe('::1:0:0:0:1'); // RFC 5952: the first of two equal zero runs is compressed
    b.allocate('0:0:0:1::ff');
    expectCode(() => b.allocate('::1:0:0:ff'), 'NotInRange');
    const got: string[] = [];
    b.forEach((ip) => {
      got.push(ip);
    });
    expect(got).toEqual(['::1:0:0:0:1', '::1:0:0:0:ff']);
  });

  it('formats IPv6 canonically (RFC 5952)', () => {
    const r = new RangeAllocator('2001:db8::/64', { strategy: 'contiguous' });
    r.allocate('2001:0db8:0000:0000:0000:0000:0000:00ff');
    const got: string[] = [];
    r.forEach((ip) => {
      got.push(ip);
    });
    expect(got).toEqual(['2001:db8::ff']);
    expect(new RangeAllocator('fd00:0:0:1:0:0:0:0/120').first).toBe('fd00:0:0:1::1');
    expect(new RangeAllocator('::ffff:10.0.0.0/120').first).toBe('::ffff:10.0.0.1');
  });

  it('forEach walks in address order', () => {
    const r = new RangeAllocator('10.0.0.0/16');
    for (const ip of ['10.0.200.1', '10.0.0.3', '10.0.1.0']) r.allocate(ip);
    const got: string[] = [];
    r.forEach((ip) => {
      got.push(ip);
    });
    expect(got).toEqual(['10.0.0.3', '10.0.1.0', '10.0.200.1']);
  });
});

describe('RangeAllocator snapshots', () => {
  it('uses the upstream format and restores (TestNewFromSnapshot)', () => {
    const r = new RangeAllocator('192.168.0.0/24');
    for (let i = 0; i < 128; i++) r.allocateNext();
    const s = r.snapshot();
    expect(s.range).toBe('192.168.0.0/24');
    const other = new RangeAllocator('192.168.0.0/24');
    other.restore(s);
    expect(other.free).toBe(126);
    expect(other.used).toBe(128);
    const one = new RangeAllocator('10.0.0.0/24');
    one.allocate('10.0.0.4');
    expect(hex(one.snapshot().data)).toBe('08');
  });

  it('rejects another CIDR (TestSnapshot) and bits past the size (upstream bug 3)', () => {
    const r = new RangeAllocator('192.168.0.0/24');
    r.allocate('192.168.0.1');
    expectCode(() => r.restore({ range: '192.168.1.0/24', data: new Uint8Array(0) }), 'Mismatch');
    expectCode(() => r.restore({ range: '192.168.0.0/25', data: new Uint8Array(0) }), 'Mismatch');
    expectCode(() => r.restore({ range: 'garbage', data: new Uint8Array(0) }), 'Mismatch');
    const small = new RangeAllocator('10.0.0.0/29');
    expectCode(() => small.restore({ range: '10.0.0.0/29', data: Uint8Array.of(0xff) }), 'InvalidSnapshot');
    expect(small.used).toBe(0);
    expect(r.used).toBe(1);
  });

  it('round-trips random IPv4 and IPv6 states', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('10.1.0.0/22', 'fd00:1::/64', '10.9.9.0/31'),
        fc.array(fc.boolean(), { maxLength: 300 }),
        (cidr, flips) => {
          const a = new RangeAllocator(cidr, { strategy: 'contiguous' });
          flips.forEach((keep) => {
            if (a.free === 0) return;
            const ip = a.allocateNext();
            if (!keep) a.release(ip);
          });
          const b = new RangeAllocator(cidr);
          b.restore(a.snapshot());
          const x: string[] = [];
          const y: string[] = [];
          a.forEach((ip) => {
            x.push(ip);
          });
          b.forEach((ip) => {
            y.push(ip);
          });
          expect(y).toEqual(x);
          expect(b.free + b.used).toBe(b.size);
        },
      ),
      { numRuns: 100 },
    );
  });
});
