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
 *   - native mode with host routing (from_container → FIB → underlay device; from_netdev → the pod), policy
 *     on and off;
 *   - plain routed veths between the same kind of namespaces (no BPF, no bridge: pod CIDR routes via the
 *     other node's underlay address).
 * Medians of the rounds; a TCP run during which other processes took more than NOISE_MAX of the CPU is
 * repeated once. Everything lives in namespaces named `dpbc…`. Writes $BENCH_OUT/agent-crossnode.md.
 * Environment: IPERF_T (s, default 2), ROUNDS (4), PINGS (200), IPERF_AFFINITY (`0,1`), NOISE_MAX (0.1).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TwoNodes, twoNodes } from '../test/helpers/two-nodes.js';
import { type Affinity, inNs, type Pair, quietIperf, sh } from './pairs.js';
import { median } from './profile-setup.js';

const IPERF_T = Number(process.env.IPERF_T ?? 2);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const PINGS = Number(process.env.PINGS ?? 200);
const NOISE_MAX = Number(process.env.NOISE_MAX ?? 0.1);
const IPERF_AFFINITY = process.env.IPERF_AFFINITY ?? '0,1';
const [SERVER_CPU, CLIENT_CPU] = IPERF_AFFINITY === 'none' ? [] : IPERF_AFFINITY.split(',');
const cpus: Affinity = { server: SERVER_CPU, client: CLIENT_CPU };
const RERUN = '`AGENT_BENCH_ONLY=crossnode node scripts/bench.mjs agent` (root)';

type Setup = 'tunnelOn' | 'tunnelOff' | 'flannel' | 'nativeOn' | 'nativeOff' | 'routed';
const SETUPS: Setup[] = ['tunnelOn', 'tunnelOff', 'flannel', 'nativeOn', 'nativeOff', 'routed'];
const fmt = (x: number, d = 2) => x.toFixed(d);

