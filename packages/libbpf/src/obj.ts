import { readFileSync } from 'node:fs';
import { BpfError, errnoError } from './errors.js';
import {
  Cmd,
  GetFdByIdAttr,
  InfoAttr,
  LinkInfoLayout,
  MapInfoLayout,
  ObjAttr,
  ProgInfoLayout,
} from './sys/bpf-attr.js';
import { bpfOrThrow, syscallError } from './sys/call.js';
import { addressOf, type Pinned, pinnedAlloc, sysBpf, sysClose } from './sys/libc.js';

/**
 * Closes a file descriptor returned by this package.
 *
 * @throws {@link BpfError} `BadFd` when `fd` is not open.
 * @example Closing a map
 * ```ts
 * import { MapType, mapCreate, fdClose } from '@datapath/libbpf';
 * fdClose(mapCreate({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 1 }));
 * ```
 */
export function fdClose(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) {
    throw new BpfError('BadFd', `fdClose: ${fd} is not a file descriptor`, { op: 'fdClose' });
  }
  const r = sysClose(fd);
  if (r < 0) throw errnoError(-r, { op: 'fdClose', syscall: 'close' });
}

const objAttr = pinnedAlloc(ObjAttr.size);
const encoder = new TextEncoder();

function cPath(path: string, op: string): Pinned {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new BpfError('InvalidArgument', `${op}: bad path ${JSON.stringify(path)}`, { op });
  }
  const bytes = encoder.encode(path);
  const buf = pinnedAlloc(bytes.length + 1);
  buf.bytes.set(bytes);
  return buf;
}

function setAddr(view: DataView, offset: number, addr: number): void {
  view.setBigUint64(offset, BigInt(addr), true);
}

/**
 * Pins a BPF object (map, program or link) at a bpffs path, so it outlives this process.
 *
 * Equivalent to: `bpftool map pin id ID PATH` (or `prog pin`, `link pin`).
 *
 * @throws {@link BpfError} `AlreadyExists` when the path exists, `NotFound` when its directory does not,
 * `PermissionDenied` outside bpffs, `BadFd`.
 * @example Pinning a map
 * ```ts
 * import { MapType, mapCreate, objPin, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 1 });
 * objPin(fd, '/sys/fs/bpf/demo_map');
 * fdClose(fd);
 * ```
 */
export function objPin(fd: number, path: string): void {
  const buf = cPath(path, 'objPin');
  objAttr.bytes.fill(0);
  setAddr(objAttr.view, ObjAttr.pathname, buf.addr);
  objAttr.view.setUint32(ObjAttr.bpfFd, fd, true);
  bpfOrThrow(Cmd.ObjPin, objAttr, ObjAttr.size, 'objPin', path);
}

/** Options of {@link objGet}. */
export interface ObjGetOptions {
  /** Open the object read-only (`BPF_F_RDONLY`): updates through the fd then fail. */
  readOnly?: boolean;
  /** Open the object write-only (`BPF_F_WRONLY`). */
  writeOnly?: boolean;
}

/**
 * Opens a pinned BPF object and returns a new fd the caller owns.
 *
 * Equivalent to: `bpftool map show pinned PATH`.
 *
 * @throws {@link BpfError} `NotFound` when nothing is pinned there, `PermissionDenied`,
 * `InvalidArgument` for a path outside bpffs.
 * @example Opening a pinned map read-only
 * ```ts
 * import { objGet, fdClose } from '@datapath/libbpf';
 * const fd = objGet('/sys/fs/bpf/demo_map', { readOnly: true });
 * fdClose(fd);
 * ```
 */
export function objGet(path: string, options: ObjGetOptions = {}): number {
  const buf = cPath(path, 'objGet');
  objAttr.bytes.fill(0);
  setAddr(objAttr.view, ObjAttr.pathname, buf.addr);
  const flags = (options.readOnly ? 1 << 3 : 0) | (options.writeOnly ? 1 << 4 : 0);
  objAttr.view.setUint32(ObjAttr.fileFlags, flags, true);
  return bpfOrThrow(Cmd.ObjGet, objAttr, ObjAttr.size, 'objGet', path);
}

/** The kernel's description of a map (`struct bpf_map_info`). */
export interface MapInfo {
  /** Always `'map'`. */
  kind: 'map';
  /** `bpf_map_type`. */
  type: number;
  /** Kernel-wide map id. */
  id: number;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes. */
  valueSize: number;
  /** Maximum number of entries. */
  maxEntries: number;
  /** `BPF_F_*` flags the map was created with. */
  flags: number;
  /** Object name (up to 15 bytes). */
  name: string;
  /** BTF object id, 0 when the map has no BTF. */
  btfId: number;
  /** Per-type extra (bloom filter hash count, …). */
  mapExtra: bigint;
}

