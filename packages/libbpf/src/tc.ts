import { BpfError } from './errors.js';
import {
  checked,
  tcAttachRaw,
  tcDetachRaw,
  tcHookCreate as tcHookCreateRaw,
  tcHookDestroyRaw,
  tcQueryRaw,
} from './sys/libbpf.js';
import { rtnetlinkDump } from './sys/rtnetlink.js';
import type { TcDirection } from './tcx.js';

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;

/** Identifies one legacy cls_bpf filter on a clsact hook. */
export interface TcFilterId {
  /** Device. */
  ifindex: number;
  /** Hook of the clsact qdisc. */
  direction: TcDirection;
  /** Filter handle, 1–0xffffffff. */
  handle: number;
  /** Filter priority (tc "pref"), 1–0xffff; lower runs first. */
  priority: number;
}

function hook(ifindex: number, direction: TcDirection, op: string): Uint8Array {
  if (!Number.isInteger(ifindex) || ifindex <= 0 || ifindex > 0x7fff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: ifindex must be a positive integer, got ${ifindex}`, {
      op,
    });
  }
  if (direction !== 'ingress' && direction !== 'egress') {
    throw new BpfError(
      'InvalidArgument',
      `${op}: direction must be 'ingress' or 'egress', got ${direction}`,
      { op },
    );
  }
  const buf = new Uint8Array(24); // struct bpf_tc_hook: sz@0, ifindex@8, attach_point@12, parent@16
  const v = new DataView(buf.buffer);
  v.setBigUint64(0, 24n, true);
  v.setInt32(8, ifindex, true);
  v.setUint32(12, direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, true);
  return buf;
}

function opts(id: TcFilterId, progFd: number, flags: number, op: string): Uint8Array {
  if (!Number.isInteger(id.handle) || id.handle <= 0 || id.handle > 0xffff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: handle must be in 1..0xffffffff, got ${id.handle}`, { op });
  }
  if (!Number.isInteger(id.priority) || id.priority <= 0 || id.priority > 0xffff) {
    throw new BpfError('InvalidArgument', `${op}: priority must be in 1..65535, got ${id.priority}`, { op });
  }
  const buf = new Uint8Array(32); // struct bpf_tc_opts: sz@0, prog_fd@8, flags@12, prog_id@16, handle@20, priority@24
  const v = new DataView(buf.buffer);
  v.setBigUint64(0, 32n, true);
  v.setInt32(8, progFd, true);
  v.setUint32(12, flags, true);
  v.setUint32(20, id.handle, true);
  v.setUint32(24, id.priority, true);
  return buf;
}

const target = (id: TcFilterId) =>
  `ifindex ${id.ifindex} ${id.direction} handle ${id.handle} pref ${id.priority}`;

/**
 * Adds a clsact qdisc to device `ifindex` unless it has one; returns true when this call created it (the
 * caller then owns it), false when one was already there.
 * Equivalent to: `tc qdisc add dev DEV clsact`.
 *
 * @throws {@link BpfError} `NotFound` when the device does not exist, `Busy` when the device has another
 * qdisc in the way, `PermissionDenied` without CAP_NET_ADMIN.
 * @example Making sure a device has a clsact qdisc
 * ```ts
 * import { tcHookCreate } from '@datapath/libbpf';
 * const created = tcHookCreate(2, 'ingress');
 * console.log(created ? 'created clsact' : 'clsact was there');
 * ```
 */
export function tcHookCreate(ifindex: number, direction: TcDirection): boolean {
  const op = 'tcHookCreate';
  try {
    checked(
      tcHookCreateRaw(hook(ifindex, direction, op)),
      op,
      'netlink RTM_NEWQDISC clsact',
      `ifindex ${ifindex}`,
    );
    return true;
  } catch (err) {
    // Someone else's clsact, which we must never destroy.
    if (err instanceof BpfError && err.code === 'AlreadyExists') return false;
    throw err;
  }
}

