/** Closed set of failure codes for every `@datapath/kvstore` operation. */
export type KvErrorCode =
  | 'InvalidArgument'
  | 'NotFound'
  | 'Unavailable'
  | 'Timeout'
  | 'LeaseLost'
  | 'Exhausted'
  | 'Conflict'
  | 'Closed'
  | 'PermissionDenied'
  | 'Unknown';

/** Options accepted by the {@link KvError} constructor. */
export interface KvErrorOptions {
  /** The SDK operation that failed, e.g. `txn` or `allocate`. */
  op: string;
  /** What the operation acted on (a key, a node name, a label set). */
  target?: string;
  /** The underlying error (an etcd client error, for instance), preserved. */
  cause?: unknown;
}

/**
 * The one error type thrown by `@datapath/kvstore`.
 *
 * `InvalidArgument` is raised before any request reaches the store; the other codes carry the store's answer.
 */
export class KvError extends Error {
  /** Always `'KvError'`. */
  override readonly name = 'KvError';
  /** Machine-readable failure code. */
  readonly code: KvErrorCode;
  /** The SDK operation that failed. */
  readonly op: string;
  /** What the operation acted on. */
  readonly target: string | undefined;

  constructor(code: KvErrorCode, message: string, options: KvErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.op = options.op;
    this.target = options.target;
  }
}

/** Shorthand for an `InvalidArgument` error. */
export function invalidArgument(op: string, message: string, target?: string): KvError {
  return new KvError('InvalidArgument', `${op}: ${message}`, target === undefined ? { op } : { op, target });
}
