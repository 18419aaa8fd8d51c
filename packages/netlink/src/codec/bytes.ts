// Byte-level helpers of the rtnetlink codec: a growable little-endian writer, netlink attributes
// (with NLA_F_NESTED for nests), and text forms of IP (through @datapath/ip) and MAC addresses. Pure, no I/O.
import { formatIp, ipToBytes as toBytes } from '@datapath/ip';
import { NetlinkError } from '../errors.js';

const UTF8_DECODER = new TextDecoder();
const UTF8_ENCODER = new TextEncoder();

/** Rounds up to the 4-byte netlink alignment. */
export const align4 = (n: number): number => (n + 3) & ~3;

/** `NLA_F_NESTED`, set on every nested attribute we emit. */
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** A growable buffer that writes little-endian (host order on x86_64) fields and netlink attributes. */
export class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  /** Bytes written so far. */
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.byteLength) return;
    let size = this.buf.byteLength * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }
  i32(v: number): this {
    this.ensure(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
    return this;
  }
  pad(): this {
    const n = align4(this.length) - this.length;
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }
  /** Overwrites a u16 at `at`. */
  patchU16(at: number, v: number): void {
    this.view.setUint16(at, v, true);
  }
  /** Overwrites a u32 at `at`. */
  patchU32(at: number, v: number): void {
    this.view.setUint32(at, v >>> 0, true);
  }

  /** Writes an attribute header, runs `body`, then patches the length and pads. */
  attr(type: number, body: (w: this) => void): this {
    const start = this.length;
    this.u16(0).u16(type);
    body(this);
    this.patchU16(start, this.length - start);
    return this.pad();
  }
  /** A nested attribute (`NLA_F_NESTED` set). */
  nest(type: number, body: (w: this) => void): this {
    return this.attr(type | NLA_F_NESTED, body);
  }
  attrU8(type: number, v: number): this {
    return this.attr(type, (w) => w.u8(v));
  }
  attrU16(type: number, v: number): this {
    return this.attr(type, (w) => w.u16(v));
  }
  /** A 16-bit attribute in network byte order (ports). */
  attrBe16(type: number, v: number): this {
    return this.attr(type, (w) => w.u8((v >> 8) & 0xff).u8(v & 0xff));
  }
  attrU32(type: number, v: number): this {
    return this.attr(type, (w) => w.u32(v));
  }
  attrI32(type: number, v: number): this {
    return this.attr(type, (w) => w.i32(v));
  }
  attrBytes(type: number, b: Uint8Array): this {
    return this.attr(type, (w) => w.bytes(b));
  }
  /** A NUL-terminated string attribute. */
  attrString(type: number, s: string): this {
    return this.attr(type, (w) => w.bytes(UTF8_ENCODER.encode(s)).u8(0));
  }
  /** A copy of everything written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** One decoded netlink attribute: its type (flags stripped) and a view of its payload. */
export interface Attr {
  type: number;
  data: Uint8Array;
}

/** Splits a region into attributes; malformed lengths raise a `Protocol` error. */
export function parseAttrs(buf: Uint8Array, op = 'decode'): Attr[] {
  const out: Attr[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 4 <= buf.byteLength) {
    const len = view.getUint16(off, true);
    const type = view.getUint16(off + 2, true) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.byteLength) {
      throw new NetlinkError('Protocol', `${op}: malformed attribute (type ${type}, length ${len})`, { op });
    }
    out.push({ type, data: buf.subarray(off + 4, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes as a map by type (the last one wins, as in the kernel's nla_parse). */
export function attrMap(buf: Uint8Array, op = 'decode'): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const a of parseAttrs(buf, op)) m.set(a.type, a.data);
  return m;
}

/**
 * Calls `fn(type, payload)` for each attribute whose type is in `wanted` (a bitmask-free lookup
 * table), without materialising the others: replies carry dozens of attributes we never read.
 */
export function eachAttr(
  buf: Uint8Array,
  wanted: Readonly<Record<number, true>>,
  fn: (type: number, data: Uint8Array) => void,
  op = 'decode',
): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 4 <= buf.byteLength) {
    const len = view.getUint16(off, true);
    const type = view.getUint16(off + 2, true) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.byteLength) {
      throw new NetlinkError('Protocol', `${op}: malformed attribute (type ${type}, length ${len})`, { op });
    }
    if (wanted[type]) fn(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
}

const dv = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
/** Reads a u8 payload. */
export const getU8 = (b: Uint8Array): number => dv(b).getUint8(0);
/** Reads a u16 payload. */
export const getU16 = (b: Uint8Array): number => dv(b).getUint16(0, true);
/** Reads a big-endian u16 payload. */
export const getBe16 = (b: Uint8Array): number => dv(b).getUint16(0, false);
/** Reads a u32 payload. */
export const getU32 = (b: Uint8Array): number => dv(b).getUint32(0, true);
/** Reads an s32 payload. */
export const getI32 = (b: Uint8Array): number => dv(b).getInt32(0, true);
/** Reads a NUL-terminated string payload. */
export function getString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return UTF8_DECODER.decode(nul < 0 ? b : b.subarray(0, nul));
}

/** Parses `aa:bb:cc:dd:ee:ff` (any even number of bytes) into bytes. */
export function macToBytes(mac: string, op = 'encode'): Uint8Array {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/.test(mac)) {
    throw new NetlinkError('InvalidArgument', `${op}: invalid hardware address ${JSON.stringify(mac)}`, {
      op,
    });
  }
  return Uint8Array.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Formats bytes as a lower-case colon-separated hardware address. */
export function bytesToMac(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.byteLength; i++) s += i === 0 ? HEX[b[i]!] : `:${HEX[b[i]!]}`;
  return s;
}

/** Parses an IP address (`@datapath/ip` rules) into 4 or 16 network-order bytes, or throws `InvalidArgument`. */
export function ipToBytes(s: string, op = 'encode'): Uint8Array {
  try {
    return toBytes(s);
  } catch (cause) {
    throw new NetlinkError('InvalidArgument', `${op}: invalid IP address ${JSON.stringify(s)}`, {
      op,
      cause,
    });
  }
}

/** Formats 4 or 16 bytes as an IP address (RFC 5952 for IPv6); other lengths as a MAC-style hex string. */
export function bytesToIp(b: Uint8Array): string {
  return b.byteLength === 4 || b.byteLength === 16 ? formatIp(b) : bytesToMac(b);
}

/** Address family of a 4- or 16-byte address: `AF_INET` (2) or `AF_INET6` (10). */
export const familyOf = (b: Uint8Array): number => (b.byteLength === 4 ? 2 : 10);
