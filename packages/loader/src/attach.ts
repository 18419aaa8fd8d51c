import { existsSync, unlinkSync } from 'node:fs';
import {
  BpfError,
  type CgroupHook,
  cgroupAttachAsync as cgroupAttachAsyncFd,
  cgroupAttach as cgroupAttachFd,
  ifNameToIndex,
  LinkType,
  linkClose,
  linkInfo,
  linkOpenPinned,
  linkUpdate,
  progInfoById,
  type TcDirection,
  type TcxAnchor,
  tcAttach as tcAttachFd,
  tcDetach,
  tcHookCreate,
  tcHookDestroy,
  tcQuery,
  tcxAttachAsync as tcxAttachAsyncFd,
  tcxAttach as tcxAttachFd,
  type XdpMode,
  xdpAttachAsync as xdpAttachAsyncFd,
  xdpAttach as xdpAttachFd,
} from '@datapath/libbpf';
import { Netns } from '@datapath/netlink';
import { FdLink, type Link, TcLink } from './link.js';
import type { Program } from './program.js';

/**
 * A network device, by index or by name, optionally inside another network namespace (`netns`, a
 * `Netns` handle from `@datapath/netlink`). Names resolve with if_nametoindex(3) in that namespace.
 */
export type DeviceRef = (
  | {
      /** Device index (in `netns`, or the namespace of the calling process). */
      ifindex: number;
      /** Not with `ifindex`. */
      ifname?: never;
    }
  | {
      /** Device name, resolved in `netns` (or the namespace of the calling process). */
      ifname: string;
      /** Not with `ifname`. */
      ifindex?: never;
    }
) & {
  /**
   * The network namespace the device lives in, as a `Netns` handle (`Netns.open({ name: 'X' })` from
   * `@datapath/netlink`): the call runs its synchronous kernel calls inside it (`Netns.run`) and the
   * thread is back in its own namespace afterwards. Default: the caller's namespace.
   *
   * A namespace file path (e.g. `/run/netns/X`) is still accepted but deprecated: pass a `Netns`.
   */
  netns?: Netns | string;
};

/** Options of {@link tcxAttach}. */
export type AttachTcxOptions = DeviceRef & {
  /** ingress or egress. */
  direction: TcDirection;
  /** Position in the chain; default the tail. */
  anchor?: TcxAnchor;
  /** Fail with `Stale` (ESTALE) unless the chain revision is still this. */
  expectedRevision?: bigint;
};

/** Options of {@link tcAttach}. */
export type AttachTcOptions = DeviceRef & {
  /** ingress or egress. */
  direction: TcDirection;
  /** Filter handle; default 1. */
  handle?: number;
  /** Filter priority; default 1. */
  priority?: number;
  /** Replace whatever filter holds that handle and priority; default false (fails with `AlreadyExists`). */
  replace?: boolean;
};

/** Options of {@link xdpAttach}. */
export type AttachXdpOptions = DeviceRef & {
  /** `driver` (native) or `generic` (skb). */
  mode: XdpMode;
};

/** Options of {@link cgroupAttach}. */
export interface AttachCgroupOptions {
  /** cgroup v2 directory, e.g. `/sys/fs/cgroup/unified/app`. */
  cgroupPath: string;
  /** Socket hook: `connect4`, `sendmsg4`, `bind4`, … */
  attachType: CgroupHook;
}

/** Options of {@link attach}. */
export type AttachOptions = DeviceRef & {
  /** ingress or egress. */
  direction: TcDirection;
  /**
   * Pin (tcx) path. When a tcx link for the same device and direction is already pinned there, it is updated
   * atomically instead of adding a second one; when falling back to tc, a tcx link pinned there is removed.
   */
  pinPath?: string;
  /** Legacy tc slot used by the fallback and cleaned up after a tcx attach; default handle 1, priority 1. */
  tc?: {
    /** Filter handle; default 1. */
    handle?: number;
    /** Filter priority; default 1. */
    priority?: number;
  };
  /** Force one kind (`tc` e.g. to keep using classful setups); default `auto`: tcx when the kernel has it. */
  prefer?: 'auto' | 'tcx' | 'tc';
};

