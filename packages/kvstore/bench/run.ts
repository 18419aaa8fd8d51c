// Benchmark: node-CIDR and identity allocations/s through one local etcd with 1, 4 and 16 concurrent
// clients (each its own EtcdStore, i.e. its own gRPC connection, as separate agents would have), and
// watch propagation latency. Baselines measured in the same run against the same etcd: raw etcd puts/s at
// the same concurrency (the floor cost of one write round trip) and one put's round-trip latency.
// Writes one Markdown section to $BENCH_OUT/kvstore.md. No privileges needed.
// Run: pnpm --filter @datapath/kvstore bench   (or `node scripts/bench.mjs kvstore` from the repo root)
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd } from '../../testutils/src/etcd.js';
import {
  EtcdStore,
  MemoryStore,
  NodeSession,
  StoreClusterPool,
  StoreIdentityAllocator,
} from '../src/index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CLIENTS = [1, 4, 16];
const WATCH_EVENTS = Number(process.env.BENCH_WATCH_EVENTS ?? 400);
const POOL = { ipv4: { cidrs: ['10.0.0.0/8'], nodeMaskSize: 24 } }; // 65 536 node blocks

const etcd = await startEtcd();
const stores: EtcdStore[] = [];
const client = (prefix: string) => {
  const s = new EtcdStore({ endpoints: [etcd.endpoint], prefix });
  stores.push(s);
  return s;
};
const fresh = () => `bench-${randomBytes(4).toString('hex')}/`;

/** Runs `op(i)` in `n` concurrent loops for SECONDS; returns completed ops per second. */
async function rate(n: number, op: (lane: number, i: number) => Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, lane) => {
      for (let i = 0; performance.now() < end; i++) {
        await op(lane, i);
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface Row {
  what: string;
  target: string;
  measured: string;
  baseline: string;
  ratio: number;
  ok: boolean;
}
const rows: Row[] = [];

try {
  for (const n of CLIENTS) {
    // baseline: raw puts through the same client type, each client also watching the prefix (as every
    // allocator replica watches its table), so the ratio isolates what the allocators add
    const rawPrefix = fresh();
    const raw = Array.from({ length: n }, () => client(rawPrefix));
    for (const r of raw) await r.watch('k/', () => undefined);
    const puts = await rate(n, (lane, i) => raw[lane]!.put(`k/${lane}/${i}`, 'v'));

    // node CIDRs: every client is a pool replica allocating for its own stream of new nodes
    const poolPrefix = fresh();
    const pools = await Promise.all(
      Array.from({ length: n }, () => StoreClusterPool.open(client(poolPrefix), POOL)),
    );
    const cidrs = await rate(n, (lane, i) => pools[lane]!.allocate(`n${lane}-${i}`));
    const blocks = (await pools[0]!.store.list('ipam/default/cidrs/')).entries;
    const owners = new Set(blocks.map((e) => e.value));
    if (owners.size !== blocks.length) throw new Error('duplicate node CIDR owner');

    // identities: every client is a node creating identities for new label sets (half of them shared
    // with the next client, so creates race with other nodes' creates and references)
    const idPrefix = fresh();
    const allocs = await Promise.all(
      Array.from({ length: n }, async (_, lane) =>
        StoreIdentityAllocator.open(
          await NodeSession.open(client(idPrefix), { node: `node-${lane}`, ttlSeconds: 30 }),
        ),
      ),
    );
    const idRate = await rate(n, (lane, i) =>
      allocs[lane]!.allocate([`k8s:app=${i % 2 === 0 ? `shared-${i}` : `own-${lane}-${i}`}`]),
    );
    for (const a of allocs) {
      await a.close();
      await a.session.close();
    }
    for (const p of pools) await p.close();

    rows.push({
      what: `node CIDR allocations/s, ${n} client${n > 1 ? 's' : ''}`,
      target: '≥ 0.25× raw puts',
      measured: cidrs.toFixed(0),
      baseline: `${puts.toFixed(0)} puts/s (${n} watching)`,
      ratio: cidrs / puts,
      ok: cidrs / puts >= 0.25,
    });
    rows.push({
      what: `identity allocations/s, ${n} client${n > 1 ? 's' : ''}`,
      target: '≥ 0.25× raw puts',
      measured: idRate.toFixed(0),
      baseline: `${puts.toFixed(0)} puts/s (${n} watching)`,
      ratio: idRate / puts,
      ok: idRate / puts >= 0.25,
    });
    console.log(
      `clients=${n}: puts/s ${puts.toFixed(0)}  cidr/s ${cidrs.toFixed(0)}  identity/s ${idRate.toFixed(0)}`,
    );
  }

  // watch propagation: one client writes, another (its own connection) watches; latency is from the
  // start of the put to the event's arrival. Baseline: the put's own round trip.
  const wp = fresh();
  const writer = client(wp);
  const watcher = client(wp);
  const sent = new Map<string, number>();
  const lat: number[] = [];
  const rtt: number[] = [];
  let got = 0;
  await watcher.watch('w/', (ev) => {
    if (ev.type !== 'put') return;
    const t = sent.get(ev.entry.key);
    if (t !== undefined) lat.push(performance.now() - t);
    got++;
  });
  for (let i = 0; i < WATCH_EVENTS; i++) {
    const key = `w/${i}`;
    const t = performance.now();
    sent.set(key, t);
    await writer.put(key, 'v');
    rtt.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 2));
  }
  while (got < WATCH_EVENTS) await new Promise((r) => setTimeout(r, 10));
  const p50 = pct(lat, 50);
  const p99 = pct(lat, 99);
  const rtt50 = pct(rtt, 50);
  const rtt99 = pct(rtt, 99);
  rows.push({
    what: 'watch propagation latency p50 (ms)',
    target: '≤ 3× put round trip p50',
    measured: p50.toFixed(2),
    baseline: `${rtt50.toFixed(2)} ms put RTT p50`,
    ratio: p50 / rtt50,
    ok: p50 / rtt50 <= 3,
  });
  rows.push({
    what: 'watch propagation latency p99 (ms)',
    target: '≤ 3× put round trip p99',
    measured: p99.toFixed(2),
    baseline: `${rtt99.toFixed(2)} ms put RTT p99`,
    ratio: p99 / rtt99,
    ok: p99 / rtt99 <= 3,
  });

  // reference point: the same allocators on the in-memory store (no network, no fsync)
  const mem = new MemoryStore();
  const memPool = await StoreClusterPool.open(mem, POOL);
  const memCidrs = await rate(1, (_, i) => memPool.allocate(`m${i}`));
  const cidr1 = rows.find((r) => r.what.startsWith('node CIDR allocations/s, 1 '))!;
  rows.push({
    what: 'node CIDR allocations/s, MemoryStore (single node default)',
    target: 'reference only',
    measured: memCidrs.toFixed(0),
    baseline: `${cidr1.measured} /s on etcd, 1 client`,
    ratio: memCidrs / Number(cidr1.measured),
    ok: true,
  });
  await memPool.close();
  await mem.close();
} finally {
  for (const s of stores) await s.close().catch(() => undefined);
  await etcd.stop();
}

