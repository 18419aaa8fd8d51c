import { DatapathError, type ErrorCode } from '@datapath/errors';

/**
 * The failure codes of `@datapath/kvstore`: the SDK-wide {@link ErrorCode} set.
 *
 * @deprecated Use `ErrorCode` from `@datapath/errors`.
 */
export type KvErrorCode = ErrorCode;

/**
 * Domain detail of a {@link KvError} (`err.reason`): `LeaseLost` (code `Stale`), `Conflict` (code `Busy`:
 * too many lost compare-and-swap rounds), `Closed` (code `InvalidState`).
 */
export type KvReason = 'LeaseLost' | 'Conflict' | 'Closed';

/** Options accepted by the {@link KvError} constructor. */
export interface KvErrorOptions {
  /** The SDK operation that failed, e.g. `txn` or `allocate`. */
  op: string;
  /** What the operation acted on (a key, a node name, a label set). */
  target?: string | undefined;
  /** Domain detail beside the code. */
  reason?: KvReason | undefined;
  /** The underlying error (an etcd client error, for instance), preserved. */
  cause?: unknown;
}

/**
 * The one error type thrown by `@datapath/kvstore`: a `DatapathError` whose `code` is in the SDK-wide set
 * (`InvalidArgument`, `NotFound`, `Unavailable`, `TimedOut`, `Stale`, `Exhausted`, `Busy`,
 * `InvalidState`, `PermissionDenied`, `Unknown`).
 *
 * `InvalidArgument` is raised before any request reaches the store; the other codes carry the store's answer.
 *
 * @example Retrying what is transient
 * ```ts
 * import { KvError } from '@datapath/kvstore';
 * function retryable(e: unknown): boolean {
 *   return e instanceof KvError && (e.code === 'Unavailable' || e.code === 'TimedOut' || e.code === 'Busy');
 * }
 * ```
 */
export class KvError extends DatapathError {
  /** Always `'KvError'`. */
  override readonly name: string = 'KvError';
  /** The SDK operation that failed. */
  declare readonly op: string;
  /** Domain detail beside the code, when there is one. */
  declare readonly reason: KvReason | undefined;

  constructor(code: ErrorCode, message: string, options: KvErrorOptions) {
    super(code, message, options);
  }
}

/** Shorthand for an `InvalidArgument` error. */
export function invalidArgument(op: string, message: string, target?: string): KvError {
  return new KvError('InvalidArgument', `${op}: ${message}`, { op, target });
}

/** Shorthand for the error of a call on a closed store, pool or allocator. */
export function closedError(op: string, what: string): KvError {
  return new KvError('InvalidState', `${op}: ${what} is closed`, { op, reason: 'Closed' });
}
