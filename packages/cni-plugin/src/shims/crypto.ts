// A pure-JS stand-in for the few node:crypto calls the datapath-cni bundle makes (SHA-256 for
// deterministic interface names and MACs, random UUIDs): loading node:crypto costs a short-lived plugin
// process 7–9 ms (tens under load), more than the hashing it is used for. Only scripts/bundle.mjs uses
// this file, by redirecting `node:crypto` to it; test/crypto-shim.test.ts checks it against node:crypto.
import { closeSync, openSync, readSync } from 'node:fs';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** Incremental SHA-256 with the part of node:crypto's Hash API the bundled packages use. */
class Sha256 {
  private readonly h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  private readonly w = new Uint32Array(64);
  private readonly block = new Uint8Array(64);
  private fill = 0;
  private length = 0;
  private done = false;

  update(data: string | Uint8Array): this {
    if (this.done) throw new Error('Digest already called');
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.length += bytes.length;
    this.absorb(bytes);
    return this;
  }

  /** Copies bytes into the block, compressing every full one (whole runs at a time, not byte by byte). */
  private absorb(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(64 - this.fill, bytes.length - off);
      this.block.set(bytes.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === 64) {
        this.compress();
        this.fill = 0;
      }
    }
  }

  private compress(): void {
    const { w, h, block } = this;
    for (let i = 0; i < 16; i++) {
      w[i] = (block[i * 4]! << 24) | (block[i * 4 + 1]! << 16) | (block[i * 4 + 2]! << 8) | block[i * 4 + 3]!;
    }
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = [h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!, h[6]!, h[7]!];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i]! + w[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = h[0]! + a;
    h[1] = h[1]! + b;
    h[2] = h[2]! + c;
    h[3] = h[3]! + d;
    h[4] = h[4]! + e;
    h[5] = h[5]! + f;
    h[6] = h[6]! + g;
    h[7] = h[7]! + hh;
  }

  digest(): Buffer;
  digest(encoding: 'hex' | 'base64'): string;
  digest(encoding?: 'hex' | 'base64'): Buffer | string {
    if (this.done) throw new Error('Digest already called');
    const bits = this.length * 8;
    // 0x80, zeros up to 56 mod 64, then the bit length (big-endian, 64 bits): one absorb.
    const pad = new Uint8Array((this.fill < 56 ? 56 - this.fill : 120 - this.fill) + 8);
    pad[0] = 0x80;
    const view = new DataView(pad.buffer);
    view.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    view.setUint32(pad.length - 4, bits >>> 0);
    this.absorb(pad);
    this.done = true;
    const out = Buffer.alloc(32);
    for (let i = 0; i < 8; i++) out.writeUInt32BE(this.h[i]!, i * 4);
    return encoding === undefined ? out : out.toString(encoding);
  }
}

/** `crypto.createHash`, SHA-256 only. */
export function createHash(algorithm: string): Sha256 {
  if (algorithm.toLowerCase() !== 'sha256') {
    throw new Error(
      `datapath-cni bundle: createHash(${JSON.stringify(algorithm)}) is not available (sha256 only)`,
    );
  }
  return new Sha256();
}

/** `crypto.randomBytes` from /dev/urandom. */
export function randomBytes(size: number): Buffer {
  const buf = Buffer.alloc(size);
  const fd = openSync('/dev/urandom', 'r');
  try {
    let off = 0;
    while (off < size) off += readSync(fd, buf, off, size - off, null);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** `crypto.randomUUID` (version 4). */
export function randomUUID(): string {
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
