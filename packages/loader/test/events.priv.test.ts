// Event readers against the real kernel: a tcx program (bpf/events.bpf.c) emits one record per matching
// packet sent between two namespaces this test creates; the readers must see every record, in order,
// with the packet's addresses, and account for what did not fit.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type AnyMap,
  createMap,
  ipv4,
  PerfEventArray,
  RingBuf,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '@datapath/bpf-maps';
import { fdClose, fdDup, objPin } from '@datapath/libbpf';
import { requireRoot, type TestNetns, uniqueName, withNetns } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { attachTcx, type Collection, compile, load, openObject } from '../src/index.js';
import { type Pair, vethPair } from './helpers/net.js';

const bpfDir = fileURLToPath(new URL('./bpf/', import.meta.url));
const readmeExample = fileURLToPath(
  new URL('../../bpf-maps/test/fixtures/ringbuf-example.ts', import.meta.url),
);
const root = fileURLToPath(new URL('../../..', import.meta.url));
let eventsObj: string;

beforeAll(async () => {
  eventsObj = (await compile({ files: [join(bpfDir, 'events.bpf.c')] })).path;
});

const eventCodec = struct({
  saddr: ipv4,
  daddr: ipv4,
  len: u32,
  seq: u32,
  dport: u16,
  proto: u8,
  cpu: u8,
  pad: u32,
});

const PORT = 9500;

interface Setup {
  pair: Pair;
  coll: Collection;
  ring: RingBuf;
  perf: PerfEventArray;
  stats: () => { attempted: bigint; ringFailed: bigint; perfFailed: bigint };
}

/** Loads the program with a ring of `ringSize` bytes and attaches it to devA's tcx ingress in `a`. */
async function withEmitter(
  a: TestNetns,
  b: TestNetns,
  options: { ringSize?: number; mode?: number },
  fn: (s: Setup) => Promise<void>,
): Promise<void> {
  const pair = vethPair(a, b, uniqueName());
  const spec = openObject(eventsObj);
  spec.setConstant('port', PORT);
  spec.setConstant('mode', options.mode ?? 1);
  if (options.ringSize !== undefined) spec.maps.events!.maxEntries = options.ringSize;
  using coll = load(spec);
  const statsMap = coll.map('stats', { key: u32, value: u64 }) as AnyMap<number, bigint>;
  if (statsMap.kind !== 'array') throw new Error('stats is an array');
  const ring = coll.map('events');
  if (ring.kind !== 'ringBuf') throw new Error(`events is a ${ring.kind}`);
  const perf = coll.map('perf_events');
  if (perf.kind !== 'perfEventArray') throw new Error(`perf_events is a ${perf.kind}`);
  using _link = attachTcx(coll.program('emit'), { ifname: pair.devA, direction: 'ingress', netns: a.path });
  try {
    await fn({
      pair,
      coll,
      ring,
      perf,
      stats: () => ({
        attempted: statsMap.get(0)!,
        ringFailed: statsMap.get(1)!,
        perfFailed: statsMap.get(2)!,
      }),
    });
  } finally {
    ring.close();
    perf.close();
  }
}

// A Node child in namespace `from` sends `count` one-byte datagrams to ip:port, `gapMs` apart (0: a burst).
const SENDER = `
const s = require('node:dgram').createSocket('udp4');
const [ip, port, count, gap] = process.argv.slice(1);
let i = 0;
const next = () => {
  if (i++ === Number(count)) return s.close();
  s.send('x', Number(port), ip, () => (Number(gap) > 0 ? setTimeout(next, Number(gap)) : next()));
};
next();`;
function udp(
  from: TestNetns,
  ip: string,
  port: number,
  count: number,
  gapMs = 0,
  cpu?: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cmd = [
      `--net=${from.path}`,
      process.execPath,
      '-e',
      SENDER,
      ip,
      String(port),
      String(count),
      String(gapMs),
    ];
    const child = spawn(
      cpu === undefined ? 'nsenter' : 'taskset',
      cpu === undefined ? cmd : ['-c', String(cpu), 'nsenter', ...cmd],
      { stdio: 'ignore' },
    );
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`udp sender exited ${code}`))));
  });
}

const openFds = () => readdirSync('/proc/self/fd').length;
const ringMappings = () =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('bpf-map') || l.includes('bpf_ringbuf')).length;