/** Client pod on node 1, server pod on node 2, through the agent's datapath in `mode`. */
async function agentCluster(mode: 'tunnel' | 'native', policyOn: boolean, tag: string): Promise<Pair> {
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
function kernelCluster(kind: 'flannel' | 'routed', tag: string): Pair {
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
      ip(node, 'link', 'add', 'veth0', 'mtu', mtu, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod);
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
  const full = inNs(p.client, 'ping', ['-c', String(PINGS), '-i', '0.002', p.ip]);
  const times = [...full.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (times.length < PINGS * 0.9) throw new Error(`${p.name}: only ${times.length}/${PINGS} ping replies`);
  return median(times);
}

interface Round {
  tcp1: number;
  tcp4: number;
  rtt: number;
  foreign: number[];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the cluster benchmark needs root');
  const pairs: Partial<Record<Setup, Pair>> = {};
  const runs = Object.fromEntries(SETUPS.map((s) => [s, [] as Round[]])) as Record<Setup, Round[]>;
  try {
    pairs.tunnelOn = await agentCluster('tunnel', true, 'ton');
    pairs.tunnelOff = await agentCluster('tunnel', false, 'tof');
    pairs.flannel = kernelCluster('flannel', 'fl');
    pairs.nativeOn = await agentCluster('native', true, 'non');
    pairs.nativeOff = await agentCluster('native', false, 'nof');
    pairs.routed = kernelCluster('routed', 'rt');
    for (const s of SETUPS) inNs(pairs[s]!.client, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', pairs[s]!.ip]);
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 ? [...SETUPS].reverse() : SETUPS) {
        const a = await quietIperf(pairs[s]!, 1, IPERF_T, cpus, NOISE_MAX);
        const b = await quietIperf(pairs[s]!, 4, IPERF_T, cpus, NOISE_MAX);
        runs[s].push({
          tcp1: a.gbit,
          tcp4: b.gbit,
          rtt: pingP50(pairs[s]!),
          foreign: [a.foreign, b.foreign],
        });
      }
      process.stderr.write(
        `round ${r + 1}/${ROUNDS}: ${SETUPS.map((s) => `${s} ${fmt(runs[s][r]!.tcp1)}/${fmt(runs[s][r]!.tcp4)} Gbit/s ${fmt(runs[s][r]!.rtt, 0)} µs`).join(', ')}\n`,
      );
    }
  } finally {
    for (const p of Object.values(pairs)) p.close();
  }
  const med = (s: Setup, k: 'tcp1' | 'tcp4' | 'rtt') => median(runs[s].map((f) => f[k]));
  const paired = (a: Setup, b: Setup, k: 'tcp1' | 'tcp4' | 'rtt') => {
    const r = runs[a].map((f, i) => f[k] / runs[b][i]![k]);
    return `${fmt(median(r))} (${r.filter((x) => x > 1).length}/${r.length} > 1)`;
  };
  const row = (a: Setup, b: Setup, k: 'tcp1' | 'tcp4' | 'rtt', label: string, target?: number) => {
    const ratio = med(a, k) / med(b, k);
    const unit = k === 'rtt' ? 'µs' : 'Gbit/s';
    const d = k === 'rtt' ? 0 : 2;
    const mark = target === undefined ? '' : ratio >= target ? ' ✓' : ' ✗';
    const t = target === undefined ? '' : ` (≥ ${fmt(target)}×)`;
    return `| ${label}${t} | ${fmt(med(a, k), d)} ${unit} | ${fmt(med(b, k), d)} ${unit} | ${fmt(ratio)}${mark} | ${paired(a, b, k)} | ${RERUN} |`;
  };
  const foreign = SETUPS.flatMap((s) => runs[s].flatMap((f) => f.foreign));
  const perRound = (s: Setup) =>
    `${s} ${runs[s].map((f) => fmt(f.tcp1)).join(' / ')}; ${runs[s].map((f) => fmt(f.tcp4)).join(' / ')}`;
  const md = [
    '## examples/agent: cross-node datapath (tunnel and native modes)',
    '',
    'A pod on node 1 to a pod on node 2; nodes are namespaces on a fabric bridge (underlay 198.18.0.0/24, MTU',
    '1500), pods 10.244.<node>.0/24. The agent setups are two agent datapaths (one per node) with the ipcache',
    'filled through the cluster writer (no etcd); policy on = default deny plus one allow entry each way for',
    "the pair's identities, policy off = allow-all entries. Native mode: host routing (from_container: FIB lookup",
    'and bpf_redirect out of the underlay device; from_netdev on the underlay ingress: policy and bpf_redirect_peer',
    "into the pod; the nodes' IP stacks forward nothing). Tunnel mode: VXLAN in external mode, the source",
    'identity in the VNI, pods at MTU 1450. Baselines built by the bench with `ip`/`bridge` in the same',
    'namespaces layout: flannel-style VXLAN (bridge `cni0`, `flannel.1` VNI 1 nolearning, permanent neighbour',
    '+ FDB entry + onlink route towards the other node, pods at MTU 1450) and plain routed veths (MTU 1500).',
    `${ROUNDS} interleaved rounds (order reversed every other round), iperf3 ${IPERF_T} s per run, ${SERVER_CPU === undefined ? 'unpinned' : `server on CPU ${SERVER_CPU} and client on CPU ${CLIENT_CPU}`}; RTT = ping p50 of ${PINGS} pings per round (kernel rx timestamp). Ratios: a higher`,
    'throughput is better; for RTT, the ratio is RTT(baseline)/RTT(setup), so ≥ 1 means as fast or faster.',
    `Other processes' share of the CPU during the kept runs: median ${fmt(median(foreign) * 100, 1)} %, max ${fmt(Math.max(...foreign) * 100, 1)} %.`,
    '',
    '| target | setup | baseline (same run) | ratio (of the medians) | paired: median of per-round ratios (rounds > 1) | rerun |',
    '|---|---:|---:|---:|---:|---|',
    row('tunnelOn', 'flannel', 'tcp1', 'TCP 1 stream, tunnel + policy vs flannel-style VXLAN', 1),
    row('tunnelOn', 'flannel', 'tcp4', 'TCP 4 streams, tunnel + policy vs flannel-style VXLAN', 1),
    rttRow('tunnelOn', 'flannel', 'ping RTT p50, tunnel + policy vs flannel-style VXLAN', 1),
    row('nativeOn', 'routed', 'tcp1', 'TCP 1 stream, native + policy vs routed veths', 1),
    row('nativeOn', 'routed', 'tcp4', 'TCP 4 streams, native + policy vs routed veths', 1),
    rttRow('nativeOn', 'routed', 'ping RTT p50, native + policy vs routed veths', 1),
    row('tunnelOn', 'tunnelOff', 'tcp1', 'TCP 1 stream, tunnel: policy on vs off', 0.95),
    row('tunnelOn', 'tunnelOff', 'tcp4', 'TCP 4 streams, tunnel: policy on vs off', 0.95),
    row('nativeOn', 'nativeOff', 'tcp1', 'TCP 1 stream, native: policy on vs off', 0.95),
    row('nativeOn', 'nativeOff', 'tcp4', 'TCP 4 streams, native: policy on vs off', 0.95),
    '',
    `Per-round TCP figures (Gbit/s, 1 stream; 4 streams): ${SETUPS.map(perRound).join(' · ')}.`,
    '',
  ].join('\n');
  function rttRow(a: Setup, b: Setup, label: string, target: number): string {
    const ratio = med(b, 'rtt') / med(a, 'rtt');
    const r = runs[a].map((f, i) => runs[b][i]!.rtt / f.rtt);
    return `| ${label} (≥ ${fmt(target)}×) | ${fmt(med(a, 'rtt'), 1)} µs | ${fmt(med(b, 'rtt'), 1)} µs | ${fmt(ratio)} ${ratio >= target ? '✓' : '✗'} | ${fmt(median(r))} (${r.filter((x) => x > 1).length}/${r.length} > 1) | ${RERUN} |`;
  }
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent-crossnode.md'), md);
  }
  process.stdout.write(`${md}\n`);
}

const only = process.env.AGENT_BENCH_ONLY;
if (only === undefined || only === '' || only === 'crossnode') await main();
