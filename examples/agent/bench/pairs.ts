/**
 * The pod pairs the datapath benchmark and the profiler measure between (bench/run.ts,
 * bench/profile-datapath.ts): two pods through the agent's eBPF datapath, or two pods on a Linux
 * bridge (flannel-style, br_netfilter on, optionally 1 000 iptables rules), and the iperf3 runs
 * between them. Everything lives in namespaces named `dpb…`; nothing touches the host's network.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent } from '../src/agent.js';
import type { Delivery } from '../src/datapath.js';
import { foreignShare, snapshot } from './noise.js';

/** Runs a command, returns its stdout (throws on a non-zero exit). */
export const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Runs a command inside a named network namespace (nsenter keeps bpffs visible). */
export const inNs = (ns: string, cmd: string, args: string[]): string =>
  sh('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]);

/** Two pods to measure between (netns names and the server's address). */
export interface Pair {
  name: string;
  server: string;
  client: string;
  ip: string;
  /** The agent of an eBPF pair (absent for the bridges). */
  agent?: Agent;
  close(): void;
}

/** CPUs the iperf3 server and client are pinned to (`iperf3 -A`); undefined = unpinned. */
export interface Affinity {
  server?: string | undefined;
  client?: string | undefined;
  /**
   * Niceness of both iperf3 processes (`nice -n`; undefined = the bench's own). Below 0 they outweigh other
   * processes on their CPUs: at -10 a nice-0 process competing for the CPU gets about a tenth of it (CFS
   * weights 9548 vs 1024) instead of half, so what other work runs on the machine moves the rate much less.
   */
  nice?: number | undefined;
}

const affinity = (cpu: string | undefined) => (cpu === undefined ? [] : ['-A', cpu]);
/** The command line of an iperf3 process at the niceness `cpus.nice` asks for (nice execs iperf3: same pid). */
const iperf3 = (cpus: Affinity) =>
  cpus.nice === undefined ? ['iperf3'] : ['nice', '-n', String(cpus.nice), 'iperf3'];

/**
 * One iperf3 TCP run of `seconds` with `streams` parallel streams from the client to the server pod;
 * returns the received rate in Gbit/s.
 */
export async function iperf(p: Pair, streams: number, seconds: number, cpus: Affinity = {}): Promise<number> {
  return (await iperfRun(p, streams, seconds, cpus)).gbit;
}

/** One iperf3 run's rate and what it cost. */
export interface IperfResult {
  /** Received rate, Gbit/s. */
  gbit: number;
  /**
   * CPU seconds the iperf3 client and server used per GB received (their utime + stime as iperf3 reports
   * it). Without IRQ time accounting the kernel charges the softirq work of the veth/VXLAN path to the
   * task it interrupted (here mostly the two iperf3 processes), so this is the path's CPU cost per byte:
   * it moves far less with the machine's load than the rate does.
   */
  cpuPerGB: number;
  /** GB received. */
  gb: number;
}

/**
 * {@link iperf} with the CPU cost per GB (see {@link IperfResult}). `seconds` is a whole number: iperf3
 * (3.12 here) reads `-t` as an integer, so `-t 1.5` ran for 1 s.
 */
export async function iperfRun(
  p: Pair,
  streams: number,
  seconds: number,
  cpus: Affinity = {},
): Promise<IperfResult> {
  if (!Number.isInteger(seconds) || seconds < 1)
    throw new RangeError(`iperf3 runs whole seconds (-t is read as an integer): got ${seconds}`);
  const server = spawn(
    'nsenter',
    [
      `--net=/run/netns/${p.server}`,
      ...iperf3(cpus),
      '-s',
      '-1',
      '-p',
      '5201',
      '--forceflush',
      ...affinity(cpus.server),
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  // the server prints its banner once it listens (at most 1 s: then the client tries anyway)
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 1000);
    server.stdout!.once('data', () => {
      clearTimeout(t);
      resolve();
    });
    server.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
  server.stdout!.resume();
  try {
    // asynchronous, so a profiler can start while it runs
    const { stdout } = await promisify(execFile)('nsenter', [
      `--net=/run/netns/${p.client}`,
      ...iperf3(cpus),
      '-c',
      p.ip,
      '-p',
      '5201',
      '-t',
      String(seconds),
      '-P',
      String(streams),
      '-J',
      ...affinity(cpus.client),
    ]);
    const end = JSON.parse(stdout).end as {
      sum_received: { bits_per_second: number; bytes: number; seconds: number };
      cpu_utilization_percent: { host_total: number; remote_total: number };
    };
    const cpuSeconds =
      ((end.cpu_utilization_percent.host_total + end.cpu_utilization_percent.remote_total) / 100) *
      end.sum_received.seconds;
    return {
      gbit: end.sum_received.bits_per_second / 1e9,
      cpuPerGB: cpuSeconds / (end.sum_received.bytes / 1e9),
      gb: end.sum_received.bytes / 1e9,
    };
  } finally {
    server.kill();
  }
}

/** What could make the comparison unfair: the client eth0's MTU and GSO/GRO/TSO limits, queues. */
export function linkShape(p: Pair): string {
  const [l] = JSON.parse(inNs(p.client, 'ip', ['-d', '-j', 'link', 'show', 'eth0'])) as Record<
    string,
    unknown
  >[];
  const keys = [
    'qdisc',
    'txqlen',
    'mtu',
    'gso_max_size',
    'gso_max_segs',
    'gro_max_size',
    'tso_max_size',
    'num_tx_queues',
    'num_rx_queues',
  ];
  const ipv6 =
    inNs(p.client, 'sysctl', ['-n', 'net.ipv6.conf.eth0.disable_ipv6']).trim() === '1' ? 'off' : 'on';
  return `${keys.map((k) => `${k}=${String(l?.[k])}`).join(' ')} ipv6=${ipv6}`;
}

/** The server's ingress rule: only the client may connect. */
export const allowIperf = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'server-from-client', namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }],
  },
};

