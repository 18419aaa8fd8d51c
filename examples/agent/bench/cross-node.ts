/**
 * Cross-node datapath benchmark (`node scripts/bench.mjs agent`, alone with AGENT_BENCH_ONLY=crossnode): TCP
 * throughput (iperf3, 1 and 4 streams) and ping RTT p50 from a pod on node 1 to a pod on node 2, two
 * nodes as namespaces on a fabric bridge (test/helpers/two-nodes.ts, no etcd: the ipcache is filled
 * through the cluster writer), in six setups built side by side and measured in interleaved rounds:
 *   - tunnel mode, policy on (default deny; the server admits the client's identity, the client may send
 *     to the server's) and policy off (allow-all entries);
 *   - a kernel-only overlay built the way flannel's VXLAN backend does it: per node a bridge `cni0` for
 *     the pods, a VXLAN device `flannel.1` (VNI 1, nolearning, port 8472, MTU 1450), and towards the
 *     other node a permanent neighbour, a permanent FDB entry and an onlink route;
 *   - native mode with host routing (from_container → underlay device, next hop from the ipcache; from_netdev →
 *     the pod), policy
 *     on and off;
 *   - plain routed veths between the same kind of namespaces (no BPF, no bridge: pod CIDR routes via the
 *     other node's underlay address).
 * Paired rounds: each mode's three setups (baseline, ours with policy, ours without) run back to back, in
 * reverse order every other round; with 4 streams each setup runs twice in a round, in a mirrored order
 * (ABC CBA), and its round figure is the mean of the two; a target is the median of the per-round ratios.
 * Before the first round every setup runs once unmeasured (warm-up). A group of runs during
 * which other processes took more than NOISE_MAX of the CPU is measured once more while the retry budget
 * lasts (the quieter attempt is kept). After the rounds: the programs' per-packet cost (bpf_stats) and the
 * GSO packet size on both tunnels. Everything lives in namespaces named `dpbc…`. Writes
 * $BENCH_OUT/agent-crossnode.md. Standalone about 3–4 minutes.
 * Environment: IPERF_T (whole seconds, default 1), ROUNDS (7), PINGS (200), IPERF_AFFINITY (`0,1`), IPERF_NICE
 * (-10; `none`: not set), NOISE_MAX (0.1), RETRY_BUDGET_S (25), MAX_S (230: no round that would end later than
 * that, at least 3 rounds).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { VETH_QUEUES } from '../src/agent.js';
import { type TwoNodes, twoNodes } from '../test/helpers/two-nodes.js';
import { type Affinity, groupIperf, inNs, iperf, iperfRun, type Pair, sh } from './pairs.js';
import { median } from './profile-setup.js';

const IPERF_T = Number(process.env.IPERF_T ?? 1);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const RETRY_BUDGET_S = Number(process.env.RETRY_BUDGET_S ?? 25);
/** Rounds stop (after at least 3) where the next would end after this many seconds from the start. */
const MAX_S = Number(process.env.MAX_S ?? 230);
const PINGS = Number(process.env.PINGS ?? 200);
const NOISE_MAX = Number(process.env.NOISE_MAX ?? 0.1);
const IPERF_AFFINITY = process.env.IPERF_AFFINITY ?? '0,1';
const [SERVER_CPU, CLIENT_CPU] = IPERF_AFFINITY === 'none' ? [] : IPERF_AFFINITY.split(',');
/** Niceness of the iperf3 processes (`none`: the bench's own). */
const IPERF_NICE = process.env.IPERF_NICE === 'none' ? undefined : Number(process.env.IPERF_NICE ?? -10);
const cpus: Affinity = { server: SERVER_CPU, client: CLIENT_CPU, nice: IPERF_NICE };
const RERUN = '`AGENT_BENCH_ONLY=crossnode node scripts/bench.mjs agent` (root)';

