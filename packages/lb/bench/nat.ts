/**
 * Per-packet datapath benchmark of @datapath/lb (`node scripts/bench.mjs lb`, or alone with
 * `LB_BENCH_ONLY=nat`; root, run under the bench lock `flock /tmp/datapath-bench.lock`):
 *   - NodePort: TCP throughput (iperf3, 1 stream) of an established flow from a "world" namespace to
 *     a backend pod through nodeAddr:nodePort (bpf/netdev.c: DNAT at the node's ingress, reverse NAT
 *     at its egress), against the same namespaces with no service (the world reaching the pod's
 *     address through the node, no program attached);
 *   - masquerade: TCP throughput from a pod to the world through bpf/netdev.c's SNAT, against
 *     iptables `MASQUERADE` (nat POSTROUTING, conntrack) in a second topology built the same way.
 * Every setup lives side by side in namespaces the bench creates (prefix `lbnb`); rounds are
 * interleaved (the order reversed every other round) and the medians of the rounds are compared.
 * Writes one Markdown section to $BENCH_OUT/lb-nat.md. Environment: IPERF_T (s, default 3), ROUNDS
 * (8), IPERF_AFFINITY (`0,1`: server CPU, client CPU; `none`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import { NodeNetdev } from '../src/netdev.js';

const IPERF_T = Number(process.env.IPERF_T ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const AFFINITY = process.env.IPERF_AFFINITY ?? '0,1';
const [SERVER_CPU, CLIENT_CPU] = AFFINITY === 'none' ? [] : AFFINITY.split(',');
const NODE = '198.18.0.1';
const WORLD = '198.18.0.2';
const POD = '10.244.1.2';
const NODE_PORT = 30080;

const sh = (args: string[]) =>
  execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const ip = (ns: string, ...args: string[]) => sh(['ip', '-n', ns, ...args]);
const inNs = (ns: string, ...args: string[]) => sh(['ip', 'netns', 'exec', ns, ...args]);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number, d = 2) => x.toFixed(d);

/** pod —veth— node —veth— world, as the tests build it; `worldRoute` lets the world reach the pods. */
function topology(
  prefix: string,
  worldRoute: boolean,
): { pod: string; node: string; world: string; close(): void } {
  const [pod, node, world] = [`${prefix}-pod`, `${prefix}-node`, `${prefix}-world`];
  const made: string[] = [];
  try {
    for (const n of [pod, node, world]) {
      sh(['ip', 'netns', 'add', n]);
      made.push(n);
      ip(n, 'link', 'set', 'lo', 'up');
    }
    ip(node, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', world);
    ip(node, 'addr', 'add', `${NODE}/24`, 'dev', 'ext0');
    ip(world, 'addr', 'add', `${WORLD}/24`, 'dev', 'eth0');
    ip(node, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod);
    ip(node, 'addr', 'add', '10.244.1.1/30', 'dev', 'p0');
    ip(pod, 'addr', 'add', `${POD}/30`, 'dev', 'eth0');
    for (const [n, d] of [
      [node, 'ext0'],
      [node, 'p0'],
      [world, 'eth0'],
      [pod, 'eth0'],
    ] as const)
      ip(n, 'link', 'set', d, 'up');
    ip(pod, 'route', 'add', 'default', 'via', '10.244.1.1');
    if (worldRoute) ip(world, 'route', 'add', '10.244.0.0/16', 'via', NODE);
    inNs(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    return {
      pod,
      node,
      world,
      close: () => {
        for (const n of made.reverse()) sh(['ip', 'netns', 'del', n]);
      },
    };
  } catch (err) {
    for (const n of made.reverse()) sh(['ip', 'netns', 'del', n]);
    throw err;
  }
}

/** Starts an iperf3 server in `ns`; returns a stop function. */
function iperfServer(ns: string): () => void {
  const aff = SERVER_CPU === undefined ? [] : ['-A', SERVER_CPU];
  inNs(ns, 'iperf3', '-s', '-D', '-1', '--pidfile', `/tmp/${ns}.iperf.pid`, ...aff);
  return () => {
    try {
      sh(['pkill', '-F', `/tmp/${ns}.iperf.pid`]);
    } catch {
      // exited after its one client (-1)
    }
    rmSync(`/tmp/${ns}.iperf.pid`, { force: true });
  };
}

/** One iperf3 run from `ns` to `host:port`: Gbit/s received. */
function iperf(ns: string, serverNs: string, host: string, port = 5201): number {
  const stop = iperfServer(serverNs);
  try {
    // the server needs a moment to listen
    for (let i = 0; i < 50; i++) {
      try {
        inNs(serverNs, 'sh', '-c', 'ss -ltn | grep -q :5201');
        break;
      } catch {
        execFileSync('sleep', ['0.02']);
      }
    }
    const aff = CLIENT_CPU === undefined ? [] : ['-A', CLIENT_CPU];
    const out = JSON.parse(
      inNs(ns, 'iperf3', '-c', host, '-p', String(port), '-t', String(IPERF_T), '-J', ...aff),
    ) as {
      end: { sum_received: { bits_per_second: number } };
    };
    return out.end.sum_received.bits_per_second / 1e9;
  } finally {
    stop();
  }
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const tag = `lbnb${process.pid % 10000}`;
  const pinDir = mkdtempSync(join('/sys/fs/bpf', `${tag}-`));
  const setups: { close(): void }[] = [];
  const runs: Record<string, number[]> = { nodeport: [], direct: [], bpfMasq: [], iptMasq: [] };
  try {
    // NodePort: world -> node:30080 -> pod:5201 (programs on), and world -> pod:5201 (no service)
    const np = topology(`${tag}n`, false);
    setups.push(np);
    const npNs = Netns.open({ name: np.node });
    setups.push(npNs);
    const dev = await NodeNetdev.attach(
      { nodeAddress: NODE, nodePort: true },
      { ifname: 'ext0', netns: npNs, pinDir },
    );
    setups.push(dev);
    const svc = dev.serviceWriter();
    setups.push(svc);
    svc.upsert({
      name: 'iperf',
      protocol: 'TCP',
      frontends: [{ kind: 'NodePort', address: NODE, port: NODE_PORT }],
      backends: [{ address: POD, port: 5201 }],
    });
    const direct = topology(`${tag}d`, true);
    setups.push(direct);
    // masquerade: pod -> world:5201 through bpf/netdev.c, and through iptables MASQUERADE
    const bm = topology(`${tag}b`, false);
    setups.push(bm);
    const bmNs = Netns.open({ name: bm.node });
    setups.push(bmNs);
    setups.push(
      await NodeNetdev.attach(
        { nodeAddress: NODE, masquerade: { podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16' } },
        { ifname: 'ext0', netns: bmNs },
      ),
    );
    const im = topology(`${tag}i`, false);
    setups.push(im);
    inNs(
      im.node,
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      '10.244.1.0/24',
      '!',
      '-d',
      '10.244.0.0/16',
      '-o',
      'ext0',
      '-j',
      'MASQUERADE',
    );
    const measure: Record<string, () => number> = {
      nodeport: () => iperf(np.world, np.pod, NODE, NODE_PORT),
      direct: () => iperf(direct.world, direct.pod, POD),
      bpfMasq: () => iperf(bm.pod, bm.world, WORLD),
      iptMasq: () => iperf(im.pod, im.world, WORLD),
    };
    const order = Object.keys(measure);
    for (let r = 0; r < ROUNDS; r++) {
      const o = r % 2 === 0 ? order : [...order].reverse();
      for (const k of o) runs[k]!.push(measure[k]!());
      process.stderr.write(
        `round ${r + 1}/${ROUNDS}: ${order.map((k) => `${k} ${fmt(runs[k]!.at(-1)!)}`).join(', ')}\n`,
      );
    }
    const s = dev.stats();
    if (s.svcNew === 0n || s.svcReply === 0n)
      throw new Error('NodePort runs did not go through the service path');
  } finally {
    for (const x of setups.reverse()) x.close();
    rmSync(pinDir, { recursive: true, force: true });
  }
  const m = (k: string) => median(runs[k]!);
  const paired = (a: string, b: string) => median(runs[a]!.map((x, i) => x / runs[b]![i]!));
  const npRatio = m('nodeport') / m('direct');
  const masqRatio = m('bpfMasq') / m('iptMasq');
  const cpu =
    SERVER_CPU === undefined ? 'unpinned' : `iperf3 server on CPU ${SERVER_CPU}, client on CPU ${CLIENT_CPU}`;
  const md = [
    '## packages/lb: per-packet NodePort and masquerade (tc)',
    '',
    'Namespaces pod —veth— node —veth— world, one topology per setup side by side; iperf3 TCP, 1 stream,',
    `${IPERF_T} s per run, ${ROUNDS} interleaved rounds (order reversed every other round), ${cpu}; medians of the rounds.`,
    `Machine load (1-min average) ${fmt(loadBefore, 1)} before and ${fmt(loadavg()[0]!, 1)} after the run (2 vCPUs shared with other work: single runs swing widely, read the paired ratio too).`,
    'NodePort: world → nodeAddr:30080 DNAT to the pod by `from_netdev` (a `svc` lookup per packet) and the replies',
    'reverse-translated by `to_netdev` (an `rsvc` lookup), against the world reaching the pod address through the',
    'same node with no program attached. Masquerade: pod → world SNAT by `to_netdev` (an `out` lookup) and',
    '`from_netdev` (an `in` lookup), against iptables `MASQUERADE` (nf_conntrack) in an identical topology.',
    '',
    '| target | ours | baseline (same run) | ratio (of the medians) | paired (median of per-round ratios) | rerun |',
    '|---|---:|---:|---:|---:|---|',
    `| NodePort established TCP flow vs no service (≥ 0.95×) | ${fmt(m('nodeport'))} Gbit/s | ${fmt(m('direct'))} Gbit/s | ${fmt(npRatio)} ${npRatio >= 0.95 ? '✓' : '✗'} | ${fmt(paired('nodeport', 'direct'))} | \`flock /tmp/datapath-bench.lock node scripts/bench.mjs lb\` (root) |`,
    `| masquerade in BPF vs iptables MASQUERADE (report) | ${fmt(m('bpfMasq'))} Gbit/s | ${fmt(m('iptMasq'))} Gbit/s | ${fmt(masqRatio)} | ${fmt(paired('bpfMasq', 'iptMasq'))} | same |`,
    '',
    `Per-round Gbit/s: NodePort ${runs.nodeport!.map((x) => fmt(x)).join(' / ')} · no service ${runs.direct!.map((x) => fmt(x)).join(' / ')} · BPF masquerade ${runs.bpfMasq!.map((x) => fmt(x)).join(' / ')} · iptables ${runs.iptMasq!.map((x) => fmt(x)).join(' / ')}.`,
    '',
  ].join('\n');
  process.stdout.write(md);
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'lb-nat.md'), md);
  }
}

await main();
