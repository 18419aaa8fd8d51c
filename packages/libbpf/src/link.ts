import { BpfError } from './errors.js';
import { BpfCmd } from './sys/bpf-attr.js';
import {
  checked,
  linkCreate as linkCreateRaw,
  linkDetach as linkDetachRaw,
  linkGetFdById,
  linkUpdate as linkUpdateRaw,
  objGet,
  objGetInfoByFd,
  objPin,
} from './sys/libbpf.js';
import {
  bpfAsync,
  closeAsync,
  closeDescriptor,
  ifIndexToName as ifIndexToNameRaw,
  ifNameToIndex as ifNameToIndexRaw,
} from './sys/libc.js';

/** `enum bpf_attach_type` values used by this SDK (tcx numbers are from UAPI ≥ 6.6, absent from libbpf 1.1). */
export const AttachType = {
  /** `BPF_CGROUP_INET4_BIND` */
  CgroupInet4Bind: 8,
  /** `BPF_CGROUP_INET6_BIND` */
  CgroupInet6Bind: 9,
  /** `BPF_CGROUP_INET4_CONNECT` */
  CgroupInet4Connect: 10,
  /** `BPF_CGROUP_INET6_CONNECT` */
  CgroupInet6Connect: 11,
  /** `BPF_CGROUP_UDP4_SENDMSG` */
  CgroupUdp4Sendmsg: 14,
  /** `BPF_CGROUP_UDP6_SENDMSG` */
  CgroupUdp6Sendmsg: 15,
  /** `BPF_CGROUP_UDP4_RECVMSG` */
  CgroupUdp4Recvmsg: 19,
  /** `BPF_CGROUP_UDP6_RECVMSG` */
  CgroupUdp6Recvmsg: 20,
  /** `BPF_CGROUP_INET4_GETPEERNAME` */
  CgroupInet4Getpeername: 29,
  /** `BPF_CGROUP_INET6_GETPEERNAME` */
  CgroupInet6Getpeername: 30,
  /** `BPF_CGROUP_INET_SOCK_RELEASE` (Linux ≥ 5.9) */
  CgroupInetSockRelease: 34,
  /** `BPF_XDP` */
  Xdp: 37,
  /** `BPF_TCX_INGRESS` (Linux ≥ 6.6) */
  TcxIngress: 46,
  /** `BPF_TCX_EGRESS` (Linux ≥ 6.6) */
  TcxEgress: 47,
} as const;

/** `enum bpf_link_type` values reported by {@link linkInfo}. */
export const LinkType = {
  /** `BPF_LINK_TYPE_CGROUP` */
  Cgroup: 3,
  /** `BPF_LINK_TYPE_XDP` */
  Xdp: 6,
  /** `BPF_LINK_TYPE_TCX` (Linux ≥ 6.6) */
  Tcx: 11,
} as const;

/** What the kernel reports about a BPF link (`struct bpf_link_info`, common part plus the target). */
export interface BpfLinkInfo {
  /** Kernel link id. */
  id: number;
  /** `bpf_link_type` number (see {@link LinkType}). */
  type: number;
  /** Id of the program the link runs. */
  progId: number;
  /** Device of a tcx or XDP link; 0 once the device is gone. */
  ifindex?: number;
  /** `bpf_attach_type` of a tcx or cgroup link. */
  attachType?: number;
  /** cgroup id of a cgroup link. */
  cgroupId?: bigint;
}

/**
 * @deprecated Use {@link BpfLinkInfo} (renamed so it does not collide with `@datapath/netlink`'s
 * rtnetlink `LinkInfo`); this alias goes in the next minor version.
 */
export type LinkInfo = BpfLinkInfo;

function link(fd: number, what: string, op: string): number {
  if (!Number.isInteger(fd) || fd < 0) {
    throw new BpfError('InvalidArgument', `${op}: ${what} must be an open file descriptor, got ${fd}`, {
      op,
    });
  }
  return fd;
}