/** The kernel's description of a program (`struct bpf_prog_info`, scalar fields). */
export interface ObjProgInfo {
  /** Always `'prog'`. */
  kind: 'prog';
  /** `bpf_prog_type`. */
  type: number;
  /** Kernel-wide program id. */
  id: number;
  /** Program tag as 16 hex digits (what bpftool shows). */
  tag: string;
  /** Object name (up to 15 bytes). */
  name: string;
  /** Size of the translated program in bytes. */
  xlatedProgLen: number;
  /** Size of the JITed image in bytes. */
  jitedProgLen: number;
  /** Number of maps the program uses. */
  nrMapIds: number;
  /** BTF object id, 0 when none. */
  btfId: number;
  /** Whether the program declared a GPL-compatible license. */
  gplCompatible: boolean;
  /** Run count (only counted while `kernel.bpf_stats_enabled` is set). */
  runCnt: bigint;
  /** Verified instruction count. */
  verifiedInsns: number;
}

/** The kernel's description of a link (`struct bpf_link_info`). */
export interface ObjLinkInfo {
  /** Always `'link'`. */
  kind: 'link';
  /** `bpf_link_type` (11 = tcx, 6 = xdp, 3 = cgroup, …). */
  type: number;
  /** Kernel-wide link id. */
  id: number;
  /** Id of the attached program. */
  progId: number;
  /** For tcx, xdp and netkit links: the interface index; otherwise undefined. */
  ifindex: number | undefined;
  /** For tcx, netkit, cgroup and netns links: the attach type; otherwise undefined. */
  attachType: number | undefined;
  /** For cgroup links: the cgroup id. */
  cgroupId: bigint | undefined;
}

/** What {@link objInfo} returns: one of the three object kinds. */
export type ObjInfo = MapInfo | ObjProgInfo | ObjLinkInfo;

const infoAttr = pinnedAlloc(InfoAttr.size);
const infoBuf = pinnedAlloc(ProgInfoLayout.size);
const decoder = new TextDecoder();

function getInfo(fd: number, len: number, op: string): DataView {
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('BadFd', `${op}: ${fd} is not a file descriptor`, { op });
  infoBuf.bytes.fill(0);
  infoAttr.bytes.fill(0);
  infoAttr.view.setUint32(InfoAttr.bpfFd, fd, true);
  infoAttr.view.setUint32(InfoAttr.infoLen, len, true);
  setAddr(infoAttr.view, InfoAttr.info, infoBuf.addr);
  bpfOrThrow(Cmd.ObjGetInfoByFd, infoAttr, InfoAttr.size, op);
  return infoBuf.view;
}

function cString(view: DataView, offset: number, max: number): string {
  const bytes = new Uint8Array(view.buffer, offset, max);
  const end = bytes.indexOf(0);
  return decoder.decode(bytes.subarray(0, end < 0 ? max : end));
}

/**
 * Describes the map behind `fd` (type, sizes, max entries, flags, id, name).
 *
 * Equivalent to: `bpftool map show id ID`.
 *
 * @throws {@link BpfError} `BadFd`, `InvalidArgument` when `fd` is not a map.
 * @example Reading a map's shape
 * ```ts
 * import { MapType, mapCreate, mapInfo, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16 });
 * console.log(mapInfo(fd).maxEntries); // 16
 * fdClose(fd);
 * ```
 */
export function mapInfo(fd: number): MapInfo {
  const v = getInfo(fd, MapInfoLayout.size, 'mapInfo');
  return {
    kind: 'map',
    type: v.getUint32(MapInfoLayout.type, true),
    id: v.getUint32(MapInfoLayout.id, true),
    keySize: v.getUint32(MapInfoLayout.keySize, true),
    valueSize: v.getUint32(MapInfoLayout.valueSize, true),
    maxEntries: v.getUint32(MapInfoLayout.maxEntries, true),
    flags: v.getUint32(MapInfoLayout.mapFlags, true),
    name: cString(v, MapInfoLayout.name, 16),
    btfId: v.getUint32(MapInfoLayout.btfId, true),
    mapExtra: v.getBigUint64(MapInfoLayout.mapExtra, true),
  };
}

