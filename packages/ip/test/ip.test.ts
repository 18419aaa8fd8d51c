import { describe, expect, it } from 'vitest';
import {
  familyWidth,
  formatIp,
  formatIpv4,
  formatIpv6,
  formatPrefix,
  IpError,
  ipFromBytes,
  ipToBytes,
  parseCidr,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixFirst,
  prefixLast,
  prefixMask,
  prefixOf,
  prefixOverlaps,
  prefixSize,
  tryParseCidr,
  tryParseIp,
  tryParseIpv4,
  tryParseIpv6,
  tryParsePrefix,
} from '../src/index.js';

function thrown(fn: () => unknown): IpError {
  try {
    fn();
  } catch (e) {
    if (e instanceof IpError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('addresses', () => {
  it('formats RFC 5952 §4 canonical text', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
      ['2001:DB8::AB', '2001:db8::ab'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
      ['0:0:0:0:0:0:0:0', '::'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['::ffff:0a00:0001', '::ffff:10.0.0.1'], // IPv4-mapped, §5
      ['::1.2.3.4', '::102:304'], // IPv4-compatible (deprecated): hex
    ];
    for (const [text, canonical] of cases) expect(formatIp(parseIp(text))).toBe(canonical);
  });

  it('parses to family and value, and to bytes', () => {
    expect(parseIp('10.0.0.1')).toEqual({ family: 4, value: 0x0a000001n });
    expect(parseIp('fd00::1')).toEqual({ family: 6, value: (0xfd00n << 112n) | 1n });
    expect(ipToBytes('10.0.0.1')).toEqual(new Uint8Array([10, 0, 0, 1]));
    expect(ipToBytes('::ffff:10.0.0.1')).toEqual(
      new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1]),
    );
    expect(ipToBytes({ family: 4, value: 0xc0a80001n })).toEqual(new Uint8Array([192, 168, 0, 1]));
    expect(ipFromBytes(new Uint8Array(16))).toEqual({ family: 6, value: 0n });
    expect(formatIp(new Uint8Array([255, 255, 255, 255]))).toBe('255.255.255.255');
    expect(tryParseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    expect(tryParseIpv6('::ffff:1.2.3.4')).toBe(0xffff01020304n);
    expect(formatIpv6((1n << 128n) - 1n)).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(familyWidth(4)).toBe(32);
  });

  it('refuses what inet_pton refuses, and zones, brackets, legacy IPv4 forms', () => {
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.256',
      '0x1.2.3.4',
      '10',
      ' 1.2.3.4',
      '1.2.3.4 ',
      ':',
      ':::',
      '1::2::3',
      ':1::',
      '1::2:',
      '12345::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '::1:2:3:4:5:6:7:8',
      'fe80::1%eth0',
      '[::1]',
      '::ffff:1.2.3',
      '::1.2.3.4:5',
      '1:2:3:4:5:6:7:1.2.3.4',
    ]) {
      expect(tryParseIp(bad), bad).toBeUndefined();
      expect(tryParseIpv4(bad), bad).toBeUndefined();
      expect(tryParseIpv6(bad), bad).toBeUndefined();
    }
    expect(tryParseIp(undefined as unknown as string)).toBeUndefined();
  });

  it('checks the family with clear typed errors', () => {
    const e = thrown(() => parseIp('fd00::1', 4));
    expect(e).toMatchObject({ name: 'IpError', code: 'InvalidArgument', op: 'parseIp', target: 'fd00::1' });
    expect(e.message).toBe('parseIp: expected an IPv4 address, got "fd00::1"');
    expect(thrown(() => parseIp('nope', 6)).message).toBe('parseIp: invalid IPv6 address "nope"');
    expect(tryParseIp('10.0.0.1', 6)).toBeUndefined();
    expect(thrown(() => ipToBytes('10.0.0.1', 6)).code).toBe('InvalidArgument');
    expect(thrown(() => ipFromBytes(new Uint8Array(6))).target).toBe('6 bytes');
    expect(thrown(() => formatIp({ family: 4, value: 1n << 32n })).op).toBe('formatIp');
  });
});