const table = [
  '| measurement | target | measured | baseline (same run) | ratio | met |',
  '| --- | --- | ---: | --- | ---: | :---: |',
  ...rows.map(
    (r) =>
      `| ${r.what} | ${r.target} | ${r.measured} | ${r.baseline} | ${r.ratio.toFixed(2)}× | ${r.ok ? 'yes' : 'no'} |`,
  ),
].join('\n');
const section = `## kvstore: cluster-wide allocation on etcd

One local etcd ${'3.4'} (\`/usr/bin/etcd\`, loopback, temporary data dir, default fsync) started by the bench.
"Clients" are separate \`EtcdStore\` connections in one Node process, each a pool replica or a node
allocating new node CIDRs (a /8 cut into /24s) or new identities for ${SECONDS} s; every client also
watches its table, as every node does. Baseline: raw etcd puts/s at the same concurrency with the same
number of watchers, and one put's round trip for the watch latency. A node CIDR allocation is one
compare-and-swap transaction writing two keys, plus retries when replicas race for a block. An identity
creation writes three keys in one transaction; half the label sets are shared between clients, so
creations race with other nodes' creations. etcd and every client share the machine's 2 vCPUs.

${table}

Rerun: \`pnpm --filter @datapath/kvstore bench\` (or \`node scripts/bench.mjs kvstore\`); \`BENCH_SECONDS\`,
\`BENCH_WATCH_EVENTS\` tune the run.
`;
const out = process.env.BENCH_OUT;
if (out) {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'kvstore.md'), section);
}
console.log(section);
process.exit(0);
