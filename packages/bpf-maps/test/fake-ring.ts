// A fake BPF ring buffer over plain memory, laid out like the kernel's mapping (consumer page; producer page +
// data mapped twice), with a producer that writes the way bpf_ringbuf_reserve/commit do.
export const PAGE = 4096;
const BUSY = 0x80000000;
const DISCARD = 0x40000000;

/** A fake ring of `size` bytes with a producer that writes the way bpf_ringbuf_reserve/commit do. */
export function fakeRing(size: number) {
  const consumer = new ArrayBuffer(PAGE);
  const producer = new ArrayBuffer(PAGE + 2 * size);
  const prodView = new DataView(producer);
  const cons = new BigUint64Array(consumer);
  let prod = 0;
  // Writes `bytes` at ring offset `off`, into both copies of the data (the kernel maps the pages twice).
  const put = (pos: number, bytes: Uint8Array) => {
    for (let i = 0; i < bytes.length; i++) {
      const at = (pos + i) % size;
      new Uint8Array(producer)[PAGE + at] = bytes[i]!;
      new Uint8Array(producer)[PAGE + size + at] = bytes[i]!;
    }
  };
  const header = (pos: number, word: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, word >>> 0, true);
    new DataView(b.buffer).setUint32(4, 0, true);
    put(pos, b);
  };
  const setProd = (p: number) => {
    prodView.setUint32(0, p % 2 ** 32, true);
    prodView.setUint32(4, Math.floor(p / 2 ** 32), true);
  };
  return {
    consumer,
    producer,
    consumerPos: () => Number(cons[0]),
    /** Reserves a record; returns its position. The payload is committed unless `busy`. */
    write(payload: number[], opts: { busy?: boolean; discard?: boolean } = {}) {
      const pos = prod;
      const len = payload.length;
      const stride = (len + 8 + 7) & ~7;
      if (prod + stride - Number(cons[0]) > size) throw new Error('fake ring full');
      put(pos + 8, Uint8Array.from(payload));
      header(pos, len | (opts.busy ? BUSY : 0) | (opts.discard ? DISCARD : 0));
      prod += stride;
      setProd(prod);
      return pos;
    },
    commit(pos: number, len: number) {
      header(pos, len);
    },
    /** Starts both positions at `p` (to test positions beyond 2^32). */
    startAt(p: number) {
      prod = p;
      setProd(p);
      cons[0] = BigInt(p);
    },
  };
}
