// Offset-level allocation bitmap: one bit per slot in 32-bit words, plus a summary level with one bit per
// full word, so a free slot is found 32 (word) or 1024 (summary word) slots per step.
import { fail } from './errors.js';

/** How `allocateNext` picks a free slot. */
export type Strategy = 'random' | 'contiguous';

/** Options shared by the allocators. */
export interface AllocatorOptions {
  /** `'random'` (default, as Cilium's agent): random start, forward scan, wrap. `'contiguous'`: lowest free slot. */
  strategy?: Strategy;
  /** Random source returning a number in [0, 1), like `Math.random` (the default). Inject one for determinism. */
  random?: () => number;
}

/** Largest bitmap: 2^32 slots (512 MiB). */
export const MAX_BITMAP_SIZE = 2 ** 32;

const ctz = (x: number): number => 31 - Math.clz32(x & -x);

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * A fixed-size allocation bitmap over offsets `0 … size-1`, the storage under every allocator here.
 *
 * `allocateNext` follows upstream semantics (random: random start, forward scan, wrap; contiguous: lowest
 * free slot) at word speed. Every offset is range-checked, unlike upstream cilium/ipam.
 *
 * @example Allocating offsets
 * ```ts
 * import { Bitmap } from '@datapath/ipam';
 * const b = new Bitmap(8, { strategy: 'contiguous' });
 * b.allocate(0);
 * console.log(b.allocateNext(), b.free); // 1 6
 * ```
 */
export class Bitmap {
  /** Number of slots. */
  readonly size: number;
  /** The strategy `allocateNext` uses. */
  readonly strategy: Strategy;
  private words: Int32Array;
  private summary: Int32Array;
  private count = 0;
  /** Every slot below `hint` is allocated (contiguous search start). */
  private hint = 0;
  private readonly rand: () => number;

  /**
   * Creates an empty bitmap of `size` slots.
   *
   * @throws {@link IpamError} `OutOfRange` when `size` is not an integer in `0 … 2^32`.
   * @example An empty bitmap
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * console.log(new Bitmap(100).free); // 100
   * ```
   */
  constructor(size: number, options: AllocatorOptions = {}) {
    if (!Number.isInteger(size) || size < 0 || size > MAX_BITMAP_SIZE)
      fail('OutOfRange', 'Bitmap', `size ${size} is not an integer in 0 … 2^32`);
    this.size = size;
    this.strategy = options.strategy ?? 'random';
    if (this.strategy !== 'random' && this.strategy !== 'contiguous')
      fail('OutOfRange', 'Bitmap', `unknown strategy ${String(this.strategy)}`);
    this.rand = options.random ?? Math.random;
    this.words = new Int32Array(Math.ceil(size / 32));
    this.summary = new Int32Array(Math.ceil(this.words.length / 32));
    this.initPadding();
  }

  /** Sets the bits past `size` in the last word and the summary bits past the last word. */
  private initPadding(): void {
    const tail = this.size & 31;
    if (tail !== 0) this.words[this.words.length - 1]! |= -1 << tail;
    const stail = this.words.length & 31;
    if (stail !== 0) this.summary[this.summary.length - 1]! |= -1 << stail;
    for (let wi = 0; wi < this.words.length; wi++)
      if (this.words[wi] === -1) this.summary[wi >>> 5]! |= 1 << (wi & 31);
  }

  /** Number of free slots. */
  get free(): number {
    return this.size - this.count;
  }

  /** Number of allocated slots. */
  get used(): number {
    return this.count;
  }

  private check(offset: number, op: string): void {
    if (!Number.isInteger(offset) || offset < 0 || offset >= this.size)
      fail('OutOfRange', op, `offset ${offset} out of range 0 … ${this.size - 1}`, String(offset));
  }

