import {
  BpfError,
  ifIndexToName,
  progInfoById,
  type TcDirection,
  tcList,
  tcxQuery,
  xdpQuery,
} from '@datapath/libbpf';
import { type DeviceRef, inDeviceNetns, resolveDevice } from './attach.js';

/** A program attached somewhere, as `bpftool net show` names it. */
export interface AttachedProgram {
  /** Program id. */
  id: number;
  /** Program name (empty when it vanished while querying). */
  name: string;
  /** Program tag, 16 hex digits. */
  tag: string;
}

/** One program of a tcx chain. */
export interface TcxAttachment extends AttachedProgram {
  /** The link that holds it (0 for a non-link attachment). */
  linkId: number;
}

/** One direction's tcx chain. */
export interface TcxChainState {
  /** Chain revision (for `expectedRevision`); 0 on kernels without tcx. */
  revision: bigint;
  /** Programs in run order. */
  programs: TcxAttachment[];
}

/** An XDP program and its mode. */
export interface XdpAttachment extends AttachedProgram {
  /** Attach mode. */
  mode: 'driver' | 'generic' | 'offload';
}

/** One legacy cls_bpf filter. */
export interface TcAttachment extends AttachedProgram {
  /** Hook. */
  direction: TcDirection;
  /** Filter handle. */
  handle: number;
  /** Filter priority. */
  priority: number;
  /** The filter's own name (`<prog>:[<id>]` when libbpf attached it). */
  filterName: string;
  /** Direct-action mode. */
  directAction: boolean;
}

/** Everything attached to one device. */
export interface DeviceAttachments {
  /** Device index. */
  ifindex: number;
  /** Device name (in the caller's network namespace). */
  ifname: string;
  /** tcx chains in run order, with their revisions; empty on kernels without tcx. */
  tcx: Record<TcDirection, TcxChainState>;
  /** Legacy clsact cls_bpf filters, ingress then egress, in dump order (priority, handle). */
  tc: TcAttachment[];
  /** XDP programs by mode. */
  xdp: XdpAttachment[];
}

function describe(id: number): AttachedProgram {
  try {
    const p = progInfoById(id);
    return { id, name: p.name, tag: p.tag };
  } catch (err) {
    if (err instanceof BpfError && err.code === 'NotFound') return { id, name: '', tag: '' };
    throw err;
  }
}

function chain(ifindex: number, direction: TcDirection): TcxChainState {
  try {
    const c = tcxQuery(ifindex, direction);
    return {
      revision: c.revision,
      programs: c.entries.map((e) => ({ ...describe(e.progId), linkId: e.linkId })),
    };
  } catch (err) {
    // Kernels without tcx reject the attach type: report an empty chain.
    if (err instanceof BpfError && err.code === 'InvalidArgument') return { revision: 0n, programs: [] };
    throw err;
  }
}

/**
 * Reports what is attached to a device: the tcx chains (program ids, names, tags, link ids, revision),
 * legacy tc filters and XDP programs by mode, in the caller's network namespace or `netns`.
 * Equivalent to: `bpftool net show dev DEV`.
 *
 * @throws {@link BpfError} `NotFound` for an unknown device, `PermissionDenied` without CAP_NET_ADMIN.
 * @example Listing a device's programs
 * ```ts
 * import { query } from '@datapath/loader';
 * const q = query('lo');
 * console.log(q.tcx.ingress.programs.map((p) => `${p.name} link ${p.linkId}`));
 * ```
 */
export function query(device: string | DeviceRef): DeviceAttachments {
  const ref: DeviceRef = typeof device === 'string' ? { ifname: device } : device;
  return inDeviceNetns(ref, () => queryHere(ref));
}

function queryHere(ref: DeviceRef): DeviceAttachments {
  const ifindex = resolveDevice(ref, 'query');
  const x = xdpQuery(ifindex);
  const xdp: DeviceAttachments['xdp'] = [];
  if (x.driverProgId) xdp.push({ ...describe(x.driverProgId), mode: 'driver' });
  if (x.genericProgId) xdp.push({ ...describe(x.genericProgId), mode: 'generic' });
  if (x.offloadProgId) xdp.push({ ...describe(x.offloadProgId), mode: 'offload' });
  return {
    ifindex,
    ifname: ref.ifname ?? ifIndexToName(ifindex) ?? '',
    tcx: { ingress: chain(ifindex, 'ingress'), egress: chain(ifindex, 'egress') },
    tc: (['ingress', 'egress'] as const).flatMap((direction) =>
      tcList(ifindex, direction).map((f) => ({
        ...describe(f.progId),
        direction,
        handle: f.handle,
        priority: f.priority,
        filterName: f.name,
        directAction: f.directAction,
      })),
    ),
    xdp,
  };
}