/**
 * Describes the program behind `fd`.
 *
 * Equivalent to: `bpftool prog show id ID`.
 *
 * @throws {@link BpfError} `BadFd`, `InvalidArgument` when `fd` is not a program.
 * @example Reading a program's id
 * ```ts
 * import { objInfo } from '@datapath/libbpf';
 * declare const progFd: number;
 * console.log(objInfo(progFd).id);
 * ```
 */
export function objProgInfo(fd: number): ObjProgInfo {
  const v = getInfo(fd, ProgInfoLayout.size, 'progInfo');
  const tag = [...new Uint8Array(v.buffer, ProgInfoLayout.tag, 8)]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
  return {
    kind: 'prog',
    type: v.getUint32(ProgInfoLayout.type, true),
    id: v.getUint32(ProgInfoLayout.id, true),
    tag,
    name: cString(v, ProgInfoLayout.name, 16),
    xlatedProgLen: v.getUint32(ProgInfoLayout.xlatedProgLen, true),
    jitedProgLen: v.getUint32(ProgInfoLayout.jitedProgLen, true),
    nrMapIds: v.getUint32(ProgInfoLayout.nrMapIds, true),
    btfId: v.getUint32(ProgInfoLayout.btfId, true),
    gplCompatible: (v.getUint32(ProgInfoLayout.gplCompatible, true) & 1) === 1,
    runCnt: v.getBigUint64(ProgInfoLayout.runCnt, true),
    verifiedInsns: v.getUint32(ProgInfoLayout.verifiedInsns, true),
  };
}

// bpf_link_type values whose union starts with an ifindex (xdp 6, tcx 11, netkit 13) or with
// {ifindex/netns_ino, attach_type} (tcx, netkit, netns 5) or a cgroup (3).
const LINK_XDP = 6;
const LINK_TCX = 11;
const LINK_NETKIT = 13;
const LINK_NETNS = 5;
const LINK_CGROUP = 3;

/**
 * Describes the link behind `fd`; tcx (type 11), xdp and netkit links carry their interface index.
 *
 * Equivalent to: `bpftool link show id ID`.
 *
 * @throws {@link BpfError} `BadFd`, `InvalidArgument` when `fd` is not a link.
 * @example Reading a link's program
 * ```ts
 * import { objInfo } from '@datapath/libbpf';
 * declare const linkFd: number;
 * console.log(objInfo(linkFd).id);
 * ```
 */
export function objLinkInfo(fd: number): ObjLinkInfo {
  const v = getInfo(fd, LinkInfoLayout.size, 'linkInfo');
  const type = v.getUint32(LinkInfoLayout.type, true);
  const u = LinkInfoLayout.union;
  const hasIfindex = type === LINK_TCX || type === LINK_XDP || type === LINK_NETKIT;
  const hasAttach = type === LINK_TCX || type === LINK_NETKIT || type === LINK_NETNS;
  return {
    kind: 'link',
    type,
    id: v.getUint32(LinkInfoLayout.id, true),
    progId: v.getUint32(LinkInfoLayout.progId, true),
    ifindex: hasIfindex ? v.getUint32(u, true) : undefined,
    attachType: hasAttach
      ? v.getUint32(u + 4, true)
      : type === LINK_CGROUP
        ? v.getUint32(u + 8, true)
        : undefined,
    cgroupId: type === LINK_CGROUP ? v.getBigUint64(u, true) : undefined,
  };
}

/**
 * Describes any BPF object fd, telling maps, programs and links apart by the kernel's fdinfo.
 *
 * Equivalent to: `bpftool map|prog|link show id ID`.
 *
 * @throws {@link BpfError} `BadFd` when `fd` is not open, `InvalidArgument` when it is not a BPF object.
 * @example Describing a pinned object of unknown kind
 * ```ts
 * import { objGet, objInfo, fdClose } from '@datapath/libbpf';
 * const fd = objGet('/sys/fs/bpf/demo_map');
 * const info = objInfo(fd);
 * if (info.kind === 'map') console.log(info.keySize);
 * fdClose(fd);
 * ```
 */
export function objInfo(fd: number): ObjInfo {
  const op = 'objInfo';
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('BadFd', `${op}: ${fd} is not a file descriptor`, { op });
  let fdinfo: string;
  try {
    fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  } catch (cause) {
    throw new BpfError('BadFd', `${op}: fd ${fd} is not open`, { op, cause });
  }
  if (/^map_type:/m.test(fdinfo)) return mapInfo(fd);
  if (/^prog_type:/m.test(fdinfo)) return objProgInfo(fd);
  if (/^link_type:/m.test(fdinfo)) return objLinkInfo(fd);
  throw new BpfError('InvalidArgument', `${op}: fd ${fd} is not a BPF map, program or link`, { op });
}

