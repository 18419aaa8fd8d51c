// nlmsghdr framing: building requests and splitting a datagram into messages. Pure.
import { NetlinkError } from '../errors.js';
import { align4, attrMap, getString, getU32, Writer } from './bytes.js';

/** Netlink message types understood by this codec (`NLMSG_*` and `RTM_*`). */
export const Msg = {
  NOOP: 1,
  ERROR: 2,
  DONE: 3,
  OVERRUN: 4,
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
  NEWQDISC: 36,
  DELQDISC: 37,
  GETQDISC: 38,
  NEWNSID: 88,
  DELNSID: 89,
  GETNSID: 90,
} as const;

/** `nlmsghdr.nlmsg_flags` bits. */
export const Flag = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  DUMP_FILTERED: 0x20,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  /** On NLMSG_ERROR: the original request was not copied back (CAP_ACK). */
  CAPPED: 0x100,
  /** On NLMSG_ERROR / NLMSG_DONE: extended-ACK attributes follow. */
  ACK_TLVS: 0x200,
} as const;

/** The name of a message type, for error messages (`RTM_NEWLINK`). */
export function msgName(type: number): string {
  for (const [k, v] of Object.entries(Msg))
    if (v === type)
      return k.startsWith('NEW') || k.startsWith('DEL') || k.startsWith('GET') || k.startsWith('SET')
        ? `RTM_${k}`
        : `NLMSG_${k}`;
  return `type ${type}`;
}

/** Builds one netlink message: header, fixed body and attributes written by `body`. */
export function frame(type: number, flags: number, seq: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  w.u32(0).u16(type).u16(flags).u32(seq).u32(0);
  body(w);
  w.pad();
  w.patchU32(0, w.length);
  return w.finish();
}

/** One message of a received datagram. */
export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after the 16-byte header. */
  payload: Uint8Array;
}

/** Splits a datagram into its netlink messages. */
export function splitMessages(buf: Uint8Array, op = 'recv'): RawMessage[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: RawMessage[] = [];
  let off = 0;
  while (off + 16 <= buf.byteLength) {
    const len = view.getUint32(off, true);
    if (len < 16 || off + len > buf.byteLength) {
      throw new NetlinkError('Protocol', `${op}: malformed netlink message (length ${len})`, { op });
    }
    out.push({
      type: view.getUint16(off + 4, true),
      flags: view.getUint16(off + 6, true),
      seq: view.getUint32(off + 8, true),
      pid: view.getUint32(off + 12, true),
      payload: buf.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** The decoded body of an `NLMSG_ERROR` (or the error field of `NLMSG_DONE`). */
export interface AckInfo {
  /** 0 for a positive ACK, otherwise the errno (positive). */
  errno: number;
  /** `NLMSGERR_ATTR_MSG`, the kernel's explanation. */
  message?: string;
  /** `NLMSGERR_ATTR_OFFS`, the offset in the request of the offending attribute. */
  offset?: number;
}

const NLMSGERR_ATTR_MSG = 1;
const NLMSGERR_ATTR_OFFS = 2;

/** Decodes an `NLMSG_ERROR` or `NLMSG_DONE` payload, including extended-ACK attributes. */
export function decodeAck(m: RawMessage): AckInfo {
  if (m.payload.byteLength < 4) return { errno: 0 };
  // Negated errno on the wire; "|| 0" turns the -0 of a positive ACK into 0.
  const errno = -new DataView(m.payload.buffer, m.payload.byteOffset, 4).getInt32(0, true) || 0;
  const info: AckInfo = { errno };
  if ((m.flags & Flag.ACK_TLVS) === 0) return info;
  let tlvStart = 4;
  if (m.type === Msg.ERROR) {
    // The original request header follows; its payload too unless the kernel capped it.
    const origLen =
      m.payload.byteLength >= 20
        ? new DataView(m.payload.buffer, m.payload.byteOffset + 4, 4).getUint32(0, true)
        : 16;
    tlvStart = 4 + ((m.flags & Flag.CAPPED) !== 0 ? 16 : align4(origLen));
  }
  if (tlvStart > m.payload.byteLength) return info;
  const attrs = attrMap(m.payload.subarray(tlvStart));
  const msg = attrs.get(NLMSGERR_ATTR_MSG);
  if (msg) info.message = getString(msg);
  const offs = attrs.get(NLMSGERR_ATTR_OFFS);
  if (offs && offs.byteLength >= 4) info.offset = getU32(offs);
  return info;
}
