import { BpfError } from './errors.js';
import { AttachType, linkCreate, linkCreateAsync } from './link.js';
import { checked, xdpQueryRaw } from './sys/libbpf.js';
import type { AsyncAttachOptions } from './tcx.js';

const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;

/** XDP attach mode: `driver` (native, needs driver support; veth has it) or `generic` (skb, any device). */
export type XdpMode = 'driver' | 'generic';

/** What is attached at a device's XDP hook (`bpf_xdp_query`); ids are 0 where nothing is attached. */
export interface XdpState {
  /** Mode of the single attached program, or `none`/`multi`. */
  mode: 'none' | 'driver' | 'generic' | 'offload' | 'multi';
  /** Program id in driver mode. */
  driverProgId: number;
  /** Program id in generic (skb) mode. */
  genericProgId: number;
  /** Program id in offload mode. */
  offloadProgId: number;
}

/**
 * Attaches program `progFd` to device `ifindex`'s XDP hook as a BPF link in `mode`; returns the link fd.
 * Equivalent to: `ip link set dev DEV xdpgeneric|xdpdrv pinned PATH` (but link-based: it goes away with the
 * last fd unless pinned).
 *
 * @throws {@link BpfError} `Busy` when another XDP program holds the hook, `NotSupported` when the driver has
 * no native XDP, `InvalidArgument` for a non-XDP program or bad mode, `NotFound` for a missing device.
 * @example Generic-mode XDP on a veth
 * ```ts
 * import { xdpAttach, linkClose } from '@datapath/libbpf';
 * declare const progFd: number;
 * const fd = xdpAttach(progFd, 5, 'generic');
 * linkClose(fd);
 * ```
 */
export function xdpAttach(progFd: number, ifindex: number, mode: XdpMode): number {
  return linkCreate(progFd, ifindex, AttachType.Xdp, xdpFlags(ifindex, mode, 'xdpAttach'));
}

/**
 * The async form of {@link xdpAttach}: the `BPF_LINK_CREATE` runs on libuv's threadpool (inside the
 * namespace `options.netnsFd` names, when given). Same arguments, result and errors.
 * Equivalent to: `ip link set dev DEV xdpgeneric|xdpdrv …` (link-based).
 *
 * @throws {@link BpfError} as {@link xdpAttach}.
 * @example Generic-mode XDP without blocking the event loop
 * ```ts
 * import { xdpAttachAsync, linkCloseAsync } from '@datapath/libbpf';
 * declare const progFd: number;
 * await linkCloseAsync(await xdpAttachAsync(progFd, 5, 'generic'));
 * ```
 */
export async function xdpAttachAsync(
  progFd: number,
  ifindex: number,
  mode: XdpMode,
  options: AsyncAttachOptions = {},
): Promise<number> {
  const fd = options.netnsFd ?? -1;
  if (!Number.isInteger(fd) || fd < -1)
    throw new BpfError('InvalidArgument', `xdpAttach: netnsFd must be an open file descriptor, got ${fd}`, {
      op: 'xdpAttach',
    });
  return linkCreateAsync(progFd, ifindex, AttachType.Xdp, xdpFlags(ifindex, mode, 'xdpAttach'), fd);
}

function xdpFlags(ifindex: number, mode: XdpMode, op: string): number {
  if (mode !== 'driver' && mode !== 'generic') {
    throw new BpfError('InvalidArgument', `${op}: mode must be 'driver' or 'generic', got ${mode}`, { op });
  }
  if (!Number.isInteger(ifindex) || ifindex <= 0) {
    throw new BpfError('InvalidArgument', `${op}: ifindex must be a positive integer, got ${ifindex}`, {
      op,
    });
  }
  return mode === 'driver' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

const MODES = ['none', 'driver', 'generic', 'offload', 'multi'] as const;

/**
 * Reports the XDP programs attached to device `ifindex`, by mode.
 * Equivalent to: `ip -d link show dev DEV` (the `xdp` line) or `bpftool net show dev DEV`.
 *
 * @throws {@link BpfError} `NotFound` for a missing device, `InvalidArgument`.
 * @example Checking whether a device runs XDP
 * ```ts
 * import { xdpQuery } from '@datapath/libbpf';
 * console.log(xdpQuery(5).mode);
 * ```
 */
export function xdpQuery(ifindex: number): XdpState {
  const op = 'xdpQuery';
  if (!Number.isInteger(ifindex) || ifindex <= 0) {
    throw new BpfError('InvalidArgument', `${op}: ifindex must be a positive integer, got ${ifindex}`, {
      op,
    });
  }
  // struct bpf_xdp_query_opts: sz@0, prog_id@8, drv@12, hw@16, skb@20, attach_mode@24
  const o = new Uint8Array(32);
  const v = new DataView(o.buffer);
  v.setBigUint64(0, 32n, true);
  checked(xdpQueryRaw(ifindex, 0, o), op, 'netlink RTM_GETLINK', `ifindex ${ifindex}`);
  return {
    mode: MODES[o[24]!] ?? 'multi',
    driverProgId: v.getUint32(12, true),
    offloadProgId: v.getUint32(16, true),
    genericProgId: v.getUint32(20, true),
  };
}
