// rtmsg + RTA_* attributes. Pure.
import { NetlinkError } from '../errors.js';
import { attrMap, bytesToIp, familyOf, getU32, ipToBytes, parseAttrs, type Writer } from './bytes.js';

/** `rtm_scope` values. */
export const RouteScope = {
  /** `RT_SCOPE_UNIVERSE` */
  UNIVERSE: 0,
  /** `RT_SCOPE_SITE` */
  SITE: 200,
  /** `RT_SCOPE_LINK` */
  LINK: 253,
  /** `RT_SCOPE_HOST` */
  HOST: 254,
  /** `RT_SCOPE_NOWHERE` */
  NOWHERE: 255,
} as const;
/** `rtm_type` values. */
export const RouteType = {
  /** `RTN_UNSPEC` */
  UNSPEC: 0,
  /** `RTN_UNICAST` */
  UNICAST: 1,
  /** `RTN_LOCAL` */
  LOCAL: 2,
  /** `RTN_BROADCAST` */
  BROADCAST: 3,
  /** `RTN_ANYCAST` */
  ANYCAST: 4,
  /** `RTN_MULTICAST` */
  MULTICAST: 5,
  /** `RTN_BLACKHOLE` */
  BLACKHOLE: 6,
  /** `RTN_UNREACHABLE` */
  UNREACHABLE: 7,
  /** `RTN_PROHIBIT` */
  PROHIBIT: 8,
  /** `RTN_THROW` */
  THROW: 9,
} as const;
/** Well-known `rtm_table` values. */
export const RouteTable = {
  /** `RT_TABLE_UNSPEC` */
  UNSPEC: 0,
  /** `RT_TABLE_DEFAULT` */
  DEFAULT: 253,
  /** `RT_TABLE_MAIN` */
  MAIN: 254,
  /** `RT_TABLE_LOCAL` */
  LOCAL: 255,
} as const;
/** Well-known `rtm_protocol` values. */
export const RouteProtocol = {
  /** `RTPROT_UNSPEC` */
  UNSPEC: 0,
  /** `RTPROT_REDIRECT` */
  REDIRECT: 1,
  /** `RTPROT_KERNEL` */
  KERNEL: 2,
  /** `RTPROT_BOOT` */
  BOOT: 3,
  /** `RTPROT_STATIC` */
  STATIC: 4,
} as const;

/** A route message (`struct rtmsg` plus typed `RTA_*` attributes). */
export interface RouteMessage {
  /** `AF_INET` (2) or `AF_INET6` (10); derived from `dst`/`gateway` when omitted. */
  family?: number;
  /** Destination prefix length (0 for a default route). */
  dstLen?: number;
  /** Source prefix length (policy routing). */
  srcLen?: number;
  /** `rtm_tos`. */
  tos?: number;
  /** Routing table; ids above 255 travel in `RTA_TABLE`. Default: main (254). */
  table?: number;
  /** `rtm_protocol` (`RouteProtocol`). */
  protocol?: number;
  /** `rtm_scope` (`RouteScope`). */
  scope?: number;
  /** `rtm_type` (`RouteType`). */
  type?: number;
  /** `rtm_flags` (`RTNH_F_*`, `RTM_F_*`). */
  flags?: number;
  /** `RTA_DST`. */
  dst?: string;
  /** `RTA_SRC`. */
  src?: string;
  /** `RTA_GATEWAY` (same family as the route). */
  gateway?: string;
  /** `RTA_OIF`: output interface index. */
  oif?: number;
  /** `RTA_PREFSRC`: preferred source address. */
  prefsrc?: string;
  /** `RTA_PRIORITY`: the metric. */
  priority?: number;
  /** `RTA_METRICS`/`RTAX_MTU`. */
  mtu?: number;
  /** `RTA_METRICS`/`RTAX_ADVMSS`. */
  advmss?: number;
}

const RTA = { DST: 1, SRC: 2, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
const RTAX = { MTU: 2, ADVMSS: 8 } as const;

/** Writes `struct rtmsg` and the attributes of `m`. */
export function encodeRoute(w: Writer, m: RouteMessage, op = 'encode'): void {
  const dst = m.dst === undefined ? undefined : ipToBytes(m.dst, op);
  const gw = m.gateway === undefined ? undefined : ipToBytes(m.gateway, op);
  const family = m.family ?? (dst ? familyOf(dst) : gw ? familyOf(gw) : 0);
  const table = m.table ?? RouteTable.MAIN;
  w.u8(family)
    .u8(m.dstLen ?? (dst ? dst.byteLength * 8 : 0))
    .u8(m.srcLen ?? 0)
    .u8(m.tos ?? 0)
    .u8(table > 255 ? RouteTable.UNSPEC : table)
    .u8(m.protocol ?? RouteProtocol.UNSPEC)
    .u8(m.scope ?? RouteScope.UNIVERSE)
    .u8(m.type ?? RouteType.UNSPEC)
    .u32(m.flags ?? 0);
  if (dst) w.attrBytes(RTA.DST, dst);
  if (m.src !== undefined) w.attrBytes(RTA.SRC, ipToBytes(m.src, op));
  if (m.oif !== undefined) w.attrU32(RTA.OIF, m.oif);
  if (gw) w.attrBytes(RTA.GATEWAY, gw);
  if (m.priority !== undefined) w.attrU32(RTA.PRIORITY, m.priority);
  if (m.prefsrc !== undefined) w.attrBytes(RTA.PREFSRC, ipToBytes(m.prefsrc, op));
  if (table > 255) w.attrU32(RTA.TABLE, table);
  if (m.mtu !== undefined || m.advmss !== undefined) {
    w.nest(RTA.METRICS, (w) => {
      if (m.mtu !== undefined) w.attrU32(RTAX.MTU, m.mtu);
      if (m.advmss !== undefined) w.attrU32(RTAX.ADVMSS, m.advmss);
    });
  }
}

/** Decodes an `RTM_NEWROUTE` payload. */
export function decodeRoute(p: Uint8Array, op = 'decode'): RouteMessage {
  if (p.byteLength < 12) throw new NetlinkError('Protocol', `${op}: short rtmsg`, { op });
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const m: RouteMessage = {
    family: v.getUint8(0),
    dstLen: v.getUint8(1),
    srcLen: v.getUint8(2),
    tos: v.getUint8(3),
    table: v.getUint8(4),
    protocol: v.getUint8(5),
    scope: v.getUint8(6),
    type: v.getUint8(7),
    flags: v.getUint32(8, true),
  };
  for (const [type, d] of attrMap(p.subarray(12), op)) {
    if (type === RTA.DST) m.dst = bytesToIp(d);
    else if (type === RTA.SRC) m.src = bytesToIp(d);
    else if (type === RTA.OIF) m.oif = getU32(d);
    else if (type === RTA.GATEWAY) m.gateway = bytesToIp(d);
    else if (type === RTA.PRIORITY) m.priority = getU32(d);
    else if (type === RTA.PREFSRC) m.prefsrc = bytesToIp(d);
    else if (type === RTA.TABLE) m.table = getU32(d);
    else if (type === RTA.METRICS) {
      for (const a of parseAttrs(d, op)) {
        if (a.type === RTAX.MTU) m.mtu = getU32(a.data);
        else if (a.type === RTAX.ADVMSS) m.advmss = getU32(a.data);
      }
    }
  }
  return m;
}
