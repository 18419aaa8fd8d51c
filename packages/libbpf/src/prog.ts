import { addressOf, checked, objGetInfoByFd, progGetFdById } from './sys/libbpf.js';
import { bpf, closeDescriptor } from './sys/libc.js';

/** Names of `enum bpf_prog_type` values, indexed by number (as bpftool prints them). */
const PROG_TYPE_NAMES = [
  'unspec',
  'socket_filter',
  'kprobe',
  'sched_cls',
  'sched_act',
  'tracepoint',
  'xdp',
  'perf_event',
  'cgroup_skb',
  'cgroup_sock',
  'lwt_in',
  'lwt_out',
  'lwt_xmit',
  'sock_ops',
  'sk_skb',
  'cgroup_device',
  'sk_msg',
  'raw_tracepoint',
  'cgroup_sock_addr',
  'lwt_seg6local',
  'lirc_mode2',
  'sk_reuseport',
  'flow_dissector',
  'cgroup_sysctl',
  'raw_tracepoint_writable',
  'cgroup_sockopt',
  'tracing',
  'struct_ops',
  'ext',
  'lsm',
  'sk_lookup',
  'syscall',
  'netfilter',
] as const;

/**
 * The bpftool name of a `bpf_prog_type` number (`sched_cls`, `xdp`, `cgroup_sock_addr`, …), or `type N`.
 *
 * @example Naming a program type
 * ```ts
 * import { progTypeName } from '@datapath/libbpf';
 * console.log(progTypeName(3)); // 'sched_cls'
 * ```
 */
export function progTypeName(type: number): string {
  return PROG_TYPE_NAMES[type] ?? `type ${type}`;
}

/** What the kernel reports about a loaded program (`struct bpf_prog_info`, the fields this SDK uses). */
export interface ProgInfo {
  /** Kernel program id. */
  id: number;
  /** `bpf_prog_type` number. */
  type: number;
  /** bpftool name of the type, e.g. `sched_cls`. */
  typeName: string;
  /** Program name as the kernel keeps it (at most 15 bytes). */
  name: string;
  /** The 8-byte program tag as 16 hex digits, as `bpftool prog show` prints it. */
  tag: string;
}

/**
 * Reads a program's kernel info from its file descriptor.
 * Equivalent to: `bpftool prog show id ID`.
 *
 * @throws {@link BpfError} `BadFd` when `fd` is not open, `InvalidArgument` when it is not a program.
 * @example Printing a loaded program's id and tag
 * ```ts
 * import { progInfo } from '@datapath/libbpf';
 * declare const progFd: number;
 * const { id, tag } = progInfo(progFd);
 * console.log(id, tag);
 * ```
 */
export function progInfo(fd: number): ProgInfo {
  const buf = new Uint8Array(232);
  const len = new Uint32Array([buf.length]);
  checked(objGetInfoByFd(fd, buf, len), 'progInfo', 'bpf(BPF_OBJ_GET_INFO_BY_FD)');
  const view = new DataView(buf.buffer);
  const type = view.getUint32(0, true);
  const nameBytes = buf.subarray(64, 80);
  const end = nameBytes.indexOf(0);
  return {
    type,
    typeName: progTypeName(type),
    id: view.getUint32(4, true),
    tag: Buffer.from(buf.subarray(8, 16)).toString('hex'),
    name: new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 16 : end)),
  };
}

/**
 * Reads the kernel info of the program with id `id`.
 * Equivalent to: `bpftool prog show id ID`.
 *
 * @throws {@link BpfError} `NotFound` when no program has that id, `PermissionDenied` without CAP_SYS_ADMIN.
 * @example Naming the program a tcx link runs
 * ```ts
 * import { progInfoById } from '@datapath/libbpf';
 * console.log(progInfoById(42).name);
 * ```
 */
export function progInfoById(id: number): ProgInfo {
  const fd = checked(progGetFdById(id), 'progInfoById', 'bpf(BPF_PROG_GET_FD_BY_ID)', `prog id ${id}`);
  try {
    return progInfo(fd);
  } finally {
    closeDescriptor(fd, 'progInfoById');
  }
}

const BPF_PROG_LOAD = 5;
let isaCache: 'v1' | 'v2' | 'v3' | undefined;

function loads(insns: number[][]): boolean {
  const code = new Uint8Array(insns.length * 8);
  const cv = new DataView(code.buffer);
  insns.forEach(([op, regs, off, imm], i) => {
    cv.setUint8(i * 8, op!);
    cv.setUint8(i * 8 + 1, regs!);
    cv.setInt16(i * 8 + 2, off!, true);
    cv.setInt32(i * 8 + 4, imm!, true);
  });
  const license = new TextEncoder().encode('GPL\0');
  const attr = new Uint8Array(128);
  const v = new DataView(attr.buffer);
  v.setUint32(0, 1, true); // BPF_PROG_TYPE_SOCKET_FILTER
  v.setUint32(4, insns.length, true);
  v.setBigUint64(8, addressOf(code), true);
  v.setBigUint64(16, addressOf(license), true);
  try {
    closeDescriptor(bpf(BPF_PROG_LOAD, attr, 'progProbeIsa', 'bpf(BPF_PROG_LOAD)'), 'progProbeIsa');
    return true;
  } catch {
    return false;
  } finally {
    keep = [code, license];
  }
}
let keep: unknown;

/**
 * Probes the newest BPF instruction set the running kernel accepts (`v3`: 32-bit jumps, `v2`: JLT/JLE,
 * else `v1`), for clang's `-mcpu`; cached per process. Without CAP_BPF every probe fails and the answer is `v1`.
 * Equivalent to: `bpftool feature probe | grep isa`.
 *
 * @example Choosing clang's -mcpu
 * ```ts
 * import { progProbeIsa } from '@datapath/libbpf';
 * console.log(`-mcpu=${progProbeIsa()}`);
 * ```
 */
export function progProbeIsa(): 'v1' | 'v2' | 'v3' {
  if (isaCache !== undefined) return isaCache;
  // w0 = 0; if w0 < 1 goto +0 (BPF_JMP32 | BPF_JLT | BPF_K); exit
  const v3 = loads([
    [0xb4, 0, 0, 0],
    [0xa6, 0, 0, 1],
    [0x95, 0, 0, 0],
  ]);
  // r0 = 0; if r0 < 1 goto +0 (BPF_JMP | BPF_JLT | BPF_K); exit
  const v2 =
    v3 ||
    loads([
      [0xb7, 0, 0, 0],
      [0xa5, 0, 0, 1],
      [0x95, 0, 0, 0],
    ]);
  isaCache = v3 ? 'v3' : v2 ? 'v2' : 'v1';
  void keep;
  return isaCache;
}
