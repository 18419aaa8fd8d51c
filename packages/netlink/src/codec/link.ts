// ifinfomsg + IFLA_* attributes, including IFLA_LINKINFO for veth, bridge, dummy and vxlan. Pure.
import { NetlinkError } from '../errors.js';
import {
  attrMap,
  bytesToIp,
  bytesToMac,
  eachAttr,
  getBe16,
  getI32,
  getString,
  getU8,
  getU32,
  ipToBytes,
  macToBytes,
  type Writer,
} from './bytes.js';

/** `IFF_*` interface flags (the subset worth naming). */
export const IfFlag = {
  /** `IFF_UP` */
  UP: 0x1,
  /** `IFF_BROADCAST` */
  BROADCAST: 0x2,
  /** `IFF_LOOPBACK` */
  LOOPBACK: 0x8,
  /** `IFF_POINTOPOINT` */
  POINTOPOINT: 0x10,
  /** `IFF_RUNNING` */
  RUNNING: 0x40,
  /** `IFF_NOARP` */
  NOARP: 0x80,
  /** `IFF_PROMISC` */
  PROMISC: 0x100,
  /** `IFF_MULTICAST` */
  MULTICAST: 0x1000,
  /** `IFF_LOWER_UP` */
  LOWER_UP: 0x10000,
} as const;

/**
 * `IFLA_INET6_ADDR_GEN_MODE` values (`IN6_ADDR_GEN_MODE_*`): how the kernel makes a link's IPv6
 * link-local address when the link comes up.
 */
export const Inet6AddrGenMode = {
  /** From the hardware address (EUI-64), the kernel's default. */
  EUI64: 0,
  /** No link-local address at all: no duplicate address detection, MLD report or router solicitation follows. */
  NONE: 1,
  /** RFC 7217 stable privacy addresses (needs a secret). */
  STABLE_PRIVACY: 2,
  /** A random interface identifier. */
  RANDOM: 3,
} as const;

/** Link-type specific data carried in `IFLA_LINKINFO`, discriminated by `kind`. */
export type LinkInfo =
  | {
      /** A veth pair. */
      kind: 'veth';
      /** The peer to create with the veth (create requests only; the kernel does not report it). */
      peer?: LinkMessage;
    }
  | {
      /** A Linux bridge. */
      kind: 'bridge';
      /** `IFLA_BR_STP_STATE`: 0 off, 1 on. */
      stpState?: number;
      /** `IFLA_BR_VLAN_FILTERING`. */
      vlanFiltering?: boolean;
      /** `IFLA_BR_FORWARD_DELAY`, in centiseconds. */
      forwardDelay?: number;
      /** `IFLA_BR_AGEING_TIME`, in centiseconds. */
      ageingTime?: number;
    }
  | {
      /** A dummy device (needs the `dummy` module). */
      kind: 'dummy';
    }
  | {
      /** A VXLAN tunnel device. */
      kind: 'vxlan';
      /** VXLAN network identifier (`IFLA_VXLAN_ID`). */
      vni?: number;
      /** Multicast group or remote (`IFLA_VXLAN_GROUP` / `GROUP6`). */
      group?: string;
      /** Local source address (`IFLA_VXLAN_LOCAL` / `LOCAL6`). */
      local?: string;
      /** Underlay device index (`IFLA_VXLAN_LINK`). */
      link?: number;
      /** UDP destination port (`IFLA_VXLAN_PORT`). */
      port?: number;
      /** `IFLA_VXLAN_TTL`. */
      ttl?: number;
      /** `IFLA_VXLAN_LEARNING`. */
      learning?: boolean;
      /** `IFLA_VXLAN_COLLECT_METADATA` (external / flow-based mode). */
      external?: boolean;
    }
  | {
      /** Any other link kind, reported by name only. */
      kind: 'other';
      /** The `IFLA_INFO_KIND` string, e.g. `ipip`. */
      type: string;
    };