describe('RingBuf reader (BPF_MAP_TYPE_RINGBUF)', () => {
  it('N UDP packets and pings between two namespaces give exactly N decoded events, in order, none lost', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, {}, async ({ pair, ring, stats }) => {
        const N = 40;
        const events = ring.events(eventCodec);
        // Records arrive while the iterator waits: the event loop wakes it (sender runs in the background).
        const sending = udp(b, pair.ipA, PORT, N, 2);
        const got: (typeof eventCodec extends { decode(...a: never[]): infer T } ? T : never)[] = [];
        for await (const ev of events) {
          got.push(ev);
          if (got.length === N) break;
        }
        await sending;
        expect(got.map((e) => e.seq)).toEqual(Array.from({ length: N }, (_, i) => i));
        for (const e of got) {
          expect(e).toMatchObject({ saddr: pair.ipB, daddr: pair.ipA, proto: 17, dport: PORT });
          expect(e.len).toBe(14 + 20 + 8 + 1); // Ethernet + IPv4 + UDP + one byte
        }
        // Pings: ICMP echo requests are recorded too, after the datagrams.
        execFileSync('nsenter', [`--net=${b.path}`, 'ping', '-c', '3', '-i', '0.01', '-W', '2', pair.ipA], {
          stdio: 'ignore',
        });
        // …read with the batch iterator: arrays of decoded records, in order.
        const pings: number[] = [];
        for await (const batch of ring.batches(eventCodec)) {
          expect(batch.length).toBeGreaterThan(0);
          for (const ev of batch) {
            expect(ev).toMatchObject({ saddr: pair.ipB, daddr: pair.ipA, proto: 1 });
            pings.push(ev.seq);
          }
          if (pings.length === 3) break;
        }
        expect(pings).toEqual([N, N + 1, N + 2]);
        expect(stats()).toEqual({ attempted: BigInt(N + 3), ringFailed: 0n, perfFailed: 0n });
        // Nothing left over: the count is exact.
        expect(ring.read(() => {})).toBe(0);
      }),
    );
  });

  it('views(): N packets give N in-place records with the right fields, in order, none lost; toObject() outlives the batch', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, {}, async ({ pair, ring, stats }) => {
        const N = 40;
        // Sent 2 ms apart while the iterator waits: several wake-ups, so several batches.
        const sending = udp(b, pair.ipA, PORT, N, 2);
        const kept: { seq: number; saddr: string; daddr: string; len: number; dport: number }[] = [];
        const seen: number[] = [];
        let batches = 0;
        let stale: { at(i: number): unknown } | undefined;
        for await (const batch of ring.views(eventCodec)) {
          batches++;
          stale ??= batch;
          for (const ev of batch) {
            // Fields decode in place from the batch's buffer.
            seen.push(ev.seq);
            expect([ev.saddr, ev.daddr, ev.proto, ev.dport, ev.len]).toEqual([
              pair.ipB,
              pair.ipA,
              17,
              PORT,
              43,
            ]);
            if (ev.seq % 2 === 0) kept.push(ev.toObject());
          }
          if (seen.length >= N) break;
        }
        await sending;
        expect(seen).toEqual(Array.from({ length: N }, (_, i) => i));
        expect(batches).toBeGreaterThan(1);
        // Records kept with toObject() are plain objects, intact after their batches were reused.
        expect(kept).toEqual(
          Array.from({ length: N / 2 }, (_, i) => ({
            saddr: pair.ipB,
            daddr: pair.ipA,
            len: 43,
            seq: 2 * i,
            dport: PORT,
            proto: 17,
            cpu: expect.any(Number),
            pad: 0,
          })),
        );
        // The first batch, which the iterator has moved past, refuses access instead of showing other records.
        expect(() => stale!.at(0)).toThrow(expect.objectContaining({ code: 'BadFd' }));
        expect(stats()).toEqual({ attempted: BigInt(N), ringFailed: 0n, perfFailed: 0n });
        expect(ring.read(() => {})).toBe(0);
      }),
    );
  });

  it('a tiny ring under load reports lost records (failed outputs) and keeps working', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { ringSize: 4096 }, async ({ pair, ring, stats }) => {
        // Nobody reads while 300 datagrams arrive: a 4 KiB ring holds 127 records of 32 bytes.
        await udp(b, pair.ipA, PORT, 300);
        const s = stats();
        expect(s.attempted).toBe(300n);
        expect(s.ringFailed).toBeGreaterThan(0n);
        const seqs: number[] = [];
        const n = ring.read((view, off, len) => {
          expect(len).toBe(eventCodec.size);
          seqs.push(view.getUint32(off + 12, true));
        });
        expect(n).toBe(Number(s.attempted - s.ringFailed));
        // What fitted is the head of the burst, in order.
        expect(seqs).toEqual(Array.from({ length: n }, (_, i) => i));
        // The ring has room again: new records flow through the iterator.
        await udp(b, pair.ipA, PORT, 5);
        const more: number[] = [];
        for await (const ev of ring.events(eventCodec)) {
          more.push(ev.seq);
          if (more.length === 5) break;
        }
        expect(more).toEqual([300, 301, 302, 303, 304]);
        expect(stats().ringFailed).toBe(s.ringFailed);
      }),
    );
  });

  it('the batch form hands every record to a callback as they arrive', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, {}, async ({ pair, ring }) => {
        const seqs: number[] = [];
        let resolve = () => {};
        const promise = new Promise<void>((r) => {
          resolve = r;
        });
        using _sub = ring.subscribe((view, off) => {
          seqs.push(view.getUint32(off + 12, true));
          if (seqs.length === 25) resolve();
        });
        // A second consumer is refused while the subscription runs.
        expect(() => ring.events(eventCodec)).toThrow(expect.objectContaining({ code: 'Busy' }));
        await udp(b, pair.ipA, PORT, 25, 2);
        await promise;
        expect(seqs).toEqual(Array.from({ length: 25 }, (_, i) => i));
      }),
    );
  });

  it('closing mid-stream ends the iterator and leaks no fd or mapping', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, {}, async ({ pair, coll }) => {
        const fds = openFds();
        const maps = ringMappings();
        const reader = RingBuf.fromFd(coll.maps.events!.fd);
        const it = reader.events(eventCodec);
        await udp(b, pair.ipA, PORT, 2);
        expect((await it.next()).value?.seq).toBe(0);
        expect(openFds()).toBe(fds + 1); // the reader's own duplicate of the map fd
        expect(ringMappings()).toBeGreaterThan(maps);
        const pending = it.next().then((r) => r.value?.seq); // record 1 is already there
        expect(await pending).toBe(1);
        const waiting = it.next(); // nothing more: waits on the event loop
        setTimeout(() => reader.close(), 20);
        expect(await waiting).toEqual({ value: undefined, done: true });
        expect(await it.next()).toEqual({ value: undefined, done: true });
        expect(openFds()).toBe(fds);
        expect(ringMappings()).toBe(maps);
        expect(() => reader.events(eventCodec)).toThrow(expect.objectContaining({ code: 'BadFd' }));
        expect(() => reader.read(() => {})).toThrow(expect.objectContaining({ code: 'BadFd' }));
        // Closing from inside the batch callback stops it before the next record, safely.
        await udp(b, pair.ipA, PORT, 3);
        const r2 = RingBuf.fromFd(coll.maps.events!.fd);
        let calls = 0;
        r2.read(() => {
          calls++;
          r2.close();
        });
        expect(calls).toBe(1);
        expect(openFds()).toBe(fds);
        // `await using` closes too.
        {
          await using r3 = RingBuf.fromFd(coll.maps.events!.fd);
          expect(r3.read(() => {})).toBe(2);
        }
        expect(openFds()).toBe(fds);
        expect(ringMappings()).toBe(maps);
      }),
    );
  });

  it('the README example follows a pinned ring buffer, with the native addon and with the fallback', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, {}, async ({ pair, coll }) => {
        const pin = `/sys/fs/bpf/${uniqueName()}`;
        objPin(coll.maps.events!.fd, pin);
        try {
          // Records wait in the ring until someone reads them.
          await udp(b, pair.ipA, PORT, 3);
          const { stdout } = await promisify(execFile)(
            process.execPath,
            ['--import', 'tsx', readmeExample, pin, '3'],
            { cwd: root },
          );
          expect(stdout.trim().split('\n')).toEqual(
            [0, 1, 2].map((i) => `#${i} ${pair.ipB} -> ${pair.ipA} proto 17 43 bytes`),
          );
          // The same without the native addon: the documented timer fallback, same records.
          await udp(b, pair.ipA, PORT, 3);
          const fallback = await promisify(execFile)(
            process.execPath,
            ['--import', 'tsx', readmeExample, pin, '3'],
            { cwd: root, env: { ...process.env, DATAPATH_BPF_BACKEND: 'koffi' } },
          );
          expect(fallback.stdout.trim().split('\n')).toEqual(
            [3, 4, 5].map((i) => `#${i} ${pair.ipB} -> ${pair.ipA} proto 17 43 bytes`),
          );
        } finally {
          rmSync(pin, { force: true });
        }
      }),
    );
  });

  it('rejects bad input with typed errors before reading', async (ctx) => {
    requireRoot(ctx);
    using arr = createMap({ type: 'array', value: u32, maxEntries: 1, name: uniqueName() });
    expect(() => RingBuf.fromFd(arr.fd)).toThrow(expect.objectContaining({ code: 'Incompatible' }));
    const fd = fdDup(arr.fd);
    fdClose(fd);
    expect(() => RingBuf.fromFd(fd)).toThrow(expect.objectContaining({ code: 'BadFd' }));
    expect(() => RingBuf.fromFd(-1)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { ringSize: 4096 }, async ({ pair, ring }) => {
        const fds = openFds();
        // A codec larger than the ring can never match: refused before anything is mapped.
        expect(() => ring.events(struct({ a: u64, b: bytesOf(4096) }))).toThrow(
          expect.objectContaining({ code: 'InvalidArgument' }),
        );
        expect(openFds()).toBe(fds);
        // A codec whose size differs from the records fails the iteration, typed.
        await udp(b, pair.ipA, PORT, 1);
        await expect(ring.events(u64).next()).rejects.toMatchObject({ code: 'Incompatible' });
        // The reader is usable again afterwards.
        await udp(b, pair.ipA, PORT, 1);
        expect((await ring.events(eventCodec).next()).value?.seq).toBe(1);
      }),
    );
  });
});

