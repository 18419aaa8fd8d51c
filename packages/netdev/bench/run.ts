// Benchmark: applyEndpoint (Cilium mode, IPv4) vs the same steps spawned as `ip` commands, measured in
// the same run. The outer process makes a private "host" namespace and throwaway pod namespaces (the
// real host namespace is never touched), then re-runs itself under `nsenter --net=<host>` so the
// measured calls run exactly as a CNI plugin would: from inside the host namespace, no hostNetns option.
// Writes one Markdown section to $BENCH_OUT/netdev.md. Needs root.  Run: node scripts/bench.mjs netdev
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { applyEndpoint, planEndpoint, removeEndpoint } from '../src/index.js';

const N = Number(process.env.BENCH_N ?? 300);
const N_SPAWN = Number(process.env.BENCH_N_SPAWN ?? 40);
const WARMUP = 30;
const PODS = 50;
const GW = '10.244.255.254';

interface Samples {
  ours: number[];
  oursCpu: number[];
  oursHostNetns: number[];
  dels: number[];
  spawned: number[];
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** Runs inside the private host namespace (nsenter): every figure is measured here. */
function inner(hostPath: string, podNames: string[]): Samples {
  const s: Samples = { ours: [], oursCpu: [], oursHostNetns: [], dels: [], spawned: [] };
  using host = Netns.open({ path: hostPath });
  using self = Netns.current();
  if (!host.sameAs(self)) throw new Error('inner bench must run inside the private host namespace');
  const plan = (i: number, tag: string) =>
    planEndpoint({
      containerId: `bench-${tag}-${i}`,
      netns: `/run/netns/${podNames[i % podNames.length]}`,
      addresses: [`10.244.${(i >> 8) & 255}.${i & 255}`],
      gateway: GW,
      mode: 'cilium',
    });
  // Apply to every pod namespace, then remove them all: no apply is measured right behind a veth
  // delete (whose deferred kernel cleanup would be charged to it), as on a node where pods come and go.
  const rounds = (
    tag: string,
    count: number,
    opts: { hostNetns?: Netns },
    wall: number[],
    cpu?: number[],
  ) => {
    for (let base = 0; base < WARMUP + count; base += podNames.length) {
      const plans = podNames.map((_, k) => plan(base + k, tag));
      for (const [k, p] of plans.entries()) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        applyEndpoint(p, opts);
        const t1 = performance.now();
        const c = process.cpuUsage(c0);
        if (base + k >= WARMUP && wall.length < count) {
          wall.push(t1 - t0);
          cpu?.push((c.user + c.system) / 1000);
        }
      }
      for (const p of plans) {
        const t0 = performance.now();
        removeEndpoint(p, opts);
        if (tag === 'a') s.dels.push(performance.now() - t0);
      }
    }
  };
  rounds('a', N, {}, s.ours, s.oursCpu);
  rounds('b', Math.floor(N / 2), { hostNetns: host }, s.oursHostNetns);
  for (let i = 0; i < N_SPAWN + 3; i++) {
    const p = plan(i, 'c');
    const pod = podNames[i % podNames.length]!;
    const h = p.host.name;
    const c = p.container;
    const addr = c.addresses[0]!.address;
    const t0 = performance.now();
    ip(
      'link',
      'add',
      h,
      'mtu',
      '1500',
      'address',
      p.host.mac,
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
    execFileSync('sysctl', ['-qw', `net.ipv4.conf.${h}.rp_filter=0`]);
    ip('link', 'set', h, 'up');
    ip('-n', pod, 'link', 'set', c.tmpName, 'name', c.name, 'up');
    ip('-n', pod, 'link', 'set', 'lo', 'up');
    ip('-n', pod, 'addr', 'add', `${addr}/32`, 'dev', c.name);
    ip('-n', pod, 'route', 'add', `${GW}/32`, 'dev', c.name, 'scope', 'link');
    ip('-n', pod, 'route', 'add', 'default', 'via', GW, 'dev', c.name);
    ip('route', 'add', `${addr}/32`, 'dev', h, 'scope', 'link');
    const t1 = performance.now();
    ip('link', 'del', h);
    if (i >= 3) s.spawned.push(t1 - t0);
  }
  return s;
}

function outer(): void {
  if (process.getuid?.() !== 0) {
    console.error('netdev bench needs root');
    process.exit(1);
  }
  const prefix = `dpb${randomBytes(2).toString('hex')}`;
  const hostName = `${prefix}h`;
  const podNames = Array.from({ length: PODS }, (_, i) => `${prefix}p${i}`);
  const made: string[] = [];
  let s: Samples;
  try {
    for (const n of [hostName, ...podNames]) {
      netnsAdd(n).close();
      made.push(n);
    }
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(
      'nsenter',
      [
        `--net=/run/netns/${hostName}`,
        process.execPath,
        '--import',
        'tsx',
        self,
        '--inner',
        hostName,
        ...podNames,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 },
    );
    if (r.status !== 0) throw new Error(`inner bench failed (exit ${r.status})`);
    s = JSON.parse(r.stdout) as Samples;
  } finally {
    for (const n of made) netnsDelete(n);
  }
  const p50 = pct(s.ours, 50);
  const s50 = pct(s.spawned, 50);
  const f = (x: number) => x.toFixed(2);
  const text = [
    '## @datapath/netdev — pod endpoint setup (applyEndpoint)',
    '',
    'A full Cilium-style endpoint (veth created with its peer straight in the pod namespace, rp_filter=0,',
    'host up, rename + up, lo up, /32, gw/32 scope link, default via gw, host route), run from inside a',
    'private "host" namespace as a CNI plugin would, vs the same 9 steps spawned as `ip`/`sysctl`',
    "commands in the same run. Delete time is the kernel's veth teardown (same for everyone). Wall times",
    'depend on machine load (compare the ratio); the CPU-time row is less sensitive to it.',
    '',
    '| measure | target | measured | baseline (same run) | ratio |',
    '|---|---|---|---|---|',
    `| applyEndpoint p50 (N=${s.ours.length}) | ≤ 1.5 ms, ≥ 20× | ${f(p50)} ms | spawned \`ip\` p50 ${f(s50)} ms (N=${s.spawned.length}) | ${(s50 / p50).toFixed(1)}× |`,
    `| applyEndpoint p90 / p99 | – | ${f(pct(s.ours, 90))} / ${f(pct(s.ours, 99))} ms | spawned p90 ${f(pct(s.spawned, 90))} ms | ${(pct(s.spawned, 90) / pct(s.ours, 90)).toFixed(1)}× |`,
    `| applyEndpoint CPU time (user+sys of this process) p50 | – | ${f(pct(s.oursCpu, 50))} ms | – | – |`,
    `| applyEndpoint with \`hostNetns\` (extra setns windows) p50 | – | ${f(pct(s.oursHostNetns, 50))} ms | – | – |`,
    `| removeEndpoint p50 | – | ${f(pct(s.dels, 50))} ms | – | – |`,
    '',
    'Rerun: `node scripts/bench.mjs netdev` (root; about 30 s).',
    '',
  ].join('\n');
  console.log(text);
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'netdev.md'), text);
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--inner') {
  const [, hostName, ...pods] = argv;
  process.stdout.write(JSON.stringify(inner(`/run/netns/${hostName}`, pods)));
} else {
  outer();
}
