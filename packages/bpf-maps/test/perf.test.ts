// One CPU's perf ring over plain memory laid out like the kernel's (struct perf_event_mmap_page, then the
// data pages): samples, lost records, records that wrap the end. The kernel path is covered by
// packages/loader/test/events.priv.test.ts.
import { describe, expect, it } from 'vitest';
import { PerfCursor } from '../src/perf.js';

const PAGE = 4096;

function fakePerf(dataSize: number) {
  const mem = new ArrayBuffer(PAGE + dataSize);
  const meta = new DataView(mem);
  const bytes = new Uint8Array(mem, PAGE, dataSize);
  let head = 0;
  const put = (pos: number, b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) bytes[(pos + i) % dataSize] = b[i]!;
  };
  const publish = () => meta.setBigUint64(1024, BigInt(head), true);
  return {
    mem,
    tail: () => Number(meta.getBigUint64(1032, true)),
    /** A PERF_RECORD_SAMPLE with raw bytes `payload` padded the way the kernel pads them. */
    sample(payload: number[]) {
      const raw = ((payload.length + 4 + 7) & ~7) - 4;
      const size = 8 + 4 + raw;
      const rec = new Uint8Array(size);
      const v = new DataView(rec.buffer);
      v.setUint32(0, 9, true);
      v.setUint16(4, 1, true);
      v.setUint16(6, size, true);
      v.setUint32(8, raw, true);
      rec.set(payload, 12);
      put(head, rec);
      head += size;
      publish();
    },
    lostRecord(n: number) {
      const rec = new Uint8Array(24);
      const v = new DataView(rec.buffer);
      v.setUint32(0, 2, true);
      v.setUint16(6, 24, true);
      v.setBigUint64(16, BigInt(n), true);
      put(head, rec);
      head += 24;
      publish();
    },
  };
}

function collect(cur: PerfCursor, max = Number.POSITIVE_INFINITY): number[][] {
  const out: number[][] = [];
  cur.drain((view, off, len, cpu) => {
    expect(cpu).toBe(3);
    const r: number[] = [];
    for (let i = 0; i < len; i++) r.push(view.getUint8(off + i));
    out.push(r);
  }, max);
  return out;
}

describe('PerfCursor', () => {
  it('reads samples (with the kernel padding) and counts lost records', () => {
    const ring = fakePerf(4096);
    const cur = new PerfCursor(ring.mem, PAGE, 3);
    expect(cur.pending()).toBe(false);
    ring.sample([1, 2, 3, 4]); // 4 + 4 = 8: no padding
    ring.lostRecord(7);
    ring.sample([5, 6, 7, 8, 9]); // 5 bytes → raw 12
    expect(collect(cur)).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0],
    ]);
    expect(cur.lost).toBe(7);
    expect(ring.tail()).toBe(16 + 24 + 24);
    expect(cur.pending()).toBe(false);
  });

  it('copies a sample that wraps the end of the ring', () => {
    const ring = fakePerf(4096);
    const cur = new PerfCursor(ring.mem, PAGE, 3);
    const payload = Array.from({ length: 100 }, (_, i) => i);
    const seen: number[][] = [];
    for (let i = 0; i < 100; i++) {
      ring.sample(payload);
      seen.push(...collect(cur).map((r) => r.slice(0, 100)));
    }
    expect(seen).toHaveLength(100);
    for (const r of seen) expect(r).toEqual(payload);
    expect(ring.tail()).toBe(100 * 112);
  });

  it('honours max', () => {
    const ring = fakePerf(4096);
    const cur = new PerfCursor(ring.mem, PAGE, 3);
    for (let i = 0; i < 5; i++) ring.sample([i, 0, 0, 0]);
    expect(collect(cur, 2).map((r) => r[0])).toEqual([0, 1]);
    expect(collect(cur).map((r) => r[0])).toEqual([2, 3, 4]);
  });
});
