/**
 * Run time of from_container per packet on the established-flow fast path, the current
 * bpf/datapath.c against the version at a git revision (`pnpm exec tsx bench/prog-cost.ts [rev]`,
 * root, run under the bench lock; rev defaults to 1147665, the program before the `fwd` counters
 * and the jiffies refresh). Sets up one agent with two pods (policy on) and runs
 * bench/progcost.ts's comparison.
 * Environment: SAMPLES (default 41), REPEAT (200, at most 250).
 */
import { agentPair } from './pairs.js';
import { progCost } from './progcost.js';

const REV = process.argv[2] ?? '1147665';
const SAMPLES = Number(process.env.SAMPLES ?? 41);
const REPEAT = Math.min(Number(process.env.REPEAT ?? 200), 250);

if (process.getuid?.() !== 0) throw new Error('needs root');
const pair = await agentPair(true);
try {
  const r = await progCost(pair.agent!, 'bench/client', 'bench/server', REV, SAMPLES, REPEAT);
  console.log(
    `from_container, established flow, ${SAMPLES} × program.run repeat ${REPEAT}, alternating (ns per run, median [min–max]):`,
  );
  for (const [name, t] of [
    [`${REV} (before)`, r.before] as const,
    ['current', r.current] as const,
    ['current (bpftool)', r.bpftool] as const,
  ]) {
    console.log(`  ${name.padEnd(18)} ${t.median} [${t.min}–${t.max}]`);
  }
} finally {
  pair.close();
}
