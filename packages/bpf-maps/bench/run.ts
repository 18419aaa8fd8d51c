// Benchmark of @datapath/bpf-maps against C (libbpf) doing the same loops in the same run, plus bpftool per
// call as the naive baseline. Writes one Markdown section to $BENCH_OUT/bpf-maps.md (and prints it).
// Needs root. Run: `pnpm run bench` in packages/bpf-maps (pins both sides to CPU 1 with taskset).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpfBackend, MapIo } from '@datapath/libbpf';
import { createMap, type HashMap, struct, u32, u64 } from '../src/index.js';

const N = 65_536;
/** CPU time each figure covers at least: whole passes repeat until it went by (clock steps ≪ 1 % of it). */
const MIN_MS = Number(process.env.BENCH_MIN_MS ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const BATCHES = [1024, 8192];
const CPU = process.env.BENCH_CPU ?? '1';

type Round = Map<string, number>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

// CPU time of the process (user + system) from getrusage(RUSAGE_SELF), the clock the C side reads too.
// It is µs-precise; process.threadCpuUsage() (RUSAGE_THREAD) only moves at scheduler ticks (4 ms at
// HZ=250), which quantised the figures of earlier runs. Wall time would measure the neighbours.
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** Mean step (µs) of a µs CPU clock over 200 ms of wall time: CPU time covered / times it changed. */
function granularity(clock: () => NodeJS.CpuUsage): number {
  const end = process.hrtime.bigint() + 200_000_000n;
  const read = () => {
    const u = clock();
    return u.user + u.system;
  };
  const first = read();
  let prev = first;
  let n = 0;
  while (process.hrtime.bigint() < end) {
    const t = read();
    if (t !== prev) {
      n++;
      prev = t;
    }
  }
  return n === 0 ? 0 : (prev - first) / n;
}

/** Repeats `pass` (returning how many elements it handled) until MIN_MS of CPU time went by; elements/s. */
function rate(pass: () => number): number {
  const t0 = cpuNow();
  let count = 0;
  let elapsed: number;
  do {
    count += pass();
    elapsed = cpuNow() - t0;
  } while (elapsed < MIN_MS * 1e3);
  return count / (elapsed / 1e6);
}

/** One round of the C program: it creates and fills its own map, then measures every loop once, in order. */
function cRound(bin: string, op = 'all'): Round {
  const out = execFileSync('taskset', ['-c', CPU, bin, String(N), String(MIN_MS), '1', op], {
    encoding: 'utf8',
  });
  return new Map(
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { op: string; median: number })
      .map((f) => [f.op, f.median]),
  );
}

/** The same loops through the typed API (and MapIo for the bytes-only rows), one function per op. */
function nodeOps(map: HashMap<number, bigint>, values: bigint[]): Map<string, () => number> {
  const ops = new Map<string, () => number>();
  const mask = N - 1;
  // The loops only check results (no BigInt arithmetic: that would time the caller, not the library).
  ops.set('lookup', () =>
    rate(() => {
      let missing = 0;
      for (let i = 0; i < N; i++) if (map.get(i & mask) === undefined) missing++;
      if (missing > 0) throw new Error(`${missing} lookups missed`);
      return N;
    }),
  );
  ops.set('update', () =>
    rate(() => {
      for (let i = 0; i < N; i++) map.set(i & mask, values[i & mask]!);
      return N;
    }),
  );
  const entries = values.map((v, i) => [i, v * 3n] as const);
  for (const b of BATCHES) {
    ops.set(`updateBatch${b}`, () =>
      rate(() => {
        map.setMany(entries, 'any', { batchSize: b });
        return N;
      }),
    );
    ops.set(`lookupBatch${b}`, () =>
      rate(() => {
        let n = 0;
        map.forEach(
          () => {
            n++;
          },
          { batchSize: b },
        );
        if (n !== N) throw new Error(`forEach saw ${n} of ${N}`);
        return n;
      }),
    );
    // The same batch walk through @datapath/libbpf's MapIo, bytes only: the FFI path without decoding.
    ops.set(`rawLookupBatch${b}`, () => {
      const io = new MapIo({ fd: map.fd, keySize: 4, valueSize: 8 });
      io.ensureBatch(b);
      return rate(() => {
        let n = io.lookupBatch(true, false, b);
        while (!io.batchDone) n += io.lookupBatch(false, false, b);
        if (n !== N) throw new Error(`raw batch saw ${n} of ${N}`);
        return n;
      });
    });
  }
  ops.set(
    'dump',
    () =>
      1e3 /
      rate(() => {
        const all = map.dump({ batchSize: 8192 });
        if (all.length !== N) throw new Error(`dump returned ${all.length}`);
        return 1;
      }),
  );
  return ops;
}

