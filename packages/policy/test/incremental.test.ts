import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  keyString,
  type MapChange,
  PolicyEngine,
  type PolicyObject,
  validatePolicies,
  verdict,
} from '../src/index.js';
import { allProbes, cluster, type GenCluster, policy, portsFor } from './gen.js';
import { oracleVerdict } from './oracle.js';

/** A mirror of the BPF maps, fed only by the change lists, to prove the changes are complete and minimal. */
class Mirror {
  readonly policy = new Map<number, Map<string, string>>();
  readonly ipcache = new Map<string, string>();
  apply(changes: readonly MapChange[]): void {
    for (const c of changes) {
      if (c.map === 'policy') {
        const m = this.policy.get(c.endpointId) ?? new Map<string, string>();
        this.policy.set(c.endpointId, m);
        const k = keyString(c.key);
        if (c.op === 'delete') {
          expect(m.has(k), `delete of absent key ${c.endpoint} ${k}`).toBe(true);
          m.delete(k);
          if (m.size === 0) this.policy.delete(c.endpointId);
        } else {
          const v = JSON.stringify(c.value);
          expect(m.get(k), `no-op update ${c.endpoint} ${k}`).not.toBe(v);
          m.set(k, v);
        }
      } else if (c.op === 'delete') {
        expect(this.ipcache.has(c.prefix), `delete of absent prefix ${c.prefix}`).toBe(true);
        this.ipcache.delete(c.prefix);
      } else {
        const v = JSON.stringify(c.value);
        expect(this.ipcache.get(c.prefix), `no-op update ${c.prefix}`).not.toBe(v);
        this.ipcache.set(c.prefix, v);
      }
    }
  }
  matches(engine: PolicyEngine): void {
    const s = engine.state();
    const want = new Map<number, Map<string, string>>();
    for (const ep of s.endpoints.values()) {
      const m = new Map<string, string>();
      for (const [k, e] of ep.policy) m.set(k, JSON.stringify(e.value));
      if (m.size > 0) want.set(ep.endpointId, m);
    }
    expect(this.policy).toEqual(want);
    const ip = new Map<string, string>();
    for (const [k, v] of s.ipcache) if (!k.endsWith('/0')) ip.set(k, JSON.stringify(v));
    const mine = new Map([...this.ipcache].filter(([k]) => !k.endsWith('/0')));
    expect(mine).toEqual(ip);
  }
}

type Op =
  | { kind: 'upsertPolicy'; index: number; policy: unknown }
  | { kind: 'deletePolicy'; index: number }
  | { kind: 'relabelPod'; index: number; app: string }
  | { kind: 'deletePod'; index: number }
  | { kind: 'addPod'; ns: number; app: string }
  | { kind: 'relabelNs'; ns: number; team: string };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('upsertPolicy' as const),
    index: fc.nat(5),
    policy: fc.nat(5).chain((i) => policy(`p${i}`)),
  }),
  fc.record({ kind: fc.constant('deletePolicy' as const), index: fc.nat(10) }),
  fc.record({
    kind: fc.constant('relabelPod' as const),
    index: fc.nat(10),
    app: fc.constantFrom('a', 'b', 'c'),
  }),
  fc.record({ kind: fc.constant('deletePod' as const), index: fc.nat(10) }),
  fc.record({ kind: fc.constant('addPod' as const), ns: fc.nat(2), app: fc.constantFrom('a', 'b', 'c') }),
  fc.record({ kind: fc.constant('relabelNs' as const), ns: fc.nat(2), team: fc.constantFrom('red', 'blue') }),
);

function load(engine: PolicyEngine, c: GenCluster): MapChange[] {
  return engine.load({
    namespaces: Object.fromEntries(Object.entries(c.namespaces).map(([n, labels]) => [n, { labels }])),
    pods: c.pods.map((p) => ({ namespace: p.ns, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports })),
    policies: c.policies,
  });
}

