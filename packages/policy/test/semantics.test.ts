import { describe, expect, it } from 'vitest';
import {
  explain,
  formatExplanation,
  ipcacheLookup,
  keyString,
  LocalIdentityAllocator,
  PolicyEngine,
  PolicyError,
  policyLookup,
  ReservedIdentity,
  verdict,
} from '../src/index.js';
import { portRangePrefixes } from '../src/mapstate.js';

const ns = { x: {}, y: {} };
const pod = (n: string, name: string, ip: string, labels: Record<string, string> = { pod: name }) => ({
  namespace: n,
  name,
  ip,
  labels,
});

describe('port ranges become minimal aligned LPM prefixes', () => {
  it('expands ranges', () => {
    expect(portRangePrefixes(80, 80)).toEqual([{ port: 80, prefixLen: 24 }]);
    expect(portRangePrefixes(80, 81)).toEqual([{ port: 80, prefixLen: 23 }]);
    expect(portRangePrefixes(0, 0)).toEqual([{ port: 0, prefixLen: 8 }]);
    expect(portRangePrefixes(1, 65535)).toHaveLength(16);
    expect(portRangePrefixes(53, 80)).toEqual([
      { port: 53, prefixLen: 24 },
      { port: 54, prefixLen: 23 },
      { port: 56, prefixLen: 21 },
      { port: 64, prefixLen: 20 },
      { port: 80, prefixLen: 24 },
    ]);
  });
  it('covers exactly the range', () => {
    for (const [a, b] of [
      [1, 1000],
      [8000, 8100],
      [1023, 1025],
      [32768, 65535],
    ] as const) {
      const covered = new Set<number>();
      for (const p of portRangePrefixes(a, b))
        for (let i = 0; i < 2 ** (24 - p.prefixLen); i++) covered.add(p.port + i);
      expect(Math.min(...covered)).toBe(a);
      expect(Math.max(...covered)).toBe(b);
      expect(covered.size).toBe(b - a + 1);
    }
  });
});

describe('map state (deny.rst worked example, column 2)', () => {
  it('builds the documented entries and answers lookups like the datapath', () => {
    const engine = new PolicyEngine();
    engine.load({
      namespaces: ns,
      pods: [pod('x', 'a', '10.244.0.10'), pod('x', 'b', '10.244.0.11'), pod('x', 'c', '10.244.0.12')],
      policies: [
        {
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'm', namespace: 'x' },
          spec: {
            endpointSelector: { matchLabels: { pod: 'a' } },
            ingress: [
              { fromEndpoints: [{ matchLabels: { pod: 'b' } }] },
              {
                toPorts: [
                  {
                    ports: [
                      { port: '80', protocol: 'TCP' },
                      { port: '81', protocol: 'TCP' },
                    ],
                  },
                ],
              },
            ],
            ingressDeny: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
          },
        },
      ],
    });
    const s = engine.state();
    const a = s.endpoints.get('x/a')!;
    const B = s.endpoints.get('x/b')!.identity;
    const entries = [...a.policy.values()]
      .map((e) => `${keyString(e.key)} ${e.value.deny ? 'deny' : 'allow'}`)
      .sort();
    expect(entries).toEqual(
      [
        'egress 0 0/0/0 allow',
        'ingress 0 6/80/24 deny',
        'ingress 0 6/81/24 allow',
        'ingress 1 0/0/0 allow',
        `ingress ${B} 0/0/0 allow`,
      ].sort(),
    );
    expect(policyLookup(a.policy, 'ingress', B, 6, 80).decision).toBe('deny');
    expect(policyLookup(a.policy, 'ingress', B, 6, 81).entry?.key.port).toBe(81); // more specific L4 wins
    expect(policyLookup(a.policy, 'ingress', B, 17, 80).decision).toBe('allow');
    const C = s.endpoints.get('x/c')!.identity;
    expect(policyLookup(a.policy, 'ingress', C, 6, 80).decision).toBe('deny');
    expect(policyLookup(a.policy, 'ingress', C, 17, 80).decision).toBe('drop');
    // A tie on L4 specificity goes to the L3 (specific identity) entry.
    const tie = new Map([
      [
        'ingress 0 0/0/0',
        {
          key: { direction: 'ingress' as const, identity: 0, protocol: 0, port: 0, prefixLen: 0 },
          value: { deny: false, prefixLen: 0, proxyPort: 0, authType: 0 },
          origins: ['w'],
        },
      ],
      [
        'ingress 9 0/0/0',
        {
          key: { direction: 'ingress' as const, identity: 9, protocol: 0, port: 0, prefixLen: 0 },
          value: { deny: false, prefixLen: 0, proxyPort: 0, authType: 0 },
          origins: ['l3'],
        },
      ],
    ]);
    expect(policyLookup(tie, 'ingress', 9, 6, 80).entry?.origins).toEqual(['l3']);
  });

  it('prunes allows shadowed by a broader deny so the two-lookup datapath stays exact', () => {
    const engine = new PolicyEngine();
    engine.load({
      namespaces: ns,
      pods: [pod('x', 'a', '10.244.0.10'), pod('x', 'b', '10.244.0.11')],
      policies: [
        {
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'm', namespace: 'x' },
          spec: {
            endpointSelector: { matchLabels: { pod: 'a' } },
            ingress: [
              {
                fromEndpoints: [{ matchLabels: { pod: 'b' } }],
                toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
              },
            ],
            ingressDeny: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }],
          },
        },
      ],
    });
    const a = engine.state().endpoints.get('x/a')!;
    const B = engine.state().endpoints.get('x/b')!.identity;
    expect([...a.policy.keys()]).not.toContain(`ingress ${B} 6/80/24`);
    expect(verdict(engine.state(), { from: 'x/b', to: 'x/a', port: 80 }).verdict).toBe('deny');
  });
});

