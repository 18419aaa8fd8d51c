/**
 * The agent and the event loop (`pnpm exec tsx bench/async.ts`, root; part of `node scripts/bench.mjs agent`,
 * alone with AGENT_BENCH_ONLY=async), every figure against a baseline measured in the same run:
 *   - event-loop lag p99 (a 1 ms timer's lateness) while 32 pods are set up and removed through the async
 *     forms the API and CNI paths use (`addAttachedPodAsync`, `removePodAsync`), vs the sync forms one pod
 *     at a time (the event loop gets a turn between pods only);
 *   - wall time of 32 pod setups in parallel through the async forms vs one after the other with the sync ones;
 *   - one TCP connect probe from a pod to another: a socket made inside the pod by this process
 *     (`Netns.connect`) vs a spawned helper (`ip netns exec POD node -e …`, what the probes spawned before);
 *   - event-loop lag max while the agent's datapath object loads (maps created, every program verified):
 *     `loadAsync` vs `load`.
 * Writes $BENCH_OUT/agent-async.md. Environment: PODS (32), PROBES (20).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { load, loadAsync, openObject } from '@datapath/loader';
import { Netns } from '@datapath/netlink';
import { Agent, type AttachedPodInput } from '../src/agent.js';

const PODS = Number(process.env.PODS ?? 32);
const PROBES = Number(process.env.PROBES ?? 20);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))] ?? Number.NaN;
};
const tick = () => new Promise<void>((r) => setImmediate(r));

/** A 1 ms timer; `stop()` returns each tick's lateness in ms. */
function heartbeat(): { stop(): number[] } {
  const lags: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - 1));
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      return lags;
    },
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/async.ts needs root');
  const load0 = loadavg()[0]!;
  const tag = `as${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), 'agent-async-bench-'));
  const cleanup: (() => void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const agent = await Agent.start(
      { name: tag, prefix: tag, stateDir: join(dir, 'state'), podCidr: '10.244.4.0/24' },
      { namespaces: {}, policies: [], enforcement: 'default' },
    );
    cleanup.unshift(() => agent.destroy());
    const names = Array.from({ length: PODS }, (_, i) => `${tag}-${i}`);
    for (const n of names) execFileSync('ip', ['netns', 'add', n]);
    cleanup.splice(cleanup.length - 1, 0, () => {
      for (const n of names) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    });
    const pods = (round: number): AttachedPodInput[] =>
      names.map((n, i) => ({
        namespace: 'bench',
        name: `r${round}p${i}`,
        labels: { app: `a${i % 4}` },
        attachment: { containerId: `r${round}c${i}`, ifname: 'eth0', netnsPath: `/run/netns/${n}` },
      }));

    // A warm-up pod through each form first (code paths compiled and loaded), not measured.
    const warm: AttachedPodInput = { ...pods(9)[0]!, name: 'warm' };
    agent.addAttachedPod(warm);
    agent.removePod('bench/warm');
    await agent.addAttachedPodAsync(warm);
    await agent.removePodAsync('bench/warm');

    // Two rounds of each, alternating, so a load change hits both forms alike.
    const lag = { sync: [] as number[], async: [] as number[] };
    const wall = { sync: [] as number[], async: [] as number[] };
    for (let round = 0; round < 4; round++) {
      const form = round % 2 === 0 ? 'sync' : 'async';
      const hb = heartbeat();
      const t0 = performance.now();
      if (form === 'sync') {
        for (const p of pods(round)) {
          agent.addAttachedPod(p);
          await tick();
        }
      } else {
        await Promise.all(pods(round).map((p) => agent.addAttachedPodAsync(p)));
      }
      wall[form].push(performance.now() - t0);
      for (const p of pods(round)) {
        const key = `${p.namespace}/${p.name}`;
        if (form === 'sync') {
          agent.removePod(key);
          await tick();
        } else await agent.removePodAsync(key);
      }
      lag[form].push(...hb.stop());
    }

    // Probe: pod 0 connects to a listener in pod 1.
    const [a, b] = await agent.addPodsAsync([
      { namespace: 'bench', name: 'client', labels: { app: 'client' } },
      { namespace: 'bench', name: 'server', labels: { app: 'server' } },
    ]);
    const nsA = Netns.open({ path: `/run/netns/${a!.netns}` });
    const nsB = Netns.open({ path: `/run/netns/${b!.netns}` });
    cleanup.unshift(() => {
      nsA.close();
      nsB.close();
    });
    const server = nsB.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(8080, b!.ip, () => r()));
    cleanup.unshift(() => server.close());
    const inproc: number[] = [];
    const spawned: number[] = [];
    const script = `require('net').connect(8080, '${b!.ip}').on('connect', function () { this.destroy(); }).on('error', () => process.exit(1))`;
    for (let i = 0; i < PROBES; i++) {
      let t = performance.now();
      await new Promise<void>((resolve, reject) => {
        const s = nsA.connect({ host: b!.ip, port: 8080 }, () => {
          s.destroy();
          resolve();
        });
        s.once('error', reject);
      });
      inproc.push(performance.now() - t);
      t = performance.now();
      execFileSync('ip', ['netns', 'exec', a!.netns, process.execPath, '-e', script], { stdio: 'ignore' });
      spawned.push(performance.now() - t);
    }

    // Program load: the agent's own object (maps unpinned, so nothing is shared with the running agent).
    const loadLag = { sync: [] as number[], async: [] as number[] };
    for (let round = 0; round < 4; round++) {
      const form = round % 2 === 0 ? 'sync' : 'async';
      const spec = openObject(agent.datapath.objectPath, 'datapath');
      for (const m of Object.values(spec.maps)) m.pinning = 'none';
      const hb = heartbeat();
      await tick();
      const coll = form === 'sync' ? load(spec) : await loadAsync(spec);
      await new Promise((r) => setTimeout(r, 2));
      loadLag[form].push(Math.max(...hb.stop()));
      coll.close();
    }

    const f = (x: number) => `${x.toFixed(2)} ms`;
    const r = (x: number) => `${x.toFixed(2)}×`;
    const cmd = '`AGENT_BENCH_ONLY=async node scripts/bench.mjs agent` (root)';
    const lagS = pct(lag.sync, 0.99);
    const lagA = pct(lag.async, 0.99);
    const wallS = pct(wall.sync, 0.5);
    const wallA = pct(wall.async, 0.5);
    const pS = pct(spawned, 0.5);
    const pI = pct(inproc, 0.5);
    const ldS = pct(loadLag.sync, 0.5);
    const ldA = pct(loadLag.async, 0.5);
    const md = [
      '## examples/agent: the event loop while pods are set up',
      '',
      `Load average (1 min) ${load0.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after, on this 2-core VM shared with other work. ` +
        `${PODS} pods with namespaces a runtime made (the CNI/API path: address, veth, two tcx attaches, identity, ` +
        'policy, state), set up and removed twice per form in alternating rounds after one warm-up pod per form. Sync: `addAttachedPod` / `removePod` ' +
        'one pod at a time, the event loop getting a turn between pods. Async: `addAttachedPodAsync` for all pods ' +
        'at once, then `removePodAsync` one at a time (the forms `agent serve` uses). Lag: lateness of a 1 ms ' +
        `timer over the whole rounds (${lag.sync.length} and ${lag.async.length} ticks). Probe: one TCP connect ` +
        `from a pod to another, p50 of ${PROBES}.`,
      '',
      '| target | measured | baseline (same run) | ratio | rerun |',
      '|---|---:|---:|---:|---|',
      `| event-loop lag p99 during pod setup and removal, async forms (≤ 2 ms) | ${f(lagA)} ${lagA <= 2 ? '✓' : '✗'} | ${f(lagS)} (sync forms) | ${r(lagA / lagS)} | ${cmd} |`,
      `| ${PODS} pods set up in parallel (async) vs one after the other (sync), wall time p50 (no target) | ${f(wallA)} | ${f(wallS)} (sequential sync) | ${r(wallA / wallS)} | ${cmd} |`,
      `| TCP connect probe between two pods, in-process socket (\`Netns.connect\`), p50 (≥ 10× faster) | ${f(pI)} ${pS / pI >= 10 ? '✓' : '✗'} | ${f(pS)} (spawned \`ip netns exec … node\`) | ${r(pI / pS)} | ${cmd} |`,
      `| event-loop lag max while the datapath object loads, \`loadAsync\` (p50 of 2) (no target) | ${f(ldA)} | ${f(ldS)} (\`load\`) | ${r(ldA / ldS)} | ${cmd} |`,
      '',
    ].join('\n');
    const out = process.env.BENCH_OUT;
    if (out) {
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'agent-async.md'), md);
    }
    process.stdout.write(`${md}\n`);
  } finally {
    for (const c of cleanup) {
      try {
        c();
      } catch (err) {
        process.stderr.write(`cleanup: ${(err as Error).message}\n`);
      }
    }
  }
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === 'async') await main();
