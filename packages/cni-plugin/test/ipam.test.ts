// The plugin's IPAM step (src/ipam.ts) and config rules, without root: requested addresses from every
// place a runtime puts them (fail like host-local, never silently replaced or dropped), config errors
// that name the key and say why, and code 7 (not 11 or 50) for a range with no usable address.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError, parseConfig } from '@datapath/cni';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PluginConfig, parsePluginConfig } from '../src/config.js';
import { ipamFor } from '../src/ipam.js';

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'cni-ipam-test-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const config = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): PluginConfig =>
  parseConfig(
    { cniVersion: '1.1.0', name: 'pods', type: 'datapath-cni', ipam: { dataDir, ...ipam }, ...extra },
    parsePluginConfig,
  );

function invocation(conf: PluginConfig, args: Record<string, string> = {}) {
  return {
    command: 'ADD' as 'ADD' | 'STATUS',
    cniVersion: '1.1.0' as const,
    config: conf,
    stdin: JSON.stringify(conf),
    env: {},
    path: [],
    log: () => {},
    containerId: 'c1',
    ifname: 'eth0',
    netns: '/run/netns/x',
    args,
  };
}

async function error(fn: () => unknown): Promise<CniError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error('no error');
}
const reserved = () => {
  try {
    return readdirSync(join(dataDir, 'pods')).filter((f) => /^[\d.]+$|:/.test(f));
  } catch {
    return [];
  }
};

describe('requested addresses (host-local semantics)', () => {
  const subnet = { type: 'host-local', ranges: [[{ subnet: '10.244.0.0/24' }]] };
  const add = async (conf: PluginConfig, args: Record<string, string> = {}) => {
    const ipam = ipamFor(invocation(conf, args));
    try {
      return (await ipam.add()).ips.map((i) => i.address);
    } finally {
      ipam.close();
    }
  };

  it('a runtimeConfig.ips address outside every range fails ADD (code 7), nothing reserved', async () => {
    const e = await error(() => add(config(subnet, { runtimeConfig: { ips: ['10.99.0.5/24'] } })));
    expect(e.cniCode).toBe(7);
    expect(e.message).toBe('failed to allocate all requested IPs: 10.99.0.5');
    expect(reserved()).toEqual([]);
  });

  it('args.cni.ips: honoured, and an invalid entry is an error naming it, not dropped', async () => {
    expect(await add(config(subnet, { args: { cni: { ips: ['10.244.0.40'] } } }))).toEqual([
      '10.244.0.40/24',
    ]);
    const e = await error(() => add(config(subnet, { args: { cni: { ips: ['10.244.0.41', 'bogus'] } } })));
    expect(e.cniCode).toBe(7);
    expect(e.message).toBe('args.cni.ips[1]: "bogus" is not an IP address');
    const e2 = await error(() => add(config(subnet, { args: { cni: { ips: '10.244.0.41' } } })));
    expect(e2.message).toMatch(/args\.cni\.ips must be a list/);
    expect(reserved()).toEqual(['10.244.0.40']);
  });

  it('CNI_ARGS IP= is honoured; a bad one is code 4; one outside the ranges fails', async () => {
    expect(await add(config(subnet), { IP: '10.244.0.50' })).toEqual(['10.244.0.50/24']);
    expect((await error(() => add(config(subnet), { IP: '10.244.0' }))).cniCode).toBe(4);
    const e = await error(() => add(config(subnet), { IP: '192.0.2.1' }));
    expect([e.cniCode, e.message]).toEqual([7, 'failed to allocate all requested IPs: 192.0.2.1']);
  });

  it('a requested address equal to the gateway is refused (code 7)', async () => {
    const e = await error(() => add(config(subnet, { runtimeConfig: { ips: ['10.244.0.1/24'] } })));
    expect([e.cniCode, e.message]).toEqual([
      7,
      'requested IP 10.244.0.1 is the gateway of ipam.ranges[0][0]',
    ]);
    expect(reserved()).toEqual([]);
  });
});

describe('host-local config errors', () => {
  it('a range with no usable address is a config error (7) on ADD and on STATUS, not 11 or 50', async () => {
    for (const subnet of ['10.244.0.1/32', '10.244.0.0/31']) {
      const conf = config({ type: 'host-local', ranges: [[{ subnet }]] });
      const add = await error(() => ipamFor(invocation(conf)).add());
      expect([add.cniCode, add.message]).toEqual([
        7,
        expect.stringMatching(/^ipam\.ranges\[0\]\[0\]\.subnet: network .* too small/),
      ]);
      const status = await error(() => ipamFor({ ...invocation(conf), command: 'STATUS' as const }).status());
      expect(status.cniCode).toBe(7);
    }
  });

  it('names every bad field with the reason', async () => {
    const details = async (ipam: Record<string, unknown>) => {
      const e = await error(() => config(ipam));
      expect(e.cniCode).toBe(7);
      return e.details ?? '';
    };
    const subnet5 = await details({ type: 'host-local', subnet: 5 });
    expect(subnet5).toMatch(/^ipam\.subnet: Invalid input: expected string, received number$/);
    expect(subnet5).not.toMatch(/ipam\.type|IPAM plugin name/);
    expect(await details({ type: 'host-local', subnet: 'bogus' })).toMatch(
      /^ipam\.subnet: not an address\/prefix$/,
    );
    expect(await details({ type: 'host-local', ranges: [[{ subnet: 'bogus' }]] })).toMatch(
      /^ipam\.ranges\[0\]\[0\]\.subnet: not an address\/prefix$/,
    );
    expect(await details({ type: 'host-local', subnet: '10.0.0.0/24', gateway: 7 })).toMatch(
      /^ipam\.gateway: /,
    );
    expect(await details({ type: '' })).toMatch(/ipam/);
    // Host bits set and /31: refused as host-local does, naming the key.
    const bits = await error(() =>
      ipamFor(invocation(config({ type: 'host-local', subnet: '10.244.0.5/24' }))),
    );
    expect([bits.cniCode, bits.message]).toEqual([
      7,
      'ipam.subnet: 10.244.0.5/24 has host bits set: the network address is 10.244.0.0',
    ]);
  });

  it('a network name over 255 bytes is a config error (7)', async () => {
    const e = await error(() =>
      config({ type: 'host-local', subnet: '10.244.0.0/24' }, { name: 'n'.repeat(256) }),
    );
    expect(e.cniCode).toBe(7);
    expect(e.message).toMatch(/^name: .*256 bytes, at most 255/);
    expect(
      config({ type: 'host-local', subnet: '10.244.0.0/24' }, { name: 'n'.repeat(255) }).name,
    ).toHaveLength(255);
  });
});
