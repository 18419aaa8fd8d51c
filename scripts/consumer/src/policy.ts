// @datapath/policy from its published tarball: a default-deny plus one allow, evaluated as the datapath would.
import { evaluateScenario } from '@datapath/policy';

const result = evaluateScenario({
  namespaces: { shop: { labels: {} } },
  pods: [
    {
      ns: 'shop',
      name: 'web',
      labels: { app: 'web' },
      ip: '10.244.0.10',
      ports: [{ port: 80, protocol: 'TCP' }],
    },
    {
      ns: 'shop',
      name: 'db',
      labels: { app: 'db' },
      ip: '10.244.0.11',
      ports: [{ port: 5432, protocol: 'TCP' }],
    },
  ],
  policies: [
    {
      kind: 'NetworkPolicy',
      metadata: { name: 'db-from-web', namespace: 'shop' },
      spec: {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ port: 5432 }] }],
      },
    },
  ],
  probes: [
    { from: 'shop/web', to: 'shop/db', port: 5432, protocol: 'TCP', expect: 'allow' },
    { from: 'shop/db', to: 'shop/db', port: 80, protocol: 'TCP', expect: 'deny' },
  ],
});
const lines = result.results.map((r) => `${r.from}->${r.to}:${r.port} ${r.verdict}`);
if (result.mismatches !== 0) throw new Error(`unexpected verdicts: ${lines.join(', ')}`);
console.log(lines.join('; '));
