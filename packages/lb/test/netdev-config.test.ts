import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectLayoutsMatch } from '../../loader/test/helpers/layouts.js';
import { formatted } from '../scripts/gen.js';
import { LbError } from '../src/errors.js';
import * as gen from '../src/netdev.gen.js';
import { natPeerKey } from '../src/netdev.js';
import { be32Of, DEFAULT_NAT_PORT_RANGE, netdevConstants } from '../src/netdev-config.js';
import { generateNetdevModule, NETDEV_GENERATED } from '../src/netdev-layout.js';

describe('netdevConstants', () => {
  it('turns a masquerade config into the C constants (addresses as network-order __be32)', () => {
    const c = netdevConstants({
      nodeAddress: '198.18.0.1',
      masquerade: {
        podCidr: '10.244.1.0/24',
        clusterCidr: '10.244.0.0/16',
        portRange: { min: 40000, max: 40999 },
      },
      timeouts: { udp: 5 },
    });
    // 198.18.0.1 in memory is c6 12 00 01: the little-endian u32 0x010012c6
    expect(c.nat_ipv4).toBe(0x010012c6);
    expect(c.masq_src_net).toBe(0x0001f40a);
    expect(c.masq_src_mask).toBe(0x00ffffff);
    expect(c.nonmasq_net).toBe(0x0000f40a);
    expect(c.nonmasq_mask).toBe(0x0000ffff);
    expect([c.nat_port_min, c.nat_port_max, c.nat_retries, c.masq_enabled]).toEqual([40000, 40999, 32, 1]);
    expect(c.ct_timeout_udp).toBe(5);
    expect(c.ct_timeout_tcp).toBe(21600);
  });

  it('defaults: the range above the NodePort range, cluster CIDR = pod CIDR; masquerade off without its options', () => {
    const c = netdevConstants({ nodeAddress: '198.18.0.1', masquerade: { podCidr: '10.244.1.0/24' } });
    expect([c.nat_port_min, c.nat_port_max]).toEqual([
      DEFAULT_NAT_PORT_RANGE.min,
      DEFAULT_NAT_PORT_RANGE.max,
    ]);
    expect(c.nonmasq_net).toBe(c.masq_src_net);
    expect(netdevConstants({ nodeAddress: '198.18.0.1' }).masq_enabled).toBe(0);
    expect(be32Of(0x0a000001)).toBe(0x0100000a);
  });

  it('reports every problem at once with its path and reason', () => {
    let err: unknown;
    try {
      netdevConstants({
        nodeAddress: '',
        masquerade: { podCidr: '10.244.1.0/33', portRange: { min: 0, max: 10 }, retries: 65 },
        timeouts: { tcpClose: 1.5 },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LbError);
    const e = err as LbError;
    expect(e.code).toBe('InvalidArgument');
    expect(e.problems.map((p) => [p.path, p.reason])).toEqual([
      ['nodeAddress', 'InvalidAddress'],
      ['masquerade.podCidr', 'InvalidCidr'],
      ['masquerade.clusterCidr', 'InvalidCidr'],
      ['masquerade.portRange', 'InvalidPortRange'],
      ['masquerade.retries', 'InvalidNatConfig'],
      ['timeouts.tcpClose', 'InvalidNatConfig'],
    ]);
  });
});

describe('natPeerKey', () => {
  it('pairs the halves the way bpf/nat.h does, and is its own inverse', () => {
    const out = {
      saddr: '10.244.1.2',
      daddr: '198.18.0.2',
      sport: 40000,
      dport: 80,
      proto: 6,
      dir: gen.NatDir.NAT_DIR_OUT,
    };
    const outEntry = { toAddr: '198.18.0.1', toPort: 40001, flags: 0, expires: 0, created: 0 };
    const inKey = natPeerKey(out, outEntry);
    expect(inKey).toEqual({
      saddr: '198.18.0.2',
      daddr: '198.18.0.1',
      sport: 80,
      dport: 40001,
      proto: 6,
      dir: gen.NatDir.NAT_DIR_IN,
    });
    expect(natPeerKey(inKey, { ...outEntry, toAddr: '10.244.1.2', toPort: 40000 })).toEqual(out);
    const svc = {
      saddr: '198.18.0.2',
      daddr: '198.18.0.1',
      sport: 5555,
      dport: 30080,
      proto: 17,
      dir: gen.NatDir.NAT_DIR_SVC,
    };
    const rsvc = natPeerKey(svc, { ...outEntry, toAddr: '10.244.1.6', toPort: 8080 });
    expect(rsvc).toEqual({
      saddr: '10.244.1.6',
      daddr: '198.18.0.2',
      sport: 8080,
      dport: 5555,
      proto: 17,
      dir: gen.NatDir.NAT_DIR_RSVC,
    });
    expect(natPeerKey(rsvc, { ...outEntry, toAddr: '198.18.0.1', toPort: 30080 })).toEqual(svc);
  });
});

describe('src/netdev.gen.ts', () => {
  it('is what bpf/netdev.c generates (run `pnpm --filter @datapath/lb run gen` after changing the C)', async () => {
    const { text } = await generateNetdevModule();
    expect(readFileSync(NETDEV_GENERATED, 'utf8')).toBe(formatted(text));
  });

  it('has every struct at the size and field offsets of bpftool btf dump', async () => {
    const { object } = await generateNetdevModule();
    expect(Object.keys(gen.types)).toEqual(expect.arrayContaining(['nat4_key', 'nat4_entry']));
    expectLayoutsMatch(gen.types, object);
  });
});
