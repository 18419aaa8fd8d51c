// The synthetic cluster of the policy benchmarks: 100 namespaces × 50 pods and 10 policies per namespace
// (KNP and CNP: selectors, namespace selectors, named ports, ranges, CIDR sets, entities, denies), built
// from a fixed seed so every run (and every engine build compared in one run) sees the same input.
import type { PolicyObject } from '../src/index.js';

export const NS = 100;
export const PODS_PER_NS = 50;
export const POLICIES_PER_NS = 10;
export const APPS = 10;

let seed = 42;
export const rand = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};

export function cluster() {
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

export function makePolicy(n: number, k: number, variant = 0): PolicyObject {
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
