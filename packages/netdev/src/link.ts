// Links: iproute2-named functions over a netlink Handle.
import { IfFlag, type LinkInfo, type LinkMessage, NetlinkError, type Netns } from '@datapath/netlink';
import { indexOf, type LinkRef, leaseHandle, type NetdevOptions } from './common.js';
import { bad, checkIfname, checkMac, checkMtu, parseIpText } from './validate.js';

/** Attributes common to every link created by {@link linkAdd}. */
export interface LinkBase {
  /** Interface name (1–15 bytes). */
  name: string;
  /** MTU. */
  mtu?: number;
  /** Hardware address; default: chosen by the kernel. */
  mac?: string;
  /** Transmit queue length. */
  txqlen?: number;
  /** Bring the link up at creation. */
  up?: boolean;
  /** Create the link directly in this namespace. */
  netns?: Netns;
}

/** The peer end of a veth pair. */
export interface VethPeer {
  /** Interface name of the peer. */
  name: string;
  /** MTU of the peer (default: the same as the link). */
  mtu?: number;
  /** Hardware address of the peer. */
  mac?: string;
  /** Create the peer directly in this namespace (one message, no later move). */
  netns?: Netns;
}

/** What {@link linkAdd} creates, discriminated by `kind`. */
export type LinkSpec = LinkBase &
  (
    | {
        /** A veth pair. */
        kind: 'veth';
        /** The other end. */
        peer: VethPeer;
      }
    | {
        /** A Linux bridge. */
        kind: 'bridge';
        /** Spanning tree on. */
        stp?: boolean;
        /** VLAN filtering on. */
        vlanFiltering?: boolean;
      }
    | {
        /** A dummy device (needs the `dummy` module, absent on some kernels). */
        kind: 'dummy';
      }
    | {
        /** A VXLAN tunnel device. */
        kind: 'vxlan';
        /** VXLAN network identifier (0–16777215). */
        vni: number;
        /** UDP destination port (default 4789). */
        port?: number;
        /** Local source address. */
        local?: string;
        /** Remote or multicast group. */
        group?: string;
        /** Underlay device. */
        dev?: LinkRef;
        /** Learn remote MACs from traffic (default true, as the kernel). */
        learning?: boolean;
        /** Flow-based (collect metadata) mode, as used with BPF. */
        external?: boolean;
      }
  );

/** A network device (link) as reported by the kernel. */
export interface NetdevLink {
  /** Interface index. */
  index: number;
  /** Interface name. */
  name: string;
  /** Link kind (`veth`, `bridge`, …), undefined for physical and loopback devices. */
  kind: string | undefined;
  /** MTU. */
  mtu: number;
  /** Hardware address. */
  mac: string | undefined;
  /** Administratively up (`IFF_UP`). */
  up: boolean;
  /** `IFF_*` flags. */
  flags: number;
  /** Operational state: `up`, `down`, `lowerlayerdown`, `unknown`, … */
  operState: string;
  /** Transmit queue length. */
  txqlen: number | undefined;
  /** Index of the bridge/bond master, if enslaved. */
  master: number | undefined;
  /** Index of the lower device or veth peer (in `linkNetnsId` when set). */
  peerIndex: number | undefined;
  /** Namespace id (as seen from here) of the peer, when it lives in another namespace. */
  linkNetnsId: number | undefined;
  /** Kind-specific data as decoded. */
  info: LinkInfo | undefined;
}

/**
 * @deprecated Use {@link NetdevLink} (renamed so it does not collide with `@datapath/loader`'s BPF
 * attachment `Link`); this alias goes in the next minor version.
 */
export type Link = NetdevLink;

const OPER = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

/** Converts a decoded link message to the public {@link NetdevLink} shape. */
export function toLink(m: LinkMessage): NetdevLink {
  const kind = m.info === undefined ? undefined : m.info.kind === 'other' ? m.info.type : m.info.kind;
  return {
    index: m.index ?? 0,
    name: m.name ?? '',
    kind: kind === '' ? undefined : kind,
    mtu: m.mtu ?? 0,
    mac: m.address,
    up: ((m.flags ?? 0) & IfFlag.UP) !== 0,
    flags: m.flags ?? 0,
    operState: OPER[m.operState ?? 0] ?? 'unknown',
    txqlen: m.txqlen,
    master: m.master || undefined,
    peerIndex: m.link,
    linkNetnsId: m.linkNetnsId,
    info: m.info,
  };
}

function peerMessage(peer: VethPeer, op: string): LinkMessage {
  const m: LinkMessage = { name: checkIfname(peer.name, op, 'peer name') };
  if (peer.mtu !== undefined) m.mtu = checkMtu(peer.mtu, op);
  if (peer.mac !== undefined) m.address = checkMac(peer.mac, op);
  if (peer.netns !== undefined) m.netnsFd = peer.netns.fd;
  return m;
}