  /**
   * Marks `offset` allocated (returns true, kept for callers written against 0.1).
   *
   * @throws {@link IpamError} `OutOfRange` for an offset outside `0 … size-1`; `AlreadyAllocated` when it
   * already was (the bitmap is unchanged).
   * @example
   * ```ts
   * import { Bitmap, IpamError } from '@datapath/ipam';
   * const b = new Bitmap(4);
   * b.allocate(2);
   * try {
   *   b.allocate(2);
   * } catch (e) {
   *   console.log((e as IpamError).code, (e as IpamError).reason); // 'AlreadyExists' 'AlreadyAllocated'
   * }
   * ```
   */
  allocate(offset: number): true {
    this.check(offset, 'Bitmap.allocate');
    if (!this.set(offset))
      fail('AlreadyAllocated', 'Bitmap.allocate', `offset ${offset} is already allocated`, String(offset));
    return true;
  }

  /** Sets a bit known to be in range. @internal */
  set(offset: number): boolean {
    const wi = offset >>> 5;
    const m = 1 << (offset & 31);
    const w = this.words[wi]!;
    if ((w & m) !== 0) return false;
    const nw = w | m;
    this.words[wi] = nw;
    this.count++;
    if (nw === -1) this.summary[wi >>> 5]! |= 1 << (wi & 31);
    return true;
  }

  /** Clears a bit known to be in range. @internal */
  clear(offset: number): boolean {
    const wi = offset >>> 5;
    const m = 1 << (offset & 31);
    const w = this.words[wi]!;
    if ((w & m) === 0) return false;
    if (w === -1) this.summary[wi >>> 5]! &= ~(1 << (wi & 31));
    this.words[wi] = w & ~m;
    this.count--;
    if (offset < this.hint) this.hint = offset;
    return true;
  }

  /** Reads a bit known to be in range. @internal */
  get(offset: number): boolean {
    return (this.words[offset >>> 5]! & (1 << (offset & 31))) !== 0;
  }

  /**
   * Allocates a free slot with the bitmap's strategy and returns its offset.
   *
   * @throws {@link IpamError} `Full` when no slot is free.
   * @example
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(4, { strategy: 'contiguous' });
   * console.log(b.allocateNext(), b.allocateNext()); // 0 1
   * ```
   */
  allocateNext(): number {
    const off = this.next();
    if (off < 0) fail('Full', 'Bitmap.allocateNext', 'range is full');
    return off;
  }

  /** allocateNext without throwing: the offset, or -1 when full. @internal */
  next(): number {
    if (this.count >= this.size) return -1;
    let off: number;
    if (this.strategy === 'contiguous') {
      off = this.findFree(this.hint);
      this.hint = off + 1;
    } else {
      let start = Math.floor(this.rand() * this.size);
      if (!(start >= 0 && start < this.size)) start = 0;
      off = this.findFree(start);
      if (off < 0) off = this.findFree(0);
    }
    this.set(off);
    return off;
  }

  /** Lowest free offset ≥ `from` (`from` < size), or -1. @internal */
  findFree(from: number): number {
    const words = this.words;
    let wi = from >>> 5;
    const free = ~words[wi]! & (-1 << (from & 31));
    if (free !== 0) return wi * 32 + ctz(free);
    wi = this.nextNonFullWord(wi + 1);
    if (wi < 0) return -1;
    return wi * 32 + ctz(~words[wi]!);
  }

  private nextNonFullWord(i: number): number {
    const summary = this.summary;
    if (i >= this.words.length) return -1;
    let si = i >>> 5;
    let s = ~summary[si]! & (-1 << (i & 31));
    while (s === 0) {
      if (++si >= summary.length) return -1;
      s = ~summary[si]!;
    }
    return si * 32 + ctz(s);
  }

  /**
   * Frees `offset`; a no-op when it is already free.
   *
   * @throws {@link IpamError} `OutOfRange` for an offset outside `0 … size-1`.
   * @example
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(4);
   * b.allocate(1);
   * b.release(1);
   * console.log(b.used); // 0
   * ```
   */
  release(offset: number): void {
    this.check(offset, 'Bitmap.release');
    this.clear(offset);
  }

