// fast-check arbitraries for random clusters and policies, shared by the property tests and the benchmark.
import fc from 'fast-check';
import type { PolicyObject } from '../src/index.js';
import type { OracleCluster, OraclePod } from './oracle.js';

const APPS = ['a', 'b', 'c'] as const;
const NAMESPACES = ['x', 'y', 'z'] as const;

/** Named ports are a function of the `app` label, so every pod of one identity has the same ones. */
export function portsFor(app: string): OraclePod['ports'] {
  if (app === 'a')
    return [
      { port: 80, protocol: 'TCP', name: 'http' },
      { port: 53, protocol: 'UDP', name: 'dns' },
    ];
  if (app === 'b') return [{ port: 8080, protocol: 'TCP', name: 'http' }];
  return [{ port: 81, protocol: 'SCTP', name: 'dns' }];
}

const podLabels = fc.record(
  { app: fc.constantFrom(...APPS), tier: fc.constantFrom('fe', 'be') },
  { requiredKeys: ['app'] },
);

const expr = fc.record({
  key: fc.constantFrom('app', 'tier'),
  operator: fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist'),
  values: fc.subarray(['a', 'b', 'fe'], { minLength: 1 }),
});

const fixExpr = (e: { key: string; operator: string; values: string[] }) =>
  e.operator === 'Exists' || e.operator === 'DoesNotExist' ? { key: e.key, operator: e.operator } : e;

export const podSelector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: fc.record({ app: fc.constantFrom(...APPS) }) }),
  fc.record({ matchLabels: fc.record({ tier: fc.constantFrom('fe', 'be') }) }),
  fc.record({ matchExpressions: fc.array(expr, { minLength: 1, maxLength: 2 }).map((l) => l.map(fixExpr)) }),
);

const nsSelector = fc.oneof(
  fc.constant({}),
  fc.record({ matchLabels: fc.record({ 'kubernetes.io/metadata.name': fc.constantFrom(...NAMESPACES) }) }),
  fc.record({ matchLabels: fc.record({ team: fc.constantFrom('red', 'blue') }) }),
  fc.record({ matchExpressions: fc.constant([{ key: 'team', operator: 'NotIn', values: ['red'] }]) }),
);

const CIDRS: [string, string[]][] = [
  ['10.244.0.0/16', ['10.244.1.0/24', '10.244.0.10/32']],
  ['10.244.1.0/24', ['10.244.1.11/32']],
  ['10.244.0.10/32', []],
  ['0.0.0.0/0', ['10.0.0.0/8']],
  ['8.8.8.0/24', ['8.8.8.8/32']],
  ['10.0.0.0/8', ['10.244.2.0/24']],
];
const cidrBlock = fc
  .constantFrom(...CIDRS)
  .chain(([cidr, ex]) => fc.record({ cidr: fc.constant(cidr), except: fc.subarray(ex) }))
  .map((b) => (b.except.length === 0 ? { cidr: b.cidr } : b));

const knpPeer = fc.oneof(
  fc.record({ podSelector }),
  fc.record({ namespaceSelector: nsSelector }),
  fc.record({ podSelector, namespaceSelector: nsSelector }),
  fc.record({ ipBlock: cidrBlock }),
);

