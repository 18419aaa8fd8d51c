// The ring buffer consumer over plain memory laid out like the kernel's mapping (consumer page; producer
// page + data mapped twice): wrap-around, busy and discard bits, positions. The kernel path is covered by
// packages/loader/test/events.priv.test.ts.
import { describe, expect, it } from 'vitest';
import { RingCursor } from '../src/ringbuf.js';
import { fakeRing, PAGE } from './fake-ring.js';

function collect(cur: RingCursor, max = Number.POSITIVE_INFINITY): number[][] {
  const out: number[][] = [];
  cur.drain((view, off, len) => {
    const r: number[] = [];
    for (let i = 0; i < len; i++) r.push(view.getUint8(off + i));
    out.push(r);
  }, max);
  return out;
}

describe('RingCursor', () => {
  it('reads committed records in order and releases the consumer position', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    expect(cur.pending()).toBe(false);
    expect(collect(cur)).toEqual([]);
    ring.write([1, 2, 3]);
    ring.write([4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(cur.pending()).toBe(true);
    expect(collect(cur)).toEqual([
      [1, 2, 3],
      [4, 5, 6, 7, 8, 9, 10, 11, 12],
    ]);
    // 3 bytes → stride 16; 9 bytes → stride 24.
    expect(ring.consumerPos()).toBe(40);
    expect(cur.pending()).toBe(false);
  });

  it('stops at a busy record and resumes once it is committed; skips discarded ones', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    ring.write([1]);
    const busy = ring.write([2, 2], { busy: true });
    ring.write([3]);
    expect(collect(cur)).toEqual([[1]]);
    expect(ring.consumerPos()).toBe(busy);
    ring.commit(busy, 2);
    ring.write([4], { discard: true });
    ring.write([5]);
    expect(collect(cur)).toEqual([[2, 2], [3], [5]]);
    expect(cur.discarded).toBe(1);
    expect(ring.consumerPos()).toBe(5 * 16);
  });

  it('reads a record that wraps the end of the ring contiguously (double mapping)', () => {
    const size = 4096;
    const ring = fakeRing(size);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, size);
    const big = Array.from({ length: 1000 }, (_, i) => i & 0xff);
    const seen: number[][] = [];
    for (let round = 0; round < 20; round++) {
      ring.write(big);
      ring.write([round, round + 1]);
      seen.push(...collect(cur));
    }
    expect(seen).toHaveLength(40);
    for (let round = 0; round < 20; round++) {
      expect(seen[2 * round]).toEqual(big);
      expect(seen[2 * round + 1]).toEqual([round, round + 1]);
    }
    expect(ring.consumerPos()).toBe(20 * (1008 + 16));
  });

  it('drainDecode decodes records into an array, skips discarded ones, stops after a record of another size', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    const decode = (o: number) => cur.data.getUint16(o, true);
    for (let round = 0; round < 300; round++) {
      ring.write([round & 0xff, round >> 8]);
      collect(cur);
    }
    // Positions now wrap the 4 KiB ring several times over as records are written and read.
    const out: number[] = [];
    for (let round = 0; round < 300; round += 30) {
      for (let i = 0; i < 30; i++) ring.write([(round + i) & 0xff, (round + i) >> 8], { discard: i === 7 });
      expect(cur.drainDecode(decode, 2, out, 1000)).toBe(29);
    }
    expect(out).toEqual(Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 30 !== 7));
    ring.write([1, 0]);
    ring.write([2, 0, 0]);
    ring.write([3, 0]);
    const more: number[] = [];
    cur.badLength = -1;
    expect(cur.drainDecode(decode, 2, more, 1000)).toBe(2); // the 3-byte record counts as consumed
    expect(more).toEqual([1]);
    expect(cur.badLength).toBe(3);
    expect(cur.drainDecode(decode, 2, more, 1000)).toBe(1);
    expect(more).toEqual([1, 3]);
    expect(cur.pending()).toBe(false);
  });

  it('honours max and carries on where it stopped', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    for (let i = 0; i < 10; i++) ring.write([i]);
    expect(collect(cur, 3)).toEqual([[0], [1], [2]]);
    expect(ring.consumerPos()).toBe(48);
    expect(collect(cur)).toEqual([[3], [4], [5], [6], [7], [8], [9]]);
  });

  it('handles positions beyond 2^32 (64-bit counters)', () => {
    const ring = fakeRing(4096);
    ring.startAt(2 ** 32 - 16);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    ring.write([7]);
    ring.write([8]);
    ring.write([9]);
    expect(collect(cur)).toEqual([[7], [8], [9]]);
    expect(ring.consumerPos()).toBe(2 ** 32 + 32);
  });

  it('counts a record whose handler throws as consumed', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    ring.write([1]);
    ring.write([2]);
    expect(() =>
      cur.drain(() => {
        throw new Error('boom');
      }, 10),
    ).toThrow('boom');
    expect(ring.consumerPos()).toBe(16);
    expect(collect(cur)).toEqual([[2]]);
  });

  it('starts from the shared consumer position when another consumer moved it', () => {
    const ring = fakeRing(4096);
    const cur = new RingCursor(ring.consumer, ring.producer, PAGE, 4096);
    ring.write([1]);
    expect(collect(cur)).toEqual([[1]]);
    ring.write([2]);
    ring.write([3]);
    // Someone else (another process's reader) consumed record 2.
    new BigUint64Array(ring.consumer)[0] = 32n;
    expect(collect(cur)).toEqual([[3]]);
    expect(ring.consumerPos()).toBe(48);
  });

  it('rejects a size that is not a power of two', () => {
    expect(() => new RingCursor(new ArrayBuffer(PAGE), new ArrayBuffer(PAGE * 4), PAGE, 3000)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
  });
});
