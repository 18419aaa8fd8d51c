// ndmsg + NDA_* attributes. Pure.
import { NetlinkError } from '../errors.js';
import {
  attrMap,
  bytesToIp,
  bytesToMac,
  familyOf,
  getU32,
  ipToBytes,
  macToBytes,
  type Writer,
} from './bytes.js';

/** `NUD_*` neighbour states. */
export const NeighState = {
  /** `NUD_INCOMPLETE` */
  INCOMPLETE: 0x01,
  /** `NUD_REACHABLE` */
  REACHABLE: 0x02,
  /** `NUD_STALE` */
  STALE: 0x04,
  /** `NUD_DELAY` */
  DELAY: 0x08,
  /** `NUD_PROBE` */
  PROBE: 0x10,
  /** `NUD_FAILED` */
  FAILED: 0x20,
  /** `NUD_NOARP` */
  NOARP: 0x40,
  /** `NUD_PERMANENT` */
  PERMANENT: 0x80,
} as const;

/** A neighbour message (`struct ndmsg` plus typed `NDA_*` attributes). */
export interface NeighMessage {
  /** `AF_INET`, `AF_INET6` or `AF_BRIDGE` (7); derived from `dst` when omitted. */
  family?: number;
  /** Interface index. */
  index: number;
  /** `ndm_state` (`NeighState`). */
  state?: number;
  /** `ndm_flags` (`NTF_*`). */
  flags?: number;
  /** `ndm_type`. */
  type?: number;
  /** `NDA_DST`: the IP address. */
  dst?: string;
  /** `NDA_LLADDR`: the hardware address. */
  lladdr?: string;
  /** `NDA_VNI` (vxlan FDB). */
  vni?: number;
  /** `NDA_MASTER`. */
  master?: number;
}

const NDA = { DST: 1, LLADDR: 2, VNI: 7, MASTER: 9 } as const;

/** Writes `struct ndmsg` and the attributes of `m`. */
export function encodeNeigh(w: Writer, m: NeighMessage, op = 'encode'): void {
  const dst = m.dst === undefined ? undefined : ipToBytes(m.dst, op);
  w.u8(m.family ?? (dst ? familyOf(dst) : 0))
    .u8(0)
    .u16(0)
    .i32(m.index)
    .u16(m.state ?? 0)
    .u8(m.flags ?? 0)
    .u8(m.type ?? 0);
  if (dst) w.attrBytes(NDA.DST, dst);
  if (m.lladdr !== undefined) w.attrBytes(NDA.LLADDR, macToBytes(m.lladdr, op));
  if (m.vni !== undefined) w.attrU32(NDA.VNI, m.vni);
  if (m.master !== undefined) w.attrU32(NDA.MASTER, m.master);
}

/** Decodes an `RTM_NEWNEIGH` payload. */
export function decodeNeigh(p: Uint8Array, op = 'decode'): NeighMessage {
  if (p.byteLength < 12) throw new NetlinkError('Protocol', `${op}: short ndmsg`, { op });
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const m: NeighMessage = {
    family: v.getUint8(0),
    index: v.getInt32(4, true),
    state: v.getUint16(8, true),
    flags: v.getUint8(10),
    type: v.getUint8(11),
  };
  for (const [type, d] of attrMap(p.subarray(12), op)) {
    if (type === NDA.DST) m.dst = bytesToIp(d);
    else if (type === NDA.LLADDR) m.lladdr = bytesToMac(d);
    else if (type === NDA.VNI) m.vni = getU32(d);
    else if (type === NDA.MASTER) m.master = getU32(d);
  }
  return m;
}
