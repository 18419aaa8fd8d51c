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

const ERRNO_CODES: Readonly<Record<number, BpfErrorCode>> = {
  1: 'PermissionDenied', // EPERM
  2: 'NotFound', // ENOENT
  4: 'Interrupted', // EINTR
  7: 'TooBig', // E2BIG
  9: 'BadFd', // EBADF
  12: 'OutOfMemory', // ENOMEM
  13: 'PermissionDenied', // EACCES
  16: 'Busy', // EBUSY
  17: 'AlreadyExists', // EEXIST
  22: 'InvalidArgument', // EINVAL
  28: 'NoSpace', // ENOSPC
  95: 'NotSupported', // EOPNOTSUPP
  524: 'NotSupported', // ENOTSUPP (kernel-internal, leaks out of bpf(2))
};

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  2: 'ENOENT',
  4: 'EINTR',
  7: 'E2BIG',
  9: 'EBADF',
  12: 'ENOMEM',
  13: 'EACCES',
  16: 'EBUSY',
  17: 'EEXIST',
  22: 'EINVAL',
  28: 'ENOSPC',
  95: 'EOPNOTSUPP',
  524: 'ENOTSUPP',
};

/**
 * Maps an errno from a failed system call to a {@link BpfError}. This is the only place errno is interpreted.
 *
 * @example Turning a failed syscall into a typed error
 * ```ts
 * import { errnoError } from '@datapath/libbpf';
 * const err = errnoError(2, { op: 'mapLookup', syscall: 'bpf(BPF_MAP_LOOKUP_ELEM)' });
 * console.log(err.code); // 'NotFound'
 * ```
 */
export function errnoError(errno: number, options: BpfErrorOptions): BpfError {
  const code = ERRNO_CODES[errno] ?? 'Unknown';
  const name = ERRNO_NAMES[errno] ?? `errno ${errno}`;
  const where = options.syscall ?? options.op;
  const target = options.target === undefined ? '' : ` (${options.target})`;
  return new BpfError(code, `${options.op}: ${where} failed: ${name}${target}`, { ...options, errno });
}
