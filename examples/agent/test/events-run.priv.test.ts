import type { RingBuf } from '@datapath/bpf-maps';
import { buildPacket, compile, load, openObject, skbContext, TcAct } from '@datapath/loader';
import { requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type EndpointInfo,
  EventType,
  type LxcPolicyKey,
  MetricDir,
  MetricReason,
  openMaps,
  PolicyMatch,
  setConstants,
} from '../src/datapath.gen.js';
import { decodeRecord, type RawEvent } from '../src/events.js';
import { GATEWAY, ipv4HostU32 } from '../src/gateway.js';
import { datapathCompileOptions, generateDatapathModule } from '../src/layout.js';
import { toLxcPolicyKey, toPolicyEntry } from '../src/policy-map.js';

let object: string;
let objectNoEvents: string;
beforeAll(async () => {
  object = (await generateDatapathModule()).object;
  objectNoEvents = (await compile(datapathCompileOptions({ events: false }))).path;
});

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

function policyKey(
  lxcId: number,
  direction: 'ingress' | 'egress',
  identity: number,
  port: number,
): LxcPolicyKey {
  return toLxcPolicyKey({ lxcId, key: { direction, identity, protocol: 6, port, prefixLen: 24 } });
}
const allow = toPolicyEntry({ deny: false, prefixLen: 24, proxyPort: 0, authType: 0 });
const netU32 = (ip: string) => new DataView(Uint32Array.of(ipv4HostU32(ip)).buffer).getUint32(0, false);

/** A may open TCP/80 to B (A's egress: any identity; B's ingress: A's identity). */
function world(obj: string) {
  const spec = openObject(obj, 'datapath');
  for (const m of Object.values(spec.maps)) m.pinning = 'none';
  setConstants(spec, { gateway_ipv4: ipv4HostU32(GATEWAY) });
  const coll = load(spec);
  const maps = openMaps(coll);
  maps.config.set(0, { policyRev: 1, flags: 0, traceRate: 0, tunnelIfindex: 0, netdevIfindex: 0 });
  maps.lxc.set(A.ifindex, A);
  maps.endpoints.set(netU32(A.ip), A);
  maps.endpoints.set(netU32(B.ip), B);
  maps.policy.set(policyKey(A.lxcId, 'egress', 0, 80), allow);
  maps.policy.set(policyKey(B.lxcId, 'ingress', A.secId, 80), allow);
  const ring = coll.map('events') as RingBuf;
  if (ring.kind !== 'ringBuf') throw new Error('events is a ring buffer');
  const prog = coll.program('from_container');
  return {
    coll,
    maps,
    ring,
    run: (data: Uint8Array) => prog.run({ data, ctx: skbContext({ ifindex: A.ifindex }) }).retval,
    /** Every record waiting in the ring, decoded. */
    drain(): RawEvent[] {
      const out: RawEvent[] = [];
      ring.read((view, off, len) => {
        const ev = decodeRecord(view, off, len);
        if (ev !== undefined) out.push(ev);
      });
      return out;
    },
    [Symbol.dispose]() {
      ring.close();
      coll.close();
    },
  };
}

const tcp = (dport: number, flags: Record<string, boolean>) =>
  buildPacket([
    { kind: 'eth', src: A.mac, dst: A.nodeMac },
    { kind: 'ipv4', src: A.ip, dst: B.ip, ttl: 64, id: 1 },
    { kind: 'tcp', sport: 40000, dport, flags },
  ]);

const flow = { saddr: A.ip, daddr: B.ip, sport: 40000, proto: 6, srcLxc: A.lxcId, dstLxc: B.lxcId };