/**
 * Creates a link: a veth pair (peer optionally straight into another namespace), a bridge, a dummy or
 * a vxlan device.
 *
 * Equivalent to: `ip link add NAME [mtu M] [address MAC] type veth peer name PEER [netns NS]`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad spec, before any syscall), `AlreadyExists`,
 * `NotSupported` (kind not built into this kernel, e.g. `dummy` here), `PermissionDenied`.
 * @example A veth pair with the peer in a pod namespace
 * ```ts
 * import { Netns } from '@datapath/netlink';
 * import { linkAdd } from '@datapath/netdev';
 * using pod = Netns.open({ name: 'pod1' });
 * linkAdd({ name: 'lxc1', kind: 'veth', mtu: 1500, peer: { name: 'eth0', netns: pod } });
 * ```
 */
export function linkAdd(spec: LinkSpec, options?: NetdevOptions): void {
  const op = 'linkAdd';
  const m: LinkMessage = { name: checkIfname(spec.name, op) };
  if (spec.mtu !== undefined) m.mtu = checkMtu(spec.mtu, op);
  if (spec.mac !== undefined) m.address = checkMac(spec.mac, op);
  if (spec.txqlen !== undefined) m.txqlen = spec.txqlen;
  if (spec.up) {
    m.flags = IfFlag.UP;
    m.change = IfFlag.UP;
  }
  if (spec.netns !== undefined) m.netnsFd = spec.netns.fd;
  using lease = leaseHandle(options);
  const h = lease.handle;
  switch (spec.kind) {
    case 'veth': {
      const peer = peerMessage(spec.peer, op);
      if (peer.mtu === undefined && m.mtu !== undefined) peer.mtu = m.mtu;
      m.info = { kind: 'veth', peer };
      break;
    }
    case 'bridge': {
      const info: LinkInfo = { kind: 'bridge' };
      if (spec.stp !== undefined) info.stpState = spec.stp ? 1 : 0;
      if (spec.vlanFiltering !== undefined) info.vlanFiltering = spec.vlanFiltering;
      m.info = info;
      break;
    }
    case 'dummy':
      m.info = { kind: 'dummy' };
      break;
    case 'vxlan': {
      if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni > 0xff_ffff)
        bad(op, `invalid VNI ${spec.vni}`);
      const info: LinkInfo = { kind: 'vxlan', vni: spec.vni, port: spec.port ?? 4789 };
      if (spec.port !== undefined && (!Number.isInteger(spec.port) || spec.port <= 0 || spec.port > 65535)) {
        bad(op, `invalid UDP port ${spec.port}`);
      }
      if (spec.local !== undefined) info.local = parseIpText(spec.local, op, 'local address').address;
      if (spec.group !== undefined) info.group = parseIpText(spec.group, op, 'group address').address;
      if (spec.learning !== undefined) info.learning = spec.learning;
      if (spec.external) info.external = true;
      if (spec.dev !== undefined) info.link = indexOf(h, spec.dev, op);
      m.info = info;
      break;
    }
    default:
      bad(op, `unsupported link kind ${JSON.stringify((spec as { kind: unknown }).kind)}`);
  }
  try {
    h.linkNew(m, 'create');
  } catch (err) {
    if (
      err instanceof NetlinkError &&
      err.code === 'NotSupported' &&
      /unknown device type/i.test(err.kernelMessage ?? '')
    ) {
      // Name the missing feature: the kernel only says "Unknown device type".
      throw new NetlinkError(
        'NotSupported',
        `${op}: link kind '${spec.kind}' is not available in this kernel (driver not built in and module \`${spec.kind}\` not loadable)${err.kernelMessage ? `: ${err.kernelMessage}` : ''}`,
        {
          op,
          ...(err.errno === undefined ? {} : { errno: err.errno }),
          syscall: 'RTM_NEWLINK',
          target: spec.name,
          ...(err.kernelMessage === undefined ? {} : { kernelMessage: err.kernelMessage }),
          cause: err,
        },
      );
    }
    throw err;
  }
}

/**
 * Deletes a link (for a veth, both ends).
 *
 * Equivalent to: `ip link del DEV`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound`, `NotSupported`, `InvalidArgument`.
 * @example Deleting a veth
 * ```ts
 * import { linkDel } from '@datapath/netdev';
 * linkDel('lxc1');
 * ```
 */
export function linkDel(dev: LinkRef, options?: NetdevOptions): void {
  const op = 'linkDel';
  using lease = leaseHandle(options);
  const h = lease.handle;
  h.linkDelete(typeof dev === 'number' ? { index: indexOf(h, dev, op) } : { name: checkIfname(dev, op) });
}

