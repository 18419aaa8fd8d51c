import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PolicyEngine, type PolicyObject, validatePolicies, verdict } from '../src/index.js';
import { allProbes, cluster, type GenCluster } from './gen.js';
import { oracleVerdict } from './oracle.js';

function compile(c: GenCluster, incremental = true): PolicyEngine {
  const engine = new PolicyEngine({ enforcement: c.enforcement, incremental });
  engine.load({
    namespaces: Object.fromEntries(Object.entries(c.namespaces).map(([n, labels]) => [n, { labels }])),
    pods: c.pods.map((p) => ({ namespace: p.ns, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports })),
    policies: c.policies,
  });
  return engine;
}

function mismatches(engine: PolicyEngine, c: GenCluster): string[] {
  const oc = { ...c, policies: validatePolicies(c.policies) as PolicyObject[] };
  const out: string[] = [];
  for (const f of allProbes(c)) {
    const got = verdict(engine.state(), f).verdict;
    const want = oracleVerdict(oc, f);
    if (got !== want)
      out.push(`${f.from} -> ${f.to} ${f.port}/${f.protocol}: compiled ${got}, oracle ${want}`);
  }
  return out;
}

describe('compiled map state agrees with the rule-by-rule oracle', () => {
  it('on random clusters and policies', () => {
    fc.assert(
      fc.property(cluster, (c) => {
        const engine = compile(c);
        const bad = mismatches(engine, c);
        expect(bad.slice(0, 5), JSON.stringify(c)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  }, 180_000);
});