/** A `Netns` from any copy of `@datapath/netlink` (checked by shape, not by class identity). */
function isNetns(x: unknown): x is Netns {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as Netns).run === 'function' &&
    typeof (x as Netns).dup === 'function'
  );
}

/** The namespace a device reference names, opened when it is a (deprecated) path; undefined for the caller's. */
export function openDeviceNetns(netns: Netns | string | undefined): Netns | undefined {
  if (netns === undefined) return undefined;
  if (typeof netns === 'string') return Netns.open({ path: netns });
  if (!isNetns(netns)) {
    throw new BpfError('InvalidArgument', 'netns must be a Netns handle from @datapath/netlink', {
      op: 'attach',
    });
  }
  return netns.dup();
}

/** Runs `fn` in the device's namespace when it names one (the one way in: `Netns.run`). */
export function inDeviceNetns<T>(dev: { netns?: Netns | string | undefined }, fn: () => T): T {
  const ns = dev.netns;
  if (ns === undefined) return fn();
  if (isNetns(ns)) return ns.run(fn);
  using opened = openDeviceNetns(ns);
  return (opened as Netns).run(fn);
}

/** Resolves a {@link DeviceRef} to an ifindex (call it inside {@link inDeviceNetns}). */
export function resolveDevice(dev: DeviceRef, op: string): number {
  if (dev.ifindex !== undefined) {
    if (!Number.isInteger(dev.ifindex) || dev.ifindex <= 0) {
      throw new BpfError('InvalidArgument', `${op}: ifindex must be a positive integer, got ${dev.ifindex}`, {
        op,
      });
    }
    return dev.ifindex;
  }
  if (typeof dev.ifname !== 'string')
    throw new BpfError('InvalidArgument', `${op}: pass ifindex or ifname`, { op });
  const index = ifNameToIndex(dev.ifname);
  if (index === undefined) {
    throw new BpfError('NotFound', `${op}: no device named ${dev.ifname} in this network namespace`, {
      op,
      target: dev.ifname,
    });
  }
  return index;
}

/**
 * Attaches a `sched_cls` program to a device's tcx hook (Linux ≥ 6.6) as a BPF link.
 * Equivalent to: `bpftool net attach tcx_ingress id ID dev DEV` (bpftool ≥ 7.3).
 *
 * @throws {@link BpfError} `NotFound` for an unknown device, `InvalidArgument` for bad options or a kernel
 * without tcx, `Stale` (ESTALE) for a stale `expectedRevision`, `AlreadyExists` when the program is already
 * in the chain.
 * @example Counting packets on a veth
 * ```ts
 * import { tcxAttach, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * using link = tcxAttach(prog, { ifname: 'veth0', direction: 'ingress' });
 * console.log(link.info().linkId);
 * ```
 */
export function tcxAttach(program: Program, options: AttachTcxOptions): FdLink {
  return inDeviceNetns(options, () => {
    const ifindex = resolveDevice(options, 'tcxAttach');
    const fd = tcxAttachFd(program.fd, ifindex, options.direction, {
      ...(options.anchor === undefined ? {} : { anchor: options.anchor }),
      ...(options.expectedRevision === undefined ? {} : { expectedRevision: options.expectedRevision }),
    });
    return new FdLink('tcx', fd);
  });
}

/**
 * Attaches a `sched_cls` program as a legacy clsact + cls_bpf direct-action filter (any kernel). Creates the
 * clsact qdisc only if missing, never deletes a qdisc, and never replaces another filter unless `replace`.
 * Equivalent to: `tc qdisc add dev DEV clsact; tc filter add dev DEV ingress pref 1 handle 1 bpf da fd FD`.
 *
 * @throws {@link BpfError} `AlreadyExists` when the handle/priority slot is taken, `NotFound` for an unknown
 * device, `InvalidArgument`.
 * @example Legacy tc on an old kernel
 * ```ts
 * import { tcAttach, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const link = tcAttach(prog, { ifname: 'veth0', direction: 'ingress', handle: 1, priority: 1 });
 * link.detach();
 * ```
 */
