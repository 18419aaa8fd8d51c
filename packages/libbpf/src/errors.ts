import {
  DatapathError,
  type DatapathErrorOptions,
  type ErrnoContext,
  type ErrnoOptions,
  type ErrorCode,
  errnoErrorOf,
} from '@datapath/errors';

/**
 * The failure codes of `@datapath/libbpf` and `@datapath/bpf-maps`: the SDK-wide {@link ErrorCode} set.
 *
 * @deprecated Use `ErrorCode` from `@datapath/errors`.
 */
export type BpfErrorCode = ErrorCode;

/** Options accepted by the {@link BpfError} constructor. */
export interface BpfErrorOptions extends DatapathErrorOptions {
  /** The SDK operation that failed, e.g. `mapCreate`. */
  op: string;
}

/** Options of {@link errnoError}: where the errno came from and what it means in this call. */
export interface BpfErrnoOptions extends BpfErrorOptions, ErrnoOptions {}

/**
 * The one error type thrown by `@datapath/libbpf` and `@datapath/bpf-maps`: a `DatapathError` whose
 * `code` is in the SDK-wide set.
 *
 * A `BpfError` without `errno` was rejected before any system call (bad argument);
 * one with `errno` carries the kernel's answer.
 *
 * @example Telling a full map apart
 * ```ts
 * import { BpfError } from '@datapath/libbpf';
 * function isFull(e: unknown): boolean {
 *   return e instanceof BpfError && e.code === 'Exhausted' && e.reason === 'Full';
 * }
 * ```
 */
export class BpfError extends DatapathError {
  /** `'BpfError'` (`'VerifierError'` for the subclass). */
  override readonly name: string = 'BpfError';
  /** The SDK operation that failed. */
  declare readonly op: string;

  constructor(code: ErrorCode, message: string, options: BpfErrorOptions) {
    super(code, message, options);
  }
}

/** What a denied bpf(2) call needs. */
export const BPF_PRIVILEGE = 'CAP_BPF, with CAP_NET_ADMIN for networking programs, or root';

/**
 * Maps an errno from a failed system call to a {@link BpfError} through the SDK's one errno table
 * (`describeErrno` of `@datapath/errors`): `ENOENT` → `NotFound`, `EPERM`/`EACCES` → `PermissionDenied`
 * (the message names the capability), `EEXIST` → `AlreadyExists`, `EBUSY` → `Busy`, `EAGAIN` →
 * `TryAgain`, `ENOSPC`/`EMFILE` → `Exhausted`, `EOPNOTSUPP`/`ENOTSUPP`/`ENOSYS` → `NotSupported`,
 * `EINVAL` → `InvalidArgument`, `E2BIG` → `TooBig` … A call where an errno means something specific
 * says so in `meaning` (map updates: `E2BIG` → `Exhausted`, reason `Full`).
 *
 * @example Turning a failed syscall into a typed error
 * ```ts
 * import { errnoError } from '@datapath/libbpf';
 * const err = errnoError(2, { op: 'mapLookup', syscall: 'bpf(BPF_MAP_LOOKUP_ELEM)' });
 * console.log(err.code); // 'NotFound'
 * ```
 */
export function errnoError(errno: number, options: BpfErrnoOptions): BpfError {
  const make = (code: ErrorCode, message: string, o: BpfErrorOptions) => new BpfError(code, message, o);
  return errnoErrorOf(make, errno, options, { privilege: BPF_PRIVILEGE });
}

/** The meaning of errnos on a map update: `E2BIG` is the kernel's answer for a full map. */
export const MAP_UPDATE_MEANING: ErrnoContext['meaning'] = { E2BIG: { code: 'Exhausted', reason: 'Full' } };
