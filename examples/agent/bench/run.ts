/**
 * Datapath benchmark of the reference agent (`pnpm run bench`, or `node scripts/bench.mjs agent`):
 * TCP throughput (iperf3, 1 and 4 streams) and round-trip time (ping) between two pods through
 *   - the agent's eBPF datapath with policy on (default deny + one allow rule for the flow),
 *   - the same with enforcement `never` (allow-all entries: policy lookups still run),
 *   - a Linux bridge (flannel-style, br_netfilter on, no rules),
 *   - the bridge with 1 000 non-matching iptables rules before the ACCEPT (nf_tables backend);
 * and the agent's pod setup time (IP + namespace + endpoint + load/attach + maps + policy sync).
 * Everything runs in namespaces it creates (prefix `dpbench`), nothing touches the host's own
 * network. Writes one Markdown section to $BENCH_OUT/agent.md.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../src/agent.js';

const IPERF_T = Number(process.env.IPERF_T ?? 4);
const PINGS = Number(process.env.PINGS ?? 300);
const SETUP_PODS = Number(process.env.SETUP_PODS ?? 16);
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns: string, cmd: string, args: string[]) =>
  sh('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]);

interface Figures {
  tcp1: number;
  tcp4: number;
  rttP50: number;
  rttAvg: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] ?? Number.NaN;
}

async function iperf(serverNs: string, clientNs: string, ip: string, streams: number): Promise<number> {
  const server = spawn('nsenter', [`--net=/run/netns/${serverNs}`, 'iperf3', '-s', '-1', '-p', '5201'], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 300));
  try {
    const out = inNs(clientNs, 'iperf3', [
      '-c',
      ip,
      '-p',
      '5201',
      '-t',
      String(IPERF_T),
      '-P',
      String(streams),
      '-J',
    ]);
    return (JSON.parse(out).end.sum_received.bits_per_second as number) / 1e9;
  } finally {
    server.kill();
  }
}

function ping(clientNs: string, ip: string): { p50: number; avg: number } {
  const out = inNs(clientNs, 'ping', ['-c', String(PINGS), '-i', '0.002', '-q', ip]);
  const times: number[] = [];
  const summary = /= [\d.]+\/([\d.]+)\//.exec(out);
  // -q prints only the summary: run a short verbose pass for the median
  const verbose = inNs(clientNs, 'ping', ['-c', '100', '-i', '0.002', ip]);
  for (const m of verbose.matchAll(/time=([\d.]+) ms/g)) times.push(Number(m[1]) * 1000);
  return { p50: median(times), avg: summary ? Number(summary[1]) * 1000 : Number.NaN };
}

async function measure(serverNs: string, clientNs: string, ip: string): Promise<Figures> {
  inNs(clientNs, 'ping', ['-c', '3', '-i', '0.2', '-W', '1', ip]); // warm up neighbours, fail fast if broken
  const tcp1 = await iperf(serverNs, clientNs, ip, 1);
  const tcp4 = await iperf(serverNs, clientNs, ip, 4);
  const r = ping(clientNs, ip);
  return { tcp1, tcp4, rttP50: r.p50, rttAvg: r.avg };
}

const allowIperf = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'server-from-client', namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }],
  },
};

const allowClientEgress = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'client-to-server', namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: 'client' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }] }],
  },
};

async function agentMode(policyOn: boolean): Promise<Figures & { entries: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'dpbench-'));
  const agent = await Agent.start(
    {
      name: 'dpbench',
      prefix: 'dpbench',
      stateDir: join(stateDir, 's'),
      podCidr: '10.244.3.0/24',
      attach: 'tc',
    },
    {
      namespaces: { bench: { labels: {} } },
      policies: policyOn ? [allowIperf, allowClientEgress] : [],
      enforcement: policyOn ? 'always' : 'never',
    },
  );
  try {
    const [server, client] = agent.addPods([
      { ns: 'bench', name: 'server', labels: { app: 'server' } },
      { ns: 'bench', name: 'client', labels: { app: 'client' } },
    ]);
    const entries = agent.datapath.policyEntries(server!.lxcId).length;
    const f = await measure(server!.netns, client!.netns, server!.ip);
    return { ...f, entries };
  } finally {
    agent.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function bridgeMode(rules: number): Promise<Figures> {
  const node = 'dpbench-br';
  const pods = ['dpbench-a', 'dpbench-b'];
  try {
    sh('ip', ['netns', 'add', node]);
    inNs(node, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    inNs(node, 'ip', ['link', 'set', 'br0', 'up']);
    inNs(node, 'ip', ['addr', 'add', '10.244.4.1/24', 'dev', 'br0']);
    pods.forEach((p, i) => {
      sh('ip', ['netns', 'add', p]);
      inNs(node, 'ip', ['link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p]);
      inNs(node, 'ip', ['link', 'set', `v${i}`, 'master', 'br0', 'up']);
      inNs(p, 'ip', ['link', 'set', 'lo', 'up']);
      inNs(p, 'ip', ['link', 'set', 'eth0', 'up']);
      inNs(p, 'ip', ['addr', 'add', `10.244.4.${10 + i}/24`, 'dev', 'eth0']);
    });
    // br_netfilter makes bridged IPv4 traverse FORWARD, as flannel-style setups run it
    try {
      inNs(node, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    } catch {
      // module not loaded yet: the first iptables rule loads it
    }
    if (rules > 0) {
      const lines = ['*filter', ':FORWARD DROP [0:0]'];
      for (let i = 0; i < rules; i++) {
        lines.push(`-A FORWARD -d 10.96.${(i >> 8) & 255}.${i & 255}/32 -p tcp --dport 80 -j DROP`);
      }
      lines.push('-A FORWARD -s 10.244.4.0/24 -d 10.244.4.0/24 -j ACCEPT', 'COMMIT', '');
      const file = join(mkdtempSync(join(tmpdir(), 'dpbench-ipt-')), 'rules');
      writeFileSync(file, lines.join('\n'));
      sh('nsenter', [`--net=/run/netns/${node}`, 'sh', '-c', `iptables-restore < ${file}`]);
      inNs(node, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    }
    return await measure(pods[1]!, pods[0]!, '10.244.4.11');
  } finally {
    for (const ns of [...pods, node]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // not created
      }
    }
  }
}

async function setupTimes(attach: 'tc' | 'tcx'): Promise<number[]> {
  const stateDir = mkdtempSync(join(tmpdir(), 'dpbench-'));
  const agent = await Agent.start(
    { name: 'dpbench', prefix: 'dpbench', stateDir: join(stateDir, 's'), podCidr: '10.244.3.0/24', attach },
    { namespaces: { bench: { labels: {} } }, policies: [allowIperf], enforcement: 'default' },
  );
  const times: number[] = [];
  try {
    for (let i = 0; i < SETUP_PODS; i++) {
      const t = performance.now();
      agent.addPods([{ ns: 'bench', name: `p${i}`, labels: { app: i % 2 ? 'client' : 'server' } }]);
      times.push(performance.now() - t);
    }
  } finally {
    agent.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
  return times;
}

function spawnedSetupTimes(): number[] {
  // The same endpoint steps done the classic way: one `ip` process per step (no BPF, no maps).
  const node = 'dpbench-sp';
  const times: number[] = [];
  sh('ip', ['netns', 'add', node]);
  try {
    for (let i = 0; i < SETUP_PODS; i++) {
      const pod = `dpbench-s${i}`;
      const ip = `10.244.5.${10 + i}`;
      const t = performance.now();
      sh('ip', ['netns', 'add', pod]);
      inNs(node, 'ip', ['link', 'add', `lxc${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
      inNs(node, 'ip', ['link', 'set', `lxc${i}`, 'up']);
      inNs(pod, 'ip', ['link', 'set', 'lo', 'up']);
      inNs(pod, 'ip', ['link', 'set', 'eth0', 'up']);
      inNs(pod, 'ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0']);
      inNs(pod, 'ip', ['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
      inNs(pod, 'ip', ['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
      inNs(node, 'ip', ['route', 'add', `${ip}/32`, 'dev', `lxc${i}`]);
      times.push(performance.now() - t);
    }
  } finally {
    for (let i = 0; i < SETUP_PODS; i++) {
      try {
        sh('ip', ['netns', 'del', `dpbench-s${i}`]);
      } catch {
        // not created
      }
    }
    sh('ip', ['netns', 'del', node]);
  }
  return times;
}

const fmt = (x: number, d = 2) => x.toFixed(d);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the agent benchmark needs root');
  const on = await agentMode(true);
  const off = await agentMode(false);
  const bridge = await bridgeMode(0);
  const ipt = await bridgeMode(1000);
  const setupTc = await setupTimes('tc');
  const setupTcx = await setupTimes('tcx');
  const spawned = spawnedSetupTimes();

  const rerun = '`node scripts/bench.mjs agent` (root)';
  const rows = [
    [
      'TCP 1 stream, policy on vs bridge (≥ 1.0×)',
      `${fmt(on.tcp1)} Gbit/s`,
      `${fmt(bridge.tcp1)} Gbit/s`,
      fmt(on.tcp1 / bridge.tcp1),
    ],
    [
      'TCP 1 stream, policy on vs bridge + 1000 iptables rules (≥ 1.2×)',
      `${fmt(on.tcp1)} Gbit/s`,
      `${fmt(ipt.tcp1)} Gbit/s`,
      fmt(on.tcp1 / ipt.tcp1),
    ],
    [
      'TCP 4 streams, policy on vs bridge (≥ 1.0×)',
      `${fmt(on.tcp4)} Gbit/s`,
      `${fmt(bridge.tcp4)} Gbit/s`,
      fmt(on.tcp4 / bridge.tcp4),
    ],
    [
      'TCP 4 streams, policy on vs bridge + 1000 iptables rules (≥ 1.2×)',
      `${fmt(on.tcp4)} Gbit/s`,
      `${fmt(ipt.tcp4)} Gbit/s`,
      fmt(on.tcp4 / ipt.tcp4),
    ],
    [
      'TCP 1 stream, policy on vs policy off (overhead ≤ 5 %: ≥ 0.95×)',
      `${fmt(on.tcp1)} Gbit/s`,
      `${fmt(off.tcp1)} Gbit/s`,
      fmt(on.tcp1 / off.tcp1),
    ],
    [
      'TCP 4 streams, policy on vs policy off (≥ 0.95×)',
      `${fmt(on.tcp4)} Gbit/s`,
      `${fmt(off.tcp4)} Gbit/s`,
      fmt(on.tcp4 / off.tcp4),
    ],
    [
      'ping RTT p50, policy on vs bridge (lower is better)',
      `${fmt(on.rttP50, 1)} µs`,
      `${fmt(bridge.rttP50, 1)} µs`,
      fmt(on.rttP50 / bridge.rttP50),
    ],
    [
      'ping RTT p50, policy on vs bridge + 1000 iptables rules',
      `${fmt(on.rttP50, 1)} µs`,
      `${fmt(ipt.rttP50, 1)} µs`,
      fmt(on.rttP50 / ipt.rttP50),
    ],
    [
      'ping RTT p50, policy on vs policy off',
      `${fmt(on.rttP50, 1)} µs`,
      `${fmt(off.rttP50, 1)} µs`,
      fmt(on.rttP50 / off.rttP50),
    ],
    [
      'pod setup p50, tc attach (≤ 5 ms) vs `ip` spawned per step',
      `${fmt(median(setupTc), 1)} ms`,
      `${fmt(median(spawned), 1)} ms`,
      fmt(median(setupTc) / median(spawned)),
    ],
    [
      'pod setup p50, tcx attach vs `ip` spawned per step',
      `${fmt(median(setupTcx), 1)} ms`,
      `${fmt(median(spawned), 1)} ms`,
      fmt(median(setupTcx) / median(spawned)),
    ],
  ];
  const md = [
    '## examples/agent: pod datapath (eBPF vs bridge and iptables)',
    '',
    `Two pods on one node, the same run. iperf3 ${IPERF_T} s per figure, ping p50 of 100 echoes at 2 ms intervals`,
    `(blocking sockets: dominated by vCPU wake-up on this VM, see ../shared/reference/perf.md). Policy on: enforcement`,
    `\`always\`, ${on.entries} entries in the server's policy map, every packet of the forward direction looked up;`,
    'policy off: enforcement `never` (allow-all entries, lookups still run). Bridge: br_netfilter on; iptables:',
    '1 000 non-matching FORWARD rules then ACCEPT (nf_tables backend). Pod setup: one `addPods` call per pod',
    `(IPAM + namespace + endpoint + load and attach + endpoint map + full policy compile and sync), ${SETUP_PODS} pods;`,
    'baseline: the endpoint steps alone as one spawned `ip` command each.',
    '',
    '| target | measured | baseline (same run) | ratio | rerun |',
    '|---|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.join(' | ')} | ${rerun} |`),
    '',
  ].join('\n');
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent.md'), md);
  }
  process.stdout.write(`${md}\n`);
}

await main();