export function tcAttach(program: Program, options: AttachTcOptions): TcLink {
  return inDeviceNetns(options, () => attachTcHere(program, options));
}

function attachTcHere(program: Program, options: AttachTcOptions): TcLink {
  const op = 'tcAttach';
  const ifindex = resolveDevice(options, op);
  const filter = {
    ifindex,
    direction: options.direction,
    handle: options.handle ?? 1,
    priority: options.priority ?? 1,
  };
  // The link keeps its own handle on the namespace (for update/detach later): take it before attaching.
  const ns = openDeviceNetns(options.netns);
  try {
    const created = tcHookCreate(ifindex, options.direction);
    let progId: number;
    try {
      progId = tcAttachFd(filter, program.fd, options.replace ?? false);
    } catch (err) {
      // Leave nothing behind: a clsact qdisc we created a moment ago and could not use goes again.
      if (created) tcHookDestroy(ifindex);
      throw err;
    }
    return new TcLink(filter, progId, ns);
  } catch (err) {
    ns?.close();
    throw err;
  }
}

/**
 * Attaches an XDP program to a device as a BPF link, in driver or generic mode.
 * Equivalent to: `ip link set dev DEV xdpgeneric obj …` (link-based: gone with the last fd unless pinned).
 *
 * @throws {@link BpfError} `Busy` when the hook is taken, `NotSupported` when the driver lacks native XDP,
 * `NotFound` for an unknown device.
 * @example Generic XDP
 * ```ts
 * import { xdpAttach, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * using link = xdpAttach(prog, { ifname: 'veth0', mode: 'generic' });
 * ```
 */
export function xdpAttach(program: Program, options: AttachXdpOptions): FdLink {
  return inDeviceNetns(options, () => {
    const ifindex = resolveDevice(options, 'xdpAttach');
    return new FdLink('xdp', xdpAttachFd(program.fd, ifindex, options.mode));
  });
}

/**
 * Attaches a `cgroup_sock_addr` program to a cgroup v2 socket hook as a BPF link (other programs stay).
 * Equivalent to: `bpftool cgroup attach CGROUP connect4 id ID multi`.
 *
 * @throws {@link BpfError} `NotFound` for a missing cgroup, `InvalidArgument` for a hook that does not fit
 * the program.
 * @example Rewriting connect() in a cgroup
 * ```ts
 * import { cgroupAttach, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * using link = cgroupAttach(prog, { cgroupPath: '/sys/fs/cgroup/unified/app', attachType: 'connect4' });
 * ```
 */
export function cgroupAttach(program: Program, options: AttachCgroupOptions): FdLink {
  return new FdLink('cgroup', cgroupAttachFd(program.fd, options.cgroupPath, options.attachType));
}

function tcxUnavailable(err: unknown): boolean {
  return err instanceof BpfError && (err.code === 'InvalidArgument' || err.code === 'NotSupported');
}

/** Updates the tcx link pinned at `path` when it is for the same hook; returns undefined when there is none. */
function upsertPinned(
  program: Program,
  path: string,
  ifindex: number,
  direction: TcDirection,
): FdLink | undefined {
  if (!existsSync(path)) return undefined;
  const fd = linkOpenPinned(path);
  try {
    const info = linkInfo(fd);
    const type = direction === 'ingress' ? 46 : 47;
    if (info.type !== LinkType.Tcx || info.ifindex !== ifindex || info.attachType !== type) {
      throw new BpfError(
        'AlreadyExists',
        `attach: ${path} holds another link (type ${info.type}, ifindex ${info.ifindex})`,
        {
          op: 'attach',
          target: path,
        },
      );
    }
    linkUpdate(fd, program.fd);
    return new FdLink('tcx', fd, path);
  } catch (err) {
    linkClose(fd);
    // Defunct link (device gone): drop the pin and attach afresh.
    if (err instanceof BpfError && err.op === 'linkUpdate' && err.code === 'NotFound') {
      unlinkSync(path);
      return undefined;
    }
    throw err;
  }
}