/** The C loop a Node op is compared with. */
const cOp = (op: string) =>
  op.startsWith('raw') ? `l${op.slice(4)}` : op === 'lookupStruct' ? 'lookup' : op;

/**
 * \`get\` through the generic codec path: the same 4-byte key and 8-byte value bytes as the u32 → u64 map (so
 * the kernel does the same work and C's lookup loop stays the baseline), but declared as one-field structs,
 * which the scalar fast path does not cover: every call encodes through the struct codec and decodes into
 * a new object.
 */
function structLookupRate(values: bigint[]): number {
  const key = struct({ id: u32 });
  const value = struct({ v: u64 });
  using m = createMap({ type: 'hash', key, value, maxEntries: N, name: 'dp_bench_st' });
  m.setMany(
    values.map((v, i) => [{ id: i }, { v }] as const),
    'noExist',
  );
  const mask = N - 1;
  const keys = Array.from({ length: N }, (_, i) => ({ id: i }));
  for (let i = 0; i < N; i++) m.get(keys[i & mask]!); // warm-up
  return rate(() => {
    let missing = 0;
    for (let i = 0; i < N; i++) if (m.get(keys[i & mask]!) === undefined) missing++;
    if (missing > 0) throw new Error(`${missing} lookups missed`);
    return N;
  });
}

/** bpftool, one process per lookup: the naive baseline (wall time: it is all process start-up). */
function bpftoolRate(map: HashMap<number, bigint>): number {
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
    return calls / (Number(process.hrtime.bigint() - t) / 1e9);
  } finally {
    map.unpin();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Clock steps (µs) of the process and thread CPU clocks, on each side. */
interface Clocks {
  node: { self: number; thread: number };
  c: { self: number; thread: number };
}

function clocks(bin: string): Clocks {
  const out = execFileSync('taskset', ['-c', CPU, bin, String(N), String(MIN_MS), '1', 'clock'], {
    encoding: 'utf8',
  });
  const c = JSON.parse(out) as { selfUs: number; threadUs: number };
  const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
  return {
    node: {
      self: granularity(() => process.cpuUsage()),
      thread: threadCpuUsage ? granularity(() => threadCpuUsage.call(process)) : Number.NaN,
    },
    c: { self: c.selfUs, thread: c.threadUs },
  };
}

/** A fresh 64 k-entry u32 → u64 hash, filled and read once (the C side warms up the same way). */
function filledMap(values: bigint[]): HashMap<number, bigint> {
  const map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: N, name: 'dp_bench_node' });
  map.setMany(
    values.map((v, i) => [i, v] as const),
    'noExist',
  );
  for (let i = 0; i < N; i++) map.get(i & (N - 1));
  return map;
}

/**
 * `get` and `set` in a second Node process whose bpf(2) goes through koffi (DATAPATH_BPF_BACKEND=koffi;
 * the backend is chosen once per process), pinned to the same CPU: the fallback's figures, same round.
 */
function koffiRound(): Round {
  const out = execFileSync(
    'taskset',
    ['-c', CPU, process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url)],
    {
      encoding: 'utf8',
      env: { ...process.env, BENCH_CHILD: 'getset', DATAPATH_BPF_BACKEND: 'koffi', BENCH_OUT: '' },
    },
  );
  return new Map(Object.entries(JSON.parse(out) as Record<string, number>));
}

