// Record views (`views()`) over plain memory laid out like the kernel's ring buffer mapping: the same
// records as `batches()` read in place, batches refused once the iterator moves on, kept records
// (`toObject()`) intact, typed errors for codecs that cannot back a view. The kernel path is covered by
// packages/bpf-maps/bench/ringbuf.ts (every record of every round counted against what the program wrote).
import type { FdWatcher } from '@datapath/libbpf';
import { describe, expect, it } from 'vitest';
import { pad, struct, u8, u16, u32, u64 } from '../src/codec.js';
import { EventReader, type RecordHandler } from '../src/reader.js';
import { RingCursor } from '../src/ringbuf.js';
import type { RecordBuffer } from '../src/views.js';
import { fakeRing, PAGE } from './fake-ring.js';

const rec = struct({ seq: u32, len: u16, proto: u8, pad: pad(1), ts: u64 });
const bytesOf = (seq: number) => {
  const b = new Uint8Array(rec.size);
  rec.encode(
    { seq, len: seq & 0xffff, proto: seq & 0xff, ts: BigInt(seq) * 1000n },
    new DataView(b.buffer),
    0,
  );
  return [...b];
};

/** An EventReader over a fake ring (no fd): `copyAtOnce` picks the ring's in-place records or the generic per-record copy. */
class FakeReader extends EventReader {
  readonly cursor: RingCursor;
  readonly #copyAtOnce: boolean;
  constructor(ring: ReturnType<typeof fakeRing>, size: number, copyAtOnce: boolean) {
    super();
    this.cursor = new RingCursor(ring.consumer, ring.producer, PAGE, size);
    this.#copyAtOnce = copyAtOnce;
  }
  protected openReader(): FdWatcher[] {
    return [{ start() {}, stop() {}, close() {} } as unknown as FdWatcher];
  }
  protected drainRecords(handler: RecordHandler, max: number): number {
    return this.cursor.drain(handler, max);
  }
  protected override drainCopied(size: number, buf: RecordBuffer, max: number): number {
    if (!this.#copyAtOnce) return super.drainCopied(size, buf, max);
    this.cursor.badLength = -1;
    const n = this.cursor.drainInPlace(size, buf, max);
    this.mismatch = this.cursor.badLength;
    return n;
  }
  protected override releaseCopied(): void {
    if (this.#copyAtOnce) this.cursor.release();
  }
  protected releaseReader(): void {}
  protected get label(): string {
    return 'fake ring';
  }
}

describe.each([
  ['the ring read in place', true],
  ['the generic per-record copy', false],
])('views() through %s', (_name, copyAtOnce) => {
  it('yields the records batches() would, read in place, across wrap-around and discarded records', async () => {
    const ring = fakeRing(4096);
    const reader = new FakeReader(ring, 4096, copyAtOnce);
    const seen: number[] = [];
    const kept: unknown[] = [];
    let seq = 0;
    const it = reader.views(rec, { batch: 50 });
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 40; i++) ring.write(bytesOf(seq++), { discard: i === 3 });
      let got = 0;
      while (got < 39) {
        const r = await it.next();
        expect(r.done).toBe(false);
        const batch = r.value!;
        for (const ev of batch) {
          seen.push(ev.seq);
          expect(ev.len).toBe(ev.seq & 0xffff);
          expect(ev.ts).toBe(BigInt(ev.seq) * 1000n);
          if (ev.seq % 97 === 0) kept.push(ev.toObject());
        }
        expect(batch.toArray()).toEqual(
          Array.from({ length: batch.length }, (_, i) =>
            rec.decode(new DataView(new Uint8Array(bytesOf(batch.at(i).seq)).buffer), 0),
          ),
        );
        got += batch.length;
      }
    }
    const want = Array.from({ length: 800 }, (_, i) => i).filter((i) => i % 40 !== 3);
    expect(seen).toEqual(want);
    expect(kept).toEqual(
      want
        .filter((s) => s % 97 === 0)
        .map((s) => ({ seq: s, len: s & 0xffff, proto: s & 0xff, ts: BigInt(s) * 1000n })),
    );
    await it.return!();
    expect(ring.consumerPos()).toBe(800 * 24);
    reader.close();
  });

  it('refuses a batch once the iterator has moved on; kept objects stay', async () => {
    const ring = fakeRing(4096);
    const reader = new FakeReader(ring, 4096, copyAtOnce);
    const it = reader.views(rec);
    ring.write(bytesOf(1));
    ring.write(bytesOf(2));
    const first = (await it.next()).value!;
    const kept = first.at(1).toObject();
    expect(() => first.at(2)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    ring.write(bytesOf(3));
    const second = (await it.next()).value!;
    expect([...second].map((v) => v.seq)).toEqual([3]);
    expect(() => first.at(0)).toThrow(expect.objectContaining({ code: 'BadFd' }));
    expect(() => [...first]).toThrow(expect.objectContaining({ code: 'BadFd' }));
    expect(kept).toEqual({ seq: 2, len: 2, proto: 2, ts: 2000n });
    reader.close();
    expect((await it.next()).done).toBe(true);
  });

  it('fails the iteration with Incompatible on a record of another size (consumed), after the good ones', async () => {
    const ring = fakeRing(4096);
    const reader = new FakeReader(ring, 4096, copyAtOnce);
    const it = reader.views(rec);
    ring.write(bytesOf(7));
    ring.write([1, 2, 3]);
    const b = (await it.next()).value!;
    expect([...b].map((v) => v.seq)).toEqual([7]);
    await expect(it.next()).rejects.toMatchObject({ code: 'Incompatible' });
    expect(ring.consumerPos()).toBe(24 + 16);
    reader.close();
  });
});

describe('views() input checks', () => {
  it('takes only struct() codecs whose fields do not hide the view, before reading anything', () => {
    const ring = fakeRing(4096);
    const reader = new FakeReader(ring, 4096, true);
    expect(() => reader.views(u32 as never)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => reader.views(struct({ toObject: u32 }))).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    // Nothing was claimed: another consumer can still start.
    expect(reader.read(() => undefined)).toBe(0);
    reader.close();
  });
});

/** The seq of every record of a batch (each read as the moving view passes it). */
const seqs = (batch: Iterable<{ seq: number }>) => {
  const out: number[] = [];
  for (const v of batch) out.push(v.seq);
  return out;
};

describe('views() of a ring buffer, in place', () => {
  it('keeps the records of the batch handed out until the next step, then releases them; an ended view reads nothing', async () => {
    const ring = fakeRing(4096);
    const reader = new FakeReader(ring, 4096, true);
    const it = reader.views(rec);
    ring.write(bytesOf(1));
    ring.write(bytesOf(2), { discard: true });
    ring.write(bytesOf(3));
    const first = (await it.next()).value!;
    expect(seqs(first)).toEqual([1, 3]);
    // Read in place: the ring space stays the consumer's until the iterator moves on.
    expect(ring.consumerPos()).toBe(0);
    const view = first.at(0);
    ring.write(bytesOf(4));
    const second = (await it.next()).value!;
    expect(ring.consumerPos()).toBe(3 * 24);
    expect(seqs(second)).toEqual([4]);
    await it.return!();
    expect(ring.consumerPos()).toBe(4 * 24);
    expect(() => view.seq).toThrow(RangeError);
    // A fresh iterator starts after what the ended one consumed.
    ring.write(bytesOf(5));
    const again = reader.views(rec);
    expect(seqs((await again.next()).value!)).toEqual([5]);
    reader.close();
    expect(ring.consumerPos()).toBe(5 * 24);
    expect((await again.next()).done).toBe(true);
  });
});
