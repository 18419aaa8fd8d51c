// Benchmarks of @datapath/loader; writes one Markdown section to $BENCH_OUT/loader.md.
//   pnpm --filter @datapath/loader bench      (root; creates and deletes its own netns and veths)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from '../src/index.js';

const N = Number(process.env.BENCH_DEVICES ?? 200);
const ENDPOINTS = Number(process.env.BENCH_ENDPOINTS ?? 50);
if (N < ENDPOINTS + 3) throw new Error('BENCH_DEVICES must exceed BENCH_ENDPOINTS by 3 (warm-up)');
const here = fileURLToPath(new URL('.', import.meta.url));
const pkg = join(here, '..');
const source = join(here, 'bpf', 'endpoint.bpf.c');
const ns = `dpbench${process.pid}`;
const prefix = 'dpbv';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

// Compile: cold (fresh cache dir, clang runs) vs cached (same key, no clang).
const cold: number[] = [];
const warm: number[] = [];
let objPath = '';
for (let r = 0; r < 3; r++) {
  const dir = mkdtempSync(join(tmpdir(), 'dp-bench-cache-'));
  let t = performance.now();
  objPath = (await compile({ files: [source], cacheDir: dir })).path;
  cold.push(performance.now() - t);
  for (let i = 0; i < 20; i++) {
    t = performance.now();
    const hit = await compile({ files: [source], cacheDir: dir });
    warm.push(performance.now() - t);
    if (!hit.cached) throw new Error('expected a cache hit');
  }
  if (r < 2) rmSync(dir, { recursive: true, force: true });
}
const stableObj = join(mkdtempSync(join(tmpdir(), 'dp-bench-obj-')), 'endpoint.bpf.o');
sh('cp', [objPath, stableObj]);
rmSync(join(objPath, '..'), { recursive: true, force: true });

// Devices: N veth pairs in a private namespace, each with a clsact qdisc for the tc baselines.
const pinDir = `/sys/fs/bpf/${ns}`;
let inner: Record<string, number>;
try {
  sh('ip', ['netns', 'add', ns]);
  const batch = join(tmpdir(), `${ns}.batch`);
  writeFileSync(
    batch,
    Array.from(
      { length: N },
      (_, i) => `link add ${prefix}${i} type veth peer name ${prefix}p${i}\nlink set ${prefix}${i} up\n`,
    ).join(''),
  );
  sh('ip', ['-n', ns, '-batch', batch]);
  writeFileSync(batch, Array.from({ length: N }, (_, i) => `qdisc add dev ${prefix}${i} clsact\n`).join(''));
  sh('tc', ['-n', ns, '-batch', batch]);
  rmSync(batch);
  mkdirSync(pinDir);
  const out = sh('nsenter', [
    `--net=/run/netns/${ns}`,
    process.execPath,
    '--import',
    'tsx',
    join(here, 'inner.ts'),
    stableObj,
    prefix,
    String(N),
    join(pinDir, 'prog'),
    String(ENDPOINTS),
  ]);
  inner = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
} finally {
  try {
    sh('ip', ['netns', 'del', ns]);
  } catch {
    // not created
  }
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(join(stableObj, '..'), { recursive: true, force: true });
}

const f = (ms: number) =>
  ms >= 10 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(0)} µs`;
const x = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
const coldMs = median(cold);
const warmMs = median(warm);
const cmd = '`node scripts/bench.mjs loader`';
const rows = [
  ['compile, cache hit (no clang) vs cold clang compile', f(warmMs), f(coldMs), x(coldMs, warmMs)],
  [
    'load per endpoint from a cached object (spec copy, constant, load; target ≤ 2 ms with the attach) vs spawned `tc filter add … bpf da obj`',
    f(inner.tcxLoadMs!),
    f(inner.tcObjSpawnMs!),
    x(inner.tcObjSpawnMs!, inner.tcxLoadMs!),
  ],
  [
    'load + legacy tc attach per endpoint vs spawned `tc filter add … bpf da obj`',
    f(inner.tcLoadAttachMs!),
    f(inner.tcObjSpawnMs!),
    x(inner.tcObjSpawnMs!, inner.tcLoadAttachMs!),
  ],
  [
    'load + tcx attach per endpoint vs spawned `tc filter add … bpf da obj`',
    f(inner.tcxLoadAttachMs!),
    f(inner.tcObjSpawnMs!),
    x(inner.tcObjSpawnMs!, inner.tcxLoadAttachMs!),
  ],
  [
    `tcx attach, one program to ${N} veths (per device) vs spawned \`tc filter add … bpf da pinned\``,
    f(inner.tcxAttachMs!),
    f(inner.tcPinnedSpawnMs!),
    x(inner.tcPinnedSpawnMs!, inner.tcxAttachMs!),
  ],
  [
    `legacy tc attach via libbpf netlink, ${N} veths (per device) vs the same spawned baseline`,
    f(inner.tcAttachMs!),
    f(inner.tcPinnedSpawnMs!),
    x(inner.tcPinnedSpawnMs!, inner.tcAttachMs!),
  ],
];
const md = `## @datapath/loader

Compile with clang and a content-hash cache, load per endpoint from a cached object, attach to many veths.
Medians (compile: 3 cold runs, 60 cache hits; per-endpoint: ${ENDPOINTS} endpoints, each a spec copy with a
constant set, a load of a one-program object and an attach). Ratio = baseline / measured (> 1: faster
than the baseline). A tcx link attach waits for an RCU grace period inside the kernel (the same time through
libbpf's own \`bpf_link_create\`, and concurrent attaches do not overlap: they serialise on the RTNL lock),
so on this VM it costs more than a spawned legacy \`tc filter add\`; legacy tc through libbpf does not wait.

| target | measured | baseline (same run) | ratio | rerun |
| --- | ---: | ---: | ---: | --- |
${rows.map((r) => `| ${r.join(' | ')} | ${cmd} |`).join('\n')}
`;
const dir = process.env.BENCH_OUT;
if (dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'loader.md'), md);
}
process.stdout.write(md);
void pkg;