/** A link message (`struct ifinfomsg` plus typed `IFLA_*` attributes), as sent and as received. */
export interface LinkMessage {
  /** `ifi_family` (0 = AF_UNSPEC). */
  family?: number;
  /** `ifi_type`, an `ARPHRD_*` value (1 = Ethernet, 772 = loopback). */
  type?: number;
  /** `ifi_index`; 0 lets the kernel choose on create. */
  index?: number;
  /** `ifi_flags` (`IFF_*`). */
  flags?: number;
  /** `ifi_change`: which flags a request changes. */
  change?: number;
  /** `IFLA_IFNAME`. */
  name?: string;
  /** `IFLA_MTU`. */
  mtu?: number;
  /** `IFLA_ADDRESS`, the hardware address, `aa:bb:cc:dd:ee:ff`. */
  address?: string;
  /** `IFLA_BROADCAST`. */
  broadcast?: string;
  /** `IFLA_TXQLEN`. */
  txqlen?: number;
  /** `IFLA_MASTER`: the index of the bridge/bond this link is enslaved to (0 = none). */
  master?: number;
  /** `IFLA_LINK`: the index of the lower/peer link (in `linkNetnsId` when that is set). */
  link?: number;
  /** `IFLA_OPERSTATE` (`IF_OPER_*`, 6 = up, 2 = down). */
  operState?: number;
  /** `IFLA_NET_NS_FD`: the namespace to create/move the link into (requests only). */
  netnsFd?: number;
  /** `IFLA_NET_NS_PID`: as `netnsFd`, by process id (requests only). */
  netnsPid?: number;
  /** `IFLA_LINK_NETNSID`: the namespace id (as seen from here) of `link`. */
  linkNetnsId?: number;
  /**
   * `IFLA_TARGET_NETNSID`: read a link of another namespace by id. Get requests only: on 6.x an
   * `RTM_SETLINK`/`RTM_NEWLINK` with it looks the index up in the caller's namespace and moves that
   * device; use a {@link Handle} opened in the other namespace instead.
   */
  targetNetnsId?: number;
  /** `IFLA_GROUP`. */
  group?: number;
  /** `IFLA_IFALIAS`. */
  alias?: string;
  /** `IFLA_CARRIER` (reported). */
  carrier?: boolean;
  /** `IFLA_MIN_MTU` (reported). */
  minMtu?: number;
  /** `IFLA_MAX_MTU` (reported). */
  maxMtu?: number;
  /** `IFLA_NUM_TX_QUEUES`. */
  numTxQueues?: number;
  /** `IFLA_NUM_RX_QUEUES`. */
  numRxQueues?: number;
  /** `IFLA_LINKINFO`: kind-specific data. */
  info?: LinkInfo;
  /**
   * `IFLA_AF_SPEC` → `AF_INET6` → `IFLA_INET6_ADDR_GEN_MODE` ({@link Inet6AddrGenMode}). Set it with a
   * set request on an existing link, before it comes up (the kernel makes the link-local address when the
   * link goes up; 6.x refuses the attribute in a create request with `EAFNOSUPPORT`); a link without IPv6
   * (a kernel booted with `ipv6.disable=1`) refuses it with `EAFNOSUPPORT` too.
   */
  inet6AddrGenMode?: number;
}

const IFLA = {
  ADDRESS: 1,
  BROADCAST: 2,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  TXQLEN: 13,
  OPERSTATE: 16,
  LINKINFO: 18,
  AF_SPEC: 26,
  NET_NS_PID: 19,
  IFALIAS: 20,
  GROUP: 27,
  NET_NS_FD: 28,
  NUM_TX_QUEUES: 31,
  NUM_RX_QUEUES: 32,
  CARRIER: 33,
  LINK_NETNSID: 37,
  TARGET_NETNSID: 46,
  MIN_MTU: 50,
  MAX_MTU: 51,
} as const;
const INFO = { KIND: 1, DATA: 2 } as const;
const AF_INET6 = 10;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const INET6_WANTED: Record<number, true> = { [AF_INET6]: true };
const GEN_MODE_WANTED: Record<number, true> = { [IFLA_INET6_ADDR_GEN_MODE]: true };
const VETH_INFO_PEER = 1;
const BR = { FORWARD_DELAY: 1, AGEING_TIME: 4, STP_STATE: 5, VLAN_FILTERING: 7 } as const;
const VX = {
  ID: 1,
  GROUP: 2,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  LEARNING: 7,
  PORT: 15,
  GROUP6: 16,
  LOCAL6: 17,
  COLLECT_METADATA: 25,
} as const;

const IFNAMSIZ = 16;
const LINK_WANTED: Record<number, true> = Object.fromEntries(
  Object.values(IFLA).map((t) => [t, true] as const),
) as Record<number, true>;

