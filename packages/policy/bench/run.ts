// Benchmark of @datapath/policy on a synthetic cluster: 100 namespaces × 50 pods, 1 000 policies (KNP and CNP,
// selectors, namespace selectors, ports, ranges, CIDRs, denies). Measures a full compile, the diff of one policy
// change and of one pod change (against a naive engine that recompiles everything in the same run), memory, and
// verdict throughput (against the rule-by-rule oracle of test/oracle.ts). Writes $BENCH_OUT/policy.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyEngine, type PolicyObject, validatePolicies, verdict } from '../src/index.js';
import { type OracleCluster, oracleVerdict } from '../test/oracle.js';

const NS = 100;
const PODS_PER_NS = 50;
const POLICIES_PER_NS = 10;
const APPS = 10;
const cmd = '`node scripts/bench.mjs policy`';

let seed = 42;
const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};

function cluster() {
  const namespaces: Record<string, { labels: Record<string, string> }> = {};
  const pods: {
    namespace: string;
    name: string;
    labels: Record<string, string>;
    ip: string;
    ports: { port: number; protocol: 'TCP'; name: string }[];
  }[] = [];
  for (let n = 0; n < NS; n++) {
    const ns = `ns-${n}`;
    namespaces[ns] = { labels: { team: `t${n % 7}`, env: n % 2 === 0 ? 'prod' : 'dev' } };
    for (let p = 0; p < PODS_PER_NS; p++) {
      const app = `app-${p % APPS}`;
      const i = n * PODS_PER_NS + p;
      pods.push({
        namespace: ns,
        name: `pod-${p}`,
        labels: { app, tier: p % 3 === 0 ? 'fe' : 'be' },
        ip: `10.244.${i >> 8}.${i & 255}`,
        ports: [{ port: 8000 + (p % APPS), protocol: 'TCP', name: 'http' }],
      });
    }
  }
  return { namespaces, pods };
}

function makePolicy(n: number, k: number, variant = 0): unknown {
  const ns = `ns-${n}`;
  const app = `app-${k % APPS}`;
  const peer = `app-${(k + 1 + variant) % APPS}`;
  switch (k % 5) {
    case 0:
      return {
        kind: 'NetworkPolicy',
        metadata: { name: `knp-${k}`, namespace: ns },
        spec: {
          podSelector: { matchLabels: { app } },
          ingress: [
            { from: [{ podSelector: { matchLabels: { app: peer } } }], ports: [{ port: 80 + variant }] },
          ],
        },
      };
    case 1:
      return {
        kind: 'NetworkPolicy',
        metadata: { name: `knp-${k}`, namespace: ns },
        spec: {
          podSelector: { matchLabels: { app } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { team: `t${(n + variant) % 7}` } },
                  podSelector: { matchLabels: { tier: 'fe' } },
                },
              ],
              ports: [{ port: 'http' }],
            },
          ],
          egress: [
            {
              to: [
                {
                  namespaceSelector: { matchLabels: { env: 'prod' } },
                  podSelector: { matchLabels: { app: 'app-9', tier: 'be' } },
                },
              ],
              ports: [{ port: 5432 + variant, endPort: 5440 + variant }],
            },
          ],
        },
      };
    case 2:
      return {
        kind: 'CiliumNetworkPolicy',
        metadata: { name: `cnp-${k}`, namespace: ns },
        spec: {
          endpointSelector: { matchLabels: { app } },
          ingress: [
            {
              fromEndpoints: [{ matchLabels: { app: peer } }],
              toPorts: [{ ports: [{ port: String(8080 + variant), protocol: 'TCP' }] }],
            },
          ],
          egress: [
            { toEntities: ['host'] },
            { toCIDRSet: [{ cidr: `${20 + (n % 50)}.0.0.0/8`, except: [`${20 + (n % 50)}.1.0.0/16`] }] },
          ],
        },
      };
    case 3:
      return {
        kind: 'CiliumNetworkPolicy',
        metadata: { name: `cnp-${k}`, namespace: ns },
        spec: {
          endpointSelector: { matchLabels: { app } },
          ingressDeny: [
            {
              fromEndpoints: [
                { matchLabels: { 'k8s:io.kubernetes.pod.namespace': `ns-${(n + 1 + variant) % NS}` } },
              ],
            },
          ],
          ingress: [
            {
              fromEndpoints: [
                { matchLabels: { 'k8s:io.kubernetes.pod.namespace': `ns-${(n + 2) % NS}`, app } },
              ],
            },
          ],
        },
      };
    default:
      return {
        kind: 'CiliumNetworkPolicy',
        metadata: { name: `cnp-${k}`, namespace: ns },
        spec: {
          endpointSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: [app, peer] }] },
          egress: [
            {
              toEndpoints: [{}],
              toPorts: [
                {
                  ports: [
                    { port: '53', protocol: 'UDP' },
                    { port: String(9000 + variant), endPort: 9100, protocol: 'TCP' },
                  ],
                },
              ],
            },
          ],
          egressDeny: [{ toPorts: [{ ports: [{ port: '23' }] }] }],
        },
      };
  }
}