type Setup = 'tunnelOn' | 'tunnelOff' | 'flannel' | 'nativeOn' | 'nativeOff' | 'routed';
const SETUPS: Setup[] = ['tunnelOn', 'tunnelOff', 'flannel', 'nativeOn', 'nativeOff', 'routed'];
const fmt = (x: number, d = 2) => x.toFixed(d);
const lowerIsBetter = (k: string) => k === 'rtt' || k === 'cpu1' || k === 'cpu4';
const quantile = (xs: number[], q: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)] ?? 0;

/** Client pod on node 1, server pod on node 2, through the agent's datapath in `mode`. */
export async function agentCluster(mode: 'tunnel' | 'native', policyOn: boolean, tag: string): Promise<Pair> {
  const c: TwoNodes = await twoNodes(mode, { prefix: `dpbc${tag}`, events: true });
  try {
    const client = c.addPod(0, 1001);
    const server = c.addPod(1, 2001);
    if (policyOn) {
      const l3 = (direction: 'ingress' | 'egress', identity: number) => ({
        direction,
        identity,
        protocol: 0,
        port: 0,
        prefixLen: 0,
      });
      c.policy(0, client, l3('egress', server.secId));
      c.policy(1, server, l3('ingress', client.secId));
      // default deny holds for everything else: one entry each, as the policy engine would write
    } else {
      c.allowAll(0, client);
      c.allowAll(1, server);
    }
    return {
      name: tag,
      client: client.netns.name,
      server: server.netns.name,
      ip: server.ip,
      close: () => c.close(),
    };
  } catch (err) {
    c.close();
    throw err;
  }
}

/**
 * Kernel-only baselines on the same fabric: `flannel` (bridge + VXLAN + neighbour/FDB/route, as flannel's
 * VXLAN backend programs the kernel) or `routed` (pod veths routed by each node, pod CIDRs via the other
 * node's underlay address).
 */
export function kernelCluster(kind: 'flannel' | 'routed', tag: string): Pair {
  const p = `dpbc${tag}`;
  const fabric = `${p}f`;
  const nodes = [`${p}n1`, `${p}n2`];
  const pods = [`${p}q1`, `${p}q2`];
  const close = () => {
    for (const ns of [...pods, ...nodes, fabric]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // not created
      }
    }
  };
  const ip = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);
  try {
    sh('ip', ['netns', 'add', fabric]);
    ip(fabric, 'link', 'add', 'br0', 'type', 'bridge');
    ip(fabric, 'link', 'set', 'br0', 'up');
    const vtepMac = (i: number) => `02:00:00:00:0f:0${i}`;
    for (const i of [1, 2]) {
      const node = nodes[i - 1]!;
      const pod = pods[i - 1]!;
      sh('ip', ['netns', 'add', node]);
      sh('ip', ['netns', 'add', pod]);
      for (const ns of [node, pod]) {
        ip(ns, 'link', 'set', 'lo', 'up');
        inNs(ns, 'sysctl', [
          '-qw',
          'net.ipv6.conf.all.disable_ipv6=1',
          'net.ipv6.conf.default.disable_ipv6=1',
        ]);
      }
      inNs(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0']);
      ip(fabric, 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node);
      ip(fabric, 'link', 'set', `u${i}`, 'master', 'br0', 'up');
      ip(node, 'addr', 'add', `198.18.0.${i}/24`, 'dev', 'eth0');
      ip(node, 'link', 'set', 'eth0', 'up');
      const mtu = kind === 'flannel' ? '1450' : '1500';
      // pod veths with the agent's queue count (the kernel's default is one per possible CPU)
      const q = ['numtxqueues', String(VETH_QUEUES), 'numrxqueues', String(VETH_QUEUES)];
      ip(
        node,
        'link',
        'add',
        'veth0',
        'mtu',
        mtu,
        ...q,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        ...q,
        'netns',
        pod,
      );
      ip(pod, 'addr', 'add', `10.244.${i}.10/24`, 'dev', 'eth0');
      ip(pod, 'link', 'set', 'eth0', 'up');
      if (kind === 'flannel') {
        ip(node, 'link', 'add', 'cni0', 'type', 'bridge');
        ip(node, 'addr', 'add', `10.244.${i}.1/24`, 'dev', 'cni0');
        ip(node, 'link', 'set', 'cni0', 'mtu', '1450', 'up');
        ip(node, 'link', 'set', 'veth0', 'master', 'cni0', 'up');
        ip(
          node,
          'link',
          'add',
          'flannel.1',
          'address',
          vtepMac(i),
          'mtu',
          '1450',
          'type',
          'vxlan',
          'id',
          '1',
          'local',
          `198.18.0.${i}`,
          'dev',
          'eth0',
          'dstport',
          '8472',
          'nolearning',
        );
        ip(node, 'addr', 'add', `10.244.${i}.0/32`, 'dev', 'flannel.1');
        ip(node, 'link', 'set', 'flannel.1', 'up');
      } else {
        ip(node, 'addr', 'add', `10.244.${i}.1/24`, 'dev', 'veth0');
        ip(node, 'link', 'set', 'veth0', 'up');
      }
      ip(pod, 'route', 'add', 'default', 'via', `10.244.${i}.1`);
    }
    for (const i of [1, 2]) {
      const node = nodes[i - 1]!;
      const o = 3 - i;
      if (kind === 'flannel') {
        ip(
          node,
          'neigh',
          'replace',
          `10.244.${o}.0`,
          'lladdr',
          vtepMac(o),
          'dev',
          'flannel.1',
          'nud',
          'permanent',
        );
        sh('bridge', [
          '-n',
          node,
          'fdb',
          'replace',
          vtepMac(o),
          'dev',
          'flannel.1',
          'dst',
          `198.18.0.${o}`,
          'self',
          'permanent',
        ]);
        ip(
          node,
          'route',
          'replace',
          `10.244.${o}.0/24`,
          'via',
          `10.244.${o}.0`,
          'dev',
          'flannel.1',
          'onlink',
        );
      } else {
        ip(node, 'route', 'replace', `10.244.${o}.0/24`, 'via', `198.18.0.${o}`);
      }
    }
    return { name: tag, client: pods[0]!, server: pods[1]!, ip: '10.244.2.10', close };
  } catch (err) {
    close();
    throw err;
  }
}

