/**
 * One node agent's initial sync of a large cluster, broken down (`node --expose-gc --import tsx
 * bench/profile-scale.ts`, root, /usr/bin/etcd): a local etcd, N_NODES × N_PODS entries written as in the
 * scale benchmark (bench/scale-cluster.ts), then RUNS agent starts (start → every remote pod in its engine
 * and map; RSS after) and UPDATES label changes timed from the watch delivering each to the map written.
 * Add `--cpu-prof` to node's flags for a profile. Environment: N_NODES (1000), N_PODS (50), RUNS (1),
 * UPDATES (100).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalEtcd, stopPid, waitExit } from '../src/sys/processes.js';
import { createFabric, deleteFabric } from '../src/underlay.js';
import { startScaleAgent, timeAgentUpdates, writeCluster } from './scale-cluster.js';

const N_NODES = Number(process.env.N_NODES ?? 1000);
const N_PODS = Number(process.env.N_PODS ?? 50);
const RUNS = Number(process.env.RUNS ?? 1);
const UPDATES = Number(process.env.UPDATES ?? 100);
const now = () => performance.now();
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

const work = mkdtempSync(join(tmpdir(), 'dp-profile-scale-'));
const etcd = await startLocalEtcd(join(work, 'etcd.log'));
const fabric = `dpps${process.pid % 1000}-fab`;
try {
  const prefix = 'bench/scale/';
  let t = now();
  const cluster = await writeCluster(etcd.endpoint, prefix, N_NODES, N_PODS);
  console.log(`wrote ${cluster.entries} entries in ${(now() - t).toFixed(0)} ms`);
  createFabric(fabric);
  for (let run = 0; run < RUNS; run++) {
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    t = now();
    const { node, applied } = await startScaleAgent({
      endpoint: etcd.endpoint,
      etcdPrefix: prefix,
      prefix: `dpps${process.pid % 1000}`,
      stateDir: join(work, `scale${run}`),
      fabric,
    });
    const tStart = now() - t;
    await node.settled();
    const tSync = now() - t;
    const rss = process.memoryUsage().rss;
    console.log(
      `run ${run}: start ${tStart.toFixed(0)} ms, settled ${tSync.toFixed(0)} ms, ${node.agent.remotePodCount} remote pods, ` +
        `rss ${(rss / 2 ** 20).toFixed(0)} MB (+${((rss - rss0) / 2 ** 20).toFixed(0)} MB), load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`,
    );
    const after = await timeAgentUpdates(cluster, node, applied, UPDATES);
    if (UPDATES > 0)
      console.log(
        `  updates: p50 ${pct(after, 50).toFixed(2)} ms, p99 ${pct(after, 99).toFixed(2)} ms, max ${Math.max(...after).toFixed(2)} ms`,
      );
    await node.down();
  }
  await cluster.close();
} finally {
  try {
    deleteFabric(fabric);
  } catch {
    // not made
  }
  stopPid(etcd.pid);
  await waitExit(etcd.pid, 5_000);
  rmSync(etcd.dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