/**
 * Deletes the clsact qdisc of device `ifindex` with every filter on it, in both directions. Only for a
 * qdisc the caller created itself (see {@link tcHookCreate}) and knows nobody else uses: other owners'
 * filters go with it.
 * Equivalent to: `tc qdisc del dev DEV clsact`.
 *
 * @throws {@link BpfError} `NotFound` when the device or the qdisc is missing, `InvalidArgument`.
 * @example Undoing a clsact this process just created
 * ```ts
 * import { tcHookCreate, tcHookDestroy } from '@datapath/libbpf';
 * if (tcHookCreate(2, 'ingress')) tcHookDestroy(2);
 * ```
 */
export function tcHookDestroy(ifindex: number): void {
  const op = 'tcHookDestroy';
  const h = hook(ifindex, 'ingress', op);
  new DataView(h.buffer).setUint32(12, BPF_TC_INGRESS | BPF_TC_EGRESS, true);
  checked(tcHookDestroyRaw(h), op, 'netlink RTM_DELQDISC clsact', `ifindex ${ifindex}`);
}

/**
 * Adds (or with `replace`, atomically replaces) a direct-action cls_bpf filter running `progFd` at
 * `handle`/`priority`; returns the attached program's id. Without `replace`, a filter already at that
 * handle and priority is left alone and the call fails with `AlreadyExists`.
 * Equivalent to: `tc filter add dev DEV ingress pref P handle H bpf da fd FD` (`replace` for the swap).
 *
 * @throws {@link BpfError} `AlreadyExists` when the slot is taken, `InvalidArgument` for bad ids or a
 * program that is not `sched_cls`, `NotFound` when the device or its clsact qdisc is missing.
 * @example Attaching at handle 1, priority 1
 * ```ts
 * import { tcAttach, tcHookCreate } from '@datapath/libbpf';
 * declare const progFd: number;
 * tcHookCreate(2, 'ingress');
 * tcAttach({ ifindex: 2, direction: 'ingress', handle: 1, priority: 1 }, progFd);
 * ```
 */
export function tcAttach(id: TcFilterId, progFd: number, replace = false): number {
  const op = 'tcAttach';
  if (!Number.isInteger(progFd) || progFd < 0) {
    throw new BpfError('InvalidArgument', `${op}: progFd must be an open file descriptor, got ${progFd}`, {
      op,
    });
  }
  const o = opts(id, progFd, replace ? BPF_TC_F_REPLACE : 0, op);
  checked(tcAttachRaw(hook(id.ifindex, id.direction, op), o), op, 'netlink RTM_NEWTFILTER', target(id));
  return new DataView(o.buffer).getUint32(16, true);
}

/**
 * Removes exactly the cls_bpf filter at `handle`/`priority`; the clsact qdisc and other filters stay.
 * Equivalent to: `tc filter del dev DEV ingress pref P handle H bpf`.
 *
 * @throws {@link BpfError} `NotFound` when there is no such filter or device, `InvalidArgument`.
 * @example Removing our filter
 * ```ts
 * import { tcDetach } from '@datapath/libbpf';
 * tcDetach({ ifindex: 2, direction: 'ingress', handle: 1, priority: 1 });
 * ```
 */
export function tcDetach(id: TcFilterId): void {
  const op = 'tcDetach';
  checked(
    tcDetachRaw(hook(id.ifindex, id.direction, op), opts(id, 0, 0, op)),
    op,
    'netlink RTM_DELTFILTER',
    target(id),
  );
}

/**
 * Returns the id of the program in the cls_bpf filter at `handle`/`priority`, or undefined when there is none.
 * Equivalent to: `tc filter show dev DEV ingress pref P handle H`.
 *
 * @throws {@link BpfError} `InvalidArgument` for bad ids, `PermissionDenied`.
 * @example Checking which program a filter runs
 * ```ts
 * import { tcQuery } from '@datapath/libbpf';
 * console.log(tcQuery({ ifindex: 2, direction: 'ingress', handle: 1, priority: 1 }));
 * ```
 */
