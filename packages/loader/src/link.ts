import { existsSync, unlinkSync } from 'node:fs';
import {
  BpfError,
  LinkType,
  linkClose,
  linkCloseAsync,
  linkDetach,
  linkDetachAsync,
  linkInfo,
  linkOpenPinned,
  linkPin,
  linkUpdate,
  type TcDirection,
  type TcFilterId,
  tcAttach,
  tcDetach,
  tcQuery,
} from '@datapath/libbpf';
import type { Netns } from '@datapath/netlink';
import { forget, watch } from './leak.js';
import type { Program } from './program.js';

/** The kinds of attachment a {@link Link} can stand for. */
export type LinkKind = 'tcx' | 'tc' | 'xdp' | 'cgroup';

/** What a {@link Link} is attached to, as the kernel reports it now. */
export interface LinkDetails {
  /** Attachment kind. */
  kind: LinkKind;
  /** Kernel link id (absent for legacy tc, which is not a BPF link). */
  linkId?: number;
  /** Id of the program that runs. */
  programId: number;
  /** Device, for tcx, tc and XDP. */
  ifindex?: number;
  /** Direction, for tcx and tc. */
  direction?: TcDirection;
  /** `bpf_attach_type`, for tcx and cgroup links. */
  attachType?: number;
  /** cgroup id, for cgroup links. */
  cgroupId?: bigint;
  /** Filter handle and priority, for legacy tc. */
  handle?: number;
  /** Filter priority, for legacy tc. */
  priority?: number;
  /** Where this handle pinned the link, if it did. */
  pinnedAt?: string;
}

/**
 * One attachment of a program to a hook. `close()` releases this handle: an unpinned BPF link detaches with
 * its last fd, a pinned one stays; a legacy tc filter is not fd-owned and stays until `detach()`.
 */
export interface Link {
  /** Attachment kind. */
  readonly kind: LinkKind;
  /** Atomically replaces the program: the hook is never empty in between. */
  update(program: Program): void;
  /** Pins the link on bpffs so it outlives this process (BPF links only). */
  pin(path: string): void;
  /** Removes the pin this handle made or was opened from; the attachment stays while this handle is open. */
  unpin(): void;
  /** Detaches the program now (and removes this handle's pin); the handle is closed afterwards. */
  detach(): void;
  /**
   * The async form of `detach()`: a BPF link's detach (which waits for an RCU grace period in the kernel) runs
   * on libuv's threadpool; a legacy tc filter is removed with one netlink request.
   */
  detachAsync(): Promise<void>;
  /** Releases this handle without detaching a pinned link or a legacy tc filter. */
  close(): void;
  /** Reads the attachment's current state from the kernel. */
  info(): LinkDetails;
  /** Same as `close()`. */
  [Symbol.dispose](): void;
}

const KIND_BY_TYPE: Readonly<Record<number, LinkKind>> = {
  [LinkType.Tcx]: 'tcx',
  [LinkType.Xdp]: 'xdp',
  [LinkType.Cgroup]: 'cgroup',
};

function closed(op: string): BpfError {
  return new BpfError('BadFd', `${op}: the link handle is closed`, { op });
}

/** A link owned through a BPF link fd: tcx, XDP, cgroup. */
export class FdLink implements Link {
  /** Attachment kind. */
  readonly kind: LinkKind;
  #fd: number | undefined;
  #pinnedAt: string | undefined;
  readonly #token = {};

