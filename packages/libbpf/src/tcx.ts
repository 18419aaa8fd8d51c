import { BpfError } from './errors.js';
import { AttachType } from './link.js';
import { addressOf } from './sys/libbpf.js';
import { bpf, bpfAsync } from './sys/libc.js';

const BPF_PROG_QUERY = 16;
const BPF_LINK_CREATE = 28;
const BPF_F_BEFORE = 1 << 3;
const BPF_F_AFTER = 1 << 4;
const BPF_F_ID = 1 << 5;
const BPF_F_LINK = 1 << 13;

/** Which side of a device a tc or tcx program runs on. */
export type TcDirection = 'ingress' | 'egress';

/**
 * Where a tcx program goes in the device's chain: first, last, or next to a program or link already there.
 * Programs run head to tail; one that returns `TC_ACT_OK` or `TC_ACT_SHOT` ends the chain
 * (`TC_ACT_UNSPEC` passes to the next).
 */
export type TcxAnchor =
  | {
      /** First in the chain. */
      kind: 'head';
    }
  | {
      /** Last in the chain. */
      kind: 'tail';
    }
  | {
      /** Right before or after the anchor link. */
      kind: 'before' | 'after';
      /** Id of a link already in the chain. */
      linkId: number;
    }
  | {
      /** Right before or after the anchor program. */
      kind: 'before' | 'after';
      /** Id of a program already in the chain. */
      programId: number;
    };

/** Options of {@link tcxAttach}. */
export interface TcxAttachOptions {
  /** Position in the chain; default `{ kind: 'tail' }`. */
  anchor?: TcxAnchor;
  /** Fail with `Stale` (ESTALE) unless the chain's revision is still this one (optimistic concurrency). */
  expectedRevision?: bigint;
}

/** One program in a device's tcx chain. */
export interface TcxEntry {
  /** Program id. */
  progId: number;
  /** Id of the link that holds it (0 for a non-link attachment). */
  linkId: number;
}

/** A device's tcx chain for one direction, as the kernel reports it. */
export interface TcxChain {
  /** Incremented by every attach and detach; feed it to `expectedRevision`. */
  revision: bigint;
  /** Programs in run order. */
  entries: TcxEntry[];
}

function attachTypeOf(direction: TcDirection, op: string): number {
  if (direction === 'ingress') return AttachType.TcxIngress;
  if (direction === 'egress') return AttachType.TcxEgress;
  throw new BpfError('InvalidArgument', `${op}: direction must be 'ingress' or 'egress', got ${direction}`, {
    op,
  });
}