const byIdAttr = pinnedAlloc(GetFdByIdAttr.size);

function fdById(cmd: number, id: number, op: string): number {
  if (!Number.isInteger(id) || id <= 0 || id > 0xffff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: id must be a positive 32-bit integer, got ${id}`, { op });
  }
  byIdAttr.bytes.fill(0);
  byIdAttr.view.setUint32(GetFdByIdAttr.id, id, true);
  return bpfOrThrow(cmd, byIdAttr, GetFdByIdAttr.size, op, `id ${id}`);
}

/**
 * Opens the map with kernel id `id`; returns a new fd the caller owns.
 *
 * Equivalent to: `bpftool map show id ID`.
 *
 * @throws {@link BpfError} `NotFound` when no map has that id, `PermissionDenied`, `InvalidArgument`.
 * @example Opening a map by id
 * ```ts
 * import { mapFdById, fdClose } from '@datapath/libbpf';
 * fdClose(mapFdById(42));
 * ```
 */
export function mapFdById(id: number): number {
  return fdById(Cmd.MapGetFdById, id, 'mapFdById');
}

/** A buffer whose address {@link bpfSyscall} writes into the attr at `offset` (a `__aligned_u64` field). */
export interface AttrPointer {
  /** Byte offset of the pointer field inside the attr. */
  offset: number;
  /** The memory the kernel reads or writes; it must be large enough for what the command expects. */
  buffer: Uint8Array;
}

/** Options of {@link bpfSyscall}. */
export interface BpfSyscallOptions {
  /** SDK operation name for errors, e.g. `tcxAttach`. */
  op: string;
  /** What the call acts on, for errors. */
  target?: string;
  /** Pointer fields to fill in with the addresses of caller-owned buffers. */
  pointers?: readonly AttrPointer[];
}

const RAW_MAX = 256;
const rawAttr = pinnedAlloc(RAW_MAX);

/**
 * Runs one raw bpf(2) command for what the typed functions do not cover (tcx anchors, `BPF_PROG_QUERY`
 * link ids): the attr bytes go in, the kernel's writes to the attr come back in the same array.
 * Pointer fields are given as buffers, never as addresses.
 *
 * @returns the non-negative syscall result (an fd for commands that create one).
 * @throws {@link BpfError} with the mapped errno (`NotFound`, `Busy`, `Stale`, `NotSupported`, …), or
 * `InvalidArgument` before the call for an attr over 256 bytes or a pointer offset outside it.
 * @example Querying tcx ingress programs with link ids
 * ```ts
 * import { BpfCmd, bpfSyscall } from '@datapath/libbpf';
 * const attr = new Uint8Array(64);
 * const view = new DataView(attr.buffer);
 * view.setUint32(0, 3, true); // target_ifindex
 * view.setUint32(4, 46, true); // BPF_TCX_INGRESS
 * view.setUint32(24, 8, true); // count
 * const progIds = new Uint8Array(32);
 * const linkIds = new Uint8Array(32);
 * bpfSyscall(BpfCmd.ProgQuery, attr, {
 *   op: 'queryTcx',
 *   pointers: [
 *     { offset: 16, buffer: progIds },
 *     { offset: 40, buffer: linkIds },
 *   ],
 * });
 * ```
 */
export function bpfSyscall(cmd: number, attr: Uint8Array, options: BpfSyscallOptions): number {
  const { op } = options;
  if (!Number.isInteger(cmd) || cmd < 0 || attr.byteLength > RAW_MAX) {
    throw new BpfError('InvalidArgument', `${op}: bad command ${cmd} or attr of ${attr.byteLength} bytes`, {
      op,
    });
  }
  rawAttr.bytes.fill(0);
  rawAttr.bytes.set(attr);
  for (const p of options.pointers ?? []) {
    if (!Number.isInteger(p.offset) || p.offset < 0 || p.offset + 8 > attr.byteLength || p.offset % 8 !== 0) {
      throw new BpfError('InvalidArgument', `${op}: pointer offset ${p.offset} is outside the attr`, { op });
    }
    setAddr(rawAttr.view, p.offset, addressOf(p.buffer));
  }
  const r = sysBpf(cmd, rawAttr, attr.byteLength);
  // Copy back what the kernel wrote (counts, revisions), but not our pointer values.
  const out = rawAttr.bytes.subarray(0, attr.byteLength);
  for (const p of options.pointers ?? []) out.set(attr.subarray(p.offset, p.offset + 8), p.offset);
  attr.set(out);
  if (r < 0) throw syscallError(-r, cmd, op, options.target);
  return r;
}