const policies: unknown[] = [];
for (let n = 0; n < NS; n++) for (let k = 0; k < POLICIES_PER_NS; k++) policies.push(makePolicy(n, k));
const { namespaces, pods } = cluster();
const input = { namespaces, pods, policies };

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- baseline for the compile: validating the same policies (the floor any compiler pays) ----
const tv = now();
validatePolicies(policies);
const validateMs = now() - tv;

// ---- full compile (incremental engine), memory ----
const heap0 = heap();
const inputHeap = heap0;
const t0 = now();
const engine = new PolicyEngine();
const initial = engine.load(input, { changes: false });
const compileMs = now() - t0;
const heap1 = heap();
const engineBytes = heap1 - heap0;
void inputHeap;
const state = engine.state();
let entries = 0;
const distinctMaps = new Set<unknown>();
for (const ep of state.endpoints.values()) {
  entries += ep.policy.size;
  distinctMaps.add(ep.policy);
}
let distinctEntries = 0;
for (const m of distinctMaps) distinctEntries += (m as Map<string, unknown>).size;

// ---- naive engine: every change recompiles everything ----
const naive = new PolicyEngine({ incremental: false });
naive.load(input);

// ---- one policy change → diff ----
const incMs: number[] = [];
const naiveMs: number[] = [];
let incChanges = 0;
let naiveChanges = 0;
for (let i = 0; i < 30; i++) {
  const n = rand(NS);
  const k = rand(POLICIES_PER_NS);
  const p = makePolicy(n, k, 1 + (i % 2));
  let t = now();
  const c = engine.upsertPolicy(p);
  incMs.push(now() - t);
  incChanges += c.length;
  if (i < 6) {
    t = now();
    const c2 = naive.upsertPolicy(p);
    naiveMs.push(now() - t);
    naiveChanges += c2.length;
  }
}
// ---- one pod add → diff ----
const podMs: number[] = [];
const podNaiveMs: number[] = [];
for (let i = 0; i < 20; i++) {
  const n = rand(NS);
  const pod = {
    namespace: `ns-${n}`,
    name: `extra-${i}`,
    labels: { app: `app-${rand(APPS)}`, tier: 'fe' },
    ip: `10.250.0.${i + 1}`,
  };
  let t = now();
  engine.upsertPod(pod);
  podMs.push(now() - t);
  if (i < 4) {
    t = now();
    naive.upsertPod(pod);
    podNaiveMs.push(now() - t);
  }
}
const consistent = engine.rebuild().length === 0;