/**
 * Attaches a `sched_cls` program to a device the best available way: tcx when the kernel supports it, else
 * legacy tc; then removes the other kind left by an earlier run (our legacy filter after a tcx attach, the
 * tcx link pinned at `pinPath` after a tc fallback). A legacy filter counts as ours only when it runs a
 * program with the same name.
 * Equivalent to: Cilium's tcx-or-tc upsert.
 *
 * @throws {@link BpfError} `NotFound` for an unknown device; the codes of {@link tcxAttach} and {@link tcAttach}.
 * @example Attach, pinned so the next agent run updates it in place
 * ```ts
 * import { attach, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const link = attach(prog, { ifname: 'veth0', direction: 'ingress', pinPath: '/sys/fs/bpf/demo/veth0-in' });
 * link.close(); // pinned: stays attached
 * ```
 */
export function attach(program: Program, options: AttachOptions): Link {
  return inDeviceNetns(options, () => attachHere(program, options));
}

function attachHere(program: Program, options: AttachOptions): Link {
  const op = 'attach';
  const ifindex = resolveDevice(options, op);
  const prefer = options.prefer ?? 'auto';
  const filter = {
    ifindex,
    direction: options.direction,
    handle: options.tc?.handle ?? 1,
    priority: options.tc?.priority ?? 1,
  };
  if (prefer !== 'tc') {
    let link: FdLink | undefined;
    try {
      link =
        options.pinPath === undefined
          ? undefined
          : upsertPinned(program, options.pinPath, ifindex, options.direction);
      if (link === undefined) {
        link = new FdLink('tcx', tcxAttachFd(program.fd, ifindex, options.direction));
        if (options.pinPath !== undefined) {
          try {
            link.pin(options.pinPath);
          } catch (err) {
            link.close();
            throw err;
          }
        }
      }
    } catch (err) {
      if (prefer === 'tcx' || !tcxUnavailable(err) || link !== undefined) throw err;
    }
    if (link !== undefined) {
      // Remove our legacy filter from an earlier run (tc → tcx upgrade).
      const old = tcQuery(filter);
      if (old !== undefined && progInfoById(old).name === program.info().name) tcDetach(filter);
      return link;
    }
  }
  const existing = tcQuery(filter);
  if (existing !== undefined && progInfoById(existing).name !== program.info().name) {
    throw new BpfError(
      'AlreadyExists',
      `${op}: tc filter handle ${filter.handle} pref ${filter.priority} runs another program (id ${existing})`,
      {
        op,
        target: `ifindex ${ifindex}`,
      },
    );
  }
  const tc = attachTcHere(program, {
    ...filter,
    replace: existing !== undefined,
    ...(options.netns === undefined ? {} : { netns: options.netns }),
  });
  if (options.pinPath !== undefined && existsSync(options.pinPath)) {
    // tcx → tc downgrade: drop the tcx link pinned by an earlier run.
    const fd = linkOpenPinned(options.pinPath);
    try {
      if (linkInfo(fd).type === LinkType.Tcx) {
        new FdLink('tcx', fd, options.pinPath).detach();
        return tc;
      }
    } catch (err) {
      linkClose(fd);
      throw err;
    }
    linkClose(fd);
  }
  return tc;
}

/** Options every async attach form takes besides its sync twin's. */
export interface AttachAsyncOptions {
  /** Cancels the call while it has not reached the kernel (`BpfError` `Interrupted`, reason `Aborted`). */
  signal?: AbortSignal;
}

function checkSignal(signal: AbortSignal | undefined, op: string): void {
  if (signal?.aborted) {
    throw new BpfError('Interrupted', `${op}: aborted before the kernel call`, {
      op,
      reason: 'Aborted',
      cause: signal.reason,
    });
  }
}

/**
 * Runs `fn` with the fd of the device's namespace (-1 for the caller's), for a threadpool call made inside it:
 * the main thread never enters the namespace for it.
 */
async function withNetnsFd<T>(dev: DeviceRef, fn: (nsFd: number) => Promise<T>): Promise<T> {
  const ns = openDeviceNetns(dev.netns);
  try {
    return await fn(ns === undefined ? -1 : ns.fd);
  } finally {
    ns?.close();
  }
}

