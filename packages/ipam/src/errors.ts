/** Closed set of failure codes for every `@datapath/ipam` operation. */
export type IpamErrorCode =
  | 'Full'
  | 'AlreadyAllocated'
  | 'NotInRange'
  | 'OutOfRange'
  | 'Mismatch'
  | 'InvalidCidr'
  | 'MaskInvalid'
  | 'SubnetTooBig'
  | 'Collision'
  | 'Family'
  | 'NotInPool'
  | 'Excluded'
  | 'TimerExists'
  | 'NoTimer'
  | 'TokenMismatch'
  | 'InvalidSnapshot'
  | 'StoreFailure'
  | 'Busy'
  | 'NotSupported'
  | 'Cooling';

/** Options accepted by the {@link IpamError} constructor. */
export interface IpamErrorOptions {
  /** The operation that failed, e.g. `RangeAllocator.allocate`. */
  op: string;
  /** What the operation acted on (an IP, a CIDR, a node name, a path). */
  target?: string;
  /** The raw errno name (`EACCES`, …) when a store's file system call failed. */
  errno?: string;
  /** The underlying error, preserved. */
  cause?: unknown;
  /** For `Cooling`: how many released addresses are still in their cooldown. */
  cooling?: number;
  /** For `Cooling`: when the first of them becomes allocatable again (the clock's milliseconds). */
  availableAt?: number;
}

/**
 * The one error type thrown by `@datapath/ipam`.
 *
 * Every code but `StoreFailure`, `Busy` and `NotSupported` is a rejection decided by the allocator's own
 * state; `StoreFailure` carries the file system's answer (`errno`) from a durable store, `Busy` says its
 * lock stayed held by another process past the store's `lockTimeoutMs`, `NotSupported` that a store
 * directory is on a pseudo file system (procfs, sysfs, …). `Cooling` is `Full` while released addresses
 * are still in their cooldown: it carries how many ({@link IpamError.cooling}) and when the first one
 * frees ({@link IpamError.availableAt}).
 *
 * @example Telling a full range apart from other failures
 * ```ts
 * import { IpamError, RangeAllocator } from '@datapath/ipam';
 * const r = new RangeAllocator('10.0.0.0/30');
 * r.allocateNext();
 * r.allocateNext();
 * try {
 *   r.allocateNext();
 * } catch (e) {
 *   if (e instanceof IpamError && e.code === 'Full') console.log('exhausted:', e.target); // 10.0.0.0/30
 * }
 * ```
 */
export class IpamError extends Error {
  /** Always `'IpamError'`. */
  override readonly name = 'IpamError';
  /** Machine-readable failure code. */
  readonly code: IpamErrorCode;
  /** The operation that failed. */
  readonly op: string;
  /** What the operation acted on. */
  readonly target: string | undefined;
  /** The errno name, for `StoreFailure`. */
  readonly errno: string | undefined;
  /** For `Cooling`: how many released addresses are still in their cooldown. */
  readonly cooling: number | undefined;
  /** For `Cooling`: when the first cooling address becomes allocatable again (the clock's milliseconds). */
  readonly availableAt: number | undefined;

  constructor(code: IpamErrorCode, message: string, options: IpamErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options.op;
    this.target = options.target;
    this.errno = options.errno;
    this.cooling = options.cooling;
    this.availableAt = options.availableAt;
  }
}

/** Shorthand used inside the package. */
export function fail(code: IpamErrorCode, op: string, message: string, target?: string): never {
  throw new IpamError(code, `${op}: ${message}`, target === undefined ? { op } : { op, target });
}

/** Checks an address family argument at run time (TypeScript callers get it checked at compile time). */
export function checkFamily(family: unknown, op: string): asserts family is 4 | 6 {
  if (family !== 4 && family !== 6)
    throw new IpamError('Family', `${op}: the address family must be 4 or 6, got ${String(family)}`, {
      op,
      target: String(family),
    });
}
