/**
 * Cost of the datapath's events on the agent's forwarding path (`node scripts/bench.mjs agent`, alone
 * with AGENT_BENCH_ONLY=events): TCP throughput (iperf3, 1 and 4 streams) between two pods of an agent
 * whose datapath emits drop and policy-verdict events (trace off, the default) against the same agent
 * built with DATAPATH_EVENTS=0 (every emission compiled out), both with policy on, set up side by side
 * and measured in interleaved rounds as bench/run.ts does (medians of the rounds; a run during which
 * other processes took more than NOISE_MAX of the CPU is repeated once). Writes one Markdown section to
 * $BENCH_OUT/agent-events.md. Environment: IPERF_T (s, default 3), ROUNDS (8), IPERF_AFFINITY (`0,1`),
 * NOISE_MAX (0.1).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPacket, compile, load, openObject, skbContext, TcAct } from '@datapath/loader';
import { openMaps, setConstants } from '../src/datapath.gen.js';
import { GATEWAY, ipv4HostU32 } from '../src/gateway.js';
import { datapathCompileOptions } from '../src/layout.js';
import { toLxcPolicyKey, toPolicyEntry } from '../src/policy-map.js';
import { type Affinity, agentPair, inNs, type Pair, quietIperf } from './pairs.js';
import { median } from './profile-setup.js';

const IPERF_T = Number(process.env.IPERF_T ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const NOISE_MAX = Number(process.env.NOISE_MAX ?? 0.1);
const IPERF_AFFINITY = process.env.IPERF_AFFINITY ?? '0,1';
const [SERVER_CPU, CLIENT_CPU] = IPERF_AFFINITY === 'none' ? [] : IPERF_AFFINITY.split(',');
const cpus: Affinity = { server: SERVER_CPU, client: CLIENT_CPU };

type Mode = 'events' | 'none';

/**
 * from_container's run time per packet on the established-flow fast path (BPF_PROG_TEST_RUN through
 * `program.run`, private maps, median of `samples` × `repeat` runs alternating between the builds):
 * the deterministic counterpart of the throughput rows, which the machine's noise dominates.
 */
