/**
 * Endpoint create broken down by stage (`pnpm exec tsx bench/profile-create.ts [pods] [async|sync]`, root): the
 * async form as the API runs it (default), or the sync form.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type SetupStage } from '../src/agent.js';

const n = Number(process.argv[2] ?? 30);
const sync = process.argv[3] === 'sync';
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN;
const dir = mkdtempSync(join(tmpdir(), 'dpprof-'));
const stages = new Map<SetupStage, number[]>();
const agent = await Agent.start(
  {
    name: 'dpprof',
    prefix: 'dpprof',
    stateDir: join(dir, 's'),
    podCidr: '10.244.4.0/24',
    trace: (s, ms) => {
      const l = stages.get(s) ?? [];
      l.push(ms);
      stages.set(s, l);
    },
  },
  { namespaces: {}, policies: [], enforcement: 'default' },
);
const names = Array.from({ length: n }, (_, i) => `dpprofns-${i}`);
for (const x of names) execFileSync('ip', ['netns', 'add', x]);
const total: number[] = [];
// CPU time of the whole process (main thread and threadpool, user + system) per create: steadier than wall
// time on a loaded machine (no waiting for a CPU in it), blind to sleeps in the kernel (RCU grace periods).
const cpu: number[] = [];
try {
  for (const [i, x] of names.entries()) {
    const t = performance.now();
    const c = process.cpuUsage();
    const pod = {
      namespace: 'bench',
      name: `p${i}`,
      labels: { app: `a${i % 5}` },
      attachment: { containerId: `c${i}`, ifname: 'eth0', netnsPath: `/run/netns/${x}` },
    };
    if (sync) agent.addAttachedPod(pod);
    else await agent.addAttachedPodAsync(pod);
    total.push(performance.now() - t);
    const d = process.cpuUsage(c);
    cpu.push((d.user + d.system) / 1000);
  }
} finally {
  agent.destroy();
  for (const x of names) execFileSync('ip', ['netns', 'del', x]);
  rmSync(dir, { recursive: true, force: true });
}
console.log(`total p50 ${med(total).toFixed(2)} ms, CPU p50 ${med(cpu).toFixed(2)} ms`);
for (const [s, l] of stages) console.log(`${s.padEnd(9)} ${med(l).toFixed(3)} ms`);