function u32(v: number, what: string, op: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: ${what} must be a 32-bit unsigned integer, got ${v}`, {
      op,
    });
  }
  return v;
}

/**
 * Attaches program `progFd` to device `ifindex` as a tcx link (Linux ≥ 6.6) with a raw `BPF_LINK_CREATE`,
 * honouring `anchor` and `expectedRevision`; returns the link fd (closing the last fd of an unpinned link
 * detaches it).
 * Equivalent to: `bpftool net attach tcx_ingress id PROG dev DEV` (bpftool ≥ 7.3).
 *
 * @throws {@link BpfError} `InvalidArgument` for bad options or a kernel without tcx (fall back to tc),
 * `Stale` (ESTALE) when `expectedRevision` is stale, `NotFound` when the anchor or device is gone,
 * `AlreadyExists` when the program is already in the chain.
 * @example Attaching at the head of a device's ingress chain
 * ```ts
 * import { tcxAttach, linkClose } from '@datapath/libbpf';
 * declare const progFd: number, ifindex: number;
 * const linkFd = tcxAttach(progFd, ifindex, 'ingress', { anchor: { kind: 'head' } });
 * linkClose(linkFd);
 * ```
 */
export function tcxAttach(
  progFd: number,
  ifindex: number,
  direction: TcDirection,
  options: TcxAttachOptions = {},
): number {
  const op = 'tcxAttach';
  const attr = tcxAttr(progFd, ifindex, direction, options, op);
  return bpf(BPF_LINK_CREATE, attr, op, 'bpf(BPF_LINK_CREATE)', `ifindex ${ifindex} tcx_${direction}`);
}

/**
 * The async form of {@link tcxAttach}: the `BPF_LINK_CREATE` (which waits for an RCU grace period in the
 * kernel) runs on libuv's threadpool. Same arguments, result and errors; bad options reject before any
 * system call.
 * Equivalent to: `bpftool net attach tcx_ingress id PROG dev DEV` (bpftool ≥ 7.3).
 *
 * @throws {@link BpfError} as {@link tcxAttach}.
 * @example Attaching without blocking the event loop
 * ```ts
 * import { tcxAttachAsync, linkCloseAsync } from '@datapath/libbpf';
 * declare const progFd: number, ifindex: number;
 * const linkFd = await tcxAttachAsync(progFd, ifindex, 'ingress');
 * await linkCloseAsync(linkFd);
 * ```
 */
export async function tcxAttachAsync(
  progFd: number,
  ifindex: number,
  direction: TcDirection,
  options: TcxAttachOptions & AsyncAttachOptions = {},
): Promise<number> {
  const op = 'tcxAttach';
  const attr = tcxAttr(progFd, ifindex, direction, options, op);
  return bpfAsync(
    BPF_LINK_CREATE,
    attr,
    op,
    'bpf(BPF_LINK_CREATE)',
    `ifindex ${ifindex} tcx_${direction}`,
    nsFdOf(options, op),
  );
}

/** Where an async attach acts: the namespace `ifindex` belongs to. */
export interface AsyncAttachOptions {
  /**
   * An open network namespace fd (a netlink `Netns`'s `fd`) whose device `ifindex` names: the pool thread
   * makes the call inside it. Default: the namespace the process started in (the pool threads' own).
   */
  netnsFd?: number | undefined;
}

function nsFdOf(options: AsyncAttachOptions, op: string): number {
  const fd = options.netnsFd;
  if (fd === undefined) return -1;
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('InvalidArgument', `${op}: netnsFd must be an open file descriptor, got ${fd}`, {
      op,
    });
  return fd;
}

function tcxAttr(
  progFd: number,
  ifindex: number,
  direction: TcDirection,
  options: TcxAttachOptions,
  op: string,
): Uint8Array {
  const attr = new Uint8Array(64);
  const v = new DataView(attr.buffer);
  v.setUint32(0, u32(progFd, 'progFd', op), true);
  v.setUint32(4, u32(ifindex, 'ifindex', op), true);
  v.setUint32(8, attachTypeOf(direction, op), true);
  const anchor = options.anchor ?? { kind: 'tail' };
  let flags = 0;
  let relative = 0;
  switch (anchor.kind) {
    case 'head':
      flags = BPF_F_BEFORE;
      break;
    case 'tail':
      flags = BPF_F_AFTER;
      break;
    case 'before':
    case 'after':
      flags = anchor.kind === 'before' ? BPF_F_BEFORE : BPF_F_AFTER;
      if ('linkId' in anchor) {
        flags |= BPF_F_ID | BPF_F_LINK;
        relative = u32(anchor.linkId, 'anchor.linkId', op);
      } else {
        flags |= BPF_F_ID;
        relative = u32(anchor.programId, 'anchor.programId', op);
      }
      break;
    default:
      throw new BpfError('InvalidArgument', `${op}: unknown anchor ${JSON.stringify(anchor)}`, { op });
  }
  v.setUint32(12, flags, true);
  v.setUint32(16, relative, true);
  if (options.expectedRevision !== undefined) {
    if (options.expectedRevision <= 0n) {
      throw new BpfError('InvalidArgument', `${op}: expectedRevision must be positive`, { op });
    }
    v.setBigUint64(24, options.expectedRevision, true);
  }
  return attr;
}

/**
 * Lists the tcx chain of device `ifindex` for one direction with a raw `BPF_PROG_QUERY`: program ids, link
 * ids and the revision (libbpf 1.1 returns program ids only).
 * Equivalent to: `bpftool net show dev DEV` (the tcx part).
 *
 * @throws {@link BpfError} `NotFound` when the device does not exist, `InvalidArgument` on kernels without tcx.
 * @example Reading the revision before an attach
 * ```ts
 * import { tcxQuery } from '@datapath/libbpf';
 * declare const ifindex: number;
 * const { revision, entries } = tcxQuery(ifindex, 'ingress');
 * console.log(revision, entries.length);
 * ```
 */
export function tcxQuery(ifindex: number, direction: TcDirection): TcxChain {
  const op = 'tcxQuery';
  const type = attachTypeOf(direction, op);
  let capacity = 16;
  for (;;) {
    const progIds = new Uint32Array(capacity);
    const linkIds = new Uint32Array(capacity);
    const attr = new Uint8Array(64);
    const v = new DataView(attr.buffer);
    v.setUint32(0, u32(ifindex, 'ifindex', op), true);
    v.setUint32(4, type, true);
    v.setBigUint64(16, addressOf(new Uint8Array(progIds.buffer)), true);
    v.setUint32(24, capacity, true);
    v.setBigUint64(40, addressOf(new Uint8Array(linkIds.buffer)), true);
    try {
      bpf(BPF_PROG_QUERY, attr, op, 'bpf(BPF_PROG_QUERY)', `ifindex ${ifindex} tcx_${direction}`);
    } catch (err) {
      // ENOSPC: more programs than room; the kernel wrote the real count.
      if (err instanceof BpfError && err.code === 'Exhausted' && capacity < 65536) {
        capacity = Math.max(capacity * 4, v.getUint32(24, true));
        continue;
      }
      throw err;
    }
    const count = v.getUint32(24, true);
    const entries: TcxEntry[] = [];
    for (let i = 0; i < count; i++) entries.push({ progId: progIds[i]!, linkId: linkIds[i]! });
    return { revision: v.getBigUint64(56, true), entries };
  }
}
