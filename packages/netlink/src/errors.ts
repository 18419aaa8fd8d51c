/** Closed set of failure codes for every `@datapath/netlink` and `@datapath/netdev` operation. */
export type NetlinkErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'PermissionDenied'
  | 'Busy'
  | 'NotSupported'
  | 'InvalidArgument'
  | 'Unreachable'
  | 'NetworkDown'
  | 'TimedOut'
  | 'Interrupted'
  | 'NoSpace'
  | 'OutOfMemory'
  | 'BadFd'
  | 'TooBig'
  | 'Protocol'
  | 'Unknown';

/** Options accepted by the {@link NetlinkError} constructor. */
export interface NetlinkErrorOptions {
  /** The SDK operation that failed, e.g. `linkAdd`. */
  op: string;
  /** The raw errno, when the kernel or a system call answered. */
  errno?: number;
  /** The system call or netlink request that failed, e.g. `RTM_NEWLINK` or `setns`. */
  syscall?: string;
  /** What the operation acted on (an interface, a namespace path, a prefix). */
  target?: string;
  /** The kernel's extended-ACK message (`NLMSGERR_ATTR_MSG`), when it sent one. */
  kernelMessage?: string;
  /** The underlying error, preserved. */
  cause?: unknown;
}

/**
 * The one error type thrown by `@datapath/netlink` and `@datapath/netdev`.
 *
 * A `NetlinkError` without `errno` was rejected before any system call (bad argument, code
 * `InvalidArgument`); one with `errno` carries the kernel's answer and, for netlink requests, the
 * kernel's extended-ACK text in `kernelMessage`.
 */
export class NetlinkError extends Error {
  /** Always `'NetlinkError'`. */
  override readonly name = 'NetlinkError';
  /** Machine-readable failure code. */
  readonly code: NetlinkErrorCode;
  /** The SDK operation that failed. */
  readonly op: string;
  /** The raw errno, when the kernel answered. */
  readonly errno: number | undefined;
  /** The system call or netlink request that failed. */
  readonly syscall: string | undefined;
  /** What the operation acted on. */
  readonly target: string | undefined;
  /** The kernel's extended-ACK message, when it sent one. */
  readonly kernelMessage: string | undefined;

  constructor(code: NetlinkErrorCode, message: string, options: NetlinkErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options.op;
    this.errno = options.errno;
    this.syscall = options.syscall;
    this.target = options.target;
    this.kernelMessage = options.kernelMessage;
  }
}

const ERRNO: Readonly<Record<number, readonly [string, NetlinkErrorCode]>> = {
  1: ['EPERM', 'PermissionDenied'],
  2: ['ENOENT', 'NotFound'],
  3: ['ESRCH', 'NotFound'],
  4: ['EINTR', 'Interrupted'],
  7: ['E2BIG', 'TooBig'],
  9: ['EBADF', 'BadFd'],
  11: ['EAGAIN', 'TimedOut'],
  12: ['ENOMEM', 'OutOfMemory'],
  13: ['EACCES', 'PermissionDenied'],
  16: ['EBUSY', 'Busy'],
  17: ['EEXIST', 'AlreadyExists'],
  19: ['ENODEV', 'NotFound'],
  22: ['EINVAL', 'InvalidArgument'],
  28: ['ENOSPC', 'NoSpace'],
  34: ['ERANGE', 'InvalidArgument'],
  61: ['ENODATA', 'NotFound'],
  71: ['EPROTO', 'Protocol'],
  74: ['EBADMSG', 'Protocol'],
  90: ['EMSGSIZE', 'TooBig'],
  93: ['EPROTONOSUPPORT', 'NotSupported'],
  95: ['EOPNOTSUPP', 'NotSupported'],
  97: ['EAFNOSUPPORT', 'NotSupported'],
  99: ['EADDRNOTAVAIL', 'NotFound'],
  100: ['ENETDOWN', 'NetworkDown'],
  101: ['ENETUNREACH', 'Unreachable'],
  105: ['ENOBUFS', 'NoSpace'],
  110: ['ETIMEDOUT', 'TimedOut'],
  113: ['EHOSTUNREACH', 'Unreachable'],
  524: ['ENOTSUPP', 'NotSupported'],
};

/**
 * Maps an errno (from a failed system call or a netlink `NLMSG_ERROR`) to a {@link NetlinkError}.
 * This is the only place errno is interpreted in `@datapath/netlink`.
 *
 * @example Turning a kernel answer into a typed error
 * ```ts
 * import { errnoError } from '@datapath/netlink';
 * const err = errnoError(17, { op: 'linkAdd', syscall: 'RTM_NEWLINK', target: 'veth0' });
 * console.log(err.code); // 'AlreadyExists'
 * ```
 */
export function errnoError(errno: number, options: NetlinkErrorOptions): NetlinkError {
  const [name, code] = ERRNO[errno] ?? [`errno ${errno}`, 'Unknown'];
  const where = options.syscall ?? options.op;
  const target = options.target === undefined ? '' : ` (${options.target})`;
  const kmsg = options.kernelMessage === undefined ? '' : `: ${options.kernelMessage}`;
  return new NetlinkError(code, `${options.op}: ${where} failed: ${name}${target}${kmsg}`, {
    ...options,
    errno,
  });
}

/** A `NetlinkError` for input rejected before any system call. */
export function invalidArgument(op: string, message: string, target?: string): NetlinkError {
  return new NetlinkError(
    'InvalidArgument',
    `${op}: ${message}`,
    target === undefined ? { op } : { op, target },
  );
}