/** Writes `struct ifinfomsg` and the attributes of `m`. */
export function encodeLink(w: Writer, m: LinkMessage, op = 'encode'): void {
  w.u8(m.family ?? 0)
    .u8(0)
    .u16(m.type ?? 0)
    .i32(m.index ?? 0)
    .u32(m.flags ?? 0)
    .u32(m.change ?? 0);
  if (m.name !== undefined) {
    if (Buffer.byteLength(m.name) >= IFNAMSIZ) {
      throw new NetlinkError(
        'InvalidArgument',
        `${op}: interface name ${JSON.stringify(m.name)} exceeds 15 bytes`,
        {
          op,
          target: m.name,
        },
      );
    }
    w.attrString(IFLA.IFNAME, m.name);
  }
  if (m.mtu !== undefined) w.attrU32(IFLA.MTU, m.mtu);
  if (m.address !== undefined) w.attrBytes(IFLA.ADDRESS, macToBytes(m.address, op));
  if (m.broadcast !== undefined) w.attrBytes(IFLA.BROADCAST, macToBytes(m.broadcast, op));
  if (m.txqlen !== undefined) w.attrU32(IFLA.TXQLEN, m.txqlen);
  if (m.master !== undefined) w.attrU32(IFLA.MASTER, m.master);
  if (m.link !== undefined) w.attrU32(IFLA.LINK, m.link);
  if (m.operState !== undefined) w.attrU8(IFLA.OPERSTATE, m.operState);
  if (m.group !== undefined) w.attrU32(IFLA.GROUP, m.group);
  if (m.alias !== undefined) w.attrString(IFLA.IFALIAS, m.alias);
  if (m.netnsFd !== undefined) w.attrU32(IFLA.NET_NS_FD, m.netnsFd);
  if (m.netnsPid !== undefined) w.attrU32(IFLA.NET_NS_PID, m.netnsPid);
  if (m.linkNetnsId !== undefined) w.attrI32(IFLA.LINK_NETNSID, m.linkNetnsId);
  if (m.targetNetnsId !== undefined) w.attrI32(IFLA.TARGET_NETNSID, m.targetNetnsId);
  if (m.numTxQueues !== undefined) w.attrU32(IFLA.NUM_TX_QUEUES, m.numTxQueues);
  if (m.numRxQueues !== undefined) w.attrU32(IFLA.NUM_RX_QUEUES, m.numRxQueues);
  if (m.info !== undefined) encodeInfo(w, m.info, op);
  const genMode = m.inet6AddrGenMode;
  if (genMode !== undefined)
    w.nest(IFLA.AF_SPEC, (w) => w.nest(AF_INET6, (w) => w.attrU8(IFLA_INET6_ADDR_GEN_MODE, genMode)));
}

function encodeInfo(w: Writer, info: LinkInfo, op: string): void {
  w.nest(IFLA.LINKINFO, (w) => {
    w.attrString(INFO.KIND, info.kind === 'other' ? info.type : info.kind);
    switch (info.kind) {
      case 'veth': {
        const peer = info.peer;
        if (peer !== undefined)
          w.nest(INFO.DATA, (w) => w.attr(VETH_INFO_PEER, (w) => encodeLink(w, peer, op)));
        break;
      }
      case 'bridge': {
        if (
          info.stpState === undefined &&
          info.vlanFiltering === undefined &&
          info.forwardDelay === undefined &&
          info.ageingTime === undefined
        )
          break;
        w.nest(INFO.DATA, (w) => {
          if (info.forwardDelay !== undefined) w.attrU32(BR.FORWARD_DELAY, info.forwardDelay);
          if (info.ageingTime !== undefined) w.attrU32(BR.AGEING_TIME, info.ageingTime);
          if (info.stpState !== undefined) w.attrU32(BR.STP_STATE, info.stpState);
          if (info.vlanFiltering !== undefined) w.attrU8(BR.VLAN_FILTERING, info.vlanFiltering ? 1 : 0);
        });
        break;
      }
      case 'vxlan': {
        w.nest(INFO.DATA, (w) => {
          if (info.vni !== undefined) w.attrU32(VX.ID, info.vni);
          if (info.group !== undefined) {
            const b = ipToBytes(info.group, op);
            w.attrBytes(b.byteLength === 4 ? VX.GROUP : VX.GROUP6, b);
          }
          if (info.local !== undefined) {
            const b = ipToBytes(info.local, op);
            w.attrBytes(b.byteLength === 4 ? VX.LOCAL : VX.LOCAL6, b);
          }
          if (info.link !== undefined) w.attrU32(VX.LINK, info.link);
          if (info.ttl !== undefined) w.attrU8(VX.TTL, info.ttl);
          if (info.learning !== undefined) w.attrU8(VX.LEARNING, info.learning ? 1 : 0);
          if (info.port !== undefined) w.attrBe16(VX.PORT, info.port);
          if (info.external) w.attrU8(VX.COLLECT_METADATA, 1);
        });
        break;
      }
      default:
        break;
    }
  });
}