async function progCost(samples: number, repeat: number): Promise<Record<Mode, number>> {
  const objects = {
    events: (await compile(datapathCompileOptions())).path,
    none: (await compile(datapathCompileOptions({ events: false }))).path,
  };
  const A = {
    ifindex: 1,
    lxcId: 1,
    flags: 0,
    secId: 1001,
    mac: '02:00:0a:f4:00:0a',
    nodeMac: '02:00:00:00:01:01',
    ip: '10.244.0.10',
  };
  const B = {
    ifindex: 7,
    lxcId: 2,
    flags: 0,
    secId: 1002,
    mac: '02:00:0a:f4:00:0b',
    nodeMac: '02:00:00:00:01:02',
    ip: '10.244.0.11',
  };
  const netU32 = (ip: string) => new DataView(Uint32Array.of(ipv4HostU32(ip)).buffer).getUint32(0, false);
  const key = (lxcId: number, direction: 'ingress' | 'egress', identity: number) =>
    toLxcPolicyKey({ lxcId, key: { direction, identity, protocol: 6, port: 5201, prefixLen: 24 } });
  const allow = toPolicyEntry({ deny: false, prefixLen: 24, proxyPort: 0, authType: 0 });
  const colls = (['events', 'none'] as const).map((m) => {
    const spec = openObject(objects[m], `datapath_${m}`);
    for (const map of Object.values(spec.maps)) map.pinning = 'none';
    setConstants(spec, { gateway_ipv4: ipv4HostU32(GATEWAY) });
    const coll = load(spec);
    const maps = openMaps(coll);
    maps.config.set(0, { policyRev: 1, flags: 0, traceRate: 0, tunnelIfindex: 0, netdevIfindex: 0 });
    maps.lxc.set(A.ifindex, A);
    maps.endpoints.set(netU32(A.ip), A);
    maps.endpoints.set(netU32(B.ip), B);
    maps.policy.set(key(A.lxcId, 'egress', B.secId), allow);
    maps.policy.set(key(B.lxcId, 'ingress', A.secId), allow);
    return { mode: m, coll, prog: coll.program('from_container') };
  });
  try {
    const pkt = buildPacket([
      { kind: 'eth', src: A.mac, dst: A.nodeMac },
      { kind: 'ipv4', src: A.ip, dst: B.ip, ttl: 255, id: 1 },
      { kind: 'tcp', sport: 40000, dport: 5201, flags: { ack: true } },
      { kind: 'payload', bytes: new Uint8Array(1448) },
    ]);
    const ctx = skbContext({ ifindex: A.ifindex });
    const times: Record<Mode, number[]> = { events: [], none: [] };
    for (const c of colls) c.prog.run({ data: pkt, ctx }); // admits the flow: one verdict record
    for (let i = 0; i < samples; i++)
      for (const c of i % 2 ? [...colls].reverse() : colls) {
        const r = c.prog.run({ data: pkt, ctx, repeat });
        if (r.retval !== TcAct.REDIRECT) throw new Error(`from_container returned ${r.retval}`);
        times[c.mode].push(r.durationNs);
      }
    return { events: median(times.events), none: median(times.none) };
  } finally {
    for (const c of colls) c.coll.close();
  }
}
const fmt = (x: number, d = 2) => x.toFixed(d);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the agent events benchmark needs root');
  const pairs: Partial<Record<Mode, Pair>> = {};
  const runs: Record<Mode, { tcp1: number; tcp4: number; foreign: number[] }[]> = { events: [], none: [] };
  let recorded = { events: 0n, lost: 0n };
  try {
    pairs.events = await agentPair(true, 'peer', 'auto', { name: 'dpbev', podCidr: '10.244.10.0/24' });
    pairs.none = await agentPair(true, 'peer', 'auto', {
      name: 'dpbnoev',
      podCidr: '10.244.11.0/24',
      events: false,
    });
    for (const m of ['events', 'none'] as const)
      inNs(pairs[m]!.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', pairs[m]!.ip]);
    const order = ['events', 'none'] as const;
    for (let r = 0; r < ROUNDS; r++) {
      for (const m of r % 2 ? [...order].reverse() : order) {
        const a = await quietIperf(pairs[m]!, 1, IPERF_T, cpus, NOISE_MAX);
        const b = await quietIperf(pairs[m]!, 4, IPERF_T, cpus, NOISE_MAX);
        runs[m].push({ tcp1: a.gbit, tcp4: b.gbit, foreign: [a.foreign, b.foreign] });
      }
      process.stderr.write(
        `round ${r + 1}/${ROUNDS}: 1 stream ${order.map((m) => `${m} ${fmt(runs[m][r]!.tcp1)}`).join(', ')}; 4 streams ${order.map((m) => `${m} ${fmt(runs[m][r]!.tcp4)}`).join(', ')}\n`,
      );
    }
    // What the events-on datapath emitted meanwhile: one verdict per iperf3 connection, no drops.
    const dp = pairs.events.agent!.datapath;
    const ring = dp.openEvents();
    let n = 0n;
    ring.read(() => {
      n++;
    });
    ring.close();
    recorded = { events: n, lost: dp.eventsLostTotal() };
  } finally {
    for (const p of Object.values(pairs)) p.close();
  }
  const med = (m: Mode, k: 'tcp1' | 'tcp4') => median(runs[m].map((f) => f[k]));
  const paired = (k: 'tcp1' | 'tcp4') => {
    const r = runs.events.map((f, i) => f[k] / runs.none[i]![k]);
    return `${fmt(median(r))} (${r.filter((x) => x > 1).length}/${r.length} > 1)`;
  };
  const row = (k: 'tcp1' | 'tcp4', label: string) => {
    const ratio = med('events', k) / med('none', k);
    return `| ${label} (≥ 0.97×) | ${fmt(med('events', k))} Gbit/s | ${fmt(med('none', k))} Gbit/s | ${fmt(ratio)} ${ratio >= 0.97 ? '✓' : '✗'} | ${paired(k)} | \`AGENT_BENCH_ONLY=events node scripts/bench.mjs agent\` (root) |`;
  };
  const cost = await progCost(41, 200);
  const foreign = [...runs.events, ...runs.none].flatMap((f) => f.foreign);
  const md = [
    '## examples/agent: cost of the datapath events',
    '',
    'Two pods of one agent, policy on (enforcement `always`, the iperf3 flow allowed), local delivery',
    '`bpf_redirect_peer`: the datapath emitting drop and policy-verdict records into its ring buffer (trace',
    'off, the default) against the same datapath built with `DATAPATH_EVENTS=0` (every emission compiled',
    `out), side by side, ${ROUNDS} interleaved rounds (the order reversed every other round), iperf3 ${IPERF_T} s per run,`,
    `${SERVER_CPU === undefined ? 'unpinned' : `server on CPU ${SERVER_CPU} and client on CPU ${CLIENT_CPU}`}; medians of the rounds. An established flow emits nothing (a verdict per new`,
    'flow, a drop per dropped packet), so the per-packet cost with events on is one test of the trace',
    `rate in the config value the program already reads. Records emitted by the events datapath during the run: ${recorded.events} (lost ${recorded.lost}).`,
    `Other processes' share of the CPU during the kept runs: median ${fmt(median(foreign) * 100, 1)} %, max ${fmt(Math.max(...foreign) * 100, 1)} %.`,
    '',
    '| target | events on | events compiled out (same run) | ratio (of the medians) | paired: median of per-round ratios (rounds > 1) | rerun |',
    '|---|---:|---:|---:|---:|---|',
    row('tcp1', 'TCP 1 stream, drop + policy-verdict events on vs compiled out'),
    row('tcp4', 'TCP 4 streams, drop + policy-verdict events on vs compiled out'),
    `| from_container run time per packet, established flow (\`program.run\`, median of 41 × 200 runs) | ${cost.events} ns | ${cost.none} ns | ${fmt(cost.events / cost.none)} | – | \`AGENT_BENCH_ONLY=events node scripts/bench.mjs agent\` (root) |`,
    '',
    `Per-round figures (Gbit/s, 1 stream; 4 streams): events on ${runs.events.map((f) => fmt(f.tcp1)).join(' / ')}; ${runs.events.map((f) => fmt(f.tcp4)).join(' / ')} ·`,
    `compiled out ${runs.none.map((f) => fmt(f.tcp1)).join(' / ')}; ${runs.none.map((f) => fmt(f.tcp4)).join(' / ')}.`,
    '',
  ].join('\n');
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent-events.md'), md);
  }
  process.stdout.write(`${md}\n`);
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === 'events') await main();
