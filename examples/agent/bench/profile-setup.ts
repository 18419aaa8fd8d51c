/**
 * Pod setup broken down by stage (`pnpm exec tsx bench/profile-setup.ts [tc|tcx] [pods]`, root):
 * medians per stage of one `addPods` call per pod.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type SetupStage } from '../src/agent.js';

const attach = (process.argv[2] ?? 'tc') as 'tc' | 'tcx';
const pods = Number(process.argv[3] ?? 16);

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? Number.NaN;
}

/** Adds `pods` pods one call each; returns the total and per-stage durations (ms). */
export async function profileSetup(
  mode: 'tc' | 'tcx',
  n: number,
  policies: unknown[],
): Promise<{ total: number[]; stages: Map<SetupStage, number[]> }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'dpbench-'));
  const stages = new Map<SetupStage, number[]>();
  let current: Partial<Record<SetupStage, number>> = {};
  const agent = await Agent.start(
    {
      name: 'dpbench',
      prefix: 'dpbench',
      stateDir: join(stateDir, 's'),
      podCidr: '10.244.3.0/24',
      attach: mode,
      trace: (stage, ms) => {
        current[stage] = (current[stage] ?? 0) + ms;
      },
    },
    { namespaces: { bench: { labels: {} } }, policies, enforcement: 'default' },
  );
  const total: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      current = {};
      const t = performance.now();
      agent.addPods([{ namespace: 'bench', name: `p${i}`, labels: { app: i % 2 ? 'client' : 'server' } }]);
      total.push(performance.now() - t);
      for (const [k, v] of Object.entries(current) as [SetupStage, number][]) {
        if (!stages.has(k)) stages.set(k, []);
        stages.get(k)!.push(v);
      }
    }
  } finally {
    agent.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
  return { total, stages };
}

if (process.argv[1]?.endsWith('profile-setup.ts')) {
  const r = await profileSetup(attach, pods, []);
  console.log(`total p50 ${median(r.total).toFixed(2)} ms`);
  for (const [k, v] of r.stages) console.log(`  ${k.padEnd(9)} ${median(v).toFixed(2)} ms`);
}