const knpPort = fc.oneof(
  fc.record(
    { protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'), port: fc.constantFrom(80, 53, 8080, 'http', 'dns') },
    { requiredKeys: ['port'] },
  ),
  fc.record({ protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') }),
  fc.record({ port: fc.constantFrom(53, 79, 80), endPort: fc.constantFrom(81, 100, 8080) }),
);

const knpRule = (peerKey: 'from' | 'to') =>
  fc.record(
    { [peerKey]: fc.array(knpPeer, { maxLength: 2 }), ports: fc.array(knpPort, { maxLength: 2 }) },
    { requiredKeys: [] },
  );

const knp = (name: string) =>
  fc
    .record(
      {
        ns: fc.constantFrom(...NAMESPACES),
        podSelector,
        policyTypes: fc.constantFrom(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
        ingress: fc.option(fc.array(knpRule('from'), { maxLength: 2 }), { nil: undefined }),
        egress: fc.option(fc.array(knpRule('to'), { maxLength: 2 }), { nil: undefined }),
      },
      { requiredKeys: ['ns', 'podSelector'] },
    )
    .map((r) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: r.ns },
      spec: {
        podSelector: r.podSelector,
        ...(r.policyTypes ? { policyTypes: r.policyTypes } : {}),
        ...(r.ingress ? { ingress: r.ingress } : {}),
        ...(r.egress ? { egress: r.egress } : {}),
      },
    }));

const cnpSelector = fc.oneof(
  podSelector,
  fc.record({
    matchLabels: fc.record({ 'k8s:io.kubernetes.pod.namespace': fc.constantFrom(...NAMESPACES) }),
  }),
  fc.record({
    matchLabels: fc.record({
      'k8s:io.kubernetes.pod.namespace': fc.constantFrom(...NAMESPACES),
      app: fc.constantFrom(...APPS),
    }),
  }),
  fc.record({
    matchLabels: fc.record({ 'io.cilium.k8s.namespace.labels.team': fc.constantFrom('red', 'blue') }),
  }),
  fc.constant({ matchLabels: { 'reserved:host': '' } }),
);

const cnpPort = fc.oneof(
  fc.record(
    {
      port: fc.constantFrom('80', '53', '8080', '0', 'http', 'dns'),
      protocol: fc.constantFrom('TCP', 'UDP', 'SCTP', 'ANY'),
    },
    { requiredKeys: ['port'] },
  ),
  fc.record(
    {
      port: fc.constantFrom('53', '80'),
      endPort: fc.constantFrom(81, 8080),
      protocol: fc.constantFrom('TCP', 'UDP'),
    },
    { requiredKeys: ['port', 'endPort'] },
  ),
);

const cnpItem = (dir: 'from' | 'to') =>
  fc
    .record(
      {
        endpoints: fc.array(cnpSelector, { minLength: 1, maxLength: 2 }),
        entities: fc.subarray(['world', 'host', 'cluster', 'all', 'remote-node'], {
          minLength: 1,
          maxLength: 2,
        }),
        cidr: fc.subarray(['8.8.8.0/24', '10.0.0.0/8', '10.244.0.0/16', '0.0.0.0/0'], {
          minLength: 1,
          maxLength: 2,
        }),
        cidrSet: fc.array(cidrBlock, { minLength: 1, maxLength: 1 }),
        toPorts: fc.array(fc.record({ ports: fc.array(cnpPort, { minLength: 1, maxLength: 2 }) }), {
          minLength: 1,
          maxLength: 1,
        }),
      },
      { requiredKeys: [] },
    )
    .map((r) => ({
      ...(r.endpoints ? { [`${dir}Endpoints`]: r.endpoints } : {}),
      ...(r.entities ? { [`${dir}Entities`]: r.entities } : {}),
      ...(r.cidr ? { [`${dir}CIDR`]: r.cidr } : {}),
      ...(r.cidrSet ? { [`${dir}CIDRSet`]: r.cidrSet } : {}),
      ...(r.toPorts ? { toPorts: r.toPorts } : {}),
    }));

const cnpRule = fc.record(
  {
    endpointSelector: podSelector,
    ingress: fc.array(cnpItem('from'), { maxLength: 2 }),
    ingressDeny: fc.array(cnpItem('from'), { maxLength: 1 }),
    egress: fc.array(cnpItem('to'), { maxLength: 2 }),
    egressDeny: fc.array(cnpItem('to'), { maxLength: 1 }),
    enableDefaultDeny: fc.record({ ingress: fc.boolean(), egress: fc.boolean() }, { requiredKeys: [] }),
  },
  { requiredKeys: ['endpointSelector'] },
);

const cnp = (name: string) =>
  fc.record({ ns: fc.constantFrom(...NAMESPACES), clusterwide: fc.boolean(), spec: cnpRule }).map((r) =>
    r.clusterwide
      ? {
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumClusterwideNetworkPolicy',
          metadata: { name },
          spec: r.spec,
        }
      : {
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumNetworkPolicy',
          metadata: { name, namespace: r.ns },
          spec: r.spec,
        },
  );

/** A random policy object (KNP, CNP or CCNP) named `name`. */
export const policy = (name: string) => fc.oneof(knp(name), cnp(name));

export interface GenCluster extends Omit<OracleCluster, 'policies'> {
  /** Generated policy objects (valid by construction; the engine validates them again). */
  policies: PolicyObject[];
}

/** A random small cluster: 2–3 namespaces, 1–3 pods each, 0–4 policies, a random enforcement mode. */
export const cluster: fc.Arbitrary<GenCluster> = fc
  .record({
    nsCount: fc.integer({ min: 2, max: 3 }),
    teams: fc.array(fc.constantFrom('red', 'blue'), { minLength: 3, maxLength: 3 }),
    pods: fc.array(fc.array(podLabels, { minLength: 1, maxLength: 3 }), { minLength: 3, maxLength: 3 }),
    policies: fc
      .array(fc.integer({ min: 0, max: 1 << 30 }), { maxLength: 4 })
      .chain((ids) => fc.tuple(...ids.map((_, i) => policy(`p${i}`)))),
    enforcement: fc.constantFrom('default', 'default', 'always', 'never'),
  })
  .map((r) => {
    const namespaces: Record<string, Record<string, string>> = {};
    const pods: OraclePod[] = [];
    for (let n = 0; n < r.nsCount; n++) {
      const ns = NAMESPACES[n]!;
      namespaces[ns] = { team: r.teams[n]! };
      r.pods[n]!.forEach((labels, i) => {
        pods.push({
          ns,
          name: `p${i}`,
          labels: { ...labels },
          ip: `10.244.${n}.${10 + i}`,
          ports: portsFor(labels.app),
        });
      });
    }
    const known = new Set(Object.keys(namespaces));
    const policies = (r.policies as PolicyObject[]).filter(
      (p) => p.metadata.namespace === undefined || known.has(p.metadata.namespace),
    );
    return { namespaces, pods, policies, enforcement: r.enforcement as OracleCluster['enforcement'] };
  });

export const WORLD = [
  'world:8.8.8.8',
  'world:8.8.8.9',
  'world:10.1.2.3',
  'world:10.244.2.5',
  'world:192.168.1.1',
];
export const PORTS: { port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }[] = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 8080, protocol: 'TCP' },
  { port: 53, protocol: 'UDP' },
  { port: 80, protocol: 'UDP' },
  { port: 81, protocol: 'SCTP' },
];

/** Every (from, to, port) combination among pods, host and a few world addresses (world → world excluded). */
export function allProbes(c: { pods: OraclePod[] }) {
  const pods = c.pods.map((p) => `${p.ns}/${p.name}`);
  const ends = [...pods, 'host', ...WORLD];
  const out: { from: string; to: string; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }[] = [];
  for (const from of ends)
    for (const to of ends) {
      if (!from.includes('/') && !to.includes('/')) continue;
      for (const p of PORTS) out.push({ from, to, ...p });
    }
  return out;
}