describe('identities', () => {
  it('numbers reserved identities as Cilium does and pods from 256, shared by label set', () => {
    expect(ReservedIdentity).toMatchObject({
      Host: 1,
      World: 2,
      Unmanaged: 3,
      Health: 4,
      Init: 5,
      RemoteNode: 6,
      KubeApiserver: 7,
      Ingress: 8,
    });
    const engine = new PolicyEngine();
    engine.load({
      namespaces: ns,
      pods: [
        pod('x', 'a1', '10.244.0.1', { app: 'a' }),
        pod('x', 'a2', '10.244.0.2', { app: 'a' }),
        pod('y', 'a3', '10.244.0.3', { app: 'a' }),
      ],
    });
    const e = engine.state().endpoints;
    expect(e.get('x/a1')!.identity).toBe(e.get('x/a2')!.identity);
    expect(e.get('y/a3')!.identity).not.toBe(e.get('x/a1')!.identity);
    expect(Math.min(...[...e.values()].map((x) => x.identity))).toBe(256);
    expect(engine.state().identities.get(e.get('x/a1')!.identity)!.labels).toContain(
      'k8s:io.kubernetes.pod.namespace=x',
    );
  });

  it('keeps numbers stable across recompiles and releases unused ones', () => {
    const allocator = new LocalIdentityAllocator();
    const engine = new PolicyEngine({ allocator });
    engine.load({ namespaces: ns, pods: [pod('x', 'a', '10.244.0.1'), pod('x', 'b', '10.244.0.2')] });
    const before = engine.state().endpoints.get('x/b')!.identity;
    expect(engine.rebuild()).toEqual([]);
    expect(engine.state().endpoints.get('x/b')!.identity).toBe(before);
    expect(allocator.size).toBe(2);
    const changes = engine.deletePod('x', 'a');
    expect(allocator.size).toBe(1);
    expect(changes).toContainEqual({ map: 'ipcache', op: 'delete', prefix: '10.244.0.1/32' });
  });

  it('gives CIDR prefixes node-local identities (bit 24) and resolves addresses by longest prefix', () => {
    const engine = new PolicyEngine({ hostIPs: ['192.168.0.5'] });
    engine.load({
      namespaces: ns,
      pods: [pod('x', 'a', '10.244.0.1')],
      policies: [
        {
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'c', namespace: 'x' },
          spec: {
            endpointSelector: {},
            egress: [{ toCIDRSet: [{ cidr: '8.8.0.0/16', except: ['8.8.8.0/24'] }] }],
          },
        },
      ],
    });
    const s = engine.state();
    const wide = ipcacheLookup(s, '8.8.4.4');
    const narrow = ipcacheLookup(s, '8.8.8.8');
    expect(wide.prefix).toBe('8.8.0.0/16');
    expect(narrow.prefix).toBe('8.8.8.0/24');
    expect(wide.identity).toBeGreaterThanOrEqual(1 << 24);
    expect(narrow.identity).not.toBe(wide.identity);
    expect(ipcacheLookup(s, '1.1.1.1').identity).toBe(2);
    expect(ipcacheLookup(s, '192.168.0.5').identity).toBe(1);
    expect(ipcacheLookup(s, '10.244.0.1').identity).toBe(s.endpoints.get('x/a')!.identity);
  });

  it('splits pod identities only where a KNP ipBlock cuts through pods with equal labels', () => {
    const engine = new PolicyEngine();
    engine.load({
      namespaces: ns,
      pods: [
        pod('x', 'a1', '10.244.0.1', { app: 'a' }),
        pod('x', 'a2', '10.244.1.1', { app: 'a' }),
        pod('x', 'c', '10.244.2.1', { app: 'c' }),
      ],
    });
    const e = engine.state().endpoints;
    const shared = e.get('x/a1')!.identity;
    expect(e.get('x/a2')!.identity).toBe(shared);
    const changes = engine.upsertPolicy({
      kind: 'NetworkPolicy',
      metadata: { name: 'ipb', namespace: 'x' },
      spec: {
        podSelector: { matchLabels: { app: 'c' } },
        ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/24' } }] }],
      },
    });
    expect(e.get('x/a1')!.identity).not.toBe(e.get('x/a2')!.identity);
    expect(changes.some((c) => c.map === 'ipcache')).toBe(true);
    expect(verdict(engine.state(), { from: 'x/a1', to: 'x/c', port: 80 }).verdict).toBe('allow');
    expect(verdict(engine.state(), { from: 'x/a2', to: 'x/c', port: 80 }).verdict).toBe('deny');
  });

  it('LocalIdentityAllocator refcounts, rejects unknown releases and reports exhaustion', () => {
    const a = new LocalIdentityAllocator();
    const id = a.allocate(['k8s:a=b'], 'cluster');
    expect(a.allocate(['k8s:a=b'], 'cluster')).toBe(id);
    a.release(id);
    expect(a.size).toBe(1);
    a.release(id);
    expect(a.size).toBe(0);
    expect(() => a.release(id)).toThrow(expect.objectContaining({ code: 'NotFound' }));
    for (let i = 256; i <= 65535; i++) a.allocate([`k8s:n=${i}`], 'cluster');
    expect(() => a.allocate(['k8s:n=full'], 'cluster')).toThrow(
      expect.objectContaining({ code: 'Exhausted' }),
    );
  });
});

