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
      expect.objectContaining({ name: 'IpamError', code: 'Full' }),
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
    expect(() => s.allocate('b', 'eth0')).toThrow(expect.objectContaining({ code: 'Full' }));
    expect(s.owned('b', 'eth0')).toEqual([]);
    expect(s.owned('a', 'eth0').sort()).toEqual(['10.244.0.2', 'fd00::2']);
  });

  it('takes a requested address, and refuses one that is taken or the gateway', () => {
    const s = ipam([[{ subnet: '10.244.0.0/24' }]]);
    expect(s.allocate('a', 'eth0', ['10.244.0.77'])[0]?.address).toBe('10.244.0.77/24');
    expect(() => s.allocate('b', 'eth0', ['10.244.0.77'])).toThrow(
      expect.objectContaining({ code: 'AlreadyAllocated' }),
    );
    expect(() => s.allocate('b', 'eth0', ['10.244.0.1'])).toThrow(
      expect.objectContaining({ code: 'AlreadyAllocated' }),
    );
    expect(s.owned('b', 'eth0')).toEqual([]);
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
    expect(s.gc(new Set(['b\r\neth0'])).sort()).toEqual(['10.244.0.2', '10.244.0.4']);
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