/**
 * Creates a BPF link attaching program `progFd` to `target` (an ifindex for XDP/tcx, a cgroup fd for cgroup
 * hooks) with `BPF_LINK_CREATE`; returns the link fd, which detaches the program when its last reference closes.
 * Equivalent to: `bpftool prog attach …` for link-based hooks.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad target or a kernel without that attach type,
 * `Busy` when the hook is taken by a non-link attachment, `NotFound`, `PermissionDenied`.
 * @example Attaching a cgroup connect4 program
 * ```ts
 * import { AttachType, linkCreate, linkClose } from '@datapath/libbpf';
 * declare const progFd: number, cgroupFd: number;
 * const fd = linkCreate(progFd, cgroupFd, AttachType.CgroupInet4Connect);
 * linkClose(fd);
 * ```
 */
export function linkCreate(progFd: number, target: number, attachType: number, flags = 0): number {
  const op = 'linkCreate';
  link(progFd, 'progFd', op);
  let opts: Uint8Array | null = null;
  if (flags !== 0) {
    opts = new Uint8Array(64); // struct bpf_link_create_opts: sz@0, flags@8
    const v = new DataView(opts.buffer);
    v.setBigUint64(0, 64n, true);
    v.setUint32(8, flags >>> 0, true);
  }
  return checked(linkCreateRaw(progFd, target, attachType, opts), op, 'bpf(BPF_LINK_CREATE)');
}

/**
 * The async form of {@link linkCreate}: a raw `BPF_LINK_CREATE` on libuv's threadpool (a tcx attach
 * waits for an RCU grace period in the kernel). Same arguments and errors; with `netnsFd` (an open network
 * namespace fd) the pool thread makes the call inside that namespace, where an ifindex `target` is looked up.
 * Equivalent to: `bpftool link create` (not in bpftool 7.1).
 *
 * @throws {@link BpfError} as {@link linkCreate}.
 * @example Creating a link without blocking the event loop
 * ```ts
 * import { AttachType, linkCreateAsync } from '@datapath/libbpf';
 * declare const progFd: number, ifindex: number;
 * const linkFd = await linkCreateAsync(progFd, ifindex, AttachType.TcxIngress);
 * ```
 */