/**
 * Looks up one link by name or index.
 *
 * Equivalent to: `ip -d link show DEV`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound`, `InvalidArgument`.
 * @example Reading loopback's MTU
 * ```ts
 * import { linkGet } from '@datapath/netdev';
 * console.log(linkGet('lo').mtu);
 * ```
 */
export function linkGet(dev: LinkRef, options?: NetdevOptions): NetdevLink {
  const op = 'linkGet';
  using lease = leaseHandle(options);
  const h = lease.handle;
  const ref: LinkMessage =
    typeof dev === 'number' ? { index: indexOf(h, dev, op) } : { name: checkIfname(dev, op) };
  return toLink(h.linkGet(ref));
}

/**
 * Lists every link of the namespace.
 *
 * Equivalent to: `ip -d link show`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `Interrupted`.
 * @example Listing veths
 * ```ts
 * import { linkList } from '@datapath/netdev';
 * console.log(linkList().filter((l) => l.kind === 'veth'));
 * ```
 */
export function linkList(options?: NetdevOptions): NetdevLink[] {
  using lease = leaseHandle(options);
  return lease.handle.linkDump().map(toLink);
}

function setLink(dev: LinkRef, patch: LinkMessage, op: string, options?: NetdevOptions): void {
  using lease = leaseHandle(options);
  const h = lease.handle;
  h.linkSet({ ...patch, index: indexOf(h, dev, op) });
}

/**
 * Brings a link up.
 *
 * Equivalent to: `ip link set DEV up`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound`, `InvalidArgument`.
 * @example Bringing loopback up
 * ```ts
 * import { linkSetUp } from '@datapath/netdev';
 * linkSetUp('lo');
 * ```
 */
export function linkSetUp(dev: LinkRef, options?: NetdevOptions): void {
  setLink(dev, { flags: IfFlag.UP, change: IfFlag.UP }, 'linkSetUp', options);
}

/**
 * Brings a link down.
 *
 * Equivalent to: `ip link set DEV down`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `NotFound`, `InvalidArgument`.
 * @example Bringing a veth down
 * ```ts
 * import { linkSetDown } from '@datapath/netdev';
 * linkSetDown('lxc1');
 * ```
 */
export function linkSetDown(dev: LinkRef, options?: NetdevOptions): void {
  setLink(dev, { flags: 0, change: IfFlag.UP }, 'linkSetDown', options);
}

/**
 * Sets a link's MTU.
 *
 * Equivalent to: `ip link set DEV mtu MTU`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (out of range, here or from the driver), `NotFound`.
 * @example Jumbo frames
 * ```ts
 * import { linkSetMtu } from '@datapath/netdev';
 * linkSetMtu('lxc1', 9000);
 * ```
 */
export function linkSetMtu(dev: LinkRef, mtu: number, options?: NetdevOptions): void {
  setLink(dev, { mtu: checkMtu(mtu, 'linkSetMtu') }, 'linkSetMtu', options);
}

/**
 * Sets a link's hardware address.
 *
 * Equivalent to: `ip link set DEV address MAC`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`, `Busy`.
 * @example Setting a locally administered MAC
 * ```ts
 * import { linkSetMac } from '@datapath/netdev';
 * linkSetMac('lxc1', '02:00:00:00:00:01');
 * ```
 */
export function linkSetMac(dev: LinkRef, mac: string, options?: NetdevOptions): void {
  setLink(dev, { address: checkMac(mac, 'linkSetMac') }, 'linkSetMac', options);
}

/**
 * Renames a link; the link must be down.
 *
 * Equivalent to: `ip link set DEV name NEWNAME`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`, `AlreadyExists`, `Busy` (link is up).
 * @example Renaming inside a pod namespace
 * ```ts
 * import { Handle, Netns } from '@datapath/netlink';
 * import { linkSetName } from '@datapath/netdev';
 * using pod = Netns.open({ name: 'pod1' });
 * using handle = Handle.open(pod);
 * linkSetName('tmp1', 'eth0', { handle });
 * ```
 */
export function linkSetName(dev: LinkRef, name: string, options?: NetdevOptions): void {
  setLink(dev, { name: checkIfname(name, 'linkSetName') }, 'linkSetName', options);
}

/**
 * Moves a link into another namespace (it loses its addresses and routes).
 *
 * Equivalent to: `ip link set DEV netns NS`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`, `AlreadyExists` (name taken there).
 * @example Moving a veth end into a pod
 * ```ts
 * import { Netns } from '@datapath/netlink';
 * import { linkSetNs } from '@datapath/netdev';
 * using pod = Netns.open({ name: 'pod1' });
 * linkSetNs('tmp1', pod);
 * ```
 */
export function linkSetNs(dev: LinkRef, netns: Netns, options?: NetdevOptions): void {
  setLink(dev, { netnsFd: netns.fd }, 'linkSetNs', options);
}