  /**
   * Whether `offset` is allocated.
   *
   * @throws {@link IpamError} `OutOfRange` for an offset outside `0 … size-1`.
   * @example
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(4);
   * b.allocate(3);
   * console.log(b.has(3), b.has(0)); // true false
   * ```
   */
  has(offset: number): boolean {
    this.check(offset, 'Bitmap.has');
    return this.get(offset);
  }

  /** Word `wi` without the padding bits past `size`. */
  private word(wi: number): number {
    const w = this.words[wi]!;
    const tail = this.size & 31;
    return wi === this.words.length - 1 && tail !== 0 ? w & ~(-1 << tail) : w;
  }

  /**
   * Calls `fn` with every allocated offset in ascending order. Do not mutate the bitmap meanwhile.
   *
   * @example
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(40);
   * b.allocate(33);
   * b.allocate(2);
   * b.forEach((o) => console.log(o)); // 2, then 33
   * ```
   */
  forEach(fn: (offset: number) => void): void {
    for (let wi = 0; wi < this.words.length; wi++) {
      let w = this.word(wi);
      while (w !== 0) {
        fn(wi * 32 + ctz(w));
        w &= w - 1;
      }
    }
  }

  /**
   * The upstream wire format: the bitmap as a big-endian unsigned integer, bit i = offset i, no leading zero
   * bytes (empty when nothing is allocated).
   *
   * @example Offsets 0, 2 and 5 encode as the single byte 0x25
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(16);
   * for (const o of [0, 2, 5]) b.allocate(o);
   * console.log(Buffer.from(b.snapshot()).toString('hex')); // '25'
   * ```
   */
  snapshot(): Uint8Array {
    let top = this.words.length - 1;
    while (top >= 0 && this.word(top) === 0) top--;
    if (top < 0) return new Uint8Array(0);
    const hw = this.word(top);
    const bytes = top * 4 + ((31 - Math.clz32(hw)) >>> 3) + 1;
    const out = new Uint8Array(bytes);
    for (let k = 0; k < bytes; k++) out[bytes - 1 - k] = (this.word(k >>> 2) >>> ((k & 3) * 8)) & 255;
    return out;
  }

  /**
   * Replaces the contents with a {@link Bitmap.snapshot} (leading zero bytes are accepted).
   *
   * @throws {@link IpamError} `InvalidSnapshot` when a bit at or past `size` is set; the bitmap is unchanged.
   * @example
   * ```ts
   * import { Bitmap } from '@datapath/ipam';
   * const b = new Bitmap(16);
   * b.restore(Uint8Array.of(0x01, 0x00)); // offset 8
   * console.log(b.has(8), b.used); // true 1
   * ```
   */
  restore(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) fail('InvalidSnapshot', 'Bitmap.restore', 'data is not a Uint8Array');
    const len = data.length;
    for (let k = 0; k < len; k++) {
      const b = data[len - 1 - k]!;
      if (b !== 0 && k * 8 + (31 - Math.clz32(b)) >= this.size)
        fail('InvalidSnapshot', 'Bitmap.restore', `snapshot sets bits at or past the size ${this.size}`);
    }
    const words = new Int32Array(this.words.length);
    const usable = Math.min(len, words.length * 4);
    for (let k = 0; k < usable; k++) words[k >>> 2]! |= data[len - 1 - k]! << ((k & 3) * 8);
    this.words = words;
    this.summary = new Int32Array(this.summary.length);
    let count = 0;
    for (let wi = 0; wi < words.length; wi++) count += popcount(words[wi]!);
    this.count = count;
    this.hint = 0;
    this.initPadding();
  }

  /** Bytes of memory used by the bitmap's arrays. */
  get byteLength(): number {
    return this.words.byteLength + this.summary.byteLength;
  }
}
