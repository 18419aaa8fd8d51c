import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dpEvent, EventType, MetricDir, MetricReason, PolicyMatch } from '../src/datapath.gen.js';
import {
  type AgentEvent,
  decodeRecord,
  EVENT_HEADER_SIZE,
  EventNamer,
  formatEvent,
  matchesFilter,
} from '../src/events.js';
import { FlowLog, parseFlowFilter, renderFlows, toFlow } from '../src/flows.js';
import { latencyPath, readLatencies, recordLatency } from '../src/latency.js';
import type { AgentState } from '../src/state.js';

const state = {
  hostIp: '10.244.1.1',
  pods: {
    'shop/client': { key: 'shop/client', lxcId: 1, ip: '10.244.1.10', identity: 1001 },
    'shop/server': { key: 'shop/server', lxcId: 2, ip: '10.244.1.11', identity: 1002 },
  },
} as unknown as AgentState;

function record(h: Partial<Parameters<typeof dpEvent.encode>[0]>, data?: Uint8Array): DataView {
  const buf = new Uint8Array(EVENT_HEADER_SIZE + (data?.length ?? 0) + 8);
  const view = new DataView(buf.buffer);
  dpEvent.encode(
    {
      tsNs: 5_000_000_000n,
      type: EventType.EVENT_DROP,
      reason: MetricReason.REASON_POLICY_DENIED,
      dir: MetricDir.DIR_INGRESS,
      match: PolicyMatch.MATCH_NONE,
      srcLxc: 1,
      dstLxc: 2,
      srcId: 1001,
      dstId: 1002,
      tuple: { saddr: '10.244.1.10', daddr: '10.244.1.11', sport: 40000, dport: 81, proto: 6 },
      len: 74,
      capLen: data?.length ?? 0,
      lxcId: 2,
      ...h,
    } as never,
    view,
    8,
  );
  if (data) buf.set(data, 8 + EVENT_HEADER_SIZE);
  return view;
}

