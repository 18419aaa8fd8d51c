import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError } from '@datapath/cni';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostLocalIpam } from '../src/host-local.js';

let dir: string;
const open: HostLocalIpam[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cni-host-local-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});
function ipam(sets: ConstructorParameters<typeof HostLocalIpam>[1]) {
  const s = new HostLocalIpam(join(dir, 'net'), sets);
  open.push(s);
  return s;
}
const files = () => readdirSync(join(dir, 'net')).sort();

describe('in-process host-local', () => {
  it('hands out addresses after the gateway, in order, one file per IP in host-local layout', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    expect(s.allocate('c1', 'eth0')).toEqual([{ address: '10.244.0.2/24', gateway: '10.244.0.1' }]);
    expect(s.allocate('c2', 'eth0')).toEqual([{ address: '10.244.0.3/24', gateway: '10.244.0.1' }]);
    expect(files()).toEqual(['10.244.0.2', '10.244.0.3', 'last_reserved_ip.0', 'lock']);
    expect(readFileSync(join(dir, 'net', '10.244.0.2'), 'utf8')).toBe('c1\r\neth0');
    expect(readFileSync(join(dir, 'net', 'last_reserved_ip.0'), 'utf8').trim()).toBe('10.244.0.3');
  });

  it('refuses a second allocation for the same container and interface', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    s.allocate('c1', 'eth0');
    expect(() => s.allocate('c1', 'eth0')).toThrow(/duplicate allocation/);
    expect(s.allocate('c1', 'net1')[0]?.address).toBe('10.244.0.3/24');
  });

  it('honours rangeStart, rangeEnd and an explicit gateway, and round-robins from the last reserved IP', () => {
    const s = ipam([
      [
        {
          subnet: '10.244.0.0/24',
          rangeStart: '10.244.0.10',
          rangeEnd: '10.244.0.12',
          gateway: '10.244.0.11',
        },
      ],
    ]);
    expect(s.allocate('a', 'eth0')[0]).toEqual({ address: '10.244.0.10/24', gateway: '10.244.0.11' });
    expect(s.allocate('b', 'eth0')[0]?.address).toBe('10.244.0.12/24');
    expect(() => s.allocate('c', 'eth0')).toThrow(
      expect.objectContaining({ name: 'IpamError', code: 'Exhausted', reason: 'Full' }),
    );
    s.release('a', 'eth0');
    // Round robin: after .12 the search wraps to .10.
    expect(s.allocate('c', 'eth0')[0]?.address).toBe('10.244.0.10/24');
    expect(s.freePerSet()).toEqual([0]);
  });

  it('does not reuse a just-released address before the rest of the range (round robin)', () => {
    const s = ipam([[{ subnet: '10.244.0.0/29' }]]);
    expect(s.allocate('a', 'eth0')[0]?.address).toBe('10.244.0.2/29');
    s.release('a', 'eth0');
    expect(s.allocate('b', 'eth0')[0]?.address).toBe('10.244.0.3/29');
  });

  it('gives one address per range set, dual stack, atomically', () => {
    const s = ipam([[{ subnet: '10.244.0.0/30' }], [{ subnet: 'fd00::/120' }]]);
    expect(s.allocate('a', 'eth0')).toEqual([
      { address: '10.244.0.2/30', gateway: '10.244.0.1' },
      { address: 'fd00::2/120', gateway: 'fd00::1' },
    ]);
    // The v4 set is full: nothing is reserved in the v6 set either.
    expect(() => s.allocate('b', 'eth0')).toThrow(
      expect.objectContaining({ code: 'Exhausted', reason: 'Full' }),
    );
    expect(s.owned('b', 'eth0')).toEqual([]);
    expect(s.owned('a', 'eth0').sort()).toEqual(['10.244.0.2', 'fd00::2']);
  });

  it('takes a requested address, and refuses one that is taken or the gateway', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    expect(s.allocate('a', 'eth0', ['10.244.0.77'])[0]?.address).toBe('10.244.0.77/24');
    expect(() => s.allocate('b', 'eth0', ['10.244.0.77'])).toThrow(
      expect.objectContaining({ code: 'AlreadyExists', reason: 'AlreadyAllocated' }),
    );
    expect(s.owned('b', 'eth0')).toEqual([]);
  });

  it('refuses a requested address equal to the gateway (code 7), reserving nothing', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    expect(() => s.allocate('b', 'eth0', ['10.244.0.1'])).toThrow(
      expect.objectContaining({
        name: 'CniError',
        cniCode: 7,
        message: expect.stringMatching(/10\.244\.0\.1 is the gateway/),
      }),
    );
    expect(s.owned('b', 'eth0')).toEqual([]);
  });

  it('fails, as host-local, when a requested address is in no range: nothing silently replaced', () => {
    const s = ipam([
      [{ subnet: '10.244.0.0/24', rangeStart: '10.244.0.10', rangeEnd: '10.244.0.20' }],
      [{ subnet: 'fd00::/120' }],
    ]);
    const refused = (requested: string[], text: RegExp) => {
      expect(() => s.allocate('a', 'eth0', requested)).toThrow(
        expect.objectContaining({ name: 'CniError', cniCode: 7, message: expect.stringMatching(text) }),
      );
      expect(s.owned('a', 'eth0')).toEqual([]);
    };
    refused(['10.99.0.5'], /failed to allocate all requested IPs: 10\.99\.0\.5/);
    refused(['10.244.0.5'], /failed to allocate all requested IPs: 10\.244\.0\.5/); // outside rangeStart–rangeEnd
    refused(['10.244.0.11', '10.244.0.12'], /failed to allocate all requested IPs: 10\.244\.0\.12/); // one per set
    refused(['fd00::5', 'fd01::5'], /requested IPs: fd01::5/);
    // Both sets honoured, the IPv6 one written in a non-canonical form.
    expect(s.allocate('a', 'eth0', ['10.244.0.15', 'fd00:0::7']).map((l) => l.address)).toEqual([
      '10.244.0.15/24',
      'fd00::7/120',
    ]);
  });

  it('rejects a range with no usable address or with host bits set, naming the key (code 7)', () => {
    const bad = (subnet: string, text: RegExp) => {
      expect(() => ipam([[{ subnet: '10.244.0.0/24' }, { subnet, path: 'ipam.ranges[0][1]' }]])).toThrow(
        expect.objectContaining({ name: 'CniError', cniCode: 7, message: expect.stringMatching(text) }),
      );
    };
    bad(
      '10.244.1.1/32',
      /^ipam\.ranges\[0\]\[1\]\.subnet: network 10\.244\.1\.1\/32 is too small to allocate from/,
    );
    bad('10.244.1.0/31', /ranges\[0\]\[1\]\.subnet: network 10\.244\.1\.0\/31 is too small/);
    bad('fd00::/127', /too small/);
    bad(
      '10.244.1.5/24',
      /ipam\.ranges\[0\]\[1\]\.subnet: 10\.244\.1\.5\/24 has host bits set: the network address is 10\.244\.1\.0/,
    );
    bad('fd00::5/64', /has host bits set: the network address is fd00::/);
    expect(ipam([[{ subnet: '10.244.1.0/30' }]]).freePerSet()).toEqual([1]); // the smallest usable one
  });

  it('releases by owner only, idempotently, and releaseLeases leaves another owner’s address alone', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    const a = s.allocate('a', 'eth0');
    s.allocate('b', 'eth0');
    expect(s.release('a', 'eth0')).toBe(1);
    expect(s.release('a', 'eth0')).toBe(0);
    s.releaseLeases('b', 'eth0', a); // a's old address is not b's
    expect(s.owned('b', 'eth0')).toEqual(['10.244.0.3']);
  });

  it('garbage-collects every owner not kept', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    for (const id of ['a', 'b', 'c']) s.allocate(id, 'eth0');
    expect(s.gc(new Set(['b\r\neth0'])).sort((x, y) => x.ip.localeCompare(y.ip))).toEqual([
      { ip: '10.244.0.2', containerId: 'a', ifname: 'eth0' },
      { ip: '10.244.0.4', containerId: 'c', ifname: 'eth0' },
    ]);
    expect(s.owned('b', 'eth0')).toEqual(['10.244.0.3']);
    expect(files()).toEqual(['10.244.0.3', 'last_reserved_ip.0', 'lock']);
  });

  it('rejects a range that does not fit its subnet with code 7', () => {
    expect(() => ipam([[{ subnet: '10.244.0.0/24', rangeStart: '10.245.0.1' }]])).toThrow(CniError);
    expect(() =>
      ipam([[{ subnet: '10.244.0.0/24', rangeStart: '10.244.0.9', rangeEnd: '10.244.0.3' }]]),
    ).toThrow(/after rangeEnd/);
  });
});