function bytesOf(n: number) {
  return { size: n, align: 1, encode() {}, decode: () => 0 };
}

const onlineCpus = (): number[] => {
  const out: number[] = [];
  for (const part of readFileSync('/sys/devices/system/cpu/online', 'utf8').trim().split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    for (let c = lo!; c <= (hi ?? lo!); c++) out.push(c);
  }
  return out;
};

describe('PerfEventArray reader (BPF_MAP_TYPE_PERF_EVENT_ARRAY)', () => {
  it("records sent from every CPU arrive on that CPU's ring, in order per CPU, none lost", async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { mode: 2 }, async ({ pair, perf, stats }) => {
        const K = 20;
        const cpus = onlineCpus();
        const seen = new Map<number, { seq: number; cpu: number; saddr: string; daddr: string }[]>();
        let total = 0;
        let done = () => {};
        const all = new Promise<void>((r) => {
          done = r;
        });
        using _sub = perf.subscribe((view, off, len, cpu) => {
          expect(len).toBeGreaterThanOrEqual(eventCodec.size);
          const ev = eventCodec.decode(view, off);
          const list = seen.get(cpu) ?? [];
          list.push({ seq: ev.seq, cpu: ev.cpu, saddr: ev.saddr, daddr: ev.daddr });
          seen.set(cpu, list);
          if (++total === K * cpus.length) done();
        });
        for (const cpu of cpus) await udp(b, pair.ipA, PORT, K, 1, cpu);
        await all;
        expect([...seen.keys()].sort()).toEqual(cpus);
        for (const cpu of cpus) {
          const list = seen.get(cpu)!;
          expect(list).toHaveLength(K);
          for (const ev of list) expect(ev).toMatchObject({ cpu, saddr: pair.ipB, daddr: pair.ipA });
          const seqs = list.map((e) => e.seq);
          expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
        }
        expect(stats()).toMatchObject({ attempted: BigInt(K * cpus.length), perfFailed: 0n });
        expect(perf.lost.every((n) => n === 0)).toBe(true);
      }),
    );
  });

  it('views(): records from every CPU read in place, in order per CPU, none lost; toArray() keeps a batch', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { mode: 2 }, async ({ pair, perf, stats }) => {
        const K = 15;
        const cpus = onlineCpus();
        const sending = (async () => {
          for (const cpu of cpus) await udp(b, pair.ipA, PORT, K, 1, cpu);
        })();
        const byCpu = new Map<number, number[]>();
        const kept: { seq: number; cpu: number }[] = [];
        let total = 0;
        for await (const batch of perf.views(eventCodec)) {
          for (const ev of batch) {
            expect([ev.saddr, ev.daddr, ev.proto, ev.dport]).toEqual([pair.ipB, pair.ipA, 17, PORT]);
            byCpu.set(ev.cpu, [...(byCpu.get(ev.cpu) ?? []), ev.seq]);
          }
          kept.push(...batch.toArray());
          total += batch.length;
          if (total >= K * cpus.length) break;
        }
        await sending;
        expect(total).toBe(K * cpus.length);
        expect([...byCpu.keys()].sort()).toEqual(cpus);
        for (const cpu of cpus) {
          const seqs = byCpu.get(cpu)!;
          expect(seqs).toHaveLength(K);
          expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
        }
        // toArray() copies: the kept records still match what the views showed.
        expect(kept.map((e) => e.seq).sort((x, y) => x - y)).toEqual(
          Array.from({ length: K * cpus.length }, (_, i) => i),
        );
        expect(stats()).toMatchObject({ attempted: BigInt(K * cpus.length), perfFailed: 0n });
        expect(perf.lost.every((n) => n === 0)).toBe(true);
      }),
    );
  });

  it('a one-page ring per CPU under load reports lost samples per CPU and keeps working', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { mode: 2 }, async ({ pair, coll, stats }) => {
        const fds = openFds();
        await using perf = PerfEventArray.fromFd(coll.maps.perf_events!.fd, { pagesPerCpu: 1 });
        expect(perf.read(() => {})).toBe(0); // opens the per-CPU events before the load
        await udp(b, pair.ipA, PORT, 300, 0, 0);
        const cpu0: number[] = [];
        const n = perf.read((view, off, _len, cpu) => {
          expect(cpu).toBe(0);
          cpu0.push(eventCodec.decode(view, off).seq);
        });
        const failed = stats().perfFailed;
        expect(failed).toBeGreaterThan(0n);
        expect(n).toBe(300 - Number(failed));
        expect(cpu0).toEqual(Array.from({ length: n }, (_, i) => i));
        // The kernel reports the loss with the next sample that fits: a count, per CPU.
        await udp(b, pair.ipA, PORT, 5, 0, 0);
        const more: number[] = [];
        for await (const ev of perf.events(eventCodec)) {
          more.push(ev.seq);
          if (more.length === 5) break;
        }
        expect(more).toEqual([300, 301, 302, 303, 304]);
        expect(perf.lost[0]).toBe(Number(failed));
        perf.close();
        expect(perf.lost[0]).toBe(Number(failed)); // still readable after close
        expect(openFds()).toBe(fds);
      }),
    );
  });

  it('wakes up by watermark, and rejects bad options before any system call', async (ctx) => {
    requireRoot(ctx);
    await withNetns(2, (a, b) =>
      withEmitter(a, b, { mode: 2 }, async ({ pair, coll }) => {
        const fd = coll.maps.perf_events!.fd;
        const bad = (o: object) => () => PerfEventArray.fromFd(fd, o);
        expect(bad({ pagesPerCpu: 3 })).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
        expect(bad({ pagesPerCpu: 1, watermarkBytes: 8192 })).toThrow(
          expect.objectContaining({ code: 'InvalidArgument' }),
        );
        expect(bad({ watermarkBytes: 1, wakeupEvents: 1 })).toThrow(
          expect.objectContaining({ code: 'InvalidArgument' }),
        );
        expect(() => PerfEventArray.fromFd(coll.maps.events!.fd)).toThrow(
          expect.objectContaining({ code: 'Incompatible' }),
        );
        // 2 KiB watermark, 48-byte records: the first wake-up comes with at least 2048 bytes waiting.
        await using perf = PerfEventArray.fromFd(fd, { pagesPerCpu: 2, watermarkBytes: 2048 });
        expect(perf.read(() => {})).toBe(0);
        let woke = 0;
        let first = () => {};
        const firstWake = new Promise<void>((r) => {
          first = r;
        });
        const sub = perf.subscribe(() => {
          woke++;
          first();
        });
        await udp(b, pair.ipA, PORT, 100, 0, 0);
        await firstWake;
        expect(woke).toBeGreaterThanOrEqual(Math.floor(2048 / 48));
        sub.close();
        expect(woke + perf.read(() => {})).toBe(100);
      }),
    );
  });
});