describe('datapath events (from_container through test runs)', () => {
  it('a denied SYN gives exactly one policy verdict and one drop, with the policy reason', (ctx) => {
    requireRoot(ctx);
    using w = world(object);
    expect(w.run(tcp(81, { syn: true }))).toBe(TcAct.SHOT);
    const evs = w.drain();
    expect(evs).toHaveLength(2);
    const [verdict, drop] = evs;
    expect(verdict).toMatchObject({
      ...flow,
      dport: 81,
      type: EventType.EVENT_POLICY_VERDICT,
      reason: MetricReason.REASON_POLICY_DENIED,
      match: PolicyMatch.MATCH_NONE,
      lxcId: A.lxcId,
      dir: MetricDir.DIR_EGRESS,
      srcId: A.secId,
      dstId: B.secId,
    });
    expect(drop).toMatchObject({
      ...flow,
      dport: 81,
      type: EventType.EVENT_DROP,
      reason: MetricReason.REASON_POLICY_DENIED,
      lxcId: A.lxcId,
      dir: MetricDir.DIR_EGRESS,
    });
    expect(drop!.len).toBe(14 + 20 + 20);
    expect(drop!.data).toBeUndefined();
    expect(w.maps.events_lost.get(0)!.reduce((a, b) => a + b, 0n)).toBe(0n);
  });

  it('an allowed flow gives one verdict (the deciding entry: L3/L4 at the destination), none for its later packets; traces only when switched on', (ctx) => {
    requireRoot(ctx);
    using w = world(object);
    expect(w.run(tcp(80, { syn: true }))).toBe(TcAct.REDIRECT);
    expect(w.drain()).toEqual([
      expect.objectContaining({
        ...flow,
        dport: 80,
        type: EventType.EVENT_POLICY_VERDICT,
        reason: MetricReason.REASON_FORWARDED,
        match: PolicyMatch.MATCH_L3_L4,
        lxcId: B.lxcId,
        dir: MetricDir.DIR_INGRESS,
      }),
    ]);
    const ack = tcp(80, { ack: true });
    expect(w.run(ack)).toBe(TcAct.REDIRECT);
    expect(w.drain()).toEqual([]); // established: no verdict, tracing off
    w.maps.config.set(0, { policyRev: 1, flags: 0, traceRate: 1, tunnelIfindex: 0, netdevIfindex: 0 });
    expect(w.run(ack)).toBe(TcAct.REDIRECT);
    const [trace, ...rest] = w.drain();
    expect(rest).toEqual([]);
    expect(trace).toMatchObject({
      ...flow,
      dport: 80,
      type: EventType.EVENT_TRACE,
      lxcId: A.lxcId,
      dir: MetricDir.DIR_EGRESS,
    });
    // The packet's first bytes as the program saw them (before the MAC rewrite).
    expect(trace!.data).toEqual(ack.subarray(0, 54));
  });

  it('a policy change that denies an established flow gives one denied verdict when the flow is re-checked; one that keeps it allowed gives none', (ctx) => {
    requireRoot(ctx);
    using w = world(object);
    expect(w.run(tcp(80, { syn: true }))).toBe(TcAct.REDIRECT);
    expect(w.drain()).toHaveLength(1); // the new flow's verdict
    const ack = tcp(80, { ack: true });
    // An unrelated change (new revision, same entries): re-checked, still allowed, no record.
    w.maps.config.set(0, { ...w.maps.config.get(0)!, policyRev: 2 });
    expect(w.run(ack)).toBe(TcAct.REDIRECT);
    expect(w.drain()).toEqual([]);
    // B no longer admits A: the next packet re-checks the flow under revision 3 and is dropped.
    w.maps.policy.delete(policyKey(B.lxcId, 'ingress', A.secId, 80));
    w.maps.config.set(0, { ...w.maps.config.get(0)!, policyRev: 3 });
    expect(w.run(ack)).toBe(TcAct.SHOT);
    const denied = {
      ...flow,
      dport: 80,
      reason: MetricReason.REASON_POLICY_DENIED,
      lxcId: B.lxcId,
      dir: MetricDir.DIR_INGRESS,
    };
    expect(w.drain()).toEqual([
      expect.objectContaining({
        ...denied,
        type: EventType.EVENT_POLICY_VERDICT,
        match: PolicyMatch.MATCH_NONE,
      }),
      expect.objectContaining({ ...denied, type: EventType.EVENT_DROP }),
    ]);
    // Its later packets are dropped on the fast path (entry marked denied): drops only, no more verdicts.
    expect(w.run(ack)).toBe(TcAct.SHOT);
    expect(w.drain().map((e) => e.type)).toEqual([EventType.EVENT_DROP]);
  });

  it('the wildcard entry that decided an egress verdict is reported as L4-only', (ctx) => {
    requireRoot(ctx);
    using w = world(object);
    // Towards the world: only A's egress policy applies; its entry is identity 0 / TCP 80.
    const pkt = buildPacket([
      { kind: 'eth', src: A.mac, dst: A.nodeMac },
      { kind: 'ipv4', src: A.ip, dst: '198.18.0.9', ttl: 64, id: 1 },
      { kind: 'tcp', sport: 40001, dport: 80, flags: { syn: true } },
    ]);
    expect(w.run(pkt)).toBe(TcAct.OK);
    expect(w.drain()).toEqual([
      expect.objectContaining({
        type: EventType.EVENT_POLICY_VERDICT,
        reason: MetricReason.REASON_FORWARDED,
        match: PolicyMatch.MATCH_L4_ONLY,
        lxcId: A.lxcId,
        dir: MetricDir.DIR_EGRESS,
        dstLxc: 0,
        dstId: 2, // world
      }),
    ]);
  });

  it('built with DATAPATH_EVENTS=0 emits nothing, with the same verdicts', (ctx) => {
    requireRoot(ctx);
    using w = world(objectNoEvents);
    w.maps.config.set(0, { policyRev: 1, flags: 0, traceRate: 1, tunnelIfindex: 0, netdevIfindex: 0 });
    expect(w.run(tcp(81, { syn: true }))).toBe(TcAct.SHOT);
    expect(w.run(tcp(80, { syn: true }))).toBe(TcAct.REDIRECT);
    expect(w.run(tcp(80, { ack: true }))).toBe(TcAct.REDIRECT);
    expect(w.drain()).toEqual([]);
  });
});