describe('event records', () => {
  const namer = new EventNamer(state);

  it('decodes a drop and names its pods, reason and direction', () => {
    const view = record({});
    const e = namer.describe(decodeRecord(view, 8, EVENT_HEADER_SIZE)!);
    expect(e).toMatchObject({
      type: 'drop',
      reason: 'policy-denied',
      endpoint: { id: 2, pod: 'shop/server', direction: 'ingress' },
      source: { ip: '10.244.1.10', port: 40000, identity: 1001, name: 'shop/client', endpoint: 1 },
      destination: { ip: '10.244.1.11', port: 81, identity: 1002, name: 'shop/server', endpoint: 2 },
      protocol: 'TCP',
      length: 74,
    });
    expect(formatEvent(e)).toBe(
      'drop (policy-denied) ingress of endpoint 2 (shop/server), identity 1001->1002: 10.244.1.10:40000 (shop/client) -> 10.244.1.11:81 (shop/server) TCP, 74 bytes',
    );
    expect(decodeRecord(view, 8, EVENT_HEADER_SIZE - 1)).toBeUndefined();
  });

  it('a policy verdict says allow/deny and the match; a trace carries the packet bytes and TCP flags', () => {
    const v = namer.describe(
      decodeRecord(
        record({
          type: EventType.EVENT_POLICY_VERDICT,
          reason: 0,
          match: PolicyMatch.MATCH_L3_L4,
          dport: 80,
        } as never),
        8,
        EVENT_HEADER_SIZE,
      )!,
    );
    expect(v).toMatchObject({ type: 'policy-verdict', verdict: 'allowed', match: 'l3-l4' });
    expect(formatEvent(v)).toContain(
      'policy-verdict ingress of endpoint 2 (shop/server): action allow, match l3-l4',
    );
    // Ethernet (IPv4) + IPv4 (ihl 5, TCP) + TCP with SYN|ACK.
    const pkt = new Uint8Array(54);
    pkt[12] = 0x08;
    pkt[14] = 0x45;
    pkt[23] = 6;
    pkt[14 + 20 + 13] = 0x12;
    const t = namer.describe(
      decodeRecord(record({ type: EventType.EVENT_TRACE, reason: 0 }, pkt), 8, EVENT_HEADER_SIZE + 54)!,
    );
    expect(t).toMatchObject({ type: 'trace', tcpFlags: 'SYN,ACK', data: Buffer.from(pkt).toString('hex') });
    expect(formatEvent(t)).toMatch(
      /^trace ingress of endpoint 2 \(shop\/server\), .* TCP SYN,ACK, 74 bytes$/,
    );
  });

  it('shows no ports for ICMP (the tuple carries the echo identifier there)', () => {
    const e = namer.describe(
      decodeRecord(
        record({
          tuple: { saddr: '10.244.1.10', daddr: '10.244.1.11', sport: 7, dport: 7, proto: 1 },
        } as never),
        8,
        EVENT_HEADER_SIZE,
      )!,
    );
    expect(formatEvent(e)).toContain(
      ': 10.244.1.10 (shop/client) -> 10.244.1.11 (shop/server) ICMP, 74 bytes',
    );
  });

  it("names endpoints made one after the other from a resident agent's live state; the file reload stays throttled", () => {
    const pods: AgentState['pods'] = {};
    const live = { ...state, pods } as AgentState;
    let reloads = 0;
    const n = new EventNamer(
      live,
      () => {
        reloads++;
        return live;
      },
      { live: true },
    );
    const event = (lxc: number) =>
      n.describe(decodeRecord(record({ lxcId: lxc, dstLxc: lxc, srcLxc: lxc }), 8, EVENT_HEADER_SIZE)!);
    for (const id of [7, 8, 9]) {
      pods[`shop/p${id}`] = { key: `shop/p${id}`, lxcId: id, ip: `10.244.1.${id}`, identity: 1001 } as never;
      expect(event(id).endpoint?.pod).toBe(`shop/p${id}`);
    }
    expect(reloads).toBe(3);
    // an id nobody has: one reload, then none for a second
    expect(event(99).endpoint?.pod).toBeUndefined();
    expect(event(99).endpoint?.pod).toBeUndefined();
    expect(reloads).toBe(4);
    // the state files: one reload a second whatever it is for (the second new pod waits)
    let fileReloads = 0;
    const f = new EventNamer({ ...state, pods: {} } as AgentState, () => {
      fileReloads++;
      return live;
    });
    pods['shop/p10'] = { key: 'shop/p10', lxcId: 10, ip: '10.244.1.20', identity: 1001 } as never;
    const fileEvent = (lxc: number) =>
      f.describe(decodeRecord(record({ lxcId: lxc, dstLxc: lxc, srcLxc: lxc }), 8, EVENT_HEADER_SIZE)!);
    expect(fileEvent(10).endpoint?.pod).toBe('shop/p10');
    delete pods['shop/p10'];
    expect(fileEvent(11).endpoint?.pod).toBeUndefined();
    expect(fileReloads).toBe(1);
  });

  it('names a CIDR identity by its prefix (monitor line, JSON, observe table), re-reading the state for a new one', () => {
    const cidrState = {
      ...state,
      identities: {
        'cluster:k8s:app=client': 1001,
        'local:reserved:world,cidr:10.244.9.0/24': 16777216,
        'local:cidr:198.18.0.0/15,reserved:world': 16777217,
      },
    } as unknown as AgentState;
    let reloads = 0;
    const n = new EventNamer(state, () => {
      reloads++;
      return cidrState;
    });
    const view = record({
      type: EventType.EVENT_POLICY_VERDICT,
      reason: MetricReason.REASON_POLICY_DENIED,
      dir: MetricDir.DIR_EGRESS,
      dstLxc: 0,
      dstId: 16777216,
      lxcId: 1,
      tuple: { saddr: '10.244.1.10', daddr: '10.244.9.5', sport: 40000, dport: 80, proto: 6 },
    });
    const e = n.describe(decodeRecord(view, 8, EVENT_HEADER_SIZE)!);
    expect(reloads).toBe(1); // the identity was not in the state the namer started with
    expect(e.destination).toEqual({
      ip: '10.244.9.5',
      port: 80,
      identity: 16777216,
      identityName: 'cidr:10.244.9.0/24',
      name: 'cidr:10.244.9.0/24',
    });
    const line = formatEvent(e);
    expect(line).toContain('identity 1001->cidr:10.244.9.0/24:');
    expect(line).toContain('10.244.9.5:80 (cidr:10.244.9.0/24)');
    expect(line).not.toContain('16777216');
    expect(n.cidr(16777217)).toBe('cidr:198.18.0.0/15');
    expect(n.cidr(1002)).toBeUndefined();
    const log = new FlowLog(1);
    log.add(toFlow(e, 5_000_000_000n, 1_000_000));
    expect(log.query({ to: 'cidr:10.244.9.0/24' })).toHaveLength(1);
    expect(renderFlows(log.query()).split('\n')[1]).toMatch(
      /shop\/client:40000\s+10\.244\.9\.5:80 \(cidr:10\.244\.9\.0\/24\)\s+policy-verdict\s+DROPPED/,
    );
  });

  it('filters by type and pod', () => {
    const e = namer.describe(decodeRecord(record({}), 8, EVENT_HEADER_SIZE)!);
    expect(matchesFilter(e, {})).toBe(true);
    expect(matchesFilter(e, { types: ['drop'] })).toBe(true);
    expect(matchesFilter(e, { types: ['trace', 'policy-verdict'] })).toBe(false);
    expect(matchesFilter(e, { pod: 'shop/client' })).toBe(true);
    expect(matchesFilter(e, { pod: 'shop/other' })).toBe(false);
  });
});

