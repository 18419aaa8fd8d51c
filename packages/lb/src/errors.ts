import { DatapathError, type ErrorCode } from '@datapath/errors';

/**
 * Why an `@datapath/lb` operation failed, in the load balancer's own terms: `err.reason` of an
 * {@link LbError}. Each reason has one SDK-wide `err.code`:
 *
 * | reason | code |
 * | --- | --- |
 * | `InvalidService`, `InvalidAddress`, `InvalidPort`, `InvalidProtocol`, `FamilyMismatch`, `InvalidWeight`, `InvalidAffinity`, `InvalidTableSize` | `InvalidArgument` |
 * | `InvalidPortRange`, `InvalidCidr`, `InvalidNatConfig` (the per-packet datapath's configuration) | `InvalidArgument` |
 * | `DuplicateFrontend`, `DuplicateBackend` | `AlreadyExists` |
 * | `TooManyBackends` | `TooBig` |
 * | `UnknownService` | `NotFound` |
 * | `IdsExhausted` | `Exhausted` |
 */
export type LbReason =
  | 'InvalidService'
  | 'InvalidAddress'
  | 'InvalidPort'
  | 'InvalidProtocol'
  | 'FamilyMismatch'
  | 'InvalidWeight'
  | 'InvalidAffinity'
  | 'InvalidTableSize'
  | 'DuplicateFrontend'
  | 'DuplicateBackend'
  | 'TooManyBackends'
  | 'UnknownService'
  | 'IdsExhausted'
  | 'InvalidPortRange'
  | 'InvalidCidr'
  | 'InvalidNatConfig';

const CODE_OF: Readonly<Record<LbReason, ErrorCode>> = {
  InvalidService: 'InvalidArgument',
  InvalidAddress: 'InvalidArgument',
  InvalidPort: 'InvalidArgument',
  InvalidProtocol: 'InvalidArgument',
  FamilyMismatch: 'InvalidArgument',
  InvalidWeight: 'InvalidArgument',
  InvalidAffinity: 'InvalidArgument',
  InvalidTableSize: 'InvalidArgument',
  DuplicateFrontend: 'AlreadyExists',
  DuplicateBackend: 'AlreadyExists',
  TooManyBackends: 'TooBig',
  UnknownService: 'NotFound',
  IdsExhausted: 'Exhausted',
  InvalidPortRange: 'InvalidArgument',
  InvalidCidr: 'InvalidArgument',
  InvalidNatConfig: 'InvalidArgument',
};

/** One problem found while validating a service: where (a dotted path), what, and its reason. */
export interface LbProblem {
  /** Path inside the input, e.g. `backends[2].port`. */
  path: string;
  /** What is wrong, e.g. `must be an integer in 1..65535`. */
  message: string;
  /** The kind of problem. */
  reason: LbReason;
}

/**
 * The one error type thrown by `@datapath/lb`: a `DatapathError` whose `reason` is an {@link LbReason}
 * and whose `code` follows from it. Validation failures carry every problem found; the error's reason is
 * the first problem's. Nothing is written to any map when one is thrown.
 *
 * @example Telling a duplicate frontend from a bad port
 * ```ts
 * import { LbError, parseService } from '@datapath/lb';
 * try {
 *   parseService({ name: 'web', protocol: 'TCP', frontends: [{ address: '10.96.0.1', port: 0 }], backends: [] });
 * } catch (e) {
 *   if (e instanceof LbError) console.log(e.code, e.reason, e.problems.map((p) => p.path)); // InvalidArgument InvalidPort [ 'frontends[0].port' ]
 * }
 * ```
 */
export class LbError extends DatapathError {
  /** Always `'LbError'`. */
  override readonly name: string = 'LbError';
  /** Why the operation failed. */
  declare readonly reason: LbReason;
  /** Every problem found (one for errors that are not validation failures). */
  readonly problems: readonly LbProblem[];

  constructor(
    reason: LbReason,
    message: string,
    options: { op: string; target?: string | undefined; problems?: readonly LbProblem[]; cause?: unknown },
  ) {
    const problems = options.problems ?? [];
    const lines = problems
      .slice(0, 20)
      .map((p) => `\n  ${p.path}: ${p.message}`)
      .join('');
    const more = problems.length > 20 ? `\n  … and ${problems.length - 20} more (error.problems)` : '';
    super(CODE_OF[reason], `${options.op}: ${message}${lines}${more}`, {
      reason,
      op: options.op,
      target: options.target,
      cause: options.cause,
    });
    this.problems = problems;
  }
}

/** The SDK-wide code of a reason. */
export function codeOf(reason: LbReason): ErrorCode {
  return CODE_OF[reason];
}
