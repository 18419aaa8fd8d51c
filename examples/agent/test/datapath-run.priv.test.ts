/**
 * Unit suite of the agent's C datapath through program test runs (BPF_PROG_TEST_RUN): no veths, no
 * namespaces, no traffic. Each case loads bpf/datapath.c with private (unpinned) maps, fills them
 * through the generated clients, runs from_container on a packet built with the loader's packet module,
 * and checks the verdict, the rewritten packet and the maps the program wrote.
 */

import {
  buildPacket,
  type Collection,
  load,
  openObject,
  parsePacket,
  skbContext,
  TcAct,
} from '@datapath/loader';
import { requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type EndpointInfo,
  type LxcPolicyKey,
  type Maps,
  MetricDir,
  MetricReason,
  openMaps,
  setConstants,
} from '../src/datapath.gen.js';
import { GATEWAY, ipv4HostU32 } from '../src/gateway.js';
import { generateDatapathModule } from '../src/layout.js';
import { CtFlags } from '../src/maps.js';
import { toLxcPolicyKey, toPolicyEntry } from '../src/policy-map.js';

let object: string;
beforeAll(async () => {
  object = (await generateDatapathModule()).object;
});

// The pod the program runs for: its host-side veth is the test run's device (ifindex 1, loopback).
const A: EndpointInfo = {
  ifindex: 1,
  lxcId: 1,
  flags: 0,
  secId: 1001,
  mac: '02:00:0a:f4:00:0a',
  nodeMac: '02:00:00:00:01:01',
  ip: '10.244.0.10',
};
const B: EndpointInfo = {
  ifindex: 7,
  lxcId: 2,
  flags: 0,
  secId: 1002,
  mac: '02:00:0a:f4:00:0b',
  nodeMac: '02:00:00:00:01:02',
  ip: '10.244.0.11',
};

/** A `struct lxc_policy_key` for the engine's key (policy-map.ts; bytes: the generated codec). */
function policyKey(
  lxcId: number,
  direction: 'ingress' | 'egress',
  identity: number,
  port: number,
): LxcPolicyKey {
  return toLxcPolicyKey({ lxcId, key: { direction, identity, protocol: 6, port, prefixLen: 24 } });
}
const allow = toPolicyEntry({ deny: false, prefixLen: 24, proxyPort: 0, authType: 0 });

interface World {
  coll: Collection;
  maps: Maps;
  policy: Maps['policy'];
  run(data: Uint8Array): { retval: number; data: Uint8Array };
}

/** The datapath loaded with private maps: A may open TCP/80 to B, B accepts TCP/80 from A. */
function world(): World {
  const spec = openObject(object, 'datapath');
  for (const m of Object.values(spec.maps)) m.pinning = 'none';
  setConstants(spec, { gateway_ipv4: ipv4HostU32(GATEWAY) });
  const coll = load(spec);
  const maps = openMaps(coll);
  maps.config.set(0, { policyRev: 1, flags: 0, traceRate: 0, tunnelIfindex: 0, netdevIfindex: 0 });
  maps.lxc.set(A.ifindex, A);
  maps.endpoints.set(ipv4HostU32Key(A.ip), A);
  maps.endpoints.set(ipv4HostU32Key(B.ip), B);
  maps.policy.set(policyKey(A.lxcId, 'egress', B.secId, 80), allow);
  maps.policy.set(policyKey(B.lxcId, 'ingress', A.secId, 80), allow);
  const prog = coll.program('from_container');
  return {
    coll,
    maps,
    policy: maps.policy,
    run: (data) => prog.run({ data, ctx: skbContext({ ifindex: A.ifindex }) }),
  };
}

/** The `endpoints` hash is keyed by the address as a __u32 in network order. */
function ipv4HostU32Key(ip: string): number {
  const h = ipv4HostU32(ip);
  return new DataView(Uint32Array.of(h).buffer).getUint32(0, false);
}

const syn = (src: string, dport: number, flags = { syn: true }) =>
  buildPacket([
    { kind: 'eth', src: A.mac, dst: A.nodeMac },
    { kind: 'ipv4', src, dst: B.ip, ttl: 64, id: 1 },
    { kind: 'tcp', sport: 40000, dport, flags },
  ]);

function counted(maps: Maps, lxcId: number, reason: MetricReason, dir: MetricDir): bigint {
  const per = maps.metrics.get({ lxcId, reason, dir });
  return (per ?? []).reduce((n, v) => n + v.packets, 0n);
}

