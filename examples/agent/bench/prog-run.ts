/**
 * Per-packet run time of the agent's from_container (`pnpm run bench` after the datapath bench, or alone:
 * `AGENT_BENCH_ONLY=progrun node scripts/bench.mjs agent`, root): one agent with two pods (policy on),
 * an established flow, the program test-run through the SDK's `program.run` (BPF_PROG_TEST_RUN through
 * @datapath/libbpf) against `bpftool prog run` on the same program and input in the same rounds (the
 * shell-out this bench made before the SDK had test runs), and against the same source at an older
 * git revision (see bench/progcost.ts). Writes one Markdown section to $BENCH_OUT/agent-progrun.md.
 * Environment: SAMPLES (21), REPEAT (200, at most 250), COST_REV (1147665).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentPair } from './pairs.js';
import { progCost } from './progcost.js';

const SAMPLES = Number(process.env.SAMPLES ?? 21);
const REPEAT = Math.min(Number(process.env.REPEAT ?? 200), 250);
const COST_REV = process.env.COST_REV ?? '1147665';

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root');
  const pair = await agentPair(true);
  let rows: string[];
  try {
    const r = await progCost(pair.agent!, 'bench/client', 'bench/server', COST_REV, SAMPLES, REPEAT);
    const rerun = '`AGENT_BENCH_ONLY=progrun node scripts/bench.mjs agent` (root)';
    const spread = (t: { median: number; min: number; max: number }) => `${t.median} ns (${t.min}–${t.max})`;
    rows = [
      `| from_container per packet through \`program.run\` vs \`bpftool prog run\` (same program, input and rounds) | ${spread(r.current)} | ${spread(r.bpftool)} | ${(r.current.median / r.bpftool.median).toFixed(2)} | ${rerun} |`,
      `| from_container per packet (\`program.run\`) vs the same source at ${COST_REV} | ${spread(r.current)} | ${spread(r.before)} | ${(r.current.median / r.before.median).toFixed(2)} | ${rerun} |`,
    ];
  } finally {
    pair.close();
  }
  const md = [
    '## examples/agent: from_container run time per packet (test runs)',
    '',
    'One agent, two pods, policy on; an established TCP flow (the first run admits it, every later one is the',
    'fast path: conntrack hit at the current policy revision, MAC rewrite, TTL − 1, bpf_redirect_peer, which a',
    'test run does not carry out), 1514-byte frames. Each sample is one test run with `repeat` ' +
      `${REPEAT}: the kernel's`,
    `average ns per run. ${SAMPLES} samples per form, the forms alternating sample by sample; medians (min–max).`,
    "`program.run` is the SDK's BPF_PROG_TEST_RUN (`@datapath/loader`); the baseline runs the same loaded",
    'program on the same input through `bpftool prog run … repeat N` (the shell-out this bench used to make).',
    'Both report the time the kernel measures around its repeat loop; they differ in the process that issues',
    'the call: a new bpftool process per sample, the benchmark process itself for `program.run`.',
    '',
    '| measurement | measured | baseline (same run) | ratio | rerun |',
    '|---|---:|---:|---:|---|',
    ...rows,
    '',
  ].join('\n');
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent-progrun.md'), md);
  }
  process.stdout.write(`${md}\n`);
}

// AGENT_BENCH_ONLY=policy or =progrun runs only that part of `pnpm run bench`.
const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === '' || only === 'progrun') await main();