describe('flow log (agent observe)', () => {
  const ev = (i: number, over: Partial<AgentEvent> = {}): AgentEvent => ({
    type: 'policy-verdict',
    timeNs: String(1_000_000_000 + i),
    reason: 'forwarded',
    verdict: 'allowed',
    match: 'l3-l4',
    endpoint: { id: 2, pod: 'shop/server', direction: 'ingress' },
    source: { ip: '10.244.1.10', port: 40000 + i, identity: 1001, name: 'shop/client' },
    destination: { ip: '10.244.1.11', port: 80, identity: 1002, name: 'shop/server' },
    protocol: 'TCP',
    length: 74,
    ...over,
  });

  it('keeps the newest N, oldest first, and filters by from, to, verdict, port and last', () => {
    const log = new FlowLog(3);
    const now = 2_000_000_000n;
    for (let i = 0; i < 5; i++) log.add(toFlow(ev(i), now, 1_000_000));
    log.add(
      toFlow(
        ev(9, {
          type: 'drop',
          reason: 'policy-denied',
          verdict: undefined,
          destination: { ip: '10.244.1.11', port: 81, identity: 1002, name: 'shop/server' },
        } as never),
        now,
        1_000_000,
      ),
    );
    expect(log.seen).toBe(6);
    expect(log.query().map((f) => f.source.port)).toEqual([40003, 40004, 40009]);
    expect(log.query({ verdict: 'DROPPED' }).map((f) => f.destination.port)).toEqual([81]);
    expect(log.query({ port: 80, last: 1 }).map((f) => f.source.port)).toEqual([40004]);
    expect(log.query({ from: 'shop/' }).length).toBe(3);
    expect(log.query({ from: '10.244.1.10', to: 'shop/client' })).toEqual([]);
    // ktime 1 s + 4 ns, now 2 s at wall clock 1 000 000 ms: about 1 s earlier.
    expect(log.query({ last: 1, port: 80 })[0]!.time).toBe(new Date(1_000_000 - 1000 + 4e-6).toISOString());
    const text = renderFlows(log.query({ verdict: 'DROPPED' }));
    expect(text.split('\n')[1]).toMatch(
      /shop\/client:40009\s+shop\/server:81\s+drop:policy-denied\s+DROPPED\s+TCP \(policy-denied, ingress of endpoint 2\)/,
    );
  });

  it('rejects bad filters with typed errors', () => {
    expect(() => parseFlowFilter({ verdict: 'maybe' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => parseFlowFilter({ port: '70000' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => parseFlowFilter({ last: '0' })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(parseFlowFilter({ verdict: 'dropped', port: '81', last: '5' })).toEqual({
      verdict: 'DROPPED',
      port: 81,
      last: 5,
    });
    expect(() => new FlowLog(0)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
  });
});

describe('latency journal', () => {
  it('reads complete lines once, from where it stopped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dp-latency-'));
    try {
      expect(readLatencies(dir, 0)).toEqual({ samples: [], offset: 0 });
      recordLatency(dir, 'pod_setup', 0.0123);
      recordLatency(dir, 'policy_apply', 0.5);
      appendFileSync(latencyPath(dir), 'pod_setup 0.1'); // a line still being written
      const a = readLatencies(dir, 0);
      expect(a.samples).toEqual([
        { kind: 'pod_setup', seconds: 0.0123 },
        { kind: 'policy_apply', seconds: 0.5 },
      ]);
      appendFileSync(latencyPath(dir), '5\n');
      expect(readLatencies(dir, a.offset).samples).toEqual([{ kind: 'pod_setup', seconds: 0.15 }]);
      recordLatency(join(dir, 'gone'), 'pod_setup', 1); // never throws
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
