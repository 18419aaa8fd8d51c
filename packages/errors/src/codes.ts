/**
 * Every error code of the SDK, in one closed list: whichever `@datapath/*` package threw, `err.code` is one
 * of these. Domain detail (`Full`, `Collision`, `VerifierRejected` …) travels beside it in `err.reason`.
 *
 * | code | meaning |
 * | --- | --- |
 * | `NotFound` | the object named does not exist (`ENOENT`, `ENODEV`, `ESRCH` …) |
 * | `AlreadyExists` | an object with that name or key exists already (`EEXIST`, an allocated IP) |
 * | `PermissionDenied` | the caller lacks a privilege (`EPERM`, `EACCES`); the message names the capability |
 * | `Busy` | the object is in use or contended right now (`EBUSY`, a lock, a lost compare-and-swap) |
 * | `TryAgain` | a transient kernel condition: retrying may succeed (`EAGAIN`) |
 * | `TimedOut` | no answer in time (`ETIMEDOUT`, a store deadline) |
 * | `Interrupted` | a wait was interrupted (`EINTR`) |
 * | `Unavailable` | a service the call needs cannot be reached now (`ECONNREFUSED`, a store down) |
 * | `InvalidArgument` | input rejected, by the SDK before any system call or by the kernel (`EINVAL`) |
 * | `InvalidState` | the object is not in a state that allows the call (closed, not running) |
 * | `NotSupported` | the kernel or platform lacks the feature; `feature` and `minKernel` say which |
 * | `Incompatible` | two things that must match do not (an object's BTF, a version) |
 * | `Exhausted` | a bounded resource is used up (a pool or map is full, `ENOSPC`, `EMFILE`, `ENOBUFS`) |
 * | `OutOfMemory` | the kernel could not allocate memory (`ENOMEM`) |
 * | `TooBig` | a value exceeds a size limit (`E2BIG`, `EMSGSIZE`, `ENAMETOOLONG`) |
 * | `BadFd` | a file descriptor is not (or no longer) valid (`EBADF`) |
 * | `Stale` | a handle, lease or token is no longer valid (`ESTALE`, a lost lease) |
 * | `Unreachable` | no route to the network or host (`ENETUNREACH`, `EHOSTUNREACH`) |
 * | `NetworkDown` | the network is down (`ENETDOWN`) |
 * | `Protocol` | a peer (the kernel, a server) answered something malformed (`EPROTO`, `EBADMSG`) |
 * | `Io` | reading or writing failed (`EIO`, a store's file system) |
 * | `Unknown` | a failure the SDK could not classify (an errno outside the table, a foreign error) |
 */
export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'PermissionDenied'
  | 'Busy'
  | 'TryAgain'
  | 'TimedOut'
  | 'Interrupted'
  | 'Unavailable'
  | 'InvalidArgument'
  | 'InvalidState'
  | 'NotSupported'
  | 'Incompatible'
  | 'Exhausted'
  | 'OutOfMemory'
  | 'TooBig'
  | 'BadFd'
  | 'Stale'
  | 'Unreachable'
  | 'NetworkDown'
  | 'Protocol'
  | 'Io'
  | 'Unknown';

const CODES = {
  NotFound: true,
  AlreadyExists: true,
  PermissionDenied: true,
  Busy: true,
  TryAgain: true,
  TimedOut: true,
  Interrupted: true,
  Unavailable: true,
  InvalidArgument: true,
  InvalidState: true,
  NotSupported: true,
  Incompatible: true,
  Exhausted: true,
  OutOfMemory: true,
  TooBig: true,
  BadFd: true,
  Stale: true,
  Unreachable: true,
  NetworkDown: true,
  Protocol: true,
  Io: true,
  Unknown: true,
} as const satisfies Record<ErrorCode, true>;

/**
 * Every {@link ErrorCode}, in the order of the table above.
 *
 * @example Listing the codes
 * ```ts
 * import { ERROR_CODES } from '@datapath/errors';
 * console.log(ERROR_CODES.includes('NotFound')); // true
 * ```
 */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(Object.keys(CODES) as ErrorCode[]);

/**
 * Whether a value is one of the {@link ErrorCode}s.
 *
 * @example Checking a code read from JSON
 * ```ts
 * import { isErrorCode } from '@datapath/errors';
 * console.log(isErrorCode('Busy'), isErrorCode('Full')); // true false
 * ```
 */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(CODES, value);
}
