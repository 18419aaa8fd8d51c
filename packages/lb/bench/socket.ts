// Benchmark: socket LB (@datapath/lb SocketLb) vs a kube-proxy-style iptables baseline the bench builds
// itself, and Maglev table builds vs a straightforward implementation, all in one run.
//   - iptables: nat OUTPUT/PREROUTING -> KUBE-SERVICES (one rule per service) -> KUBE-SVC-* (statistic
//     random over its backends) -> KUBE-SEP-* (DNAT), as kube-proxy's iptables mode writes them (without
//     its comments and masquerade marks), loaded with iptables-restore inside a namespace the bench makes.
//   - ours: the same services through SocketLb on a cgroup the bench makes.
//   A C client (bench/connect.c, built here) runs sequential TCP connect + request + close to the LAST
//   service's ClusterIP (the worst case for a linear chain) from inside that namespace and cgroup; a C
//   server (bench/server.c) answers in a second namespace. 100, 1 000 and 10 000 services.
// Writes $BENCH_OUT/lb-socket.md. Needs root, cc, clang, iptables. Run: LB_BENCH=socket node scripts/bench.mjs lb
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocketLb } from '../src/datapath.js';
import { maglevMoved, maglevPermutation, maglevTable } from '../src/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const MS = Number(process.env.LB_BENCH_MS ?? 1500);
const ROUNDS = Number(process.env.LB_BENCH_ROUNDS ?? 2);
const COUNTS = [100, 1000, 10000];
const POOL = ['10.244.1.1', '10.244.1.2', '10.244.1.3', '10.244.1.4'];
const PORT = 8080;
const vip = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// ---- Maglev: ours vs the paper's pseudocode with materialised permutations
function naiveMaglev(keys: string[], M: number): Int32Array {
  const perm = keys.map((k) => {
    const { offset, skip } = maglevPermutation(k, M);
    const p = new Int32Array(M);
    for (let j = 0; j < M; j++) p[j] = (offset + j * skip) % M;
    return p;
  });
  const next = new Int32Array(keys.length);
  const entry = new Int32Array(M).fill(-1);
  let n = 0;
  for (;;)
    for (let i = 0; i < keys.length; i++) {
      let c = perm[i]![next[i]!]!;
      while (entry[c]! >= 0) c = perm[i]![++next[i]!]!;
      entry[c] = i;
      next[i]!++;
      if (++n === M) return entry;
    }
}

function maglevRows(): string[] {
  const M = 65521;
  const keys = Array.from({ length: 100 }, (_, i) => `10.244.${i >> 8}.${i & 255}:8080`);
  const time = (f: () => unknown, n: number) => {
    const t: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      f();
      t.push(performance.now() - t0);
    }
    return median(t);
  };
  const ours = time(
    () =>
      maglevTable(
        keys.map((key) => ({ key })),
        M,
      ),
    9,
  );
  const naive = time(() => naiveMaglev(keys, M), 5);
  const changed = [...keys];
  changed[50] = '10.244.9.9:8080';
  const a = maglevTable(
    keys.map((key) => ({ key })),
    M,
  );
  const change = time(
    () =>
      maglevTable(
        changed.map((key) => ({ key })),
        M,
      ),
    9,
  );
  const b = maglevTable(
    changed.map((key) => ({ key })),
    M,
  );
  const moved = maglevMoved(a, b, keys, changed);
  const fewer = keys.filter((_, i) => i !== 50);
  const removed = maglevMoved(
    a,
    maglevTable(
      fewer.map((key) => ({ key })),
      M,
    ),
    keys,
    fewer,
  );
  return [
    `| Maglev table build, 65 521 entries × 100 backends | ${ours.toFixed(1)} ms | ${naive.toFixed(1)} ms (paper pseudocode, materialised permutations) | ${(ours / naive).toFixed(2)}× |`,
    `| one backend replaced (one out, one in): rebuild | ${change.toFixed(1)} ms, ${moved} entries moved (${((100 * moved) / M).toFixed(2)} % of the table; ideal 2/N = 2.00 %) | | |`,
    `| one backend removed | ${removed} entries moved (${((100 * removed) / M).toFixed(2)} %; ideal 1/N = 1.00 %) | | |`,
  ];
}

// ---- the namespaces, cgroup, server, client
const ip = (...a: string[]) => execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] });
function cgroup2Root(): string {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, path, type] = line.split(' ');
    if (type === 'cgroup2' && path) return path;
  }
  throw new Error('no cgroup v2 mount');
}

interface Run {
  n: number;
  errors: number;
  secs: number;
  p50: number;
}

function client(bin: string, cg: string, ns: string, host: string): Run {
  const r = spawnSync(
    'sh',
    [
      '-c',
      'echo $$ > "$0/cgroup.procs" && exec ip netns exec "$1" "$2" "$3" "$4" "$5"',
      cg,
      ns,
      bin,
      host,
      '80',
      String(MS),
    ],
    { encoding: 'utf8', timeout: MS + 30_000 },
  );
  if (r.status !== 0) throw new Error(`client: ${r.stderr}`);
  const [n, errors, secs, p50] = r.stdout.trim().split(' ').map(Number) as [number, number, number, number];
  return { n, errors, secs, p50 };
}

