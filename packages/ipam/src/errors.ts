import { DatapathError, type DatapathErrorOptions, type ErrorCode } from '@datapath/errors';

/**
 * Why an `@datapath/ipam` operation failed, in the allocator's own terms: `err.reason` of an
 * {@link IpamError}. Each reason has one SDK-wide `err.code`:
 *
 * | reason | code |
 * | --- | --- |
 * | `Full` | `Exhausted` |
 * | `AlreadyAllocated`, `Collision`, `TimerExists` | `AlreadyExists` |
 * | `NotInPool`, `NoTimer` | `NotFound` |
 * | `NotInRange`, `OutOfRange`, `Mismatch`, `InvalidCidr`, `MaskInvalid`, `Family`, `Excluded`, `InvalidSnapshot` | `InvalidArgument` |
 * | `SubnetTooBig` | `TooBig` |
 * | `TokenMismatch` | `Stale` |
 * | `StoreFailure` | the file system errno's code (`Io`, `PermissionDenied`, `Exhausted` …) |
 * | `Cooling` | `Exhausted` |
 * | `Busy` | `Busy` |
 * | `NotSupported` | `NotSupported` |
 */
export type IpamReason =
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

/**
 * The reasons of `@datapath/ipam` failures.
 *
 * @deprecated `err.code` is now the SDK-wide `ErrorCode` of `@datapath/errors`; match the allocator's
 * own terms on `err.reason` ({@link IpamReason}).
 */
export type IpamErrorCode = IpamReason;

const CODE_OF: Readonly<Record<IpamReason, ErrorCode>> = {
  Full: 'Exhausted',
  AlreadyAllocated: 'AlreadyExists',
  Collision: 'AlreadyExists',
  TimerExists: 'AlreadyExists',
  NotInPool: 'NotFound',
  NoTimer: 'NotFound',
  NotInRange: 'InvalidArgument',
  OutOfRange: 'InvalidArgument',
  Mismatch: 'InvalidArgument',
  InvalidCidr: 'InvalidArgument',
  MaskInvalid: 'InvalidArgument',
  Family: 'InvalidArgument',
  Excluded: 'InvalidArgument',
  InvalidSnapshot: 'InvalidArgument',
  SubnetTooBig: 'TooBig',
  TokenMismatch: 'Stale',
  StoreFailure: 'Io',
  Busy: 'Busy',
  NotSupported: 'NotSupported',
  Cooling: 'Exhausted',
};

/** Options accepted by the {@link IpamError} constructor. */
export interface IpamErrorOptions {
  /** The operation that failed, e.g. `RangeAllocator.allocate`. */
  op: string;
  /** What the operation acted on (an IP, a CIDR, a node name, a path). */
  target?: string | undefined;
  /** The raw errno, when a store's file system call failed. */
  errno?: number | undefined;
  /** The errno's name (`EACCES`, …), when a store's file system call failed. */
  errnoName?: string | undefined;
  /** The system call that failed (`open`, `flock` …), for `StoreFailure`. */
  syscall?: string | undefined;
  /** The SDK code, when it is not the reason's usual one (a `StoreFailure` carries its errno's code). */
  code?: ErrorCode | undefined;
  /** The underlying error, preserved. */
  cause?: unknown;
  /** For `Cooling`: how many released addresses are still in their cooldown. */
  cooling?: number;
  /** For `Cooling`: when the first of them becomes allocatable again (the clock's milliseconds). */
  availableAt?: number;
}

/**
 * The one error type thrown by `@datapath/ipam`: a `DatapathError` whose `code` is in the SDK-wide set,
 * with the allocator's own {@link IpamReason} in `reason`.
 *
 * Every reason but `StoreFailure`, `Busy` and `NotSupported` is a rejection decided by the allocator's
 * own state; `StoreFailure` carries the file system's answer (`errno`, `errnoName`) from a durable store,
 * `Busy` says its lock stayed held by another process past the store's `lockTimeoutMs`, `NotSupported`
 * that a store directory is on a pseudo file system (procfs, sysfs, …). `Cooling` is `Full` while
 * released addresses are still in their cooldown (code `Exhausted` for both): it carries how many
 * ({@link IpamError.cooling}) and when the first one frees ({@link IpamError.availableAt}).
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
 *   if (e instanceof IpamError && e.code === 'Exhausted') console.log(e.reason, e.target); // Full 10.0.0.0/30
 * }
 * ```
 */
export class IpamError extends DatapathError {
  /** Always `'IpamError'`. */
  override readonly name: string = 'IpamError';
  /** The allocator's own reason. */
  declare readonly reason: IpamReason;
  /** The operation that failed. */
  declare readonly op: string;
  /** For `Cooling`: how many released addresses are still in their cooldown. */
  readonly cooling: number | undefined;
  /** For `Cooling`: when the first cooling address becomes allocatable again (the clock's milliseconds). */
  readonly availableAt: number | undefined;

  constructor(reason: IpamReason, message: string, options: IpamErrorOptions) {
    const { code, cooling, availableAt, ...rest } = options;
    super(code ?? CODE_OF[reason], message, { ...rest, reason } satisfies DatapathErrorOptions);
    this.cooling = cooling;
    this.availableAt = availableAt;
  }
}

/** Shorthand used inside the package. */
export function fail(reason: IpamReason, op: string, message: string, target?: string): never {
  throw new IpamError(reason, `${op}: ${message}`, { op, target });
}

/** Checks an address family argument at run time (TypeScript callers get it checked at compile time). */
export function checkFamily(family: unknown, op: string): asserts family is 4 | 6 {
  if (family !== 4 && family !== 6)
    throw new IpamError('Family', `${op}: the address family must be 4 or 6, got ${String(family)}`, {
      op,
      target: String(family),
    });
}
