import type { ErrorCode } from './codes.js';

/** Options accepted by the {@link DatapathError} constructor; every field is optional. */
export interface DatapathErrorOptions {
  /** Domain detail a caller can match on beside `code`, e.g. `Full`, `Collision`, `VerifierRejected`. */
  reason?: string | undefined;
  /** The SDK operation that failed, e.g. `linkAdd` or `RangeAllocator.allocate`. */
  op?: string | undefined;
  /** The system call or kernel request that failed, e.g. `bpf(BPF_MAP_CREATE)` or `RTM_NEWLINK`. */
  syscall?: string | undefined;
  /** What the operation acted on (an interface, a map, an IP, a path). */
  target?: string | undefined;
  /** The raw errno, when a system call or the kernel answered. */
  errno?: number | undefined;
  /** The errno's name (`EEXIST`); derived from `errno` by the subclasses that map one. */
  errnoName?: string | undefined;
  /** For `NotSupported`: the feature that is missing, e.g. `tcx attachment`. */
  feature?: string | undefined;
  /** For `NotSupported`: the first Linux release with the feature, e.g. `6.6`. */
  minKernel?: string | undefined;
  /** The underlying error, preserved. */
  cause?: unknown;
}

// One brand for every copy of this package that ends up loaded (two versions in node_modules, a bundle
// beside a workspace copy): `instanceof DatapathError` and `isDatapathError` look for it, not for this
// copy's prototype.
const BRAND: unique symbol = Symbol.for('@datapath/errors.DatapathError') as never;

/**
 * The base of every error the SDK throws: a `code` from the one closed {@link ErrorCode} set, the
 * operation, the system call and its target, the errno when the kernel answered, the domain `reason`,
 * and the cause preserved. Each package subclasses it (`NetlinkError`, `BpfError`, `IpamError` …) with
 * its own `name`; a consumer matches `err.code` the same way whichever package threw.
 *
 * `instanceof DatapathError` holds across duplicate copies of `@datapath/errors` (it checks a
 * `Symbol.for` brand); `instanceof` a subclass is the ordinary prototype check.
 *
 * @example Matching any SDK error by code
 * ```ts
 * import { DatapathError } from '@datapath/errors';
 * try {
 *   throw new DatapathError('Exhausted', 'allocate: range 10.0.0.0/30 is full', { reason: 'Full', op: 'allocate' });
 * } catch (e) {
 *   if (e instanceof DatapathError && e.code === 'Exhausted') console.log(e.reason); // 'Full'
 * }
 * ```
 */
export class DatapathError extends Error {
  /** The class name; each subclass sets its own (`'NetlinkError'`, `'IpamError'` …). */
  override readonly name: string = 'DatapathError';
  /** Machine-readable failure code, from the SDK-wide closed set. */
  readonly code: ErrorCode;
  /** Domain detail beside `code` (`Full`, `Collision`, `VerifierRejected` …), when there is one. */
  readonly reason: string | undefined;
  /** The SDK operation that failed. */
  readonly op: string | undefined;
  /** The system call or kernel request that failed, when one did. */
  readonly syscall: string | undefined;
  /** What the operation acted on. */
  readonly target: string | undefined;
  /** The raw errno, when a system call or the kernel answered. */
  readonly errno: number | undefined;
  /** The errno's name (`EEXIST`), when there is an errno. */
  readonly errnoName: string | undefined;
  /** For `NotSupported`: the missing feature. */
  readonly feature: string | undefined;
  /** For `NotSupported`: the first Linux release with the feature. */
  readonly minKernel: string | undefined;

  constructor(code: ErrorCode, message: string, options: DatapathErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = options.reason;
    this.op = options.op;
    this.syscall = options.syscall;
    this.target = options.target;
    this.errno = options.errno;
    this.errnoName = options.errnoName;
    this.feature = options.feature;
    this.minKernel = options.minKernel;
  }

  /**
   * `value instanceof DatapathError` is true for any error carrying the SDK's brand, from whichever copy
   * of this package made it; `instanceof` a subclass keeps the ordinary prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // `this` is the class `instanceof` was asked about: this one, or a subclass inheriting the method.
    // biome-ignore lint/complexity/noThisInStatic: a subclass must keep its own prototype check
    if (this === DatapathError) return isDatapathError(value);
    // biome-ignore lint/complexity/noThisInStatic: as above
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

Object.defineProperty(DatapathError.prototype, BRAND, { value: true, enumerable: false });

/**
 * Whether a value is an SDK error (from any copy of `@datapath/errors`): the same test as
 * `instanceof DatapathError`, usable as a type guard in `catch` blocks.
 *
 * @example Narrowing an unknown throw
 * ```ts
 * import { isDatapathError } from '@datapath/errors';
 * function describe(e: unknown): string {
 *   return isDatapathError(e) ? `${e.name} ${e.code}` : String(e);
 * }
 * console.log(describe(new Error('plain'))); // 'Error: plain'
 * ```
 */
export function isDatapathError(value: unknown): value is DatapathError {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * A `NotSupported` error that names the missing feature and the first kernel that has it; the message
 * says both (`tcx attachment is not supported by this kernel (needs Linux 6.6 or later)`).
 *
 * @example Refusing a feature the kernel lacks
 * ```ts
 * import { notSupported } from '@datapath/errors';
 * const err = notSupported('tcx attachment', '6.6', { op: 'attachTcx' });
 * console.log(err.code, err.feature, err.minKernel); // NotSupported tcx attachment 6.6
 * ```
 */
export function notSupported(
  feature: string,
  minKernel: string | undefined,
  options: Omit<DatapathErrorOptions, 'feature' | 'minKernel'> = {},
): DatapathError {
  return new DatapathError('NotSupported', notSupportedMessage(feature, minKernel, options.op), {
    ...options,
    feature,
    minKernel,
  });
}

/**
 * The message of a `NotSupported` error: the operation, the feature, and the minimum kernel when known.
 * Packages use it so their own subclasses word it the same way.
 *
 * @example Wording a subclass's message
 * ```ts
 * import { notSupportedMessage } from '@datapath/errors';
 * console.log(notSupportedMessage('BPF ring buffer', '5.8', 'createMap'));
 * // createMap: BPF ring buffer is not supported by this kernel (needs Linux 5.8 or later)
 * ```
 */
export function notSupportedMessage(feature: string, minKernel: string | undefined, op?: string): string {
  const needs = minKernel === undefined ? '' : ` (needs Linux ${minKernel} or later)`;
  return `${op === undefined ? '' : `${op}: `}${feature} is not supported by this kernel${needs}`;
}