  /** @internal created by the attach functions and {@link openPinnedLink} */
  constructor(kind: LinkKind, fd: number, pinnedAt?: string) {
    this.kind = kind;
    this.#fd = fd;
    this.#pinnedAt = pinnedAt;
    watch(this, `a ${kind} link`, this.#token);
  }

  /**
   * The link fd, for raw libbpf calls.
   *
   * @throws {@link BpfError} `BadFd` once closed.
   */
  get fd(): number {
    if (this.#fd === undefined) throw closed('link');
    return this.#fd;
  }

  /**
   * Atomically replaces the program (`BPF_LINK_UPDATE`).
   * Equivalent to: `bpftool link update` (bpftool ≥ 7.4).
   *
   * @throws {@link BpfError} `InvalidArgument` for a program of another type, `BadFd` when closed,
   * `NotFound` (ENOLINK) when the device or cgroup is gone.
   * @example Swapping in a new program
   * ```ts
   * import { type Link, type Program } from '@datapath/loader';
   * declare const link: Link, next: Program;
   * link.update(next);
   * ```
   */
  update(program: Program): void {
    linkUpdate(this.fd, program.fd);
  }

  /**
   * Pins the link at `path` (bpffs); it then survives this process and can be reopened with {@link openPinnedLink}.
   * Equivalent to: `bpftool link pin id ID PATH`.
   *
   * @throws {@link BpfError} `AlreadyExists` when the path is taken, `NotFound` for a missing directory.
   * @example Pinning
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * link.pin('/sys/fs/bpf/demo/eth0-ingress');
   * ```
   */
  pin(path: string): void {
    linkPin(this.fd, path);
    this.#pinnedAt = path;
  }

  /**
   * Removes this handle's pin (the link stays attached while the handle is open).
   * Equivalent to: `rm PATH`.
   *
   * @throws {@link BpfError} `NotFound` when the link is not pinned through this handle.
   * @example Unpinning
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * link.unpin();
   * ```
   */
  unpin(): void {
    const at = this.#pinnedAt;
    if (at === undefined) throw new BpfError('NotFound', 'unpin: this link is not pinned', { op: 'unpin' });
    try {
      unlinkSync(at);
    } catch (err) {
      throw new BpfError('NotFound', `unpin: cannot remove ${at}`, { op: 'unpin', target: at, cause: err });
    }
    this.#pinnedAt = undefined;
  }

  /**
   * Detaches now (`BPF_LINK_DETACH`), removes this handle's pin and closes the handle.
   * Equivalent to: `bpftool link detach id ID`.
   *
   * @throws {@link BpfError} `BadFd` when already closed.
   * @example Detaching
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * link.detach();
   * ```
   */
  detach(): void {
    linkDetach(this.fd);
    if (this.#pinnedAt !== undefined && existsSync(this.#pinnedAt)) unlinkSync(this.#pinnedAt);
    this.#pinnedAt = undefined;
    this.close();
  }

  /**
   * The async form of {@link FdLink.detach}: the `BPF_LINK_DETACH` and the close run on libuv's threadpool
   * (a tcx detach waits for an RCU grace period in the kernel). Same errors.
   * Equivalent to: `bpftool link detach id ID`.
   *
   * @throws {@link BpfError} `BadFd` when already closed.
   * @example Detaching without blocking the event loop
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * await link.detachAsync();
   * ```
   */
  async detachAsync(): Promise<void> {
    const fd = this.fd;
    await linkDetachAsync(fd);
    if (this.#pinnedAt !== undefined && existsSync(this.#pinnedAt)) unlinkSync(this.#pinnedAt);
    this.#pinnedAt = undefined;
    if (this.#fd !== fd) return;
    forget(this.#token);
    this.#fd = undefined;
    await linkCloseAsync(fd);
  }

  /**
   * Closes the handle; an unpinned link detaches, a pinned one stays. Idempotent.
   *
   * @example Releasing a pinned link
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * link.close();
   * ```
   */
  close(): void {
    if (this.#fd === undefined) return;
    forget(this.#token);
    linkClose(this.#fd);
    this.#fd = undefined;
  }

  /**
   * Reads the link from the kernel.
   * Equivalent to: `bpftool link show id ID`.
   *
   * @throws {@link BpfError} `BadFd` when closed.
   * @example Which program runs
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * console.log(link.info().programId);
   * ```
   */
  info(): LinkDetails {
    const i = linkInfo(this.fd);
    const d: LinkDetails = { kind: KIND_BY_TYPE[i.type] ?? this.kind, linkId: i.id, programId: i.progId };
    if (i.ifindex !== undefined) d.ifindex = i.ifindex;
    if (i.attachType !== undefined) d.attachType = i.attachType;
    if (i.cgroupId !== undefined) d.cgroupId = i.cgroupId;
    if (i.type === LinkType.Tcx) d.direction = i.attachType === 47 ? 'egress' : 'ingress';
    if (this.#pinnedAt !== undefined) d.pinnedAt = this.#pinnedAt;
    return d;
  }

  /** Same as {@link FdLink.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A legacy tc cls_bpf filter (clsact, direct action) identified by device, direction, handle and priority. */
export class TcLink implements Link {
  /** Always `tc`. */
  readonly kind = 'tc' as const;
  /** The filter's identity. */
  readonly filter: Readonly<TcFilterId>;
  /** The path the device's network namespace was opened from, when not the caller's (informational). */
  readonly netns: string | undefined;
  #progId: number;
  #open = true;
  /** The device's namespace: this link's own handle, closed with the link. */
  #ns: Netns | undefined;
  readonly #token = {};

  /** @internal created by {@link tcAttach}; takes ownership of `netns`. */
  constructor(filter: TcFilterId, progId: number, netns?: Netns) {
    this.filter = { ...filter };
    this.#progId = progId;
    this.#ns = netns;
    this.netns = netns?.path;
    if (netns !== undefined) watch(this, 'a tc link in another network namespace', this.#token);
  }

  #here<T>(fn: () => T): T {
    return this.#ns === undefined ? fn() : this.#ns.run(fn);
  }

  #release(): void {
    this.#open = false;
    if (this.#ns !== undefined) {
      forget(this.#token);
      this.#ns.close();
      this.#ns = undefined;
    }
  }

  /**
   * Atomically replaces the program in the filter (`BPF_TC_F_REPLACE`, same handle and priority).
   * Equivalent to: `tc filter replace dev DEV ingress pref P handle H bpf da fd FD`.
   *
   * @throws {@link BpfError} `BadFd` when the handle is closed, `NotFound` when the filter is gone.
   * @example Swapping the program
   * ```ts
   * import { type Link, type Program } from '@datapath/loader';
   * declare const link: Link, next: Program;
   * link.update(next);
   * ```
   */
  update(program: Program): void {
    if (!this.#open) throw closed('update');
    this.#progId = this.#here(() => tcAttach(this.filter, program.fd, true));
  }

  /**
   * Not available: a legacy tc filter is not a BPF link; it already outlives the process.
   *
   * @throws {@link BpfError} `NotSupported` always.
   */
  pin(_path: string): void {
    throw new BpfError(
      'NotSupported',
      'pin: legacy tc filters are not BPF links (they persist until detached); use tcx on Linux ≥ 6.6',
      {
        op: 'pin',
      },
    );
  }

  /**
   * Not available for legacy tc.
   *
   * @throws {@link BpfError} `NotSupported` always.
   */
  unpin(): void {
    throw new BpfError('NotSupported', 'unpin: legacy tc filters are not pinned', { op: 'unpin' });
  }

  /**
   * Deletes exactly this filter if it still runs the program this handle put there; the clsact qdisc and
   * every other filter stay. Closes the handle.
   * Equivalent to: `tc filter del dev DEV ingress pref P handle H bpf`.
   *
   * @throws {@link BpfError} `Busy` when another program has replaced ours in that slot (left untouched).
   * @example Detaching
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * link.detach();
   * ```
   */
  detach(): void {
    if (!this.#open) throw closed('detach');
    this.#here(() => this.#detachHere());
    this.#release();
  }

  /**
   * Same as {@link TcLink.detach} (one netlink request, which does not wait in the kernel), as a promise.
   *
   * @throws {@link BpfError} as {@link TcLink.detach}.
   * @example Detaching
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * await link.detachAsync();
   * ```
   */
  async detachAsync(): Promise<void> {
    this.detach();
  }

  #detachHere(): void {
    const now = tcQuery(this.filter);
    if (now !== undefined && now !== this.#progId) {
      throw new BpfError(
        'Busy',
        `detach: the tc filter now runs program ${now}, not ours (${this.#progId}); left alone`,
        {
          op: 'detach',
        },
      );
    }
    if (now !== undefined) tcDetach(this.filter);
  }

  /** Releases the handle (and its namespace handle); the filter stays attached (legacy tc is not fd-owned). */
  close(): void {
    this.#release();
  }

  /**
   * Reads which program the filter runs now.
   * Equivalent to: `tc filter show dev DEV ingress pref P handle H`.
   *
   * @throws {@link BpfError} `NotFound` when the filter is gone, `BadFd` once the handle is closed.
   * @example Checking the filter
   * ```ts
   * import { type Link } from '@datapath/loader';
   * declare const link: Link;
   * console.log(link.info().programId);
   * ```
   */
  info(): LinkDetails {
    if (!this.#open) throw closed('info');
    const now = this.#here(() => tcQuery(this.filter));
    if (now === undefined) throw new BpfError('NotFound', 'info: the tc filter is gone', { op: 'info' });
    return {
      kind: 'tc',
      programId: now,
      ifindex: this.filter.ifindex,
      direction: this.filter.direction,
      handle: this.filter.handle,
      priority: this.filter.priority,
    };
  }

  /** Same as {@link TcLink.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a link pinned at `path` (by this or another process) as a {@link Link} that owns the pin.
 * Equivalent to: `bpftool link show pinned PATH`.
 *
 * @throws {@link BpfError} `NotFound` when nothing is pinned there, `InvalidArgument` when the pin is not a
 * tcx, XDP or cgroup link.
 * @example Reopening a link pinned by an earlier run
 * ```ts
 * import { openPinnedLink } from '@datapath/loader';
 * const link = openPinnedLink('/sys/fs/bpf/demo/eth0-ingress');
 * console.log(link.info());
 * link.close();
 * ```
 */
export function openPinnedLink(path: string): FdLink {
  const fd = linkOpenPinned(path);
  let kind: LinkKind | undefined;
  try {
    kind = KIND_BY_TYPE[linkInfo(fd).type];
  } catch (err) {
    linkClose(fd);
    throw new BpfError('InvalidArgument', `openPinnedLink: ${path} is not a BPF link`, {
      op: 'openPinnedLink',
      target: path,
      cause: err,
    });
  }
  if (kind === undefined) {
    linkClose(fd);
    throw new BpfError('InvalidArgument', `openPinnedLink: ${path} is not a tcx, XDP or cgroup link`, {
      op: 'openPinnedLink',
      target: path,
    });
  }
  return new FdLink(kind, fd, path);
}
