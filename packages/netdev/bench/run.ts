// Benchmark: applyEndpoint (Cilium mode, IPv4) vs the same steps spawned as `ip` commands, in the same
// run, inside a private "host" namespace and throwaway pod namespaces (never the real host namespace).
// Writes one Markdown section to $BENCH_OUT/netdev.md. Needs root. Run: pnpm --filter @datapath/netdev bench
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { applyEndpoint, planEndpoint, removeEndpoint } from '../src/index.js';

const N = Number(process.env.BENCH_N ?? 300);
const N_SPAWN = Number(process.env.BENCH_N_SPAWN ?? 40);
const WARMUP = 30;
const PODS = 10;
const prefix = `dpb${randomBytes(2).toString('hex')}`;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

if (process.getuid?.() !== 0) {
  console.error('netdev bench needs root');
  process.exit(1);
}

const hostName = `${prefix}h`;
const podNames = Array.from({ length: PODS }, (_, i) => `${prefix}p${i}`);
const host = netnsAdd(hostName);
const pods = podNames.map((n) => netnsAdd(n));
try {
  ip('-n', hostName, 'link', 'set', 'lo', 'up');
  const ours: number[] = [];
  const dels: number[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const pod = pods[i % PODS]!;
    const plan = planEndpoint({
      containerId: `${prefix}-${i}`,
      netns: pod.path,
      addresses: [`10.244.${(i >> 8) & 255}.${i & 255 || 1}`],
      gateway: '10.244.255.254',
      mode: 'cilium',
    });
    const t0 = performance.now();
    applyEndpoint(plan, { hostNetns: host });
    const t1 = performance.now();
    removeEndpoint(plan, { hostNetns: host });
    const t2 = performance.now();
    if (i >= WARMUP) {
      ours.push(t1 - t0);
      dels.push(t2 - t1);
    }
  }

  const spawned: number[] = [];
  for (let i = 0; i < N_SPAWN + 3; i++) {
    const pod = podNames[i % PODS]!;
    const plan = planEndpoint({
      containerId: `${prefix}-s${i}`,
      netns: `/run/netns/${pod}`,
      addresses: [`10.244.200.${i & 255 || 1}`],
      gateway: '10.244.255.254',
      mode: 'cilium',
    });
    const h = plan.host.name;
    const c = plan.container;
    const addr = c.addresses[0]!.address;
    const t0 = performance.now();
    ip(
      '-n',
      hostName,
      'link',
      'add',
      h,
      'mtu',
      '1500',
      'address',
      plan.host.mac,
      'txqlen',
      '1000',
      'type',
      'veth',
      'peer',
      'name',
      c.tmpName,
      'mtu',
      '1500',
      'address',
      c.mac,
      'netns',
      pod,
    );
    execFileSync('ip', ['netns', 'exec', hostName, 'sysctl', '-qw', `net.ipv4.conf.${h}.rp_filter=0`]);
    ip('-n', hostName, 'link', 'set', h, 'up');
    ip('-n', pod, 'link', 'set', c.tmpName, 'name', c.name, 'up');
    ip('-n', pod, 'link', 'set', 'lo', 'up');
    ip('-n', pod, 'addr', 'add', `${addr}/32`, 'dev', c.name);
    ip('-n', pod, 'route', 'add', '10.244.255.254/32', 'dev', c.name, 'scope', 'link');
    ip('-n', pod, 'route', 'add', 'default', 'via', '10.244.255.254', 'dev', c.name);
    ip('-n', hostName, 'route', 'add', `${addr}/32`, 'dev', h, 'scope', 'link');
    const t1 = performance.now();
    ip('-n', hostName, 'link', 'del', h);
    if (i >= 3) spawned.push(t1 - t0);
  }

  const p50 = pct(ours, 50);
  const s50 = pct(spawned, 50);
  const ratio = s50 / p50;
  const f = (x: number) => x.toFixed(3);
  const lines = [
    '## @datapath/netdev — pod endpoint setup (applyEndpoint)',
    '',
    'Full Cilium-style endpoint (veth with the peer created straight in the pod namespace, rp_filter, host',
    'up, rename + up, lo up, /32, gw/32 scope link, default via gw, host route) into a private "host"',
    `namespace; ours over netlink through koffi vs the same 9 steps spawned as \`ip\` commands in the same run.`,
    '',
    '| measure | target | measured | baseline (same run) | ratio |',
    '|---|---|---|---|---|',
    `| applyEndpoint p50 (N=${N}) | ≤ 1.5 ms | ${f(p50)} ms | spawned \`ip\` p50 ${f(s50)} ms (N=${N_SPAWN}) | ${ratio.toFixed(1)}× (target ≥ 20×) |`,
    `| applyEndpoint p90 / p99 | – | ${f(pct(ours, 90))} / ${f(pct(ours, 99))} ms | spawned p90 ${f(pct(spawned, 90))} ms | – |`,
    `| removeEndpoint p50 (kernel veth delete dominates) | – | ${f(pct(dels, 50))} ms | – | – |`,
    '',
    'Rerun: `sudo node scripts/bench.mjs netdev` (or `cd packages/netdev && BENCH_OUT=/tmp pnpm bench`).',
    '',
  ];
  const text = lines.join('\n');
  console.log(text);
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'netdev.md'), text);
  }
} finally {
  host.close();
  for (const p of pods) p.close();
  for (const n of [hostName, ...podNames]) {
    try {
      netnsDelete(n);
    } catch {
      // already gone
    }
  }
  void Netns;
}