describe('agent datapath (from_container) through test runs', () => {
  it('answers ARP for the gateway with the node MAC', (ctx) => {
    requireRoot(ctx);
    const w = world();
    using _ = w.coll;
    const req = buildPacket([
      { kind: 'eth', src: A.mac, dst: 'ff:ff:ff:ff:ff:ff' },
      {
        kind: 'arp',
        op: 1,
        senderMac: A.mac,
        senderIp: A.ip,
        targetMac: '00:00:00:00:00:00',
        targetIp: GATEWAY,
      },
    ]);
    const r = w.run(req);
    expect(r.retval).toBe(TcAct.REDIRECT); // bpf_redirect back out of the same veth
    expect(parsePacket(r.data).slice(0, 2)).toEqual([
      { kind: 'eth', dst: A.mac, src: A.nodeMac, type: 0x0806 },
      { kind: 'arp', op: 2, senderMac: A.nodeMac, senderIp: GATEWAY, targetMac: A.mac, targetIp: A.ip },
    ]);
    expect(counted(w.maps, A.lxcId, MetricReason.REASON_ARP_REPLY, MetricDir.DIR_EGRESS)).toBe(1n);
    // Any other target is not answered (the pod's stack times out on it).
    const other = buildPacket([
      { kind: 'eth', src: A.mac, dst: 'ff:ff:ff:ff:ff:ff' },
      {
        kind: 'arp',
        op: 1,
        senderMac: A.mac,
        senderIp: A.ip,
        targetMac: '00:00:00:00:00:00',
        targetIp: B.ip,
      },
    ]);
    expect(w.run(other)).toMatchObject({ retval: TcAct.OK, data: other });
  });

  it('forwards an allowed SYN with MACs rewritten and TTL decremented, and writes both conntrack entries', (ctx) => {
    requireRoot(ctx);
    const w = world();
    using _ = w.coll;
    const r = w.run(syn(A.ip, 80));
    expect(r.retval).toBe(TcAct.REDIRECT); // bpf_redirect_peer into B's eth0
    const [eth, ip, tcp] = parsePacket(r.data);
    expect(eth).toMatchObject({ dst: B.mac, src: B.nodeMac });
    expect(ip).toMatchObject({ kind: 'ipv4', src: A.ip, dst: B.ip, ttl: 63, checksumOk: true });
    expect(tcp).toMatchObject({ kind: 'tcp', dport: 80, checksumOk: true });
    const entries = [...w.maps.ct4.entries()];
    expect(entries.map(([k, e]) => [k.saddr, k.daddr, k.sport, k.dport, k.proto, e.flags, e.rev])).toEqual(
      expect.arrayContaining([
        [A.ip, B.ip, 40000, 80, 6, 0, 1],
        [B.ip, A.ip, 80, 40000, 6, CtFlags.CT_F_REPLY, 1],
      ]),
    );
    expect(entries).toHaveLength(2);
    expect(entries[0]![1]).toMatchObject({ srcSecId: A.secId, dstSecId: B.secId });
  });

  it('drops a denied SYN and counts the policy drop against the source endpoint', (ctx) => {
    requireRoot(ctx);
    const w = world();
    using _ = w.coll;
    expect(w.run(syn(A.ip, 81)).retval).toBe(TcAct.SHOT);
    expect(counted(w.maps, A.lxcId, MetricReason.REASON_POLICY_DENIED, MetricDir.DIR_EGRESS)).toBe(1n);
    expect([...w.maps.ct4.keys()]).toEqual([]);
  });

  it('re-checks an established flow after a policy revision bump, and drops it once denied', (ctx) => {
    requireRoot(ctx);
    const w = world();
    using _ = w.coll;
    const ack = syn(A.ip, 80, { ack: true } as never);
    expect(w.run(syn(A.ip, 80)).retval).toBe(TcAct.REDIRECT);
    // Same revision: the fast path, no policy lookup, even with the allow entry gone.
    w.policy.delete(policyKey(B.lxcId, 'ingress', A.secId, 80));
    expect(w.run(ack).retval).toBe(TcAct.REDIRECT);
    // The agent bumps the revision after a policy change: the flow is checked again and denied.
    w.maps.config.set(0, { policyRev: 2, flags: 0, traceRate: 0, tunnelIfindex: 0, netdevIfindex: 0 });
    expect(w.run(ack).retval).toBe(TcAct.SHOT);
    const e = [...w.maps.ct4.entries()].find(([k]) => k.saddr === A.ip)![1];
    expect(e).toMatchObject({ rev: 2, dropReason: MetricReason.REASON_POLICY_DENIED, dropLxc: B.lxcId });
    expect(e.flags & CtFlags.CT_F_DENIED).toBe(CtFlags.CT_F_DENIED);
    expect(counted(w.maps, B.lxcId, MetricReason.REASON_POLICY_DENIED, MetricDir.DIR_INGRESS)).toBe(1n);
  });

  it('drops a spoofed source', (ctx) => {
    requireRoot(ctx);
    const w = world();
    using _ = w.coll;
    expect(w.run(syn('10.244.0.99', 80)).retval).toBe(TcAct.SHOT);
    expect(counted(w.maps, A.lxcId, MetricReason.REASON_INVALID_SOURCE, MetricDir.DIR_EGRESS)).toBe(1n);
    expect([...w.maps.ct4.keys()]).toEqual([]);
  });
});
