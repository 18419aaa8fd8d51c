// ifaddrmsg + IFA_* attributes. Pure.
import { NetlinkError } from '../errors.js';
import { attrMap, bytesToIp, familyOf, getString, getU32, ipToBytes, type Writer } from './bytes.js';

/** `IFA_F_*` address flags (the subset worth naming). */
export const AddrFlag = {
  /** `IFA_F_SECONDARY` */
  SECONDARY: 0x01,
  /** `IFA_F_NODAD` */
  NODAD: 0x02,
  /** `IFA_F_DADFAILED` */
  DADFAILED: 0x08,
  /** `IFA_F_TENTATIVE` */
  TENTATIVE: 0x40,
  /** `IFA_F_PERMANENT` */
  PERMANENT: 0x80,
  /** `IFA_F_NOPREFIXROUTE` */
  NOPREFIXROUTE: 0x200,
} as const;

/** An address message (`struct ifaddrmsg` plus typed `IFA_*` attributes). */
export interface AddressMessage {
  /** `AF_INET` (2) or `AF_INET6` (10); derived from `local`/`address` when omitted. */
  family?: number;
  /** Prefix length. */
  prefixLen: number;
  /** `ifa_flags` (low 8 bits of the flags; the full set travels in `IFA_FLAGS`). */
  flags?: number;
  /** `ifa_scope` (0 universe, 253 link, 254 host). */
  scope?: number;
  /** Interface index. */
  index: number;
  /** `IFA_LOCAL`: the address itself. */
  local?: string;
  /** `IFA_ADDRESS`: the address, or the peer on point-to-point links. */
  address?: string;
  /** `IFA_BROADCAST`. */
  broadcast?: string;
  /** `IFA_LABEL`. */
  label?: string;
  /** `IFA_RT_PRIORITY`: metric of the prefix route. */
  metric?: number;
}

const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8, RT_PRIORITY: 9 } as const;

/** Writes `struct ifaddrmsg` and the attributes of `m`. */
export function encodeAddress(w: Writer, m: AddressMessage, op = 'encode'): void {
  const local = m.local === undefined ? undefined : ipToBytes(m.local, op);
  const address = m.address === undefined ? undefined : ipToBytes(m.address, op);
  const family = m.family ?? (local ? familyOf(local) : address ? familyOf(address) : 0);
  const flags = m.flags ?? 0;
  w.u8(family)
    .u8(m.prefixLen)
    .u8(flags & 0xff)
    .u8(m.scope ?? 0)
    .u32(m.index);
  if (local) w.attrBytes(IFA.LOCAL, local);
  if (address) w.attrBytes(IFA.ADDRESS, address);
  if (m.broadcast !== undefined) w.attrBytes(IFA.BROADCAST, ipToBytes(m.broadcast, op));
  if (m.label !== undefined) w.attrString(IFA.LABEL, m.label);
  if (flags > 0xff) w.attrU32(IFA.FLAGS, flags);
  if (m.metric !== undefined) w.attrU32(IFA.RT_PRIORITY, m.metric);
}

/** Decodes an `RTM_NEWADDR` payload. */
export function decodeAddress(p: Uint8Array, op = 'decode'): AddressMessage {
  if (p.byteLength < 8) throw new NetlinkError('Protocol', `${op}: short ifaddrmsg`, { op });
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const m: AddressMessage = {
    family: v.getUint8(0),
    prefixLen: v.getUint8(1),
    flags: v.getUint8(2),
    scope: v.getUint8(3),
    index: v.getUint32(4, true),
  };
  for (const [type, d] of attrMap(p.subarray(8), op)) {
    if (type === IFA.LOCAL) m.local = bytesToIp(d);
    else if (type === IFA.ADDRESS) m.address = bytesToIp(d);
    else if (type === IFA.BROADCAST) m.broadcast = bytesToIp(d);
    else if (type === IFA.LABEL) m.label = getString(d);
    else if (type === IFA.FLAGS) m.flags = getU32(d);
    else if (type === IFA.RT_PRIORITY) m.metric = getU32(d);
  }
  return m;
}