/**
 * The async form of {@link tcxAttach}: the `BPF_LINK_CREATE` (which waits for an RCU grace period in the
 * kernel) runs on libuv's threadpool, inside the device's namespace; the main thread never enters it (a device
 * given by name is resolved with one quick `if_nametoindex` there). Same errors as {@link tcxAttach}.
 * Equivalent to: `bpftool net attach tcx_ingress id ID dev DEV` (bpftool ≥ 7.3).
 *
 * @throws {@link BpfError} as {@link tcxAttach}; `Interrupted` (reason `Aborted`) when `signal` fired first.
 * @example Attaching without blocking the event loop
 * ```ts
 * import { tcxAttachAsync, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const link = await tcxAttachAsync(prog, { ifindex: 5, direction: 'ingress' });
 * await link.detachAsync();
 * ```
 */
export async function tcxAttachAsync(
  program: Program,
  options: AttachTcxOptions & AttachAsyncOptions,
): Promise<FdLink> {
  const op = 'tcxAttach';
  checkSignal(options.signal, op);
  const ifindex = options.ifindex ?? inDeviceNetns(options, () => resolveDevice(options, op));
  resolveDevice({ ifindex }, op);
  return withNetnsFd(options, async (nsFd) => {
    checkSignal(options.signal, op);
    const fd = await tcxAttachAsyncFd(program.fd, ifindex, options.direction, {
      ...(options.anchor === undefined ? {} : { anchor: options.anchor }),
      ...(options.expectedRevision === undefined ? {} : { expectedRevision: options.expectedRevision }),
      ...(nsFd < 0 ? {} : { netnsFd: nsFd }),
    });
    return new FdLink('tcx', fd);
  });
}

/**
 * The async form of {@link attach}: the tcx link is created on libuv's threadpool inside the device's
 * namespace (the kernel waits for an RCU grace period there), so the event loop goes on meanwhile. The
 * checks around it (a pinned link to update, an old legacy filter to remove, the tc fallback) are quick
 * requests made as {@link attach} makes them. Same result and errors as {@link attach}.
 * Equivalent to: Cilium's tcx-or-tc upsert.
 *
 * @throws {@link BpfError} as {@link attach}; `Interrupted` (reason `Aborted`) when `signal` fired first.
 * @example Attaching 32 pods' programs at once
 * ```ts
 * import { attachAsync, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const links = await Promise.all(
 *   [5, 6, 7].map((ifindex) => attachAsync(prog, { ifindex, direction: 'ingress' })),
 * );
 * for (const link of links) await link.detachAsync();
 * ```
 */