function pingP50(p: Pair): number {
  // on the client's CPU, as iperf's client: an unpinned ping wanders between the CPUs other work loads
  // and at iperf3's niceness
  const ping = [
    ...(IPERF_NICE === undefined ? [] : ['nice', '-n', String(IPERF_NICE)]),
    ...(CLIENT_CPU === undefined ? [] : ['taskset', '-c', CLIENT_CPU]),
    'ping',
    '-c',
    String(PINGS),
    '-i',
    '0.002',
    p.ip,
  ];
  const full = inNs(p.client, ping[0]!, ping.slice(1));
  const times = [...full.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (times.length < PINGS * 0.9) throw new Error(`${p.name}: only ${times.length}/${PINGS} ping replies`);
  return median(times);
}

/** Each target compares the middle setup of a group with its neighbours; a group is measured back to back. */
const GROUPS: [Setup, Setup, Setup][] = [
  ['flannel', 'tunnelOn', 'tunnelOff'],
  ['routed', 'nativeOn', 'nativeOff'],
];

interface Round {
  tcp1: number;
  tcp4: number;
  rtt: number;
  /** CPU seconds per GB received (iperf3 client + server), 1 and 4 streams. */
  cpu1: number;
  cpu4: number;
}

/** Per-packet cost of our programs on the path (kernel.bpf_stats_enabled during one 1-stream run). */
async function programCost(p: Pair): Promise<string> {
  const progs = () =>
    new Map(
      (
        JSON.parse(sh('bpftool', ['prog', 'show', '-j'])) as {
          id: number;
          name?: string;
          run_cnt?: number;
          run_time_ns?: number;
        }[]
      ).map((x) => [x.id, x]),
    );
  const prev = sh('sysctl', ['-n', 'kernel.bpf_stats_enabled']).trim();
  sh('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  let before: ReturnType<typeof progs>;
  let after: ReturnType<typeof progs>;
  let seconds: number;
  try {
    before = progs();
    const t0 = performance.now();
    await iperf(p, 1, IPERF_T, cpus);
    seconds = (performance.now() - t0) / 1000;
    after = progs();
  } finally {
    sh('sysctl', ['-qw', `kernel.bpf_stats_enabled=${prev}`]);
  }
  const out: string[] = [];
  let total = 0;
  for (const [id, x] of after) {
    const b = before.get(id);
    const n = (x.run_cnt ?? 0) - (b?.run_cnt ?? 0);
    if (b === undefined || n < 100) continue;
    const ns = (x.run_time_ns ?? 0) - (b.run_time_ns ?? 0);
    total += ns;
    out.push(`${x.name} ${fmt(ns / n, 0)} ns × ${n}`);
  }
  return `${out.join(', ')}; all together ${fmt((total / 1e9 / seconds) * 100, 2)} % of one CPU over the run`;
}

/** Average bytes per packet the client node's underlay device sent during one run (GSO super-packets or not). */
async function gsoSize(p: Pair, node: string): Promise<number> {
  const tx = () =>
    (
      JSON.parse(sh('ip', ['-n', node, '-s', '-j', 'link', 'show', 'eth0'])) as {
        stats64: { tx: { packets: number; bytes: number } };
      }[]
    )[0]!.stats64.tx;
  const a = tx();
  await iperf(p, 1, 1, cpus);
  const b = tx();
  return (b.bytes - a.bytes) / Math.max(1, b.packets - a.packets);
}

/**
 * Segments the server pod's sockets appended to the segment before them in the receive queue (TcpExt
 * TCPRcvCoalesce of its namespace) per GB received, over one 4-stream run: a socket can only append to a
 * segment that no longer shares its head with the sender's retransmit copy, so this counts how often the
 * path delivered a TCP sender's clone unshared (as a router does) where it mattered.
 */
async function mergesPerGB(p: Pair): Promise<number> {
  const merges = () => {
    const [keys, values] = inNs(p.server, 'cat', ['/proc/net/netstat'])
      .split('\n')
      .filter((l) => l.startsWith('TcpExt:'))
      .map((l) => l.trim().split(/\s+/));
    return Number(values?.[keys?.indexOf('TCPRcvCoalesce') ?? -1] ?? Number.NaN);
  };
  const a = merges();
  const r = await iperfRun(p, 4, 1, cpus);
  return (merges() - a) / r.gb;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the cluster benchmark needs root');
  const pairs: Partial<Record<Setup, Pair>> = {};
  const runs = Object.fromEntries(SETUPS.map((s) => [s, [] as Round[]])) as Record<Setup, Round[]>;
  const foreign: number[] = [];
  let retries = 0;
  let retrySpent = 0;
  let rounds = 0;
  const loadBefore = loadavg();
  const started = performance.now();
  let costs: Record<'tunnelOn' | 'tunnelOff' | 'nativeOn' | 'nativeOff', string> | undefined;
  let gso: Record<'tunnelOn' | 'flannel', number> | undefined;
  let merges: Record<'nativeOn' | 'routed' | 'tunnelOn' | 'flannel', number> | undefined;
  try {
    pairs.tunnelOn = await agentCluster('tunnel', true, 'ton');
    pairs.tunnelOff = await agentCluster('tunnel', false, 'tof');
    pairs.flannel = kernelCluster('flannel', 'fl');
    pairs.nativeOn = await agentCluster('native', true, 'non');
    pairs.nativeOff = await agentCluster('native', false, 'nof');
    pairs.routed = kernelCluster('routed', 'rt');
    for (const s of SETUPS) inNs(pairs[s]!.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', pairs[s]!.ip]);
    // warm-up, not measured: in a quiet run without it, the first group measured (tunnel, 4 streams) ran at
    // 0.5-0.7x of the later rounds' rates, its baseline as well
    for (const s of SETUPS) await iperfRun(pairs[s]!, 4, 1, cpus);
    const roundsFrom = performance.now();
    for (let r = 0; r < ROUNDS; r++) {
      // stay within the time bound: no round that would end after it (at least 3 rounds)
      const perRound = r === 0 ? 0 : (performance.now() - roundsFrom) / r;
      if (r >= 3 && performance.now() - started + perRound > MAX_S * 1000) break;
      rounds = r + 1;
      for (const group of GROUPS) {
        // ABC, then CBA: the middle setup (ours with policy) is next to both of its baselines every time
        const order = r % 2 ? [...group].reverse() : group;
        for (const streams of [1, 4] as const) {
          // 4 streams: ABC CBA (CBA ABC the next round), each setup's two runs at the same mean time in
          // the group, so a load that rises or falls during it weighs alike on the three setups
          const seq = streams === 1 ? order : [...order, ...[...order].reverse()];
          const t0 = performance.now();
          const g = await groupIperf(
            seq.map((s) => pairs[s]!),
            streams,
            IPERF_T,
            cpus,
            NOISE_MAX,
            () => retrySpent < RETRY_BUDGET_S * 1000,
          );
          if (g.retried) {
            retries++;
            retrySpent += (performance.now() - t0) / 2;
          }
          foreign.push(...g.foreign);
          for (const s of order) {
            const at = seq.flatMap((x, i) => (x === s ? [i] : []));
            const gb = at.reduce((sum, i) => sum + g.gb[i]!, 0);
            runs[s][r] ??= { tcp1: 0, tcp4: 0, rtt: 0, cpu1: 0, cpu4: 0 };
            // runs of equal length: the mean rate is the setup's bytes over its time in the round
            runs[s][r]![streams === 1 ? 'tcp1' : 'tcp4'] =
              at.reduce((sum, i) => sum + g.gbit[i]!, 0) / at.length;
            runs[s][r]![streams === 1 ? 'cpu1' : 'cpu4'] =
              at.reduce((sum, i) => sum + g.cpuPerGB[i]! * g.gb[i]!, 0) / gb;
          }
        }
        for (const s of order) runs[s][r]!.rtt = pingP50(pairs[s]!);
      }
      process.stderr.write(
        `round ${r + 1}/${ROUNDS} (load ${fmt(loadavg()[0]!)}): ${SETUPS.map((s) => `${s} ${fmt(runs[s][r]!.tcp1)}/${fmt(runs[s][r]!.tcp4)} Gbit/s ${fmt(runs[s][r]!.rtt, 0)} µs`).join(', ')}\n`,
      );
    }
    // what the path costs per packet, outside the measured runs
    costs = {
      tunnelOn: await programCost(pairs.tunnelOn),
      tunnelOff: await programCost(pairs.tunnelOff),
      nativeOn: await programCost(pairs.nativeOn),
      nativeOff: await programCost(pairs.nativeOff),
    };
    gso = {
      tunnelOn: await gsoSize(pairs.tunnelOn, 'dpbctonn1'),
      flannel: await gsoSize(pairs.flannel, 'dpbcfln1'),
    };
    merges = {
      nativeOn: await mergesPerGB(pairs.nativeOn),
      routed: await mergesPerGB(pairs.routed),
      tunnelOn: await mergesPerGB(pairs.tunnelOn),
      flannel: await mergesPerGB(pairs.flannel),
    };
  } finally {
    for (const p of Object.values(pairs)) p.close();
  }
  const loadAfter = loadavg();
  const minutes = (performance.now() - started) / 60_000;
  const med = (s: Setup, k: keyof Round) => median(runs[s].map((f) => f[k]));
  /** Per-round ratios of a to b (RTT inverted: b/a, so ≥ 1 means as fast or faster). */
  const ratios = (a: Setup, b: Setup, k: keyof Round) =>
    runs[a].map((f, i) => (lowerIsBetter(k) ? runs[b][i]![k] / f[k] : f[k] / runs[b][i]![k]));
  const row = (a: Setup, b: Setup, k: keyof Round, label: string, target: number | undefined) => {
    const r = ratios(a, b, k);
    const paired = median(r);
    const unit = k === 'rtt' ? 'µs' : k === 'cpu1' || k === 'cpu4' ? 'CPU s/GB' : 'Gbit/s';
    const d = k === 'rtt' ? 1 : k === 'cpu1' || k === 'cpu4' ? 3 : 2;
    const whole = lowerIsBetter(k) ? med(b, k) / med(a, k) : med(a, k) / med(b, k);
    const t = target ?? 1;
    const mark = target === undefined ? '' : paired >= target ? ' ✓' : ' ✗';
    return `| ${label}${target === undefined ? '' : ` (≥ ${fmt(target)}×)`} | ${fmt(med(a, k), d)} ${unit} | ${fmt(med(b, k), d)} ${unit} | ${fmt(paired)}${mark} | ${fmt(quantile(r, 0.25))}–${fmt(quantile(r, 0.75))} [${fmt(Math.min(...r))}–${fmt(Math.max(...r))}] (${r.filter((x) => x >= t).length}/${r.length} ≥ ${target === undefined ? '1' : 'target'}) | ${fmt(whole)} | ${RERUN} |`;
  };
  const perRound = (s: Setup) =>
    `${s} ${runs[s].map((f) => fmt(f.tcp1)).join(' / ')}; ${runs[s].map((f) => fmt(f.tcp4)).join(' / ')}`;
  const load = (l: number[]) => l.map((x) => fmt(x)).join(' ');
  const md = [
    '## examples/agent: cross-node datapath (tunnel and native modes)',
    '',
    'A pod on node 1 to a pod on node 2; nodes are namespaces on a fabric bridge (underlay 198.18.0.0/24, MTU',
    '1500), pods 10.244.<node>.0/24. The agent setups are two agent datapaths (one per node) with the ipcache',
    'filled through the cluster writer (no etcd); policy on = default deny plus one allow entry each way for',
    "the pair's identities, policy off = allow-all entries. Native mode: host routing (from_container:",
    "bpf_redirect_neigh out of the underlay device to the remote node's underlay address, the ipcache entry's",
    'tunnel endpoint, without a FIB lookup; from_netdev on the underlay ingress: policy and bpf_redirect_peer',
    "into the pod; the nodes' IP stacks forward nothing). Tunnel mode: VXLAN in external mode, the source",
    'identity in the VNI, pods at MTU 1450. Baselines built by the bench with `ip`/`bridge` in the same',
    'namespaces layout: flannel-style VXLAN (bridge `cni0`, `flannel.1` VNI 1 nolearning, permanent neighbour',
    '+ FDB entry + onlink route towards the other node, pods at MTU 1450) and plain routed veths (MTU 1500).',
    `Every pod veth, ours and the baselines', has ${VETH_QUEUES} rx/tx queue${VETH_QUEUES === 1 ? '' : 's'} as the agent makes them (the kernel's default,`,
    'which `ip link add` gets, is one per possible CPU); the underlay veths have the default on both sides.',
    `Paired rounds: in each of ${rounds} rounds the three setups of a mode (baseline, ours with policy, ours without) run back to`,
    'back, first in that order and in the reverse one the next round, so ours with policy is always next to both of',
    'what it is compared with. With 1 stream each setup runs once per round; with 4 streams twice, in a mirrored order',
    '(ABC CBA, the next round CBA ABC), and its round figure is the mean of its two runs: the two runs of every setup',
    'sit at the same mean time within the round, so a load that rises or falls during it weighs alike on all three.',
    'Before the first round every setup runs once unmeasured (4 streams, 1 s; without it, the first group measured',
    'ran at 0.5-0.7× of the later rounds, its baseline as well). The target figure is the **median of the per-round ratios**, each the ratio of two setups',
    "measured seconds apart under the same load (the medians of the absolute figures move with the machine's load;",
    "with 4 streams one setup's rate moves by up to 2× between rounds even on a quiet machine, the per-round ratio",
    `much less). iperf3 ${IPERF_T} s per run (iperf3 reads \`-t\` as whole seconds), ${SERVER_CPU === undefined ? 'unpinned' : `server on CPU ${SERVER_CPU} and client on CPU ${CLIENT_CPU}`}, ${IPERF_NICE === undefined ? "at the bench's niceness." : `both at nice ${IPERF_NICE}:`}`,
    'a nice-0 process competing for their CPU gets about a tenth of it instead of half (CFS weights), and the',
    "path's softirq work runs in their time; on the shared machine with other work running, 6 alternating",
    '4-stream runs of the routed baseline gave 5.9–24.8 Gbit/s at nice 0 and 16.4–21.1 Gbit/s at nice -10. A group of runs during which other processes',
    `took more than ${fmt(NOISE_MAX * 100, 0)} % of the machine's CPU is measured once more (at most ${RETRY_BUDGET_S} s of retries; the quieter attempt`,
    `is kept: ${retries} retried). RTT = ping p50 of ${PINGS} pings per round (kernel rx timestamp${CLIENT_CPU === undefined ? '' : `, ping on CPU ${CLIENT_CPU}`}${IPERF_NICE === undefined ? '' : `, nice ${IPERF_NICE}`}); its ratio is RTT(baseline)/RTT(setup).`,
    `Load average (1/5/15 min) ${load(loadBefore)} before, ${load(loadAfter)} after (${fmt(minutes, 1)} min); other processes' share of the CPU`,
    `during the kept runs: median ${fmt(median(foreign) * 100, 1)} %, p90 ${fmt(quantile(foreign, 0.9) * 100, 1)} % (a process reaped during a run adds its children's whole CPU time at once).`,
    '',
    '| target | setup (median) | baseline (median) | paired ratio: median of per-round ratios | per-round ratios: quartiles [range] (rounds ≥ target) | ratio of the medians | rerun |',
    '|---|---:|---:|---:|---:|---:|---|',
    row('tunnelOn', 'flannel', 'tcp1', 'TCP 1 stream, tunnel + policy vs flannel-style VXLAN', 1),
    row('tunnelOn', 'flannel', 'tcp4', 'TCP 4 streams, tunnel + policy vs flannel-style VXLAN', 1),
    row('tunnelOn', 'flannel', 'rtt', 'ping RTT p50, tunnel + policy vs flannel-style VXLAN', 1),
    row('nativeOn', 'routed', 'tcp1', 'TCP 1 stream, native + policy vs routed veths', 1),
    row('nativeOn', 'routed', 'tcp4', 'TCP 4 streams, native + policy vs routed veths', 1),
    row('nativeOn', 'routed', 'rtt', 'ping RTT p50, native + policy vs routed veths', 1),
    row('tunnelOn', 'tunnelOff', 'tcp1', 'TCP 1 stream, tunnel: policy on vs off', 0.95),
    row('tunnelOn', 'tunnelOff', 'tcp4', 'TCP 4 streams, tunnel: policy on vs off', 0.95),
    row('nativeOn', 'nativeOff', 'tcp1', 'TCP 1 stream, native: policy on vs off', 0.95),
    row('nativeOn', 'nativeOff', 'tcp4', 'TCP 4 streams, native: policy on vs off', 0.95),
    row(
      'tunnelOn',
      'flannel',
      'cpu1',
      'CPU per GB, 1 stream, tunnel + policy vs flannel-style VXLAN (baseline/ours)',
      undefined,
    ),
    row(
      'tunnelOn',
      'flannel',
      'cpu4',
      'CPU per GB, 4 streams, tunnel + policy vs flannel-style VXLAN (baseline/ours)',
      undefined,
    ),
    row(
      'nativeOn',
      'routed',
      'cpu1',
      'CPU per GB, 1 stream, native + policy vs routed veths (baseline/ours)',
      undefined,
    ),
    row(
      'nativeOn',
      'routed',
      'cpu4',
      'CPU per GB, 4 streams, native + policy vs routed veths (baseline/ours)',
      undefined,
    ),
    '',
    'CPU per GB: the CPU seconds iperf3 client and server used (utime + stime, as iperf3 reports them) per GB',
    'received. This kernel has no IRQ time accounting, so the softirq work of the path (veth, bridge, VXLAN, our',
    'programs) is charged to the task it interrupted, mostly the two iperf3 processes: the figure is the cost of',
    "the path per byte and moves much less with the machine's load than the rate (a ratio ≥ 1: ours costs less).",
    '',
    `Per-round TCP figures (Gbit/s, 1 stream; 4 streams): ${SETUPS.map(perRound).join(' · ')}.`,
    '',
    'Tunnel path against the flannel-style one, checked with `ip -d link` and the counters: the same MTU (1450 on',
    'both VXLAN devices and the pods, 1500 underlay), GSO super-packets of the same size out of the underlay on both',
    '(figure below), the receive side into the pod with `bpf_redirect_peer` (from_overlay; flannel-style: VXLAN →',
    "the node's IP forward → bridge → veth). Outer UDP checksum: our key is set with BPF_F_ZERO_CSUM_TX, the",
    'flannel-style device computes it (`udpcsum`, the iproute2 default); on veth both are offloaded. The programs',
    'run once per GSO super-packet (tens of KB), so they take a few % of one CPU at most (below); the CPU-per-GB rows',
    "put the whole path at the cost of the kernel baseline. Native mode uses BPF host routing (the nodes' stacks",
    'forward nothing: `cluster-datapath.priv.test.ts` proves it with both FORWARD chains set to DROP).',
    '',
    `Per-packet cost of our programs (kernel.bpf_stats_enabled, one 1-stream run of each after the rounds): tunnel + policy: ${costs?.tunnelOn}; tunnel without policy: ${costs?.tunnelOff}; native + policy: ${costs?.nativeOn}; native without policy: ${costs?.nativeOff}. With policy on and off an established flow takes the same path (its conntrack entry carries the current policy revision, so no policy lookup either way): the on/off rows compare two equal paths, and their per-packet costs differ by the run-to-run noise of these figures. The figures include the measurement: on this VM bpf_stats adds 33-41 ns to every run (two clock reads; program test runs of native and tunnel from_container, an established flow to a pod of another node, took 121 and 137 ns with it off, 154 and 178 ns with it on), and the rest is mostly cache misses (the same programs took 250-570 ns per packet in real traffic on a quiet machine and up to 1400 ns on a busy one). Native from_container used to ask the FIB for device and next hop (bpf_fib_lookup) on every packet: 1296 ns (data) and 1067 ns (ACKs) per packet in the quiet run of that code, where native + policy vs routed was 0.99× (1 stream) and 0.98× (4 streams), CPU per GB 0.98 / 0.97; it now sends to the ipcache's node with bpf_redirect_neigh (the FIB lookup was 350-500 ns of it in paired runs, the unshare below most of the rest on the data direction). Bytes per packet out of node 1's underlay device (GSO super-packets, one 1 s run): tunnel + policy ${fmt(gso?.tunnelOn ?? 0, 0)}, flannel-style ${fmt(gso?.flannel ?? 0, 0)}.`,
    '',
    `Segments the server pod appended to the one before in its receive queue (TcpExt TCPRcvCoalesce per GB received, one 4-stream run): native + policy ${fmt(merges?.nativeOn ?? 0, 0)}, routed veths ${fmt(merges?.routed ?? 0, 0)}, tunnel + policy ${fmt(merges?.tunnelOn ?? 0, 0)}, flannel-style ${fmt(merges?.flannel ?? 0, 0)}. A socket does not append to a segment that still shares its head with the sender's retransmit copy (skb_try_coalesce refuses a cloned skb); a router unshares what it forwards (ip_forward: skb_cow) and so does the native path (from_container: bpf_skb_change_head(skb, 0, 0) before the redirect). Before it did, the native path delivered the sender's clones: about 300 merges per GB against 8 000-9 000 routed, twice the segments for the reader to copy out and free per GB (the quiet run before that change: 4 streams 0.84×, CPU per GB 0.87× of the routed veths).`,
    '',
  ].join('\n');
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent-crossnode.md'), md);
  }
  process.stdout.write(`${md}\n`);
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === '' || only === 'crossnode') await main();