/** Decodes an `RTM_NEWLINK` payload (`struct ifinfomsg` + attributes). */
export function decodeLink(p: Uint8Array, op = 'decode'): LinkMessage {
  if (p.byteLength < 16)
    throw new NetlinkError('Protocol', `${op}: short ifinfomsg (${p.byteLength} bytes)`, { op });
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const m: LinkMessage = {
    family: v.getUint8(0),
    type: v.getUint16(2, true),
    index: v.getInt32(4, true),
    flags: v.getUint32(8, true),
    change: v.getUint32(12, true),
  };
  eachAttr(p.subarray(16), LINK_WANTED, (type, d) => {
    switch (type) {
      case IFLA.IFNAME:
        m.name = getString(d);
        break;
      case IFLA.MTU:
        m.mtu = getU32(d);
        break;
      case IFLA.ADDRESS:
        m.address = bytesToMac(d);
        break;
      case IFLA.BROADCAST:
        m.broadcast = bytesToMac(d);
        break;
      case IFLA.TXQLEN:
        m.txqlen = getU32(d);
        break;
      case IFLA.MASTER:
        m.master = getU32(d);
        break;
      case IFLA.LINK:
        m.link = getU32(d);
        break;
      case IFLA.OPERSTATE:
        m.operState = getU8(d);
        break;
      case IFLA.GROUP:
        m.group = getU32(d);
        break;
      case IFLA.IFALIAS:
        m.alias = getString(d);
        break;
      case IFLA.LINK_NETNSID:
        m.linkNetnsId = getI32(d);
        break;
      case IFLA.CARRIER:
        m.carrier = getU8(d) !== 0;
        break;
      case IFLA.MIN_MTU:
        m.minMtu = getU32(d);
        break;
      case IFLA.MAX_MTU:
        m.maxMtu = getU32(d);
        break;
      case IFLA.NUM_TX_QUEUES:
        m.numTxQueues = getU32(d);
        break;
      case IFLA.NUM_RX_QUEUES:
        m.numRxQueues = getU32(d);
        break;
      case IFLA.LINKINFO:
        m.info = decodeInfo(d, op);
        break;
      case IFLA.AF_SPEC:
        eachAttr(d, INET6_WANTED, (_, inet6) =>
          eachAttr(inet6, GEN_MODE_WANTED, (_, mode) => {
            m.inet6AddrGenMode = getU8(mode);
          }),
        );
        break;
      default:
        break;
    }
  });
  return m;
}

function decodeInfo(d: Uint8Array, op: string): LinkInfo {
  const a = attrMap(d, op);
  const kindAttr = a.get(INFO.KIND);
  const kind = kindAttr ? getString(kindAttr) : '';
  const data = a.get(INFO.DATA);
  const da = data ? attrMap(data, op) : new Map<number, Uint8Array>();
  switch (kind) {
    case 'veth':
      return { kind: 'veth' };
    case 'dummy':
      return { kind: 'dummy' };
    case 'bridge': {
      const info: LinkInfo = { kind: 'bridge' };
      const stp = da.get(BR.STP_STATE);
      if (stp) info.stpState = getU32(stp);
      const vf = da.get(BR.VLAN_FILTERING);
      if (vf) info.vlanFiltering = getU8(vf) !== 0;
      const fd = da.get(BR.FORWARD_DELAY);
      if (fd) info.forwardDelay = getU32(fd);
      const at = da.get(BR.AGEING_TIME);
      if (at) info.ageingTime = getU32(at);
      return info;
    }
    case 'vxlan': {
      const info: LinkInfo = { kind: 'vxlan' };
      const id = da.get(VX.ID);
      if (id) info.vni = getU32(id);
      const group = da.get(VX.GROUP) ?? da.get(VX.GROUP6);
      if (group?.some((b) => b !== 0)) info.group = bytesToIp(group);
      const local = da.get(VX.LOCAL) ?? da.get(VX.LOCAL6);
      if (local?.some((b) => b !== 0)) info.local = bytesToIp(local);
      const link = da.get(VX.LINK);
      if (link) info.link = getU32(link);
      const ttl = da.get(VX.TTL);
      if (ttl) info.ttl = getU8(ttl);
      const learning = da.get(VX.LEARNING);
      if (learning) info.learning = getU8(learning) !== 0;
      const port = da.get(VX.PORT);
      if (port) info.port = getBe16(port);
      const ext = da.get(VX.COLLECT_METADATA);
      if (ext) info.external = getU8(ext) !== 0;
      return info;
    }
    default:
      return { kind: 'other', type: kind };
  }
}
