import { closeSync, openSync } from 'node:fs';
import { BpfError } from './errors.js';
import { AttachType, linkCreate, linkCreateAsync } from './link.js';
import { checked, progQuery } from './sys/libbpf.js';

/**
 * Cgroup hooks a program can attach to: the socket-address hooks (`BPF_CGROUP_*` for `cgroup_sock_addr`
 * programs) and `sock_release` (`BPF_CGROUP_INET_SOCK_RELEASE`, a `cgroup_sock` program run when an
 * inet socket of the cgroup is released; Linux ≥ 5.9).
 */
export type CgroupHook =
  | 'bind4'
  | 'bind6'
  | 'connect4'
  | 'connect6'
  | 'sendmsg4'
  | 'sendmsg6'
  | 'recvmsg4'
  | 'recvmsg6'
  | 'getpeername4'
  | 'getpeername6'
  | 'sock_release';

const HOOKS: Readonly<Record<CgroupHook, number>> = {
  bind4: AttachType.CgroupInet4Bind,
  bind6: AttachType.CgroupInet6Bind,
  connect4: AttachType.CgroupInet4Connect,
  connect6: AttachType.CgroupInet6Connect,
  sendmsg4: AttachType.CgroupUdp4Sendmsg,
  sendmsg6: AttachType.CgroupUdp6Sendmsg,
  recvmsg4: AttachType.CgroupUdp4Recvmsg,
  recvmsg6: AttachType.CgroupUdp6Recvmsg,
  getpeername4: AttachType.CgroupInet4Getpeername,
  getpeername6: AttachType.CgroupInet6Getpeername,
  sock_release: AttachType.CgroupInetSockRelease,
};

function hookType(hook: CgroupHook, op: string): number {
  const t = HOOKS[hook];
  if (t === undefined) {
    throw new BpfError('InvalidArgument', `${op}: unknown cgroup hook ${JSON.stringify(hook)}`, { op });
  }
  return t;
}

function openCgroup(path: string, op: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw new BpfError('NotFound', `${op}: cannot open cgroup directory ${path}`, {
      op,
      target: path,
      cause: err,
    });
  }
}

/**
 * Attaches program `progFd` to the cgroup v2 directory `cgroupPath` at `hook` as a BPF link (multi-attach:
 * other programs on the hook stay); returns the link fd.
 * Equivalent to: `bpftool cgroup attach CGROUP connect4 id PROG multi`.
 *
 * @throws {@link BpfError} `NotFound` when the cgroup does not exist, `InvalidArgument` for an unknown hook
 * or a program type that does not fit it, `PermissionDenied`.
 * @example Rewriting connect() for one cgroup
 * ```ts
 * import { cgroupAttach, linkClose } from '@datapath/libbpf';
 * declare const progFd: number;
 * const fd = cgroupAttach(progFd, '/sys/fs/cgroup/unified/demo', 'connect4');
 * linkClose(fd);
 * ```
 */
export function cgroupAttach(progFd: number, cgroupPath: string, hook: CgroupHook): number {
  const op = 'cgroupAttach';
  const type = hookType(hook, op);
  const cg = openCgroup(cgroupPath, op);
  try {
    return linkCreate(progFd, cg, type);
  } finally {
    closeSync(cg);
  }
}

/**
 * The async form of {@link cgroupAttach}: the `BPF_LINK_CREATE` runs on libuv's threadpool. Same
 * arguments, result and errors.
 * Equivalent to: `bpftool cgroup attach CGROUP connect4 id PROG multi`.
 *
 * @throws {@link BpfError} as {@link cgroupAttach}.
 * @example Attaching to a cgroup without blocking the event loop
 * ```ts
 * import { cgroupAttachAsync, linkCloseAsync } from '@datapath/libbpf';
 * declare const progFd: number;
 * await linkCloseAsync(await cgroupAttachAsync(progFd, '/sys/fs/cgroup/unified/demo', 'connect4'));
 * ```
 */
export async function cgroupAttachAsync(
  progFd: number,
  cgroupPath: string,
  hook: CgroupHook,
): Promise<number> {
  const op = 'cgroupAttach';
  const type = hookType(hook, op);
  const cg = openCgroup(cgroupPath, op);
  try {
    return await linkCreateAsync(progFd, cg, type);
  } finally {
    closeSync(cg);
  }
}

/**
 * Lists the ids of the programs attached to `cgroupPath` at `hook` (effective ones excluded).
 * Equivalent to: `bpftool cgroup show CGROUP`.
 *
 * @throws {@link BpfError} `NotFound` when the cgroup does not exist, `InvalidArgument`.
 * @example Listing connect4 programs
 * ```ts
 * import { cgroupQuery } from '@datapath/libbpf';
 * console.log(cgroupQuery('/sys/fs/cgroup/unified/demo', 'connect4'));
 * ```
 */
export function cgroupQuery(cgroupPath: string, hook: CgroupHook): number[] {
  const op = 'cgroupQuery';
  const type = hookType(hook, op);
  const cg = openCgroup(cgroupPath, op);
  try {
    const ids = new Uint32Array(64);
    const count = new Uint32Array([ids.length]);
    checked(progQuery(cg, type, 0, new Uint32Array(1), ids, count), op, 'bpf(BPF_PROG_QUERY)', cgroupPath);
    return [...ids.subarray(0, count[0])];
  } finally {
    closeSync(cg);
  }
}
