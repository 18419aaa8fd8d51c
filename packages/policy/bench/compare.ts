// Same-run comparison of this build of @datapath/policy against another build (an earlier commit): both
// engines load the same synthetic cluster in one process and take the same changes, alternating which goes
// first, so machine load hits both alike. Reports median CPU and wall time per change and the ratio.
// Usage: POLICY_BASELINE=/path/to/old/packages/policy tsx bench/compare.ts   (see scripts/bench-policy-vs.sh)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as current from '../src/index.js';
import { APPS, cluster, makePolicy, NS, POLICIES_PER_NS, rand } from './cluster.js';

type Engine = {
  load(input: unknown, o?: { changes?: boolean }): unknown;
  upsertPolicy(p: unknown): unknown[];
  upsertPod(p: unknown): unknown[];
};
type EngineClass = new () => Engine;

const dir = process.env.POLICY_BASELINE;
if (dir === undefined) throw new Error('set POLICY_BASELINE to the package directory of the baseline build');
const baseline = (await import(pathToFileURL(join(dir, 'dist/index.js')).href)) as {
  PolicyEngine: EngineClass;
};
const rounds = Number(process.env.ROUNDS ?? 60);

const policies = [];
for (let n = 0; n < NS; n++) for (let k = 0; k < POLICIES_PER_NS; k++) policies.push(makePolicy(n, k));
const input = { ...cluster(), policies };
const engines = {
  baseline: new baseline.PolicyEngine(),
  current: new (current.PolicyEngine as unknown as EngineClass)(),
};
for (const e of Object.values(engines)) e.load(input, { changes: false });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
function timed(fn: () => unknown[]): { cpu: number; wall: number; changes: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const changes = fn().length;
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1000, wall, changes };
}
/** Runs one change on both engines (order alternating by round); fails when their change counts differ. */
function both(
  round: number,
  apply: (e: Engine) => unknown[],
  into: Record<'baseline' | 'current', number[][]>,
) {
  const order = round % 2 === 0 ? (['baseline', 'current'] as const) : (['current', 'baseline'] as const);
  const r = { baseline: { cpu: 0, wall: 0, changes: 0 }, current: { cpu: 0, wall: 0, changes: 0 } };
  for (const k of order) r[k] = timed(() => apply(engines[k]));
  if (r.baseline.changes !== r.current.changes)
    throw new Error(
      `round ${round}: baseline wrote ${r.baseline.changes} changes, current ${r.current.changes}`,
    );
  for (const k of order) {
    into[k][0]!.push(r[k].cpu);
    into[k][1]!.push(r[k].wall);
  }
}

const policy = { baseline: [[], []] as number[][], current: [[], []] as number[][] };
for (let i = 0; i < rounds; i++) {
  const p = makePolicy(rand(NS), rand(POLICIES_PER_NS), 1 + (i % 2));
  both(i, (e) => e.upsertPolicy(p), policy);
}
const pod = { baseline: [[], []] as number[][], current: [[], []] as number[][] };
for (let i = 0; i < rounds / 2; i++) {
  const spec = {
    namespace: `ns-${rand(NS)}`,
    name: `extra-${i}`,
    labels: { app: `app-${rand(APPS)}`, tier: 'fe' },
    ip: `10.250.0.${i + 1}`,
  };
  both(i, (e) => e.upsertPod(spec), pod);
}
const ms = (x: number) => `${x.toFixed(2)} ms`;
const row = (name: string, m: typeof policy) => {
  const [bc, bw] = m.baseline.map(median) as [number, number];
  const [cc, cw] = m.current.map(median) as [number, number];
  return `| ${name} | ${ms(cc)} CPU (${ms(cw)} wall) | ${ms(bc)} CPU (${ms(bw)} wall) | ${(cc / bc).toFixed(2)} CPU, ${(cw / bw).toFixed(2)} wall |`;
};
console.log(`| change (median of ${rounds} / ${rounds / 2}, same changes, alternating order) | this build | baseline (${dir}) | ratio (≤ 1: not worse) |
|---|---:|---:|---:|
${row('one policy changed → minimal diff', policy)}
${row('one pod added → minimal diff', pod)}`);
