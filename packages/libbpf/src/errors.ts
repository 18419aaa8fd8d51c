/** Closed set of failure codes for every `@datapath/libbpf` and `@datapath/bpf-maps` operation. */
export type BpfErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'PermissionDenied'
  | 'Busy'
  | 'NoSpace'
  | 'NotSupported'
  | 'InvalidArgument'
  | 'Incompatible'
  | 'BadFd'
  | 'Interrupted'
  | 'TooBig'
  | 'OutOfMemory'
  | 'Stale'
  | 'Unknown';

/** Options accepted by the {@link BpfError} constructor. */
export interface BpfErrorOptions {
  /** The SDK operation that failed, e.g. `mapCreate`. */
  op: string;
  /** The raw errno, when the failure came from a system call. */
  errno?: number;
  /** The system call or library function that failed, e.g. `bpf(BPF_MAP_CREATE)`. */
  syscall?: string;
  /** What the operation acted on (a map name, a pin path, an interface). */
  target?: string;
  /** The underlying error, preserved. */
  cause?: unknown;
}

/**
 * The one error type thrown by `@datapath/libbpf` and `@datapath/bpf-maps`.
 *
 * A `BpfError` without `errno` was rejected before any system call (bad argument);
 * one with `errno` carries the kernel's answer.
 */
export class BpfError extends Error {
  /** Always `'BpfError'`. */
  override readonly name = 'BpfError';
  /** Machine-readable failure code. */
  readonly code: BpfErrorCode;
  /** The SDK operation that failed. */
  readonly op: string;
  /** The raw errno, when a system call failed. */
  readonly errno: number | undefined;
  /** The system call that failed, when one did. */
  readonly syscall: string | undefined;
  /** What the operation acted on. */
  readonly target: string | undefined;

  constructor(code: BpfErrorCode, message: string, options: BpfErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options.op;
    this.errno = options.errno;
    this.syscall = options.syscall;
    this.target = options.target;
  }
}

const ERRNO: Readonly<Record<number, readonly [string, BpfErrorCode]>> = {
  1: ['EPERM', 'PermissionDenied'],
  2: ['ENOENT', 'NotFound'],
  3: ['ESRCH', 'NotFound'],
  4: ['EINTR', 'Interrupted'],
  6: ['ENXIO', 'NotFound'],
  7: ['E2BIG', 'TooBig'],
  9: ['EBADF', 'BadFd'],
  11: ['EAGAIN', 'Busy'],
  12: ['ENOMEM', 'OutOfMemory'],
  13: ['EACCES', 'PermissionDenied'],
  14: ['EFAULT', 'InvalidArgument'],
  16: ['EBUSY', 'Busy'],
  17: ['EEXIST', 'AlreadyExists'],
  19: ['ENODEV', 'NotFound'],
  20: ['ENOTDIR', 'InvalidArgument'],
  22: ['EINVAL', 'InvalidArgument'],
  24: ['EMFILE', 'OutOfMemory'],
  28: ['ENOSPC', 'NoSpace'],
  34: ['ERANGE', 'InvalidArgument'],
  38: ['ENOSYS', 'NotSupported'],
  67: ['ENOLINK', 'NotFound'],
  77: ['EBADFD', 'BadFd'], // what bpf(2) answers for a closed fd since Linux 6.12
  95: ['EOPNOTSUPP', 'NotSupported'],
  116: ['ESTALE', 'Stale'],
  524: ['ENOTSUPP', 'NotSupported'], // kernel-internal, leaks out of bpf(2)
};

/**
 * Maps an errno from a failed system call to a {@link BpfError}. This is the only place errno is interpreted.
 *
 * `ENOENT`, `ENODEV`, `ENXIO`, `ESRCH`, `ENOLINK` → `NotFound`; `EPERM`/`EACCES` → `PermissionDenied`;
 * `EEXIST` → `AlreadyExists`; `EBUSY`/`EAGAIN` → `Busy`; `ENOSPC` → `NoSpace`; `EOPNOTSUPP`/`ENOTSUPP`/`ENOSYS`
 * → `NotSupported`; `EBADF`/`EBADFD` → `BadFd`; `EINVAL`/`EFAULT`/`ERANGE` → `InvalidArgument`; `ESTALE` → `Stale`; `E2BIG` → `TooBig`,
 * except on map updates (`op` starting with `mapUpdate`), where it means the map is full: `NoSpace`;
 * anything else → `Unknown`.
 *
 * @example Turning a failed syscall into a typed error
 * ```ts
 * import { errnoError } from '@datapath/libbpf';
 * const err = errnoError(2, { op: 'mapLookup', syscall: 'bpf(BPF_MAP_LOOKUP_ELEM)' });
 * console.log(err.code); // 'NotFound'
 * ```
 */
export function errnoError(errno: number, options: BpfErrorOptions): BpfError {
  const [name, generic] = ERRNO[errno] ?? [`errno ${errno}`, 'Unknown'];
  // A hash map that is full answers an update with E2BIG (an array: an index past the end).
  const code = errno === 7 && options.op.startsWith('mapUpdate') ? 'NoSpace' : generic;
  const where = options.syscall ?? options.op;
  const target = options.target === undefined ? '' : ` (${options.target})`;
  return new BpfError(code, `${options.op}: ${where} failed: ${name}${target}`, { ...options, errno });
}