// ---- verdict throughput vs the rule-by-rule oracle ----
const oc: OracleCluster = {
  namespaces: Object.fromEntries(Object.entries(namespaces).map(([k, v]) => [k, v.labels])),
  pods: pods.map((p) => ({ ns: p.namespace, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports })),
  policies: validatePolicies(policies) as PolicyObject[],
  enforcement: 'default',
};
const fresh = new PolicyEngine();
fresh.load(input);
const flows = Array.from({ length: 2000 }, () => {
  const a = pods[rand(pods.length)]!;
  const b = pods[rand(pods.length)]!;
  const port = [80, 8080, 5432, 53, 9050, 23, 8003][rand(7)]!;
  return {
    from: `${a.namespace}/${a.name}`,
    to: `${b.namespace}/${b.name}`,
    port,
    protocol: (port === 53 ? 'UDP' : 'TCP') as 'TCP' | 'UDP',
  };
});
let t = now();
const fast: string[] = [];
for (let r = 0; r < 10; r++) for (const f of flows) fast.push(verdict(fresh.state(), f).verdict);
const verdictPerSec = (10 * flows.length) / ((now() - t) / 1000);
t = now();
const slow = flows.slice(0, 300).map((f) => oracleVerdict(oc, f));
const oraclePerSec = slow.length / ((now() - t) / 1000);
const agree = slow.every((v, i) => v === fast[i]);
const allowed = slow.filter((v) => v === 'allow').length;

const mb = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const ok = (b: boolean) => (b ? '✅' : '❌');
const compileOk = compileMs <= 1000;
const diffOk = median(incMs) <= 10;
const section = `## @datapath/policy

Synthetic cluster: ${NS} namespaces × ${PODS_PER_NS} pods (${pods.length} pods, ${state.identities.size} identities incl. reserved and CIDR),
${policies.length} policies (KNP and CNP: pod and namespace selectors, named ports, ranges, CIDR sets, entities, denies).
Compiled state: ${entries.toLocaleString('en')} policy map entries over ${state.endpoints.size} endpoints (${distinctMaps.size} distinct maps,
${distinctEntries.toLocaleString('en')} distinct entries; endpoints with the same identity share one map object), ${state.ipcache.size} ipcache entries;
initial load emitted ${initial.length.toLocaleString('en')} map changes. Incremental state equals a full rebuild after all changes: ${ok(consistent)}.

| operation | target | measured | baseline (same run) | ratio | rerun |
|---|---|---:|---:|---:|---|
| full compile (validate, identities, ${pods.length} maps) | ≤ 1 s | ${ms(compileMs)} | ${ms(validateMs)} (zod validation of the policies alone) | ${(compileMs / validateMs).toFixed(1)} × validation ${ok(compileOk)} | ${cmd} |
| one policy changed → diff (median of 30) | ≤ 10 ms | ${ms(median(incMs))} (${(incChanges / incMs.length).toFixed(0)} changes avg) | ${ms(median(naiveMs))} (full recompile + diff, median of ${naiveMs.length}) | ${(median(naiveMs) / median(incMs)).toFixed(0)} × faster ${ok(diffOk)} | ${cmd} |
| one pod added → diff (median of 20) | — | ${ms(median(podMs))} | ${ms(median(podNaiveMs))} (full recompile + diff) | ${(median(podNaiveMs) / median(podMs)).toFixed(0)} × faster | ${cmd} |
| memory of the compiled engine | reported | ${mb(engineBytes)} (${Math.round(engineBytes / pods.length).toLocaleString('en')} B/pod) | ${mb(entries * 20)} (the same state encoded as BPF map entries, 12 + 8 B each) | ${(engineBytes / (entries * 20)).toFixed(2)} × | ${cmd} |
| \`verdict()\` throughput (ipcache LPM + 2 map lookups) | — | ${Math.round(verdictPerSec).toLocaleString('en')} flows/s | ${Math.round(oraclePerSec).toLocaleString('en')} flows/s (rule-by-rule oracle over ${policies.length} policies) | ${(verdictPerSec / oraclePerSec).toFixed(0)} × | ${cmd} |

Verdicts of the compiled state and of the oracle agree on the ${slow.length} sampled flows (${allowed} allowed): ${ok(agree)}.
Memory is heap growth after \`load()\`${gc ? ' (with forced GC)' : ' (no --expose-gc: noisy)'}.
`;
console.log(section);
const out = process.env.BENCH_OUT;
if (out) {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'policy.md'), section);
}
if (!agree || !consistent) process.exit(1);