export function linkCreateAsync(
  progFd: number,
  target: number,
  attachType: number,
  flags = 0,
  netnsFd = -1,
): Promise<number> {
  const op = 'linkCreate';
  try {
    const attr = new Uint8Array(64);
    const v = new DataView(attr.buffer);
    v.setUint32(0, link(progFd, 'progFd', op), true);
    v.setUint32(4, target >>> 0, true);
    v.setUint32(8, attachType >>> 0, true);
    v.setUint32(12, flags >>> 0, true);
    return bpfAsync(BpfCmd.LinkCreate, attr, op, 'bpf(BPF_LINK_CREATE)', undefined, netnsFd);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Atomically replaces the program a link runs (`BPF_LINK_UPDATE`): no packet sees the hook empty.
 * Equivalent to: `bpftool link update` (not in bpftool 7.1).
 *
 * @throws {@link BpfError} `InvalidArgument` when the new program's type does not match the link,
 * `NotFound` (ENOLINK) when the link's target is gone, `BadFd`.
 * @example Swapping the program behind a link
 * ```ts
 * import { linkUpdate } from '@datapath/libbpf';
 * declare const linkFd: number, newProgFd: number;
 * linkUpdate(linkFd, newProgFd);
 * ```
 */
export function linkUpdate(linkFd: number, progFd: number): void {
  const op = 'linkUpdate';
  checked(
    linkUpdateRaw(link(linkFd, 'linkFd', op), link(progFd, 'progFd', op), null),
    op,
    'bpf(BPF_LINK_UPDATE)',
  );
}

/**
 * Detaches a link from its hook even while other references (pins, fds) keep it alive (`BPF_LINK_DETACH`).
 * Equivalent to: `bpftool link detach id ID`.
 *
 * @throws {@link BpfError} `BadFd`, `NotSupported` for link types that cannot be detached.
 * @example Detaching a pinned link
 * ```ts
 * import { linkDetach, linkOpenPinned, linkClose } from '@datapath/libbpf';
 * const fd = linkOpenPinned('/sys/fs/bpf/demo/link');
 * linkDetach(fd);
 * linkClose(fd);
 * ```
 */
export function linkDetach(linkFd: number): void {
  const op = 'linkDetach';
  checked(linkDetachRaw(link(linkFd, 'linkFd', op)), op, 'bpf(BPF_LINK_DETACH)');
}

/**
 * The async form of {@link linkDetach}: the `BPF_LINK_DETACH` (a tcx detach waits for an RCU grace period in
 * the kernel) runs on libuv's threadpool. Same argument and errors.
 * Equivalent to: `bpftool link detach id ID`.
 *
 * @throws {@link BpfError} as {@link linkDetach}.
 * @example Detaching a pinned link without blocking the event loop
 * ```ts
 * import { linkDetachAsync, linkOpenPinned, linkClose } from '@datapath/libbpf';
 * const fd = linkOpenPinned('/sys/fs/bpf/demo/link');
 * await linkDetachAsync(fd);
 * linkClose(fd);
 * ```
 */
export function linkDetachAsync(linkFd: number): Promise<void> {
  const op = 'linkDetach';
  try {
    const attr = new Uint8Array(4);
    new DataView(attr.buffer).setUint32(0, link(linkFd, 'linkFd', op), true);
    return bpfAsync(BpfCmd.LinkDetach, attr, op, 'bpf(BPF_LINK_DETACH)').then(() => undefined);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Reads a link's kernel info: id, type, program id and target.
 * Equivalent to: `bpftool link show id ID`.
 *
 * @throws {@link BpfError} `BadFd`, `InvalidArgument` when `linkFd` is not a link.
 * @example Printing the program behind a link
 * ```ts
 * import { linkInfo } from '@datapath/libbpf';
 * declare const linkFd: number;
 * console.log(linkInfo(linkFd).progId);
 * ```
 */
export function linkInfo(linkFd: number): BpfLinkInfo {
  const op = 'linkInfo';
  const buf = new Uint8Array(48);
  const len = new Uint32Array([buf.length]);
  checked(objGetInfoByFd(link(linkFd, 'linkFd', op), buf, len), op, 'bpf(BPF_OBJ_GET_INFO_BY_FD)');
  const v = new DataView(buf.buffer);
  const info: BpfLinkInfo = {
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    progId: v.getUint32(8, true),
  };
  if (info.type === LinkType.Tcx) {
    info.ifindex = v.getUint32(16, true);
    info.attachType = v.getUint32(20, true);
  } else if (info.type === LinkType.Xdp) {
    info.ifindex = v.getUint32(16, true);
  } else if (info.type === LinkType.Cgroup) {
    info.cgroupId = v.getBigUint64(16, true);
    info.attachType = v.getUint32(24, true);
  }
  return info;
}

/**
 * Opens a new fd on the link with kernel id `id`.
 * Equivalent to: `bpftool link show id ID` (which opens it the same way).
 *
 * @throws {@link BpfError} `NotFound` when no link has that id, `PermissionDenied`.
 * @example Detaching a link found by query
 * ```ts
 * import { linkDetach, linkFdById, linkClose } from '@datapath/libbpf';
 * const fd = linkFdById(7);
 * linkDetach(fd);
 * linkClose(fd);
 * ```
 */
export function linkFdById(id: number): number {
  return checked(linkGetFdById(id), 'linkFdById', 'bpf(BPF_LINK_GET_FD_BY_ID)', `link id ${id}`);
}

/**
 * Pins a link at `path` on bpffs, so it outlives this process.
 * Equivalent to: `bpftool link pin id ID PATH`.
 *
 * @throws {@link BpfError} `AlreadyExists` when the path is taken, `NotFound` when its directory is missing,
 * `PermissionDenied` outside bpffs.
 * @example Pinning a link
 * ```ts
 * import { linkPin } from '@datapath/libbpf';
 * declare const linkFd: number;
 * linkPin(linkFd, '/sys/fs/bpf/demo/link');
 * ```
 */
export function linkPin(linkFd: number, path: string): void {
  const op = 'linkPin';
  checked(objPin(link(linkFd, 'linkFd', op), path), op, 'bpf(BPF_OBJ_PIN)', path);
}

/**
 * Opens a pinned link and returns a new fd on it.
 * Equivalent to: `bpftool link show pinned PATH`.
 *
 * @throws {@link BpfError} `NotFound` when nothing is pinned there, `PermissionDenied`.
 * @example Reopening a pinned link in another process
 * ```ts
 * import { linkOpenPinned, linkInfo, linkClose } from '@datapath/libbpf';
 * const fd = linkOpenPinned('/sys/fs/bpf/demo/link');
 * console.log(linkInfo(fd).id);
 * linkClose(fd);
 * ```
 */
export function linkOpenPinned(path: string): number {
  return checked(objGet(path), 'linkOpenPinned', 'bpf(BPF_OBJ_GET)', path);
}

/**
 * Closes a link fd; an unpinned link with no other fd detaches.
 *
 * @throws {@link BpfError} `BadFd` when `linkFd` is not open.
 * @example Closing a link
 * ```ts
 * import { linkClose } from '@datapath/libbpf';
 * declare const linkFd: number;
 * linkClose(linkFd);
 * ```
 */
export function linkClose(linkFd: number): void {
  closeDescriptor(link(linkFd, 'linkFd', 'linkClose'), 'linkClose');
}

/**
 * The async form of {@link linkClose}: the close runs on libuv's threadpool, because closing the last
 * reference of a tcx or XDP link detaches it and waits for an RCU grace period in the kernel.
 * Equivalent to: `bpftool link detach` (for the last reference).
 *
 * @throws {@link BpfError} `BadFd` when `linkFd` is not open.
 * @example Detaching without blocking the event loop
 * ```ts
 * import { linkCloseAsync } from '@datapath/libbpf';
 * declare const linkFd: number;
 * await linkCloseAsync(linkFd);
 * ```
 */
export function linkCloseAsync(linkFd: number): Promise<void> {
  try {
    return closeAsync(link(linkFd, 'linkFd', 'linkClose'), 'linkClose');
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Returns the ifindex of device `name` in the calling process's network namespace (if_nametoindex(3)),
 * or undefined when there is none. A device inside another namespace is invisible from here.
 * Equivalent to: `cat /sys/class/net/NAME/ifindex`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a name longer than 15 bytes or with a `/` or NUL.
 * @example Resolving a device name
 * ```ts
 * import { ifNameToIndex } from '@datapath/libbpf';
 * console.log(ifNameToIndex('lo')); // 1
 * ```
 */
export function ifNameToIndex(name: string): number | undefined {
  const op = 'ifNameToIndex';
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 15 || /[/\0\s]/.test(name)) {
    throw new BpfError('InvalidArgument', `${op}: ${JSON.stringify(name)} is not a valid interface name`, {
      op,
    });
  }
  const index = ifNameToIndexRaw(name);
  return index === 0 ? undefined : index;
}

/**
 * Returns the name of device `ifindex` in the calling process's network namespace, or undefined.
 * Equivalent to: `ip -o link show | grep '^IFINDEX:'`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a non-positive index.
 * @example Naming a device
 * ```ts
 * import { ifIndexToName } from '@datapath/libbpf';
 * console.log(ifIndexToName(1)); // 'lo'
 * ```
 */
export function ifIndexToName(ifindex: number): string | undefined {
  const op = 'ifIndexToName';
  if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: ifindex must be a positive integer, got ${ifindex}`, {
      op,
    });
  }
  return ifIndexToNameRaw(ifindex);
}
