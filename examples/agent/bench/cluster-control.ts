/**
 * Cluster control plane (issue 22; `node scripts/bench.mjs agent`, alone with AGENT_BENCH_ONLY=cluster): how fast a pod added on one node is known, and delivered to, on
 * another, next to etcd's own put→watch latency in the same run; and one node's initial sync of a large
 * cluster (N_NODES simulated nodes × N_PODS pods written to etcd by the bench). Needs root (namespaces,
 * BPF) and /usr/bin/etcd. Writes $BENCH_OUT/agent-cluster-control.md. Environment: SAMPLES (30), N_NODES (1000),
 * N_PODS (50).
 *
 * Propagation: two node agents in this process (native routing, a fabric bridge); the client pod on node B
 * may only send to pods labelled app=target (egress policy), so a datagram is delivered only once B knows
 * the new pod's identity. Per sample: `addPod` on A (pod, endpoint, identity, ipcache publish), then (a)
 * "applied": B's engine and ipcache map hold the pod (polled every event-loop turn), (b) "delivered": the
 * first UDP probe from B's client answered by the new pod (probes every ~5 ms, so ±5 ms resolution).
 *
 * Scale: N_NODES × N_PODS ipcache entries put by the bench, each simulated node's under its own lease (as
 * nodes publish them: with all 50 000 under one lease, etcd 3.4 takes ~17 ms per put of one of them, which
 * is etcd's, not ours). (1) The mirror alone: one node's ClusterIpcache opens (list + parse) and fills an
 * LPM trie with the agent's ipcache layout; then 200 updates timed from the watch event's arrival in this
 * process (a store wrapper notes it) to the map write. (2) A real node agent (`ClusterNodeAgent`) on the same
 * cluster: start until every remote pod is in its engine and map, then SCALE_UPDATES (100) pod label changes,
 * timed by the agent from its watch delivering the change to the change applied (engine, policy maps, ipcache
 * map; `onRemoteApplied`), the bench checking the map entry has the new identity.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMap } from '@datapath/bpf-maps';
import { ClusterIpcache, EtcdStore, type KvStore, type KvWatchEvent, NodeSession } from '@datapath/kvstore';
import { ClusterNodeAgent } from '../src/cluster-node.js';
import { ipcacheKey, ipcacheValue } from '../src/policy-map.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';
import { startLocalEtcd, stopPid, waitExit } from '../src/sys/processes.js';
import { createFabric, deleteFabric } from '../src/underlay.js';
import { type ScaleCluster, startScaleAgent, timeAgentUpdates, writeCluster } from './scale-cluster.js';
import { SETUP_LARGE, SETUP_SAMPLES, SETUP_SMALL, setupScale } from './setup-scale.js';

const SAMPLES = Number(process.env.SAMPLES ?? 30);
const N_NODES = Number(process.env.N_NODES ?? 1000);
const N_PODS = Number(process.env.N_PODS ?? 50);
const SCALE_UPDATES = Number(process.env.SCALE_UPDATES ?? 100);
const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const f = (x: number) => x.toFixed(x < 10 ? 2 : 1);

async function putWatch(endpoint: string, prefix: string, n: number): Promise<number[]> {
  const a = new EtcdStore({ endpoints: [endpoint], prefix });
  const b = new EtcdStore({ endpoints: [endpoint], prefix });
  const seen = new Map<string, number>();
  const w = await b.watch('pw/', (ev) => {
    if (ev.type === 'put') seen.set(ev.entry.key, now());
  });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = `pw/${i}`;
    const t = now();
    await a.put(key, 'x'.repeat(200));
    while (!seen.has(key)) await new Promise((r) => setImmediate(r));
    out.push(seen.get(key)! - t);
  }
  await w.close();
  await a.close();
  await b.close();
  return out;
}

async function propagation(endpoint: string, work: string) {
  const prefix = `dpb${process.pid % 1000}`;
  const fabric = `${prefix}-fab`;
  const scenario = join(work, 'scenario.json');
  writeFileSync(
    scenario,
    JSON.stringify({
      nodes: ['b1', 'b2'],
      namespaces: { x: {} },
      pods: [{ namespace: 'x', name: 'client', node: 'b2', labels: { app: 'client' }, ip: '10.244.0.10' }],
      policies: [
        {
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'client-out', namespace: 'x' },
          spec: {
            endpointSelector: { matchLabels: { app: 'client' } },
            egress: [{ toEndpoints: [{ matchLabels: { app: 'target' } }] }],
          },
        },
      ],
      probes: [],
    }),
  );
  createFabric(fabric);
  const nodes: ClusterNodeAgent[] = [];
  try {
    const common = { etcd: [endpoint], etcdPrefix: 'bench/prop/', fabric, mode: 'native' as const, scenario };
    for (const [i, name] of ['b1', 'b2'].entries())
      nodes.push(
        await ClusterNodeAgent.start({
          ...common,
          name,
          prefix: `${prefix}${i + 1}`,
          stateDir: join(work, name),
          underlay: `198.18.0.${i + 1}`,
        }),
      );
    const [a, b] = nodes as [ClusterNodeAgent, ClusterNodeAgent];
    await b.settled();
    const client = b.agent.state.pods['x/client']!;
    const applied: number[] = [];
    const delivered: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const key = `x/t${i}`;
      const t0 = now();
      const rec = await a.addPod({ namespace: 'x', name: `t${i}`, labels: { app: 'target' } });
      const l = await startListener(`/run/netns/${rec.netns}`, key, [{ port: 80, protocol: 'UDP' }]);
      let tApplied = 0;
      const poll = (async () => {
        while (!b.agent.remotePods().has(key)) await new Promise((r) => setImmediate(r));
        tApplied = now();
      })();
      for (;;) {
        const [o] = await runProbes(`/run/netns/${client.netns}`, [
          { id: 0, host: rec.ip, port: 80, protocol: 'UDP', timeoutMs: 5 },
        ]);
        if (o!.result === 'connected') break;
        if (now() - t0 > 10_000) throw new Error(`pod ${key} never reached from the other node`);
      }
      delivered.push(now() - t0);
      await poll;
      applied.push(tApplied - t0);
      await l.close();
      await a.removePod(key);
      await b.settled();
    }
    return { applied, delivered };
  } finally {
    for (const n of nodes) await n.down().catch(() => undefined);
    deleteFabric(fabric);
  }
}

/** A store whose watch callbacks note when each event reached this process (before our code sees it). */
function timedStore(store: EtcdStore, arrived: Map<string, number>): KvStore {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'watch')
        return (prefix: string, cb: (ev: KvWatchEvent) => void, opts?: Parameters<KvStore['watch']>[2]) =>
          target.watch(
            prefix,
            (ev) => {
              arrived.set(ev.type === 'put' ? ev.entry.key : ev.key, now());
              cb(ev);
            },
            opts,
          );
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as KvStore;
}

