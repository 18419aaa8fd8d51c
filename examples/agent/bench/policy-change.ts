/**
 * Policy change on a running agent with 200 pods (`pnpm exec tsx bench/policy-change.ts`, root; part of
 * `node scripts/bench.mjs agent`, alone with AGENT_BENCH_ONLY=policy): the time from `setPolicies` to the last
 * map write, p50 of CHANGES changes that flip one policy's port (the servers' maps change, nothing else), against
 * the same change done the way every change was done before the engine's change stream: a new engine compiled
 * from the whole state and every map compared with a dump of it (what a restart still does), in the same run.
 * Writes one Markdown section to $BENCH_OUT/agent-policy.md. Environment: PODS (200), CHANGES (30).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicyObject } from '@datapath/policy';
import { Agent } from '../src/agent.js';
import { engineFromState, StickyIdentities } from '../src/policy.js';
import { median } from './profile-setup.js';

const PODS = Number(process.env.PODS ?? 200);
const CHANGES = Number(process.env.CHANGES ?? 30);

const allowClients = (port: number): PolicyObject => ({
  kind: 'NetworkPolicy',
  metadata: { name: 'servers', namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port }] }],
  },
});
const others: PolicyObject[] = Array.from({ length: 10 }, (_, i) => ({
  kind: 'NetworkPolicy',
  metadata: { name: `w${i}`, namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: `w${i % 7}` } },
    ingress: [
      { from: [{ podSelector: { matchLabels: { app: `w${(i + 1) % 7}` } } }], ports: [{ port: 9000 + i }] },
    ],
  },
}));
const appOf = (i: number) => (i % 20 === 0 ? 'server' : i % 10 === 1 ? 'client' : `w${i % 7}`);

/** Records the time of the last write through the agent's policy and ipcache handles. */
function watchWrites(agent: Agent): { last: number; writes: number } {
  const seen = { last: 0, writes: 0 };
  for (const map of [agent.datapath.policy, agent.datapath.ipcache] as {
    set: Function;
    delete: Function;
  }[]) {
    for (const op of ['set', 'delete'] as const) {
      const original = map[op].bind(map);
      map[op] = (...args: unknown[]) => {
        const r = original(...args);
        seen.last = performance.now();
        seen.writes++;
        return r;
      };
    }
  }
  return seen;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dpbench-policy-'));
  const agent = await Agent.start(
    { name: 'dpbpol', prefix: 'dpbpol', stateDir: join(dir, 's'), podCidr: '10.244.4.0/24', attach: 'tc' },
    {
      namespaces: { bench: { labels: {} } },
      policies: [allowClients(80), ...others],
      enforcement: 'default',
    },
  );
  try {
    agent.addPods(
      Array.from({ length: PODS }, (_, i) => ({
        namespace: 'bench',
        name: `p${i}`,
        labels: { app: appOf(i) },
      })),
    );
    const seen = watchWrites(agent);
    const entries = agent.datapath.policy.count();
    const inc: number[] = [];
    const incWrites: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      seen.writes = 0;
      const t = performance.now();
      agent.setPolicies([allowClients(i % 2 ? 80 : 8080), ...others]);
      inc.push(seen.last - t);
      incWrites.push(seen.writes);
    }
    // The same changes the way they were made before: compile the whole state, compare every map with a dump.
    const full: number[] = [];
    const fullWrites: number[] = [];
    for (let i = 0; i < Math.min(CHANGES, 10); i++) {
      seen.writes = 0;
      const t = performance.now();
      const engine = engineFromState(
        { ...agent.state, policies: [allowClients(i % 2 ? 80 : 8080), ...others] },
        new StickyIdentities(agent.state.identities ?? {}),
      );
      agent.datapath.reconcilePolicy(engine.state().endpoints.values(), engine.state().ipcache);
      full.push(seen.last - t);
      fullWrites.push(seen.writes);
    }
    const ms = (x: number) => `${x.toFixed(2)} ms`;
    const p50 = median(inc);
    const md = [
      '## examples/agent: policy change on a running agent',
      '',
      `${PODS} pods in one namespace (${PODS / 20} servers, ${PODS / 10} clients, the rest in 7 other apps), 11`,
      `NetworkPolicies, ${entries} policy trie entries. One change flips the servers' policy between port 80 and`,
      `8080: ${median(incWrites)} map writes (2 per server endpoint, the entries that changed), counted at the map`,
      'handles. Measured from the `setPolicies` call to the last map write (`bpf_map_update_elem` /',
      "`bpf_map_delete_elem` through the agent's handles), p50 of " +
        `${CHANGES} changes. Baseline, same run: the same`,
      'change made by compiling a new engine from the whole state and comparing every map with a kernel dump (the',
      `agent's restart path, and what every change did before the engine's change stream), p50 of ${full.length}; it`,
      `writes ${median(fullWrites)} entries too.`,
      '',
      '| target | measured | baseline (same run) | ratio | rerun |',
      '|---|---:|---:|---:|---|',
      `| policy change, ${PODS}-pod agent, call → last map write p50 (≤ 10 ms) | ${ms(p50)} ${p50 <= 10 ? '✓' : '✗'} | ${ms(median(full))} (recompile + dump diff) | ${(p50 / median(full)).toFixed(2)} | \`AGENT_BENCH_ONLY=policy node scripts/bench.mjs agent\` (root) |`,
      '',
    ].join('\n');
    const out = process.env.BENCH_OUT;
    if (out) {
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'agent-policy.md'), md);
    }
    process.stdout.write(`${md}\n`);
  } finally {
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

// AGENT_BENCH_ONLY=policy, =events, =progrun, =api or =cni runs only that part of `pnpm run bench`.
const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === '' || only === 'policy') await main();