function applyOp(
  engine: PolicyEngine,
  c: GenCluster,
  o: Op,
  serial: number,
  ports: (app: string) => GenCluster['pods'][number]['ports'] = portsFor,
): MapChange[] | undefined {
  const nsNames = Object.keys(c.namespaces);
  switch (o.kind) {
    case 'upsertPolicy': {
      const p = o.policy as PolicyObject;
      if (p.kind !== 'CiliumClusterwideNetworkPolicy' && !nsNames.includes(p.metadata.namespace ?? 'default'))
        return;
      const key = (x: PolicyObject) => `${x.kind}/${x.metadata.namespace ?? ''}/${x.metadata.name}`;
      const i = (c.policies as PolicyObject[]).findIndex((x) => key(x) === key(p));
      if (i >= 0) c.policies[i] = p;
      else c.policies.push(p);
      return engine.upsertPolicy(p);
    }
    case 'deletePolicy': {
      const p = c.policies[o.index] as PolicyObject | undefined;
      if (!p) return;
      c.policies.splice(o.index, 1);
      return engine.deletePolicy(p.kind, p.metadata.namespace, p.metadata.name);
    }
    case 'relabelPod': {
      const p = c.pods[o.index];
      if (!p) return;
      p.labels = { ...p.labels, app: o.app };
      p.ports = ports(o.app);
      return engine.upsertPod({ namespace: p.ns, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports });
    }
    case 'deletePod': {
      const p = c.pods[o.index];
      if (!p) return;
      c.pods.splice(o.index, 1);
      return engine.deletePod(p.ns, p.name);
    }
    case 'addPod': {
      const ns = nsNames[o.ns % nsNames.length]!;
      const p = {
        ns,
        name: `n${serial}`,
        labels: { app: o.app },
        ip: `10.244.${3 + (serial >> 8)}.${serial & 255}`,
        ports: ports(o.app),
      };
      c.pods.push(p);
      return engine.upsertPod({ namespace: p.ns, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports });
    }
    case 'relabelNs': {
      const ns = nsNames[o.ns % nsNames.length]!;
      c.namespaces[ns] = { team: o.team };
      return engine.upsertNamespace(ns, { team: o.team });
    }
  }
}

function check(
  c0: GenCluster,
  ops: Op[],
  ports?: (app: string) => GenCluster['pods'][number]['ports'],
): void {
  const c = structuredClone(c0);
  const engine = new PolicyEngine({ enforcement: c.enforcement });
  const mirror = new Mirror();
  mirror.apply(load(engine, c));
  mirror.matches(engine);
  ops.forEach((o, serial) => {
    const changes = applyOp(engine, c, o, serial, ports);
    if (!changes) return;
    mirror.apply(changes);
    mirror.matches(engine);
    expect(engine.rebuild(), `after ${o.kind}`).toEqual([]);
  });
  const oc = { ...c, policies: validatePolicies(c.policies) };
  for (const f of allProbes(c).filter((_, i) => i % 3 === 0))
    expect(verdict(engine.state(), f).verdict, `${f.from} -> ${f.to} ${f.port}/${f.protocol}`).toBe(
      oracleVerdict(oc, f),
    );
}

describe('incremental updates', () => {
  it('equal a full recompile, and their change lists are complete and minimal', () => {
    fc.assert(
      fc.property(cluster, fc.array(op, { minLength: 1, maxLength: 8 }), (c0, ops) => check(c0, ops)),
      { numRuns: 120 },
    );
  }, 180_000);

  it('the same for pods without named ports (pod changes that only look at the pods they touch)', () => {
    const podOps = op.filter((o) => o.kind !== 'relabelNs');
    fc.assert(
      fc.property(cluster, fc.array(podOps, { minLength: 1, maxLength: 10 }), (c0, ops) => {
        const c = structuredClone(c0);
        for (const p of c.pods) p.ports = [];
        check(c, ops, () => []);
      }),
      { numRuns: 80 },
    );
  }, 180_000);
});
