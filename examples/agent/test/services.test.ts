// Scenario services, pure: validation with typed errors, selectors to backends, the lb inputs.
import { validateScenario } from '@datapath/policy';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import {
  type BackendPod,
  lbInputs,
  parseServices,
  planServiceProbe,
  validateServiceScenario,
} from '../src/services.js';

const ns = { shop: {}, other: {} };
const web = (extra = {}) => ({
  namespace: 'shop',
  name: 'web',
  clusterIP: '10.96.0.10',
  selector: { app: 'web' },
  ports: [{ port: 80, targetPort: 'http' }],
  ...extra,
});
const pods: BackendPod[] = [
  {
    key: 'shop/b',
    namespace: 'shop',
    labels: { app: 'web' },
    ip: '10.244.1.2',
    ports: [{ port: 8080, name: 'http' }],
  },
  {
    key: 'shop/a',
    namespace: 'shop',
    labels: { app: 'web' },
    ip: '10.244.1.1',
    ports: [{ port: 8080, name: 'http' }],
  },
  { key: 'shop/c', namespace: 'shop', labels: { app: 'db' }, ip: '10.244.1.3' },
  { key: 'other/d', namespace: 'other', labels: { app: 'web' }, ip: '10.244.1.4', node: 'n2' },
];

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).reason).toBe('InvalidScenario');
    expect((err as AgentError).code).toBe('InvalidArgument');
    return (err as Error).message;
  }
  throw new Error('no error');
}

describe('scenario services', () => {
  it('explicit backends (no selector): canonical addresses, the given port or the numeric target port; duplicates and bad addresses refused; no namespace check for the API', () => {
    const [s] = parseServices(
      [
        web({
          namespace: 'elsewhere',
          selector: undefined,
          ports: [{ port: 80, targetPort: 8080 }],
          backends: [{ address: 'fd00::0001', port: 9090 }, { address: '10.244.9.9' }],
        }),
      ],
      undefined,
    );
    expect(s!.backends).toEqual([{ address: 'fd00::1', port: 9090 }, { address: '10.244.9.9' }]);
    expect(lbInputs(s!, pods, new Set(), undefined)[0]!.backends).toEqual([
      { address: '10.244.9.9', port: 8080, state: 'active' },
    ]);
    expect(
      problem(() =>
        parseServices([web({ backends: [{ address: '10.244.9.9' }, { address: '10.244.9.9' }] })], ns),
      ),
    ).toMatch(/given twice/);
    expect(problem(() => parseServices([web({ backends: [{ address: 'nope' }] })], ns))).toMatch(
      /not an IP address/,
    );
    expect(problem(() => parseServices([web({ namespace: 'elsewhere' })], ns))).toMatch(/not declared/);
  });

  it('selectors pick pods of the service namespace; named target ports resolve per pod; terminating is kept', () => {
    const [s] = parseServices([web()], ns);
    const [tcp] = lbInputs(s!, pods, new Set(['shop/b']), undefined);
    expect(tcp).toEqual({
      name: 'shop/web:80/TCP',
      protocol: 'TCP',
      frontends: [{ kind: 'ClusterIP', address: '10.96.0.10', port: 80 }],
      backends: [
        { address: '10.244.1.1', port: 8080, state: 'active' },
        { address: '10.244.1.2', port: 8080, state: 'terminating' },
      ],
    });
  });

  it('NodePort, external IPs, dual stack and affinity become frontends and flags', () => {
    const [s] = parseServices(
      [
        web({
          type: 'NodePort',
          clusterIP: undefined,
          clusterIPs: ['10.96.0.10', 'fd00:96::a'],
          externalIPs: ['198.18.5.5'],
          ports: [{ port: 80, targetPort: 8080, protocol: 'UDP', nodePort: 30080 }],
          sessionAffinity: 'ClientIP',
          sessionAffinityTimeoutSeconds: 60,
        }),
      ],
      ns,
    );
    const inputs = lbInputs(s!, pods, new Set(), '198.18.0.1');
    expect(
      inputs.map((i) => [i.name, i.frontends.map((f) => `${f.kind} ${f.address}:${f.port}`), i.affinity]),
    ).toEqual([
      [
        'shop/web:80/UDP',
        ['ClusterIP 10.96.0.10:80', 'ExternalIP 198.18.5.5:80', 'NodePort 198.18.0.1:30080'],
        { timeoutSeconds: 60 },
      ],
      // IPv6 frontend: the agent's pods are IPv4, so no backend.
      ['shop/web:80/UDP/v6', ['ClusterIP fd00:96::a:80'], { timeoutSeconds: 60 }],
    ]);
    expect(inputs[1]!.backends).toEqual([]);
  });

  it('bad input is refused with every problem named', () => {
    expect(problem(() => parseServices([web({ ports: [{ port: 0 }] })], ns))).toMatch(
      /services\[0\]\.ports\.0\.port/,
    );
    expect(problem(() => parseServices([web({ ports: [{ port: 80, protocol: 'SCTP' }] })], ns))).toMatch(
      /ports\.0\.protocol/,
    );
    expect(problem(() => parseServices([web({ namespace: 'nope' })], ns))).toMatch(
      /namespace nope is not declared/,
    );
    expect(problem(() => parseServices([web(), web()], ns))).toMatch(/declared twice/);
    expect(problem(() => parseServices([web({ clusterIP: '10.96.0.300' })], ns))).toMatch(
      /not an IP address/,
    );
    // Two services on one frontend: the lb planner's DuplicateFrontend.
    expect(problem(() => parseServices([web(), web({ name: 'web2' })], ns))).toMatch(
      /10\.96\.0\.10:80\/TCP belongs to shop\/web:80\/TCP.*\[DuplicateFrontend\]/s,
    );
    expect(problem(() => parseServices([web({ ports: [{ port: 80, nodePort: 30000 }] })], ns))).toMatch(
      /only for type NodePort/,
    );
  });

  it('a selector matching no pod is valid: zero backends', () => {
    const [s] = parseServices([web({ selector: { app: 'nothing' } })], ns);
    expect(lbInputs(s!, pods, new Set(), undefined)[0]!.backends).toEqual([]);
    expect(planServiceProbe([s!], 'svc/shop/web', 80, 'TCP', pods, new Set()).backends).toEqual([]);
  });

  it('service probes in a scenario keep their order; unknown services and ports are refused', () => {
    const doc = {
      namespaces: { shop: {} },
      pods: [
        { namespace: 'shop', name: 'a', ip: '10.244.1.1' },
        { namespace: 'shop', name: 'b', ip: '10.244.1.2' },
      ],
      services: [web()],
      probes: [
        { from: 'shop/a', to: 'shop/b', port: 80 },
        { from: 'shop/a', to: 'svc/shop/web:80' },
        { from: 'host', to: 'svc/shop/web', port: 80, expect: 'allow' },
      ],
    };
    const s = validateServiceScenario(doc, validateScenario);
    expect(s.probes.map((p) => [p.to, p.port])).toEqual([
      ['shop/b', 80],
      ['svc/shop/web', 80],
      ['svc/shop/web', 80],
    ]);
    expect(s.services).toHaveLength(1);
    const bad = (probe: object) =>
      problem(() => validateServiceScenario({ ...doc, probes: [probe] }, validateScenario));
    expect(bad({ from: 'shop/a', to: 'svc/shop/nope:80' })).toMatch(/unknown service/);
    expect(bad({ from: 'shop/a', to: 'svc/shop/web:81' })).toMatch(/has no port 81/);
    expect(bad({ from: 'world:198.18.7.7', to: 'svc/shop/web:80' })).toMatch(/needs a nodePort/);
  });
});
