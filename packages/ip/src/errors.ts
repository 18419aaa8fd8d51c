/** Closed set of failure codes of `@datapath/ip`: every failure is a rejected argument. */
export type IpErrorCode = 'InvalidArgument';

/**
 * The one error type thrown by `@datapath/ip`: text that is not an address or prefix of the expected
 * family, bytes of the wrong length, a prefix length out of range or (strict parsing) host bits set.
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
export class IpError extends Error {
  /** Always `'IpError'`. */
  override readonly name = 'IpError';
  /** Machine-readable failure code. */
  readonly code: IpErrorCode;
  /** The function that rejected its argument, e.g. `parsePrefix`. */
  readonly op: string;
  /** The rejected text (or a description of rejected bytes). */
  readonly target: string;

  constructor(code: IpErrorCode, message: string, options: { op: string; target: string }) {
    super(message);
    this.code = code;
    this.op = options.op;
    this.target = options.target;
  }
}

/** Throws the `InvalidArgument` error of `op`. */
export function invalid(op: string, message: string, target: unknown): never {
  throw new IpError('InvalidArgument', `${op}: ${message}`, {
    op,
    target: typeof target === 'string' ? target : String(target),
  });
}