/** The client's egress rule: only to the server. */
export const allowClientEgress = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'client-to-server', namespace: 'bench' },
  spec: {
    podSelector: { matchLabels: { app: 'client' } },
    policyTypes: ['Egress'],
    egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }] }],
  },
};

/**
 * Two pods through the agent's datapath: policy on (enforcement `always`, the two allow rules) or
 * off (enforcement `never`), with the given local delivery, the programs attached as `attach` says
 * (default: as the agent does, tcx where the kernel has it). `entries` is the server's policy entry
 * count, `attached` how the programs were attached.
 */
export async function agentPair(
  policyOn: boolean,
  delivery: Delivery = 'peer',
  attach: 'auto' | 'tc' | 'tcx' = 'auto',
  /** Another name and pod CIDR (to run beside the default pairs), and the datapath's events switch. */
  variant: { name?: string; podCidr?: string; events?: boolean } = {},
): Promise<Pair & { entries: number; attached: 'tc' | 'tcx' }> {
  const name = variant.name ?? (policyOn ? (delivery === 'egress' ? 'dpbeg' : 'dpbon') : 'dpboff');
  const stateDir = mkdtempSync(join(tmpdir(), 'dpbench-'));
  const agent = await Agent.start(
    {
      name,
      prefix: name,
      stateDir: join(stateDir, 's'),
      podCidr:
        variant.podCidr ??
        (policyOn ? (delivery === 'egress' ? '10.244.8.0/24' : '10.244.3.0/24') : '10.244.6.0/24'),
      attach,
      delivery,
      ...(variant.events === undefined ? {} : { events: variant.events }),
    },
    {
      namespaces: { bench: { labels: {} } },
      policies: policyOn ? [allowIperf, allowClientEgress] : [],
      enforcement: policyOn ? 'always' : 'never',
    },
  );
  const close = () => {
    agent.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    const [server, client] = agent.addPods([
      { namespace: 'bench', name: 'server', labels: { app: 'server' } },
      { namespace: 'bench', name: 'client', labels: { app: 'client' } },
    ]);
    const entries = agent.datapath.policyEntries(server!.lxcId).length;
    return {
      name,
      server: server!.netns,
      client: client!.netns,
      ip: server!.ip,
      agent,
      entries,
      attached: server!.attach,
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

/**
 * Two pods on a Linux bridge in a node namespace (flannel-style: /24 pod addresses, br_netfilter on),
 * with `rules` non-matching iptables FORWARD rules before the ACCEPT when `rules` > 0.
 */
export function bridgePair(rules: number): Pair {
  const tag = rules > 0 ? 'i' : 'b';
  const net = rules > 0 ? '10.244.7' : '10.244.4';
  const node = `dpbench-${tag}n`;
  const pods = [`dpbench-${tag}0`, `dpbench-${tag}1`];
  const close = () => {
    for (const ns of [...pods, node]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // not created
      }
    }
  };
  try {
    sh('ip', ['netns', 'add', node]);
    // IPv6 off in the node and the pods, as the agent has it in its namespaces (no stray ND/MLD)
    inNs(node, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    inNs(node, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    inNs(node, 'ip', ['link', 'set', 'br0', 'up']);
    inNs(node, 'ip', ['addr', 'add', `${net}.1/24`, 'dev', 'br0']);
    pods.forEach((p, i) => {
      sh('ip', ['netns', 'add', p]);
      inNs(p, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      inNs(node, 'ip', ['link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', p]);
      inNs(node, 'ip', ['link', 'set', `v${i}`, 'master', 'br0', 'up']);
      inNs(p, 'ip', ['link', 'set', 'lo', 'up']);
      inNs(p, 'ip', ['link', 'set', 'eth0', 'up']);
      inNs(p, 'ip', ['addr', 'add', `${net}.${10 + i}/24`, 'dev', 'eth0']);
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
      lines.push(`-A FORWARD -s ${net}.0/24 -d ${net}.0/24 -j ACCEPT`, 'COMMIT', '');
      const dir = mkdtempSync(join(tmpdir(), 'dpbench-ipt-'));
      writeFileSync(join(dir, 'rules'), lines.join('\n'));
      try {
        sh('nsenter', [`--net=/run/netns/${node}`, 'sh', '-c', `iptables-restore < ${join(dir, 'rules')}`]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      inNs(node, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    }
    return {
      name: rules > 0 ? 'bridge+iptables' : 'bridge',
      server: pods[1]!,
      client: pods[0]!,
      ip: `${net}.11`,
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

/**
 * {@link iperf} at most twice, keeping the run in which other processes took the least CPU (`foreign`, the
 * share {@link foreignShare} reports); the second run only when the first saw more than `noiseMax`.
 */
export async function quietIperf(
  p: Pair,
  streams: number,
  seconds: number,
  cpus: Affinity,
  noiseMax: number,
): Promise<{ gbit: number; foreign: number }> {
  let best: { gbit: number; foreign: number } | undefined;
  for (let t = 0; t < 2; t++) {
    const before = snapshot();
    const gbit = await iperf(p, streams, seconds, cpus);
    const foreign = foreignShare(before, snapshot());
    if (best === undefined || foreign < best.foreign) best = { gbit, foreign };
    if (foreign <= noiseMax) break;
  }
  return best!;
}

/** One group of back-to-back iperf runs (see {@link groupIperf}). */
export interface GroupRun {
  /** Gbit/s per pair, in the order given. */
  gbit: number[];
  /** CPU seconds per GB per pair (see {@link IperfResult}). */
  cpuPerGB: number[];
  /** GB received per pair. */
  gb: number[];
  /** Other processes' CPU share during each run. */
  foreign: number[];
  /** Whether the group was measured twice (noisy the first time) and the quieter attempt kept. */
  retried: boolean;
}

/**
 * {@link iperf} over `pairs` back to back (the setups a ratio compares, measured seconds apart so the
 * machine's load is alike for each), at most twice: when another process took more than `noiseMax` of
 * the CPU during any run and `mayRetry()` allows it, the whole group is measured again and the attempt
 * whose noisiest run was quieter is kept. Ratios between the members of one group are what a paired
 * benchmark reports.
 */
export async function groupIperf(
  pairs: readonly Pair[],
  streams: number,
  seconds: number,
  cpus: Affinity,
  noiseMax: number,
  mayRetry: () => boolean = () => true,
): Promise<GroupRun> {
  let best: GroupRun | undefined;
  for (let t = 0; t < 2; t++) {
    const run: GroupRun = { gbit: [], cpuPerGB: [], gb: [], foreign: [], retried: t > 0 };
    for (const p of pairs) {
      const before = snapshot();
      const r = await iperfRun(p, streams, seconds, cpus);
      run.gbit.push(r.gbit);
      run.cpuPerGB.push(r.cpuPerGB);
      run.gb.push(r.gb);
      run.foreign.push(foreignShare(before, snapshot()));
    }
    if (best === undefined || Math.max(...run.foreign) < Math.max(...best.foreign)) best = run;
    if (Math.max(...run.foreign) <= noiseMax || !mayRetry()) break;
  }
  return best!;
}
