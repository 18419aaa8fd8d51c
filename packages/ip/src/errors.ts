import { DatapathError } from '@datapath/errors';

/** The code of every `@datapath/ip` failure: a rejected argument (one of the SDK-wide `ErrorCode`s). */
export type IpErrorCode = 'InvalidArgument';

/**
 * The one error type thrown by `@datapath/ip` (a `DatapathError` of `@datapath/errors`): text that is not
 * an address or prefix of the expected family, bytes of the wrong length, a prefix length out of range or
 * (strict parsing) host bits set.
 *
 * @example Telling bad input apart
 * ```ts
 * import { IpError, parseIp } from '@datapath/ip';
 * try {
 *   parseIp('10.0.0.256');
 * } catch (e) {
 *   if (e instanceof IpError && e.code === 'InvalidArgument') console.log(e.target); // 10.0.0.256
 * }
 * ```
 */
export class IpError extends DatapathError {
  /** Always `'IpError'`. */
  override readonly name: string = 'IpError';
  /** Machine-readable failure code. */
  declare readonly code: IpErrorCode;
  /** The function that rejected its argument, e.g. `parsePrefix`. */
  declare readonly op: string;
  /** The rejected text (or a description of rejected bytes). */
  declare readonly target: string;

  constructor(code: IpErrorCode, message: string, options: { op: string; target: string }) {
    super(code, message, options);
  }
}

/** Throws the `InvalidArgument` error of `op`. */
export function invalid(op: string, message: string, target: unknown): never {
  throw new IpError('InvalidArgument', `${op}: ${message}`, {
    op,
    target: typeof target === 'string' ? target : String(target),
  });
}
