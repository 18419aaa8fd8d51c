// The same Bitmap semantics on top of the `bitset` package (BitSet.js), for the strategy comparison the
// issue asks for. BitSet has no "next clear bit from i" primitive, so scans test bit by bit; the
// contiguous strategy keeps the same lowest-maybe-free hint as ours.
import BitSet from 'bitset';

export class BitsetBitmap {
  private readonly bits = new BitSet();
  private count = 0;
  private hint = 0;
  constructor(
    readonly size: number,
    readonly strategy: 'random' | 'contiguous',
    readonly random: () => number = Math.random,
  ) {}

  allocateNext(): number {
    if (this.count >= this.size) return -1;
    const start = this.strategy === 'random' ? Math.floor(this.random() * this.size) : this.hint;
    for (let i = 0; i < this.size; i++) {
      let at = start + i;
      if (at >= this.size) at -= this.size;
      if (this.bits.get(at) === 0) {
        this.bits.set(at, 1);
        this.count++;
        if (this.strategy === 'contiguous') this.hint = at + 1;
        return at;
      }
    }
    return -1;
  }

  release(o: number): void {
    if (this.bits.get(o) === 0) return;
    this.bits.set(o, 0);
    this.count--;
    if (o < this.hint) this.hint = o;
  }
}