export async function attachAsync(
  program: Program,
  options: AttachOptions & AttachAsyncOptions,
): Promise<Link> {
  const op = 'attach';
  checkSignal(options.signal, op);
  const prefer = options.prefer ?? 'auto';
  if (prefer === 'tc') return inDeviceNetns(options, () => attachHere(program, options));
  const ifindex = options.ifindex ?? inDeviceNetns(options, () => resolveDevice(options, op));
  resolveDevice({ ifindex }, op);
  const pinned =
    options.pinPath !== undefined && existsSync(options.pinPath)
      ? inDeviceNetns(options, () => upsertPinned(program, options.pinPath!, ifindex, options.direction))
      : undefined;
  if (pinned !== undefined) return finishTcx(program, pinned, options, ifindex);
  let link: FdLink;
  try {
    link = await tcxAttachAsync(program, {
      ifindex,
      direction: options.direction,
      ...(options.netns === undefined ? {} : { netns: options.netns }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (err) {
    if (prefer === 'tcx' || !tcxUnavailable(err)) throw err;
    return inDeviceNetns(options, () => attachHere(program, { ...options, prefer: 'tc' }));
  }
  if (options.pinPath !== undefined) {
    try {
      link.pin(options.pinPath);
    } catch (err) {
      await link.detachAsync().catch(() => link.close());
      throw err;
    }
  }
  return finishTcx(program, link, options, ifindex);
}

/**
 * The async form of {@link xdpAttach}: the `BPF_LINK_CREATE` for the XDP hook (the kernel re-installs the
 * device's XDP state there) runs on libuv's threadpool inside the device's namespace; the main thread never
 * enters it (a device given by name is resolved with one quick `if_nametoindex` there). Same result and
 * errors as {@link xdpAttach}.
 * Equivalent to: `ip link set dev DEV xdpgeneric obj …` (link-based).
 *
 * @throws {@link BpfError} as {@link xdpAttach}; `Interrupted` (reason `Aborted`) when `signal` fired first.
 * @example Generic XDP without blocking the event loop
 * ```ts
 * import { xdpAttachAsync, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const link = await xdpAttachAsync(prog, { ifname: 'veth0', mode: 'generic' });
 * await link.detachAsync();
 * ```
 */
export async function xdpAttachAsync(
  program: Program,
  options: AttachXdpOptions & AttachAsyncOptions,
): Promise<FdLink> {
  const op = 'xdpAttach';
  checkSignal(options.signal, op);
  const ifindex = options.ifindex ?? inDeviceNetns(options, () => resolveDevice(options, op));
  resolveDevice({ ifindex }, op);
  return withNetnsFd(options, async (nsFd) => {
    checkSignal(options.signal, op);
    const fd = await xdpAttachAsyncFd(program.fd, ifindex, options.mode, nsFd < 0 ? {} : { netnsFd: nsFd });
    return new FdLink('xdp', fd);
  });
}

/**
 * The async form of {@link cgroupAttach}: the `BPF_LINK_CREATE` on the cgroup (the kernel recomputes the
 * effective programs of every descendant cgroup) runs on libuv's threadpool. Same result and errors as
 * {@link cgroupAttach}.
 * Equivalent to: `bpftool cgroup attach CGROUP connect4 id ID multi`.
 *
 * @throws {@link BpfError} as {@link cgroupAttach}; `Interrupted` (reason `Aborted`) when `signal` fired first.
 * @example Attaching to a cgroup without blocking the event loop
 * ```ts
 * import { cgroupAttachAsync, type Program } from '@datapath/loader';
 * declare const prog: Program;
 * const link = await cgroupAttachAsync(prog, { cgroupPath: '/sys/fs/cgroup/app', attachType: 'connect4' });
 * await link.detachAsync();
 * ```
 */
export async function cgroupAttachAsync(
  program: Program,
  options: AttachCgroupOptions & AttachAsyncOptions,
): Promise<FdLink> {
  checkSignal(options.signal, 'cgroupAttach');
  const fd = await cgroupAttachAsyncFd(program.fd, options.cgroupPath, options.attachType);
  return new FdLink('cgroup', fd);
}

/** After a tcx attach: removes our legacy filter from an earlier run (tc → tcx upgrade). */
function finishTcx(program: Program, link: FdLink, options: AttachOptions, ifindex: number): FdLink {
  const filter = {
    ifindex,
    direction: options.direction,
    handle: options.tc?.handle ?? 1,
    priority: options.tc?.priority ?? 1,
  };
  inDeviceNetns(options, () => {
    const old = tcQuery(filter);
    if (old !== undefined && progInfoById(old).name === program.info().name) tcDetach(filter);
  });
  return link;
}

/**
 * @deprecated Use {@link tcxAttach}: operations are named noun first across the SDK (`linkAdd`,
 * `mapUpdate`, `tcxAttach`). This alias goes in the next minor version.
 */
export const attachTcx: typeof tcxAttach = tcxAttach;
/**
 * @deprecated Use {@link tcAttach} (noun first, as everywhere in the SDK). This alias goes in the next
 * minor version.
 */
export const attachTc: typeof tcAttach = tcAttach;
/**
 * @deprecated Use {@link xdpAttach} (noun first, as everywhere in the SDK). This alias goes in the next
 * minor version.
 */
export const attachXdp: typeof xdpAttach = xdpAttach;
/**
 * @deprecated Use {@link cgroupAttach} (noun first, as everywhere in the SDK). This alias goes in the next
 * minor version.
 */
export const attachCgroup: typeof cgroupAttach = cgroupAttach;
