// What an update of a map-in-map slot costs: the kernel waits for an RCU grace period on every update
// or delete of an outer map's slot (so no program still runs on the old inner map when the call
// returns), where a plain array update is a copy. Measured in the same run, interleaved rounds, wall
// time (the grace period is a wait, not CPU work): a u32 array update (the baseline), the outer slot
// update through ArrayOfMaps.set (with its inner-map shape check), the same update through the raw
// bpf(2) call (no check: the kernel's part alone) and the shape check alone (BPF_OBJ_GET_INFO_BY_FD).
// Writes one Markdown section to $BENCH_OUT/bpf-maps-mapinmap.md (and prints it). Needs root.
// Rerun alone: BPF_MAPS_BENCH=mapinmap node scripts/bench.mjs bpf-maps
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mapInfo, mapUpdate } from '@datapath/libbpf';
import { createMap, u32 } from '../src/index.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SLOT_OPS = Number(process.env.BENCH_SLOT_OPS ?? 100); // outer updates per round and form
const PLAIN_OPS = Number(process.env.BENCH_PLAIN_OPS ?? 20_000); // array updates per round

if (process.getuid?.() !== 0) throw new Error('needs root (CAP_BPF)');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const now = () => process.hrtime.bigint();
const perOpNs = (ops: number, fn: () => void): number => {
  const t = now();
  fn();
  return Number(now() - t) / ops;
};

const inner = { type: 'array', value: u32, maxEntries: 16 } as const;
using outer = createMap({ type: 'arrayOfMaps', maxEntries: 4, inner, name: 'bench_outer' });
using a = createMap({ ...inner, name: 'bench_a' });
using b = createMap({ ...inner, name: 'bench_b' });
using plain = createMap({ type: 'array', value: u32, maxEntries: 4, name: 'bench_plain' });
const key = new Uint8Array(4);
const fdA = new Uint8Array(4);
const fdB = new Uint8Array(4);
new DataView(fdA.buffer).setUint32(0, a.fd, true);
new DataView(fdB.buffer).setUint32(0, b.fd, true);

const times = { plain: [] as number[], client: [] as number[], raw: [] as number[], check: [] as number[] };
for (let r = 0; r < ROUNDS; r++) {
  times.plain.push(
    perOpNs(PLAIN_OPS, () => {
      for (let i = 0; i < PLAIN_OPS; i++) plain.set(i & 3, i);
    }),
  );
  // The two slot-update forms alternate call by call: a grace period's length drifts with the load
  // of the other CPUs, and alternating gives both forms the same drift.
  const client: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < SLOT_OPS; i++) {
    client.push(perOpNs(1, () => outer.set(0, i & 1 ? a : b)));
    raw.push(perOpNs(1, () => mapUpdate(outer.fd, key, i & 1 ? fdB : fdA)));
  }
  times.client.push(median(client));
  times.raw.push(median(raw));
  times.check.push(
    perOpNs(PLAIN_OPS, () => {
      for (let i = 0; i < PLAIN_OPS; i++) mapInfo(i & 1 ? a.fd : b.fd);
    }),
  );
}

const plainNs = median(times.plain);
const clientNs = median(times.client);
const rawNs = median(times.raw);
const checkNs = median(times.check);
const fmtNs = (ns: number) =>
  ns >= 1e6
    ? `${(ns / 1e6).toFixed(2)} ms`
    : ns >= 1e3
      ? `${(ns / 1e3).toFixed(1)} µs`
      : `${ns.toFixed(0)} ns`;
const ratio = (x: number) => `${(x / plainNs).toFixed(0)}×`;
const rerun = '`BPF_MAPS_BENCH=mapinmap node scripts/bench.mjs bpf-maps` (root)';
const section = `## @datapath/bpf-maps: map-in-map updates (the RCU cost)

Replacing the inner map in a slot of a \`BPF_MAP_TYPE_ARRAY_OF_MAPS\` from user space: the kernel swaps the
pointer (programs see the new map at once), then waits for an RCU grace period (\`synchronize_rcu()\`) before
the call returns, so that no program still runs on the old inner map; a delete waits too. A plain array
update only copies the value. ${ROUNDS} interleaved rounds in one process, wall time (the grace period is a
wait, not CPU work): per round, ${PLAIN_OPS.toLocaleString('en')} u32 array updates (\`ArrayMap.set\`, the baseline; mean per call) and
${SLOT_OPS} slot updates per form (median per call), the two forms alternating call by call and swapping
two inner maps; figures are the medians over the rounds. The shape check \`ArrayOfMaps.set\`
makes before the update (type, key/value size, max entries, flags of the inner map) is one
\`BPF_OBJ_GET_INFO_BY_FD\`. The call blocks its thread for the whole grace period: swap whole inner maps
(fill a fresh one, then one \`set\`), never update many slots on a latency-sensitive event loop.

| operation | measured | baseline: u32 array update (same run) | ratio | rerun |
|---|---:|---:|---:|---|
| \`ArrayOfMaps.set(slot, innerMap)\` (shape check + update + grace period) | ${fmtNs(clientNs)} | ${fmtNs(plainNs)} | ${ratio(clientNs)} | ${rerun} |
| the same update through the raw bpf(2) call (\`mapUpdate\`, no check) | ${fmtNs(rawNs)} | ${fmtNs(plainNs)} | ${ratio(rawNs)} | ${rerun} |
| the inner-map shape check alone (\`BPF_OBJ_GET_INFO_BY_FD\`) | ${fmtNs(checkNs)} | ${fmtNs(plainNs)} | ${(checkNs / plainNs).toFixed(1)}× | ${rerun} |
`;
console.log(section);
if (process.env.BENCH_OUT) writeFileSync(join(process.env.BENCH_OUT, 'bpf-maps-mapinmap.md'), section);
