import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import {
  classify,
  declareBackendPorts,
  type Place,
  type ProbeSpec,
  planListeners,
  planProbes,
  probeResult,
  serviceVerdict,
} from '../src/probes.js';
import { scenarioPodCidr } from '../src/run.js';
import type { ServiceProbePlan } from '../src/services.js';

const places: Record<string, Place> = {
  'x/a': { kind: 'pod', key: 'x/a', ip: '10.244.1.10', netnsPath: '/run/netns/p-x-a' },
  'x/b': { kind: 'pod', key: 'x/b', ip: '10.244.1.11', netnsPath: '/run/netns/p-x-b' },
  host: { kind: 'host', ip: '10.244.1.1', netnsPath: '/run/netns/p-node' },
  'world:10.244.200.1': { kind: 'world', ip: '10.244.200.1', netnsPath: '/run/netns/p-world' },
  'world:10.244.200.2': { kind: 'world', ip: '10.244.200.2', netnsPath: '/run/netns/p-world' },
};
const resolve = (e: string) => {
  const p = places[e];
  if (!p) throw new Error(`unknown ${e}`);
  return p;
};

const probes: ProbeSpec[] = [
  { from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP' },
  { from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP' },
  { from: 'x/a', to: 'x/b', port: 53, protocol: 'UDP' },
  { from: 'x/a', to: 'x/b', port: 9, protocol: 'SCTP' },
  { from: 'world:10.244.200.1', to: 'x/a', port: 8080, protocol: 'TCP' },
  { from: 'x/b', to: 'world:10.244.200.2', port: 443, protocol: 'TCP' },
  { from: 'host', to: 'x/a', port: 8080, protocol: 'TCP' },
];

describe('planListeners', () => {
  it('starts one listener per destination namespace with every probed and declared port, SCTP left out', () => {
    const plans = planListeners(probes, resolve, new Map([['x/a', [{ port: 22, protocol: 'TCP' }]]]));
    const byNs = Object.fromEntries(plans.map((p) => [p.netnsPath, p]));
    expect(Object.keys(byNs).sort()).toEqual(['/run/netns/p-world', '/run/netns/p-x-a', '/run/netns/p-x-b']);
    expect(byNs['/run/netns/p-x-b']!.ports).toEqual([
      { port: 80, protocol: 'TCP' },
      { port: 53, protocol: 'UDP' },
    ]);
    expect(byNs['/run/netns/p-x-a']!.ports.map((p) => p.port).sort()).toEqual([22, 8080]);
    expect(byNs['/run/netns/p-world']!.label).toBe('world');
  });
});

describe('planProbes', () => {
  it('groups probes by source namespace, binds world sources to their address, skips SCTP', () => {
    const plan = planProbes(probes, resolve, 700);
    expect(plan.get('/run/netns/p-x-a')!.map((r) => r.id)).toEqual([0, 1, 2]);
    expect(plan.get('/run/netns/p-world')).toEqual([
      {
        id: 4,
        host: '10.244.1.10',
        port: 8080,
        protocol: 'TCP',
        timeoutMs: 700,
        localAddress: '10.244.200.1',
      },
    ]);
    expect(plan.get('/run/netns/p-node')![0]!.localAddress).toBeUndefined();
    expect([...plan.values()].flat().some((r) => r.id === 3)).toBe(false);
  });

  it('plans only the probes asked for (the retry round)', () => {
    const plan = planProbes(probes, resolve, 700, new Set([2, 6]));
    expect([...plan.values()].flat().map((r) => r.id)).toEqual([2, 6]);
  });

  it('refuses a probe that never leaves its namespace', () => {
    expect(() =>
      planProbes([{ from: 'x/a', to: 'x/a', port: 1, protocol: 'TCP' }], resolve, 100),
    ).toThrowError(AgentError);
  });
});

describe('classify', () => {
  it('maps what the packets did to a verdict', () => {
    expect(classify({ id: 0, result: 'connected', reply: 'x/b', ms: 1 }, 'x/b')).toEqual({
      measured: 'allow',
      detail: 'connected',
    });
    expect(classify({ id: 0, result: 'connected', reply: 'x/c', ms: 1 }, 'x/b').detail).toMatch(
      /answered by x\/c/,
    );
    expect(classify({ id: 0, result: 'refused', ms: 1 }, 'x/b').measured).toBe('allow');
    expect(classify({ id: 0, result: 'timeout', ms: 1 }, 'x/b').measured).toBe('deny');
    expect(classify({ id: 0, result: 'error', message: 'EHOSTUNREACH', ms: 1 }, 'x/b').measured).toBe('deny');
  });
});

describe('service probes and results (shared by runScenario and runClusterProbes)', () => {
  const plan: ServiceProbePlan = {
    host: '10.96.0.10',
    port: 80,
    protocol: 'TCP',
    backends: [
      { pod: 'x/a', port: 8080 },
      { pod: 'x/b', port: 8081 },
    ],
  };
  const onlyA = (b: { pod: string }) => (b.pod === 'x/a' ? 'allow' : 'deny');

  it('serviceVerdict: the answering backend decides, else every live backend must allow', () => {
    expect(serviceVerdict(plan, 'x/a', onlyA)).toBe('allow');
    expect(serviceVerdict(plan, 'x/b', onlyA)).toBe('deny');
    expect(serviceVerdict(plan, undefined, onlyA)).toBe('deny');
    expect(serviceVerdict(plan, 'x/zz', () => 'allow')).toBe('allow');
    expect(serviceVerdict({ ...plan, backends: [] }, undefined, () => 'allow')).toBe('deny');
  });

  it('declareBackendPorts: each backend pod listens on its target port too', () => {
    const declared = new Map([
      ['x/a', [{ port: 22, protocol: 'TCP' }]],
      ['x/b', []],
    ]);
    const svcProbes: ProbeSpec[] = [{ from: 'x/c', to: 'svc/x/web', port: 80, protocol: 'UDP' }];
    declareBackendPorts(declared, new Map([[0, plan]]), svcProbes);
    expect(Object.fromEntries(declared)).toEqual({
      'x/a': [
        { port: 22, protocol: 'TCP' },
        { port: 8080, protocol: 'UDP' },
      ],
      'x/b': [{ port: 8081, protocol: 'UDP' }],
    });
  });

  it('probeResult: measured against compiled and expected, for pods and services', () => {
    const p: ProbeSpec = { from: 'x/c', to: 'x/b', port: 80, protocol: 'TCP', expect: 'allow' };
    const ok = probeResult(
      p,
      { id: 0, result: 'connected', reply: 'x/b', ms: 1 },
      undefined,
      () => 'allow',
      'x/b',
    );
    expect(ok).toMatchObject({
      measured: 'allow',
      compiled: 'allow',
      detail: 'connected',
      ms: 1,
      mismatch: false,
    });
    const wrongReply = probeResult(
      p,
      { id: 0, result: 'connected', reply: 'x/a', ms: 1 },
      undefined,
      () => 'allow',
      'x/b',
    );
    expect(wrongReply.mismatch).toBe(true);
    const dropped = probeResult(p, { id: 0, result: 'timeout', ms: 9 }, undefined, () => 'deny', 'x/b');
    expect(dropped).toMatchObject({ measured: 'deny', compiled: 'deny', mismatch: true }); // expected allow
    const skipped = probeResult({ ...p, protocol: 'SCTP' }, undefined, undefined, () => 'deny', 'x/b');
    expect(skipped).toMatchObject({ measured: 'skipped', ms: 0, mismatch: false });
    const svcP: ProbeSpec = { from: 'x/c', to: 'svc/x/web', port: 80, protocol: 'TCP' };
    const seen: (string | undefined)[] = [];
    const compiled = (backend?: string) => {
      seen.push(backend);
      return backend === 'x/a' ? 'allow' : 'deny';
    };
    const viaA = probeResult(
      svcP,
      { id: 0, result: 'connected', reply: 'x/a', ms: 2 },
      plan,
      compiled,
      'unused',
    );
    expect(viaA).toMatchObject({ measured: 'allow', compiled: 'allow', mismatch: false });
    expect(seen).toEqual(['x/a']);
    const notSent = probeResult(svcP, undefined, plan, compiled, 'svc/x/web');
    expect(notSent).toMatchObject({ measured: 'skipped', compiled: 'deny' });
  });
});

describe('scenarioPodCidr', () => {
  it('covers every scenario pod address with the smallest /16–/24 inside 10.244.0.0/16', () => {
    expect(scenarioPodCidr(['10.244.1.10', '10.244.1.200'])).toBe('10.244.1.0/24');
    expect(scenarioPodCidr(['10.244.1.10', '10.244.2.11', '10.244.3.12'])).toBe('10.244.0.0/22');
    expect(scenarioPodCidr(['10.244.1.10', '10.244.200.1'])).toBe('10.244.0.0/16');
    expect(scenarioPodCidr([])).toBeUndefined();
    expect(scenarioPodCidr(['10.244.1.10', '192.168.1.1'])).toBeUndefined();
    expect(scenarioPodCidr(['10.244.1.300'])).toBeUndefined();
  });
});
