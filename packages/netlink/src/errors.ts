import {
  DatapathError,
  type DatapathErrorOptions,
  type ErrnoOptions,
  type ErrorCode,
  errnoErrorOf,
} from '@datapath/errors';

/**
 * The failure codes of `@datapath/netlink` and `@datapath/netdev`: the SDK-wide {@link ErrorCode} set.
 *
 * @deprecated Use `ErrorCode` from `@datapath/errors`.
 */
export type NetlinkErrorCode = ErrorCode;

/** Options accepted by the {@link NetlinkError} constructor. */
export interface NetlinkErrorOptions extends DatapathErrorOptions {
  /** The SDK operation that failed, e.g. `linkAdd`. */
  op: string;
  /** The kernel's extended-ACK message (`NLMSGERR_ATTR_MSG`), when it sent one. */
  kernelMessage?: string | undefined;
}

/** Options of {@link errnoError}: where the errno came from and what it means in this call. */
export interface NetlinkErrnoOptions extends NetlinkErrorOptions, ErrnoOptions {}

/**
 * The one error type thrown by `@datapath/netlink` and `@datapath/netdev`: a `DatapathError` whose
 * `code` is in the SDK-wide set.
 *
 * A `NetlinkError` without `errno` was rejected before any system call (bad argument, code
 * `InvalidArgument`); one with `errno` carries the kernel's answer and, for netlink requests, the
 * kernel's extended-ACK text in `kernelMessage`.
 *
 * @example Tolerating an interface that exists already
 * ```ts
 * import { NetlinkError } from '@datapath/netlink';
 * function existed(e: unknown): boolean {
 *   return e instanceof NetlinkError && e.code === 'AlreadyExists';
 * }
 * ```
 */
export class NetlinkError extends DatapathError {
  /** Always `'NetlinkError'`. */
  override readonly name: string = 'NetlinkError';
  /** The SDK operation that failed. */
  declare readonly op: string;
  /** The kernel's extended-ACK message, when it sent one. */
  readonly kernelMessage: string | undefined;

  constructor(code: ErrorCode, message: string, options: NetlinkErrorOptions) {
    super(code, message, options);
    this.kernelMessage = options.kernelMessage;
  }
}

/** What a denied netlink request needs. */
export const NETLINK_PRIVILEGE = 'CAP_NET_ADMIN, or root';
/** What a denied setns(2), unshare(2) or mount(2) needs. */
export const NAMESPACE_PRIVILEGE = 'CAP_SYS_ADMIN, or root';

/**
 * Maps an errno (from a failed system call or a netlink `NLMSG_ERROR`) to a {@link NetlinkError} through
 * the SDK's one errno table (`describeErrno` of `@datapath/errors`); a permission failure's message names
 * the capability (`CAP_NET_ADMIN` by default). A call where an errno means something specific says so in
 * `meaning`.
 *
 * @example Turning a kernel answer into a typed error
 * ```ts
 * import { errnoError } from '@datapath/netlink';
 * const err = errnoError(17, { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'veth0' });
 * console.log(err.code); // 'AlreadyExists'
 * ```
 */
export function errnoError(errno: number, options: NetlinkErrnoOptions): NetlinkError {
  const make = (code: ErrorCode, message: string, o: NetlinkErrorOptions) =>
    new NetlinkError(code, message, o);
  return errnoErrorOf(make, errno, options, { privilege: NETLINK_PRIVILEGE, detail: options.kernelMessage });
}

/** A `NetlinkError` for input rejected before any system call. */
export function invalidArgument(op: string, message: string, target?: string): NetlinkError {
  return new NetlinkError(
    'InvalidArgument',
    `${op}: ${message}`,
    target === undefined ? { op } : { op, target },
  );
}

/**
 * The error of an async call cancelled through its `AbortSignal` before it reached the kernel: code
 * `Interrupted`, reason `Aborted`, the signal's reason as `cause`.
 */
export function abortError(op: string, signal: AbortSignal): NetlinkError {
  return new NetlinkError('Interrupted', `${op}: aborted before it was sent to the kernel`, {
    op,
    reason: 'Aborted',
    cause: signal.reason,
  });
}

/**
 * Runs a synchronous file system call (a namespace file, `/proc/sys`) and throws a failure as a
 * {@link NetlinkError} through the one errno table; anything that is not an errno error passes unchanged.
 *
 * @example Reading a sysctl with typed errors
 * ```ts
 * import { readFileSync } from 'node:fs';
 * import { fsCall } from '@datapath/netlink';
 * const path = '/proc/sys/net/ipv4/ip_forward';
 * const value = fsCall(() => readFileSync(path, 'utf8'), 'sysctlGet', 'read', path);
 * ```
 */
export function fsCall<T>(fn: () => T, op: string, syscall: string, target: string): T {
  try {
    return fn();
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (typeof errno === 'number') throw errnoError(-errno, { op, syscall, target, cause: err });
    throw err;
  }
}