function iptablesRules(count: number): string {
  const lines = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
  ];
  const rules: string[] = ['-A PREROUTING -j KUBE-SERVICES', '-A OUTPUT -j KUBE-SERVICES'];
  for (let i = 0; i < count; i++) {
    lines.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i}-0 - [0:0]`, `:KUBE-SEP-${i}-1 - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -d ${vip(i)}/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-${i}`,
      `-A KUBE-SVC-${i} -m statistic --mode random --probability 0.5 -j KUBE-SEP-${i}-0`,
      `-A KUBE-SVC-${i} -j KUBE-SEP-${i}-1`,
      `-A KUBE-SEP-${i}-0 -p tcp -m tcp -j DNAT --to-destination ${POOL[i % 4]}:${PORT}`,
      `-A KUBE-SEP-${i}-1 -p tcp -m tcp -j DNAT --to-destination ${POOL[(i + 1) % 4]}:${PORT}`,
    );
  }
  return `${[...lines, ...rules, 'COMMIT'].join('\n')}\n`;
}

async function main(): Promise<void> {
  const tag = `lbb${process.pid}`;
  const cns = `${tag}-c`;
  const pns = `${tag}-p`;
  const cg = join(cgroup2Root(), tag);
  const work = mkdtempSync(join(tmpdir(), 'lb-bench-'));
  const cbin = join(work, 'connect');
  const sbin = join(work, 'server');
  execFileSync('cc', ['-O2', '-o', cbin, join(here, 'connect.c')]);
  execFileSync('cc', ['-O2', '-o', sbin, join(here, 'server.c')]);
  const rows: string[] = [];
  let server: ReturnType<typeof spawn> | undefined;
  try {
    ip('netns', 'add', cns);
    ip('netns', 'add', pns);
    ip('-n', cns, 'link', 'set', 'lo', 'up');
    ip('-n', pns, 'link', 'set', 'lo', 'up');
    ip('-n', cns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pns);
    ip('-n', cns, 'addr', 'add', '10.244.0.1/16', 'dev', 'eth0');
    for (const a of POOL) ip('-n', pns, 'addr', 'add', `${a}/16`, 'dev', 'eth0');
    ip('-n', cns, 'link', 'set', 'eth0', 'up');
    ip('-n', pns, 'link', 'set', 'eth0', 'up');
    ip('-n', cns, 'route', 'add', '10.96.0.0/12', 'dev', 'eth0');
    mkdirSync(cg);
    server = spawn('ip', ['netns', 'exec', pns, sbin, String(PORT)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    const res: Record<string, { base: Run[]; ours: Run[] }> = {};
    for (const n of COUNTS) res[n] = { base: [], ours: [] };
    for (let round = 0; round < ROUNDS; round++)
      for (const n of COUNTS) {
        const target = vip(n - 1);
        execFileSync('ip', ['netns', 'exec', cns, 'iptables-restore'], { input: iptablesRules(n) });
        res[n]!.base.push(client(cbin, cg, cns, target));
        execFileSync('ip', ['netns', 'exec', cns, 'iptables-restore'], { input: '*nat\nCOMMIT\n' });
        const lb = await SocketLb.attach({ cgroupPath: cg, tableSize: 251 });
        try {
          for (let i = 0; i < n; i++)
            lb.upsert({
              name: `s${i}`,
              protocol: 'TCP',
              frontends: [{ address: vip(i), port: 80 }],
              backends: [0, 1].map((k) => ({ address: POOL[(i + k) % 4]!, port: PORT })),
            });
          res[n]!.ours.push(client(cbin, cg, cns, target));
        } finally {
          lb.close();
        }
      }
    const rate = (r: Run[]) => r.reduce((a, x) => a + x.n, 0) / r.reduce((a, x) => a + x.secs, 0);
    const errs = (r: Run[]) => r.reduce((a, x) => a + x.errors, 0);
    const ours100 = rate(res[100]!.ours);
    for (const n of COUNTS) {
      const { base, ours } = res[n]!;
      rows.push(
        `| ${n.toLocaleString('en')} services: connect+request+close rate | ${rate(ours).toFixed(0)}/s, p50 ${median(ours.map((r) => r.p50)).toFixed(0)} µs | ${rate(base).toFixed(0)}/s, p50 ${median(base.map((r) => r.p50)).toFixed(0)} µs | **${(rate(ours) / rate(base)).toFixed(2)}×** rate, p50 ${(median(ours.map((r) => r.p50)) / median(base.map((r) => r.p50))).toFixed(2)}×; ours vs ours at 100: ${(rate(ours) / ours100).toFixed(2)}×${errs(ours) + errs(base) ? `; errors ours ${errs(ours)} base ${errs(base)}` : ''} |`,
      );
    }
  } finally {
    server?.kill();
    try {
      rmdirSync(cg);
    } catch {
      // not made
    }
    for (const ns of [cns, pns]) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(work, { recursive: true, force: true });
  }
  rows.push(...maglevRows());
  const md = `## @datapath/lb: socket LB vs kube-proxy-style iptables, Maglev

Sequential TCP connect + request + close (C client, C server) to the ClusterIP of the last of N services,
${MS} ms × ${ROUNDS} rounds per cell, interleaved. Baseline: nat rules as kube-proxy's iptables mode
writes them (KUBE-SERVICES → KUBE-SVC-* with \`statistic\` random → KUBE-SEP-* DNAT; iptables ${execFileSync(
    'iptables',
    ['--version'],
    { encoding: 'utf8' },
  )
    .trim()
    .replace(/^iptables /, '')}) in the
client's namespace; ours: the same services in \`SocketLb\` (cgroup connect hook, random selection).
Targets: ≥ 3× the baseline at 10 000 services; ours at 10 000 ≥ 0.9× ours at 100. Load average at the
end: ${loadavg()[0]!.toFixed(2)} (2 vCPU, shared). Rerun: \`LB_BENCH=socket flock /tmp/datapath-bench.lock node scripts/bench.mjs lb\`.

| measure | ours | baseline | ratio |
| --- | --- | --- | --- |
${rows.join('\n')}
`;
  const out = process.env.BENCH_OUT;
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'lb-socket.md'), md);
  }
  console.log(md);
}

await main();
