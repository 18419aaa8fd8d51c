// A deliberately naive allocator mirroring upstream cilium/ipam's algorithms: one byte per slot (O(1)
// set/test, faster per probe than a bigint) and the O(n) slot-by-slot scans of randomScanStrategy and
// contiguousScanStrategy. It is the slow obvious reference for the property tests and the same-run
// baseline of the benchmarks.

/** Naive bitmap with upstream scan semantics. */
export class NaiveBitmap {
  readonly slots: Uint8Array;
  count = 0;
  constructor(
    readonly size: number,
    readonly strategy: 'random' | 'contiguous',
    readonly random: () => number = Math.random,
  ) {
    this.slots = new Uint8Array(size);
  }

  has(o: number): boolean {
    return this.slots[o] === 1;
  }

  allocate(o: number): boolean {
    if (this.has(o)) return false;
    this.slots[o] = 1;
    this.count++;
    return true;
  }

  release(o: number): void {
    if (!this.has(o)) return;
    this.slots[o] = 0;
    this.count--;
  }

  /** Offset or -1 when full, scanning bit by bit as upstream. */
  allocateNext(): number {
    if (this.count >= this.size) return -1;
    const start = this.strategy === 'random' ? Math.floor(this.random() * this.size) : 0;
    for (let i = 0; i < this.size; i++) {
      const at = (start + i) % this.size;
      if (!this.has(at)) {
        this.allocate(at);
        return at;
      }
    }
    return -1;
  }
}

/** Naive v4 range over NaiveBitmap with string parsing and formatting like the range layer. */
export class NaiveRange {
  readonly map: NaiveBitmap;
  constructor(
    readonly base: number,
    size: number,
    strategy: 'random' | 'contiguous',
  ) {
    this.map = new NaiveBitmap(size, strategy);
  }

  allocateNext(): string {
    const o = this.map.allocateNext();
    if (o < 0) throw new Error('range is full');
    const n = this.base + o;
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  }

  release(ip: string): void {
    const n = ip.split('.').reduce((a, p) => a * 256 + Number(p), 0);
    const o = n - this.base;
    if (o >= 0 && o < this.map.size) this.map.release(o);
  }
}

/** Naive cidrset: a byte per node CIDR, bit-by-bit scan from the next candidate, bigint address maths. */
export class NaiveCidrSet {
  readonly slots: Uint8Array;
  next = 0;
  count = 0;
  constructor(
    readonly base: bigint,
    readonly shift: number,
    readonly max: number,
    readonly mask: number,
  ) {
    this.slots = new Uint8Array(max);
  }

  allocateNext(): string {
    if (this.count === this.max) throw new Error('full');
    for (let i = 0; i < this.max; i++) {
      const c = (this.next + i) % this.max;
      if (this.slots[c] === 0) {
        this.slots[c] = 1;
        this.count++;
        this.next = (c + 1) % this.max;
        const ip = this.base | (BigInt(c) << BigInt(this.shift));
        const n = Number(ip);
        return `${[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')}/${this.mask}`;
      }
    }
    throw new Error('full');
  }
}