describe('prefixes', () => {
  it('parses strictly by default, leniently on request, bare addresses on request', () => {
    expect(parsePrefix('10.244.0.0/16')).toEqual({ family: 4, value: 0x0af40000n, length: 16 });
    const e = thrown(() => parsePrefix('10.244.1.1/16'));
    expect(e.message).toBe('parsePrefix: host bits are set (the prefix is 10.244.0.0/16) in "10.244.1.1/16"');
    expect(formatPrefix(parsePrefix('10.244.1.1/16', { strict: false }))).toBe('10.244.0.0/16');
    expect(formatPrefix(parsePrefix('FD00::1', { bare: true }))).toBe('fd00::1/128');
    expect(thrown(() => parsePrefix('10.0.0.0')).message).toMatch(/missing \/length/);
    expect(thrown(() => parsePrefix('10.0.0.0/8', { family: 6 })).message).toMatch(/expected an IPv6 prefix/);
    for (const bad of [
      '10.0.0.0/33',
      'fd00::/129',
      '10.0.0.0/',
      '10.0.0.0/08',
      '10.0.0.0/-1',
      '10.0.0.0/+8',
      '/8',
      '10.0.0.0/8/8',
    ])
      expect(tryParsePrefix(bad, { strict: false }), bad).toBeUndefined();
    expect(tryParsePrefix('0.0.0.0/0')).toEqual({ family: 4, value: 0n, length: 0 });
  });

  it('splits an interface address into address and prefix', () => {
    const c = parseCidr('10.0.0.7/24');
    expect(formatIp(c.address)).toBe('10.0.0.7');
    expect(formatPrefix(c.prefix)).toBe('10.0.0.0/24');
    expect(parseCidr('fd00::7', { bare: true }).prefix.length).toBe(128);
    expect(tryParseCidr('fd00::7')).toBeUndefined();
    expect(thrown(() => parseCidr('10.0.0.7/24', { family: 6 })).op).toBe('parseCidr');
  });

  it('has a mask, first and last address, size', () => {
    const p = parsePrefix('10.0.16.0/20');
    expect(formatIp(prefixMask(p))).toBe('255.255.240.0');
    expect(formatIp(prefixFirst(p))).toBe('10.0.16.0');
    expect(formatIp(prefixLast(p))).toBe('10.0.31.255');
    expect(prefixSize(p)).toBe(4096n);
    const q = parsePrefix('fd00::/64');
    expect(formatIp(prefixLast(q))).toBe('fd00::ffff:ffff:ffff:ffff');
    expect(prefixSize(parsePrefix('::/0'))).toBe(1n << 128n);
    expect(formatPrefix(prefixOf(parseIp('10.1.2.3'), 8))).toBe('10.0.0.0/8');
    expect(thrown(() => prefixOf(parseIp('10.1.2.3'), 33)).op).toBe('prefixOf');
    expect(thrown(() => formatPrefix({ family: 4, value: 1n, length: 24 })).op).toBe('formatPrefix');
  });

  it('contains addresses and prefixes of its family only', () => {
    const p = parsePrefix('10.244.0.0/16');
    expect(prefixContains(p, parseIp('10.244.255.255'))).toBe(true);
    expect(prefixContains(p, parseIp('10.245.0.0'))).toBe(false);
    expect(prefixContains(p, parsePrefix('10.244.8.0/24'))).toBe(true);
    expect(prefixContains(p, parsePrefix('10.0.0.0/8'))).toBe(false);
    expect(prefixContains(parsePrefix('::/0'), parseIp('10.0.0.1'))).toBe(false);
    expect(prefixContains(parsePrefix('::/0'), parseIp('::ffff:10.0.0.1'))).toBe(true);
    expect(prefixOverlaps(parsePrefix('10.0.0.0/8'), p)).toBe(true);
    expect(prefixOverlaps(p, parsePrefix('10.0.0.0/16'))).toBe(false);
  });
});
