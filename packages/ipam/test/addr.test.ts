import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatV4, formatV6, parseV4, parseV6 } from '../src/addr.js';

// Slow obvious reference: Go's strict dotted-quad rules as a regular expression.
const OCT = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const V4 = new RegExp(`^${OCT}\\.${OCT}\\.${OCT}\\.${OCT}$`);
const refV4 = (s: string): number =>
  V4.test(s) ? s.split('.').reduce((a, p) => a * 256 + Number(p), 0) : -1;

describe('address text', () => {
  it('parseV4 agrees with the strict reference on arbitrary and near-valid strings', () => {
    const near = fc
      .array(fc.constantFrom('0', '1', '2', '5', '9', '.', '00', '25', '255', '256', ' ', 'x'), {
        maxLength: 12,
      })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 16 }), near), (s) => {
        expect(parseV4(s)).toBe(refV4(s));
      }),
      { numRuns: 3000 },
    );
  });

  it('formatV4 and parseV4 round-trip every uint32', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 32 - 1 }), (n) => {
        expect(parseV4(formatV4(n))).toBe(n);
      }),
      { numRuns: 2000 },
    );
    expect(formatV4(0)).toBe('0.0.0.0');
    expect(formatV4(2 ** 32 - 1)).toBe('255.255.255.255');
  });

  it('formatV6 is RFC 5952 and round-trips', () => {
    expect(formatV6(0n)).toBe('::');
    expect(formatV6(1n)).toBe('::1');
    expect(formatV6(parseV6('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatV6(parseV6('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1'); // a single 0 group stays
    expect(formatV6(parseV6('fd00::ffff:0:1'))).toBe('fd00::ffff:0:1');
    expect(parseV6('fe80::1%eth0')).toBe(-1n);
    expect(parseV6('1.2.3.4')).toBe(-1n);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
        expect(parseV6(formatV6(v))).toBe(v);
      }),
      { numRuns: 2000 },
    );
  });
});