function measure(): { node: Round; c: Round; koffi: Round | undefined; bpftool: number; clock: Clocks } {
  const dir = mkdtempSync(join(tmpdir(), 'dp-mapbench-'));
  try {
    const src = fileURLToPath(new URL('./mapbench.c', import.meta.url));
    const bin = join(dir, 'mapbench');
    execFileSync('cc', ['-O2', '-Wall', '-o', bin, src, '-lbpf'], { stdio: 'inherit' });
    const values = Array.from({ length: N }, (_, i) => BigInt(i));
    const clock = clocks(bin);
    // Rounds alternate C and Node so both see the same load on this shared machine. Like the C program,
    // each Node round starts from a freshly created and filled map and runs the loops in the same order
    // (a map's history changes the kernel's cost of updates); figures are medians over the rounds.
    const cs: Round[] = [];
    const ns: Round[] = [];
    const ks: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      cs.push(cRound(bin));
      using map = filledMap(values);
      const round: Round = new Map();
      for (const [op, run] of nodeOps(map, values)) round.set(op, run());
      round.set('lookupStruct', structLookupRate(values));
      ns.push(round);
      if (bpfBackend() === 'native') ks.push(koffiRound());
      // Per-round figures on stderr, to judge the spread (the table shows medians).
      console.error(
        `round ${r + 1}: ${[...round.keys()].map((k) => `${k} ${(round.get(k)! / cs[r]!.get(cOp(k))!).toFixed(2)}`).join(' ')}`,
      );
    }
    const med = (rounds: Round[]) =>
      new Map([...rounds[0]!.keys()].map((k) => [k, median(rounds.map((x) => x.get(k)!))]));
    using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: N, name: 'dp_bench_node' });
    map.setMany(values.map((v, i) => [i, v] as const));
    return {
      node: med(ns),
      c: med(cs),
      koffi: ks.length ? med(ks) : undefined,
      bpftool: bpftoolRate(map),
      clock,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function section(node: Round, c: Round, koffi: Round | undefined, bpftool: number, clock: Clocks): string {
  const cmd = '`node scripts/bench.mjs bpf-maps`';
  const rows: string[] = [];
  const ratioRow = (label: string, op: string, target: number) => {
    const n = node.get(op)!;
    const b = c.get(op)!;
    const ratio = n / b;
    rows.push(
      `| ${label} | ≥ ${target.toFixed(2)} × C | ${fmt(n)} /s | ${fmt(b)} /s | **${ratio.toFixed(2)}** ${ratio >= target ? '✅' : '❌'} | ${cmd} |`,
    );
  };
  ratioRow('`get` on a 64 k-entry hash (u32 → u64)', 'lookup', 0.85);
  ratioRow('`set` on a 64 k-entry hash', 'update', 0.85);
  for (const [label, op] of [
    ['get', 'lookup'],
    ['set', 'update'],
  ] as const) {
    if (koffi === undefined) break;
    const k = koffi.get(op)!;
    const b = c.get(op)!;
    rows.push(
      `| \`${label}\` with \`DATAPATH_BPF_BACKEND=koffi\` (the fallback backend, a second process) | reference: koffi's cost | ${fmt(k)} /s | ${fmt(b)} /s | ${(k / b).toFixed(2)} | ${cmd} |`,
    );
  }
  const ns = node.get('lookupStruct')!;
  const cl = c.get('lookup')!;
  rows.push(
    `| \`get\` through the generic codec path: key \`struct({ id: u32 })\`, value \`struct({ v: u64 })\` (same bytes, a new object per call) | no target | ${fmt(ns)} /s | ${fmt(cl)} /s (u32 → u64) | ${(ns / cl).toFixed(2)} | ${cmd} |`,
  );
  for (const b of BATCHES) {
    ratioRow(`\`setMany\`, batch ${b} (elements/s)`, `updateBatch${b}`, 0.9);
    ratioRow(`\`forEach\`, batch lookup ${b}, decoded (elements/s)`, `lookupBatch${b}`, 0.9);
    const raw = node.get(`rawLookupBatch${b}`)!;
    const cb = c.get(`lookupBatch${b}`)!;
    rows.push(
      `| \`MapIo.lookupBatch\` ${b}, bytes only (elements/s) | reference: the FFI path alone | ${fmt(raw)} /s | ${fmt(cb)} /s | ${(raw / cb).toFixed(2)} | ${cmd} |`,
    );
  }
  const dn = node.get('dump')!;
  const dc = c.get('dump')!;
  rows.push(
    `| \`dump()\` of 64 k entries (batch 8192, decoded) | ≤ 25 ms | ${dn.toFixed(1)} ms | ${dc.toFixed(1)} ms (C, undecoded) | ${(dn / dc).toFixed(2)} × C time ${dn <= 25 ? '✅' : '❌'} | ${cmd} |`,
  );
  const nl = node.get('lookup')!;
  rows.push(
    `| \`bpftool map lookup\`, one process per call (wall time) | naive baseline | ${fmt(nl)} /s (\`get\`) | ${fmt(bpftool)} /s (bpftool) | ${fmt(nl / bpftool)} × bpftool | ${cmd} |`,
  );
  return `## @datapath/bpf-maps

Node (typed API: codecs, scratch buffers, raw bpf(2) through the ${bpfBackend() === 'native' ? "package's native addon (`packages/libbpf/native/bpf.cc`, one V8 function around syscall(); the koffi rows are the fallback backend measured in a second process in the same rounds)" : 'koffi backend (the native addon was not built for this Node)'}) against a C program doing the same
loops through libbpf (\`packages/bpf-maps/bench/mapbench.c\`, built with \`cc -O2 … -lbpf\` in the run).
Hash map, u32 key, u64 value, 65,536 entries, all present. A pass is one sweep of the 65,536 keys (one
call per key, or batches); a measurement repeats whole passes until ≥ ${MIN_MS} ms of CPU time went by.
${ROUNDS} rounds alternate C and Node, each on a freshly created and filled map running the loops in the same
order; each figure is the median over the rounds. Clock, the same on both sides: process CPU time
(user + system) from \`getrusage(RUSAGE_SELF)\` (\`process.cpuUsage()\` in Node): the machine is shared,
so wall time would measure the neighbours. Measured steps in this run: Node ${clock.node.self.toFixed(1)} µs,
C ${clock.c.self.toFixed(1)} µs, so < 0.01 % of a measurement. (The per-thread clock, \`RUSAGE_THREAD\` /
\`process.threadCpuUsage()\`, advances only at scheduler ticks: mean steps Node ${fmt(clock.node.thread)} µs,
C ${fmt(clock.c.thread)} µs; earlier runs timed one pass of a few ms with it, hence quantised figures.)
Process time also charges Node's GC helper threads to Node. Both sides pinned to CPU ${CPU} with \`taskset\`.
Node figures include key encoding and value decoding (a BigInt per value); C decodes nothing: the
\`MapIo\` rows are the same walk without decoding (the FFI path alone, a reference without a target).
The built-in scalar codecs (u8…u64) are read and written inline; the generic-codec row declares the same
bytes as one-field structs, the path every struct key or value takes.

| operation | target | Node | C (same run) | ratio | rerun |
|---|---|---:|---:|---:|---|
${rows.join('\n')}
`;
}

if (process.env.BENCH_CHILD === 'getset') {
  // The koffiRound() child: get and set only, on its own fresh map; prints the rates as JSON.
  const values = Array.from({ length: N }, (_, i) => BigInt(i));
  const map = filledMap(values);
  const ops = nodeOps(map, values);
  const rates = { lookup: ops.get('lookup')!(), update: ops.get('update')!() };
  map.close();
  process.stdout.write(JSON.stringify(rates));
  process.exit(0);
}

const { node, c, koffi, bpftool, clock } = measure();
const md = section(node, c, koffi, bpftool, clock);
console.log(md);
if (process.env.BENCH_OUT) {
  mkdirSync(process.env.BENCH_OUT, { recursive: true });
  writeFileSync(join(process.env.BENCH_OUT, 'bpf-maps.md'), md);
}
