import { describe, expect, it } from 'vitest';
import { sysctlPath } from '../src/sysctl.js';
import { checkIfname, checkMac, checkMtu, networkOf, parseCidrText, parseIpText } from '../src/validate.js';

const invalid = expect.objectContaining({ code: 'InvalidArgument', errno: undefined });

describe('input validation (before any syscall)', () => {
  it('accepts Linux interface names and refuses the rest', () => {
    for (const ok of ['eth0', 'lxc0123456789ab', 'a', 'br-1.100', 'é']) expect(checkIfname(ok, 't')).toBe(ok);
    for (const bad of [
      '',
      '.',
      '..',
      'a/b',
      'a:b',
      'a b',
      'a\tb',
      'a\0b',
      'eth%d',
      '%',
      'all',
      'default',
      'x'.repeat(16),
      'éééééééé',
      7,
      null,
    ]) {
      expect(() => checkIfname(bad, 't')).toThrow(invalid);
    }
  });

  it('bounds MTUs, with a higher floor when IPv6 is involved', () => {
    expect(checkMtu(68, 't')).toBe(68);
    expect(checkMtu(65535, 't')).toBe(65535);
    for (const bad of [67, 65536, 1500.5, Number.NaN, '1500'])
      expect(() => checkMtu(bad, 't')).toThrow(invalid);
    expect(() => checkMtu(1279, 't', 1280)).toThrow(invalid);
  });

  it('parses and normalises addresses and prefixes', () => {
    expect(parseIpText('fd00:0::1', 't')).toEqual({ address: 'fd00::1', family: 6 });
    expect(parseCidrText('10.244.1.5/24', 't')).toEqual({ address: '10.244.1.5', family: 4, prefixLen: 24 });
    expect(parseCidrText('10.244.1.5', 't', true)).toMatchObject({ prefixLen: 32 });
    expect(parseCidrText('fd00::5', 't', true)).toMatchObject({ prefixLen: 128 });
    expect(networkOf(parseCidrText('10.244.1.5/24', 't'))).toBe('10.244.1.0');
    expect(networkOf(parseCidrText('fd00::5/64', 't'))).toBe('fd00::');
    for (const bad of [
      '10.1',
      '010.1.1.1',
      '10.1.1.1/33',
      '10.1.1.1/x',
      'fd00::1/129',
      '::ffff:10.0.0.1',
      '1.2.3.4/',
    ]) {
      expect(() => parseCidrText(bad, 't', true)).toThrow(invalid);
    }
    expect(() => parseCidrText('10.1.1.1', 't')).toThrow(invalid); // a prefix needs a length here
  });

  it('accepts unicast MACs only', () => {
    expect(checkMac('02:AA:bb:00:00:01', 't')).toBe('02:aa:bb:00:00:01');
    for (const bad of ['01:00:5e:00:00:01', '00:00:00:00:00:00', '02:00:00:00:00', 'zz:00:00:00:00:00']) {
      expect(() => checkMac(bad, 't')).toThrow(invalid);
    }
  });

  it('maps net.* sysctl keys to /proc/sys and refuses anything else', () => {
    expect(sysctlPath('net.ipv4.conf.eth0.rp_filter', 't')).toBe('/proc/sys/net/ipv4/conf/eth0/rp_filter');
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter', 't')).toBe(
      '/proc/sys/net/ipv4/conf/eth0.100/rp_filter',
    );
    for (const bad of ['kernel.hostname', 'net', 'net/../kernel/x', 'net.ipv4.conf.a b.rp_filter', '']) {
      expect(() => sysctlPath(bad, 't')).toThrow(invalid);
    }
  });
});