async function scale(endpoint: string) {
  const prefix = 'bench/scale/';
  const cluster = await writeCluster(endpoint, prefix, N_NODES, N_PODS);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const arrived = new Map<string, number>();
  const store = new EtcdStore({ endpoints: [endpoint], prefix });
  const session = await NodeSession.open(timedStore(store, arrived), { node: 'reader' });
  using map = createMap({
    type: 'lpmTrie',
    key: ipcacheKey,
    value: ipcacheValue,
    maxEntries: 131_072,
    name: 'bench_ipc',
  });
  const t0 = now();
  const ipcache = await ClusterIpcache.open(session);
  const tList = now() - t0;
  for (const e of ipcache.entries().values())
    map.set(`${e.ip}/32`, { identity: e.identity, flags: 4, tunnelEndpoint: e.nodeAddress } as never);
  const tSync = now() - t0;
  const rss = process.memoryUsage().rss - rss0;
  // updates through the watch: the event's arrival in this process → the map entry written
  const written = new Map<string, number>();
  ipcache.onChange((c) => {
    if (c.type !== 'upsert') return;
    map.set(`${c.entry.ip}/32`, {
      identity: c.entry.identity,
      flags: 4,
      tunnelEndpoint: c.entry.nodeAddress,
    } as never);
    written.set(c.entry.ip, now());
  });
  const afterWatch: number[] = [];
  const putToWatch: number[] = [];
  for (let i = 0; i < 200; i++) {
    const c = await cluster.change(i);
    while (!written.has(c.ip)) await new Promise((r) => setImmediate(r));
    const at = arrived.get(`${prefix}${c.key}`) ?? arrived.get(c.key)!;
    afterWatch.push(written.get(c.ip)! - at);
    putToWatch.push(at - c.t);
    written.delete(c.ip);
  }
  await ipcache.close();
  await session.close();
  await store.close();
  const agent = await agentScale(endpoint, prefix, cluster);
  await cluster.close();
  return { entries: cluster.entries, tList, tSync, rss, afterWatch, putToWatch, agent };
}

