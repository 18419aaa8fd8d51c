// tcmsg + TCA_KIND, enough for clsact/ingress qdiscs. Pure.
import { NetlinkError } from '../errors.js';
import { attrMap, getString, type Writer } from './bytes.js';

/** Well-known tc handles and parents. */
export const TcHandle = {
  /** `TC_H_ROOT`. */
  ROOT: 0xffff_ffff,
  /** `TC_H_INGRESS`, also the parent of clsact. */
  INGRESS: 0xffff_fff1,
  /** `TC_H_CLSACT` (same value as `TC_H_INGRESS`). */
  CLSACT: 0xffff_fff1,
  /** The handle `ffff:` that clsact and ingress qdiscs get. */
  CLSACT_HANDLE: 0xffff_0000,
} as const;

/** A qdisc message (`struct tcmsg` plus `TCA_KIND`). */
export interface QdiscMessage {
  /** Interface index. */
  index: number;
  /** `tcm_handle`. */
  handle?: number;
  /** `tcm_parent`. */
  parent?: number;
  /** `TCA_KIND`, e.g. `clsact`, `noqueue`, `fq_codel`. */
  kind?: string;
}

const TCA_KIND = 1;

/** Writes `struct tcmsg` and `TCA_KIND`. */
export function encodeQdisc(w: Writer, m: QdiscMessage): void {
  w.u8(0)
    .u8(0)
    .u16(0)
    .i32(m.index)
    .u32(m.handle ?? 0)
    .u32(m.parent ?? 0)
    .u32(0);
  if (m.kind !== undefined) w.attrString(TCA_KIND, m.kind);
}

/** Decodes an `RTM_NEWQDISC` payload. */
export function decodeQdisc(p: Uint8Array, op = 'decode'): QdiscMessage {
  if (p.byteLength < 20) throw new NetlinkError('Protocol', `${op}: short tcmsg`, { op });
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const m: QdiscMessage = {
    index: v.getInt32(4, true),
    handle: v.getUint32(8, true),
    parent: v.getUint32(12, true),
  };
  const kind = attrMap(p.subarray(20), op).get(TCA_KIND);
  if (kind) m.kind = getString(kind);
  return m;
}