describe('bad input leaves nothing behind', () => {
  it('rejects a bad load atomically', () => {
    const engine = new PolicyEngine();
    engine.load({ namespaces: ns, pods: [pod('x', 'a', '10.244.0.1')] });
    const snapshot = JSON.stringify([...engine.state().ipcache]);
    expect(() =>
      engine.load({
        pods: [pod('x', 'b', '10.244.0.2')],
        policies: [
          {
            kind: 'NetworkPolicy',
            metadata: { name: 'p' },
            spec: { podSelector: {}, ingress: [{ ports: [{ port: 9, endPort: 1 }] }] },
          },
        ],
      }),
    ).toThrow(PolicyError);
    expect(() => engine.load({ pods: [pod('nope', 'b', '10.244.0.2')] })).toThrow(
      /namespace nope does not exist/,
    );
    expect(() => engine.load({ pods: [pod('x', 'b', '10.244.0.1')] })).toThrow(/used twice/);
    expect(engine.state().endpoints.size).toBe(1);
    expect(JSON.stringify([...engine.state().ipcache])).toBe(snapshot);
  });

  it('rejects bad mutations with typed errors and no change', () => {
    const engine = new PolicyEngine();
    engine.load({ namespaces: ns, pods: [pod('x', 'a', '10.244.0.1'), pod('x', 'b', '10.244.0.2')] });
    expect(() => engine.upsertPod(pod('x', 'c', 'not-an-ip'))).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(() => engine.upsertPod(pod('x', 'c', '10.244.0.1'))).toThrow(/used by x\/a/);
    expect(() => engine.deletePolicy('NetworkPolicy', 'x', 'nope')).toThrow(
      expect.objectContaining({ code: 'NotFound' }),
    );
    expect(() =>
      engine.upsertPolicy({ kind: 'NetworkPolicy', metadata: { name: 'p' }, spec: {} } as never),
    ).toThrow(expect.objectContaining({ code: 'InvalidArgument', reason: 'InvalidPolicy' }));
    expect(() => engine.deleteNamespace('x')).toThrow(/still has pods/);
    expect(() => verdict(engine.state(), { from: 'x/zz', to: 'x/a', port: 80 })).toThrow(
      expect.objectContaining({ code: 'NotFound' }),
    );
    expect(() => verdict(engine.state(), { from: 'x/a', to: 'x/b', port: 0 })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(engine.rebuild()).toEqual([]);
    expect(engine.state().endpoints.size).toBe(2);
  });
});

describe('enforcement mode changes', () => {
  it('recompiles every endpoint and returns exactly the differences', () => {
    const engine = new PolicyEngine();
    engine.load({ namespaces: ns, pods: [pod('x', 'a', '10.244.0.10'), pod('x', 'b', '10.244.0.11')] });
    expect(verdict(engine.state(), { from: 'x/b', to: 'x/a', port: 80 }).verdict).toBe('allow');
    const changes = engine.setEnforcement('always');
    // Per endpoint: both allow-all entries go, the host ingress entry comes.
    expect(changes.filter((c) => c.op === 'delete')).toHaveLength(4);
    expect(
      changes.filter((c) => c.op === 'update').map((c) => c.map === 'policy' && keyString(c.key)),
    ).toEqual(['ingress 1 0/0/0', 'ingress 1 0/0/0']);
    expect(verdict(engine.state(), { from: 'x/b', to: 'x/a', port: 80 }).verdict).toBe('deny');
    expect(verdict(engine.state(), { from: 'host', to: 'x/a', port: 80 }).verdict).toBe('allow');
    expect(engine.setEnforcement('always')).toEqual([]);
    engine.setEnforcement('never');
    expect(verdict(engine.state(), { from: 'x/b', to: 'x/a', port: 80 }).verdict).toBe('allow');
  });
});

describe('explain', () => {
  it('names the rules, their peer and port matches, and the deciding map entry', () => {
    const engine = new PolicyEngine();
    engine.load({
      namespaces: ns,
      pods: [pod('x', 'a', '10.244.0.10'), pod('x', 'b', '10.244.0.11')],
      policies: [
        {
          kind: 'NetworkPolicy',
          metadata: { name: 'web', namespace: 'x' },
          spec: { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 80 }] }] },
        },
      ],
    });
    const e = explain(engine, { from: 'x/b', to: 'x/a', port: 81 });
    expect(e.verdict).toBe('deny');
    const ingress = e.directions.find((d) => d.direction === 'ingress')!;
    expect(ingress.rules).toEqual([
      { origin: 'NetworkPolicy x/web ingress[0]', deny: false, peerMatch: true, portMatch: false },
    ]);
    expect(ingress.decision).toBe('drop');
    expect(ingress.selectedBy).toEqual(['NetworkPolicy x/web']);
    const text = formatExplanation(explain(engine, { from: 'x/b', to: 'x/a', port: 80 }));
    expect(text).toContain('Selected by NetworkPolicy x/web');
    expect(text).toContain('NetworkPolicy x/web ingress[0]: Allows — peer matched, port matched');
    expect(text).toContain(
      'Map entry: ingress identity 0 proto 6 port 80/24 → allow (from NetworkPolicy x/web ingress[0])',
    );
    expect(text).toMatch(/Final verdict: ALLOWED$/);
  });
});