/**
 * The same cluster as seen by a real node agent (`ClusterNodeAgent`, native routing, its own namespaces):
 * start → every remote pod in its policy engine and its ipcache map; then pod label changes, from the
 * agent's watch delivering each to the change applied (the agent's own `onRemoteApplied` timing).
 */
async function agentScale(endpoint: string, prefix: string, cluster: ScaleCluster) {
  const work = mkdtempSync(join(tmpdir(), 'dp-bench-scale-'));
  const fabric = `dpbs${process.pid % 1000}-fab`;
  createFabric(fabric);
  let node: ClusterNodeAgent | undefined;
  try {
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const t0 = now();
    const started = await startScaleAgent({
      endpoint,
      etcdPrefix: prefix,
      prefix: `dpbs${process.pid % 1000}`,
      stateDir: join(work, 'scale'),
      fabric,
    });
    node = started.node;
    await node.settled();
    const tSync = now() - t0;
    const remote = node.agent.remotePodCount;
    const rss = process.memoryUsage().rss - rss0;
    const afterWatch = await timeAgentUpdates(cluster, node, started.applied, SCALE_UPDATES);
    return { tSync, remote, rss, afterWatch };
  } finally {
    await node?.down().catch(() => undefined);
    deleteFabric(fabric);
    rmSync(work, { recursive: true, force: true });
  }
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'dp-bench-cluster-'));
  const etcd = await startLocalEtcd(join(work, 'etcd.log'));
  try {
    const pw = await putWatch(etcd.endpoint, 'bench/pw/', 200);
    const prop = await propagation(etcd.endpoint, work);
    const sc = await scale(etcd.endpoint);
    const su = await setupScale();
    const ratio = pct(su.large, 50) / pct(su.small, 50);
    const lines = [
      '## Reference agent: cluster control plane (etcd, native routing)',
      '',
      `\`AGENT_BENCH_ONLY=cluster node scripts/bench.mjs agent\` (root; SAMPLES=${SAMPLES}, N_NODES=${N_NODES}, N_PODS=${N_PODS}); one local etcd (loopback), node agents in one process.`,
      '',
      '| measure | p50 ms | p99 ms | vs etcd put→watch p50 |',
      '|---|---|---|---|',
      `| etcd put → watch event (baseline) | ${f(pct(pw, 50))} | ${f(pct(pw, 99))} | 1.00x |`,
      `| add pod on A → B's engine and ipcache map hold it | ${f(pct(prop.applied, 50))} | ${f(pct(prop.applied, 99))} | ${f(pct(prop.applied, 50) / pct(pw, 50))}x |`,
      `| add pod on A → first datagram from B's pod delivered (±5 ms) | ${f(pct(prop.delivered, 50))} | ${f(pct(prop.delivered, 99))} | ${f(pct(prop.delivered, 50) / pct(pw, 50))}x |`,
      `| scale (${sc.entries} entries, a lease per node): etcd put → event in this process | ${f(pct(sc.putToWatch, 50))} | ${f(pct(sc.putToWatch, 99))} | ${f(pct(sc.putToWatch, 50) / pct(pw, 50))}x |`,
      `| scale: event in this process → mirror's map entry written (≤ 5 ms p99) | ${f(pct(sc.afterWatch, 50))} | ${f(pct(sc.afterWatch, 99))} ${pct(sc.afterWatch, 99) <= 5 ? '✓' : '✗'} | – |`,
      `| scale: event → a node agent's ipcache map has the new identity (engine, policy, map; ≤ 5 ms p99) | ${f(pct(sc.agent.afterWatch, 50))} | ${f(pct(sc.agent.afterWatch, 99))} ${pct(sc.agent.afterWatch, 99) <= 5 ? '✓' : '✗'} | – |`,
      '',
      `Scale: ${N_NODES} simulated nodes × ${N_PODS} pods = ${sc.entries} ipcache entries, each node's under its own lease. ` +
        `Mirror (\`ClusterIpcache\` + a bare LPM map): list + parse ${f(sc.tList)} ms, list + map fill ${f(sc.tSync)} ms ` +
        `(target ≤ 3000 ms ${sc.tSync <= 3000 ? '✓' : '✗'}), memory +${(sc.rss / 2 ** 20).toFixed(0)} MB RSS (target ≤ 250 MB ${sc.rss <= 250 * 2 ** 20 ? '✓' : '✗'}). ` +
        `A real node agent (\`ClusterNodeAgent\`, native routing): start → all ${sc.agent.remote} remote pods in its engine and map ` +
        `${f(sc.agent.tSync)} ms (target ≤ 3000 ms ${sc.agent.tSync <= 3000 ? '✓' : '✗'}), memory +${(sc.agent.rss / 2 ** 20).toFixed(0)} MB RSS ` +
        `(≤ 250 MB ${sc.agent.rss <= 250 * 2 ** 20 ? '✓' : '✗'}); ${SCALE_UPDATES} label changes. Targets: propagation p50 ≤ 50 ms, p99 ≤ 200 ms; ` +
        'update applied ≤ 5 ms p99 after the watch delivers it.',
      '',
      "| pod setup (one `addAttachedPod` call, the runtime's namespace made before: veth, endpoint, tcx attach, maps, state, policy) | p50 ms | p99 ms | ratio of p50s |",
      '|---|---|---|---|',
      `| on a node with ${SETUP_SMALL} pods (baseline) | ${f(pct(su.small, 50))} | ${f(pct(su.small, 99))} | 1.00x |`,
      `| on a node with ${SETUP_LARGE} pods (≤ 1.2×) | ${f(pct(su.large, 50))} | ${f(pct(su.large, 99))} | ${f(ratio)}x ${ratio <= 1.2 ? '✓' : '✗'} |`,
      '',
      `Pod setup: two agents in this process, one with ${SETUP_SMALL} pods, one with ${SETUP_LARGE}; ${SETUP_SAMPLES} timed calls on each, alternating (the same machine load for both), each pod removed again after its call (the nodes stay at ${SETUP_SMALL} and ${SETUP_LARGE}); a policy selects every pod. Load average ${su.load.map((l) => l.toFixed(1)).join(' → ')}. Stage medians, ${SETUP_SMALL} → ${SETUP_LARGE} pods: ` +
        `${[...new Set(su.stageMedians.map(([k]) => k.split(' ')[1]!))]
          .map(
            (st) =>
              `${st} ${f(su.stageMedians.find(([k]) => k === `small ${st}`)?.[1] ?? Number.NaN)} → ${f(su.stageMedians.find(([k]) => k === `large ${st}`)?.[1] ?? Number.NaN)} ms`,
          )
          .join(', ')}.`,
      '',
    ];
    const text = lines.join('\n');
    console.log(text);
    if (process.env.BENCH_OUT)
      writeFileSync(join(process.env.BENCH_OUT, 'agent-cluster-control.md'), `${text}\n`);
  } finally {
    stopPid(etcd.pid);
    await waitExit(etcd.pid, 5_000);
    rmSync(etcd.dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

// Part of `pnpm run bench` (`node scripts/bench.mjs agent`); AGENT_BENCH_ONLY=cluster runs only this part.
const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === '' || only === 'cluster') await main();
await sleep(0);