export function tcQuery(id: TcFilterId): number | undefined {
  const op = 'tcQuery';
  const o = opts(id, 0, 0, op);
  try {
    checked(tcQueryRaw(hook(id.ifindex, id.direction, op), o), op, 'netlink RTM_GETTFILTER', target(id));
  } catch (err) {
    // NotFound: no such filter; InvalidArgument: no clsact qdisc on the device at all.
    if (err instanceof BpfError && (err.code === 'NotFound' || err.code === 'InvalidArgument'))
      return undefined;
    throw err;
  }
  return new DataView(o.buffer).getUint32(16, true);
}

/** One cls_bpf filter found on a clsact hook. */
export interface TcFilter extends TcFilterId {
  /** Id of the program it runs. */
  progId: number;
  /** The filter's name (libbpf and tc write `<prog name>:[<id>]` or the object file name). */
  name: string;
  /** Direct-action mode (`da`). */
  directAction: boolean;
}

const RTM_GETTFILTER = 46;
const RTM_NEWTFILTER = 44;
const NLM_F_REQUEST_DUMP = 0x1 | 0x300;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_BPF_NAME = 7;
const TCA_BPF_FLAGS = 8;
const TCA_BPF_ID = 11;

function attrs(buf: Uint8Array, from: number, to: number): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let at = from; at + 4 <= to; ) {
    const len = v.getUint16(at, true);
    if (len < 4) break;
    out.set(v.getUint16(at + 2, true) & 0x3fff, buf.subarray(at + 4, at + len));
    at += (len + 3) & ~3;
  }
  return out;
}

const cstr = (b: Uint8Array | undefined) =>
  b === undefined ? '' : new TextDecoder().decode(b).replace(/\0.*$/s, '');

/**
 * Lists every cls_bpf filter on a device's clsact hook (an rtnetlink filter dump), whoever added it.
 * Equivalent to: `tc filter show dev DEV ingress`.
 *
 * @throws {@link BpfError} `NotFound` when the device does not exist, `InvalidArgument`.
 * @example Listing ingress filters
 * ```ts
 * import { tcList } from '@datapath/libbpf';
 * for (const f of tcList(2, 'ingress')) console.log(f.priority, f.handle, f.name, f.progId);
 * ```
 */
export function tcList(ifindex: number, direction: TcDirection): TcFilter[] {
  const op = 'tcList';
  hook(ifindex, direction, op);
  const req = new Uint8Array(36);
  const v = new DataView(req.buffer);
  v.setUint32(0, 36, true);
  v.setUint16(4, RTM_GETTFILTER, true);
  v.setUint16(6, NLM_F_REQUEST_DUMP, true);
  v.setUint32(8, 1, true);
  v.setInt32(20, ifindex, true); // tcmsg: family@16, ifindex@20, handle@24, parent@28, info@32
  v.setUint32(28, direction === 'ingress' ? 0xfffffff2 : 0xfffffff3, true);
  const out: TcFilter[] = [];
  let messages: Uint8Array[];
  try {
    messages = rtnetlinkDump(req, op, `ifindex ${ifindex} ${direction}`);
  } catch (err) {
    // No clsact qdisc: nothing attached.
    if (err instanceof BpfError && err.code === 'InvalidArgument') return [];
    throw err;
  }
  for (const msg of messages) {
    const m = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    if (m.getUint16(4, true) !== RTM_NEWTFILTER) continue;
    const handle = m.getUint32(24, true);
    const info = m.getUint32(32, true);
    const top = attrs(msg, 36, msg.byteLength);
    if (handle === 0 || cstr(top.get(TCA_KIND)) !== 'bpf') continue;
    const o = top.get(TCA_OPTIONS);
    if (o === undefined) continue;
    const opt = attrs(o, 0, o.byteLength);
    const id = opt.get(TCA_BPF_ID);
    const flags = opt.get(TCA_BPF_FLAGS);
    out.push({
      ifindex,
      direction,
      handle,
      priority: info >>> 16,
      progId: id === undefined ? 0 : new DataView(id.buffer, id.byteOffset, 4).getUint32(0, true),
      name: cstr(opt.get(TCA_BPF_NAME)),
      directAction:
        flags !== undefined && (new DataView(flags.buffer, flags.byteOffset, 4).getUint32(0, true) & 1) === 1,
    });
  }
  return out;
}
