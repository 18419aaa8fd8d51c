// Benchmark of @datapath/bpf-maps against C (libbpf) doing the same loops in the same run, plus bpftool per
// call as the naive baseline. Writes one Markdown section to $BENCH_OUT/bpf-maps.md (and prints it).
// Needs root. Run: `pnpm run bench` in packages/bpf-maps (pins both sides to CPU 1 with taskset).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMap, u32, u64 } from '../src/index.js';

const N = 65_536;
const OPS = 500_000;
const REPS = 5;
const BATCHES = [1024, 8192];
const CPU = process.env.BENCH_CPU ?? '1';

interface Figure {
  op: string;
  median: number;
  unit: 'ops/s' | 'ms';
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

// CPU time of the main thread (user + system), like CLOCK_THREAD_CPUTIME_ID on the C side: on a shared
// machine wall time measures the neighbours. (Node < 23.9 lacks threadCpuUsage: whole-process time.)
const cpuClock: (prev?: NodeJS.CpuUsage) => NodeJS.CpuUsage =
  (process as { threadCpuUsage?: (p?: NodeJS.CpuUsage) => NodeJS.CpuUsage }).threadCpuUsage?.bind(process) ??
  process.cpuUsage.bind(process);

function timeReps(fn: () => number): number[] {
  const out: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const t = cpuClock();
    const count = fn();
    const d = cpuClock(t);
    out.push(count / ((d.user + d.system) / 1e6));
  }
  return out;
}

function runC(): Map<string, Figure> {
  const dir = mkdtempSync(join(tmpdir(), 'dp-mapbench-'));
  try {
    const src = fileURLToPath(new URL('./mapbench.c', import.meta.url));
    const bin = join(dir, 'mapbench');
    execFileSync('cc', ['-O2', '-Wall', '-o', bin, src, '-lbpf'], { stdio: 'inherit' });
    const out = execFileSync('taskset', ['-c', CPU, bin, String(N), String(OPS), String(REPS)], {
      encoding: 'utf8',
    });
    return new Map(
      out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Figure)
        .map((f) => [f.op, f]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runNode(): Map<string, Figure> {
  const figures = new Map<string, Figure>();
  const put = (op: string, xs: number[], unit: Figure['unit'] = 'ops/s') =>
    figures.set(op, { op, median: median(xs), unit });
  const mask = N - 1;
  const values = Array.from({ length: N }, (_, i) => BigInt(i));
  using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: N, name: 'dp_bench_node' });
  map.setMany(values.map((v, i) => [i, v] as const));
  let sink = 0n;
  for (let i = 0; i < OPS / 5; i++) sink += map.get(i & mask) ?? 0n;

  put(
    'lookup',
    timeReps(() => {
      for (let i = 0; i < OPS; i++) sink += map.get(i & mask)!;
      return OPS;
    }),
  );
  put(
    'update',
    timeReps(() => {
      for (let i = 0; i < OPS; i++) map.set(i & mask, values[i & mask]!);
      return OPS;
    }),
  );
  for (const b of BATCHES) {
    const entries = values.map((v, i) => [i, v * 3n] as const);
    put(
      `updateBatch${b}`,
      timeReps(() => {
        map.setMany(entries, 'any', { batchSize: b });
        return N;
      }),
    );
    put(
      `lookupBatch${b}`,
      timeReps(() => {
        let n = 0;
        map.forEach(
          (_k, v) => {
            sink += v;
            n++;
          },
          { batchSize: b },
        );
        if (n !== N) throw new Error(`forEach saw ${n} of ${N}`);
        return n;
      }),
    );
  }
  put(
    'dump',
    timeReps(() => {
      const all = map.dump({ batchSize: 8192 });
      if (all.length !== N) throw new Error(`dump returned ${all.length}`);
      return 1;
    }).map((perSec) => 1e3 / perSec),
    'ms',
  );

  // bpftool, one process per lookup: the naive baseline.
  const dir = `/sys/fs/bpf/dp_bench_${process.pid}`;
  mkdirSync(dir);
  try {
    map.pin(`${dir}/hash`);
    const calls = 200;
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) {
      execFileSync('bpftool', [
        '-j',
        'map',
        'lookup',
        'pinned',
        `${dir}/hash`,
        'key',
        String(i & 0xff),
        '0',
        '0',
        '0',
      ]);
    }
    put('bpftool', [calls / (Number(process.hrtime.bigint() - t) / 1e9)]);
  } finally {
    map.unpin();
    rmSync(dir, { recursive: true, force: true });
  }
  if (sink < 0n) console.log(sink);
  return figures;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function section(node: Map<string, Figure>, c: Map<string, Figure>): string {
  const cmd = '`node scripts/bench.mjs bpf-maps`';
  const rows: string[] = [];
  const ratioRow = (label: string, op: string, target: number) => {
    const n = node.get(op)!.median;
    const b = c.get(op)!.median;
    const ratio = n / b;
    rows.push(
      `| ${label} | ≥ ${target.toFixed(2)} × C | ${fmt(n)} /s | ${fmt(b)} /s | **${ratio.toFixed(2)}** ${ratio >= target ? '✅' : '❌'} | ${cmd} |`,
    );
  };
  ratioRow('`get` on a 64 k-entry hash (u32 → u64)', 'lookup', 0.85);
  ratioRow('`set` on a 64 k-entry hash', 'update', 0.85);
  for (const b of BATCHES) {
    ratioRow(`\`setMany\`, batch ${b} (elements/s)`, `updateBatch${b}`, 0.9);
    ratioRow(`\`forEach\`, batch lookup ${b} (elements/s)`, `lookupBatch${b}`, 0.9);
  }
  const dn = node.get('dump')!.median;
  const dc = c.get('dump')!.median;
  rows.push(
    `| \`dump()\` of 64 k entries (batch 8192, decoded) | ≤ 25 ms | ${dn.toFixed(1)} ms | ${dc.toFixed(1)} ms (C, undecoded) | ${(dn / dc).toFixed(2)} × C time ${dn <= 25 ? '✅' : '❌'} | ${cmd} |`,
  );
  const bt = node.get('bpftool')!.median;
  const nl = node.get('lookup')!.median;
  rows.push(
    `| \`bpftool map lookup\`, one process per call | naive baseline | ${fmt(nl)} /s (\`get\`) | ${fmt(bt)} /s (bpftool) | ${fmt(nl / bt)} × bpftool | ${cmd} |`,
  );
  return `## @datapath/bpf-maps

Node (typed API: codecs, scratch buffers, raw bpf(2) through koffi) against a C program doing the same
loops through libbpf (\`packages/bpf-maps/bench/mapbench.c\`, built with \`cc -O2 … -lbpf\` in the run).
Hash map, u32 key, u64 value, 65,536 entries, all present; single-element figures over ${fmt(OPS)} calls,
every figure the median of ${REPS} repetitions of thread CPU time (user + system; the machine is shared, so
wall time would measure the neighbours); both sides pinned to CPU ${CPU} with \`taskset\`.
Node figures include key encoding and value decoding (a BigInt per value); C decodes nothing.

| operation | target | Node | C (same run) | ratio | rerun |
|---|---|---:|---:|---:|---|
${rows.join('\n')}
`;
}

const c = runC();
const node = runNode();
const md = section(node, c);
console.log(md);
if (process.env.BENCH_OUT) {
  mkdirSync(process.env.BENCH_OUT, { recursive: true });
  writeFileSync(join(process.env.BENCH_OUT, 'bpf-maps.md'), md);
}
