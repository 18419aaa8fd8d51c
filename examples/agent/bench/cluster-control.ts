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
 * Scale: N_NODES × N_PODS ipcache entries put by the bench under one lease; one node's ClusterIpcache opens
 * (list + parse) and fills an LPM trie with the agent's ipcache layout (65 536 entries; the agent's own map
 * holds 16 384); then 200 updates: put → map write (the watch path) next to put → watch.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMap } from '@datapath/bpf-maps';
import { ClusterIpcache, EtcdStore, NodeSession } from '@datapath/kvstore';
import { ClusterNodeAgent } from '../src/cluster-node.js';
import { ipcacheKey, ipcacheValue } from '../src/policy-map.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';
import { startLocalEtcd, stopPid, waitExit } from '../src/sys/processes.js';
import { createFabric, deleteFabric } from '../src/underlay.js';

const SAMPLES = Number(process.env.SAMPLES ?? 30);
const N_NODES = Number(process.env.N_NODES ?? 1000);
const N_PODS = Number(process.env.N_PODS ?? 50);
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

async function scale(endpoint: string) {
  const prefix = 'bench/scale/';
  const writer = new EtcdStore({ endpoints: [endpoint], prefix });
  const lease = await writer.grantLease(600);
  const entries: { key: string; value: string }[] = [];
  for (let n = 0; n < N_NODES; n++)
    for (let p = 0; p < N_PODS; p++) {
      const ip = `10.${64 + (n >> 8)}.${n & 255}.${p + 2}`;
      entries.push({
        key: `ipcache/${ip}`,
        value: JSON.stringify({
          ip,
          identity: 1000 + ((n * N_PODS + p) % 5000),
          node: `sim${n}`,
          nodeAddress: `198.19.${n >> 8}.${n & 255}`,
          pod: { namespace: `ns${p % 10}`, name: `pod-${n}-${p}`, labels: { app: `a${p % 20}` } },
        }),
      });
    }
  for (let i = 0; i < entries.length; i += 128)
    await writer.txn(
      [],
      entries
        .slice(i, i + 128)
        .map((e) => ({ type: 'put' as const, key: e.key, value: e.value, lease: lease.id })),
    );
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const store = new EtcdStore({ endpoints: [endpoint], prefix });
  const session = await NodeSession.open(store, { node: 'reader' });
  using map = createMap({
    type: 'lpmTrie',
    key: ipcacheKey,
    value: ipcacheValue,
    maxEntries: 65_536,
    name: 'bench_ipc',
  });
  const t0 = now();
  const ipcache = await ClusterIpcache.open(session);
  const tList = now() - t0;
  for (const e of ipcache.entries().values())
    map.set(`${e.ip}/32`, { identity: e.identity, flags: 4, tunnelEndpoint: e.nodeAddress } as never);
  const tSync = now() - t0;
  const rss = process.memoryUsage().rss - rss0;
  // updates through the watch: put → map written, next to put → watch event
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
  const apply: number[] = [];
  for (let i = 0; i < 200; i++) {
    const e = entries[(i * 9973) % entries.length]!;
    const v = JSON.parse(e.value);
    v.identity = 7000 + i;
    const ip = v.ip as string;
    written.delete(ip);
    const t = now();
    await writer.put(e.key, JSON.stringify(v), { lease: lease.id });
    while (!written.has(ip)) await new Promise((r) => setImmediate(r));
    apply.push(written.get(ip)! - t);
  }
  await ipcache.close();
  await session.close();
  await store.close();
  await lease.revoke();
  await writer.close();
  return { entries: entries.length, tList, tSync, rss, apply };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'dp-bench-cluster-'));
  const etcd = await startLocalEtcd(join(work, 'etcd.log'));
  try {
    const pw = await putWatch(etcd.endpoint, 'bench/pw/', 200);
    const prop = await propagation(etcd.endpoint, work);
    const sc = await scale(etcd.endpoint);
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
      `| scale: etcd put → map entry written by the mirror (${sc.entries} entries held) | ${f(pct(sc.apply, 50))} | ${f(pct(sc.apply, 99))} | ${f(pct(sc.apply, 50) / pct(pw, 50))}x |`,
      '',
      `Scale: ${N_NODES} simulated nodes × ${N_PODS} pods = ${sc.entries} ipcache entries: list + parse ${f(sc.tList)} ms, ` +
        `list + ipcache map fill ${f(sc.tSync)} ms (target ≤ 3000 ms), memory +${(sc.rss / 2 ** 20).toFixed(0)} MB RSS ` +
        '(target ≤ 250 MB). Targets: propagation p50 ≤ 50 ms, p99 ≤ 200 ms; update applied ≤ 5 ms p99 after the watch ' +
        '(the last row minus the baseline row).',
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
