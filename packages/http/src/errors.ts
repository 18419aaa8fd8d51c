import { DatapathError, type ErrorCode } from '@datapath/errors';

/**
 * Why an exchange failed, beside the error's `code`:
 *
 * | reason | code | what happened |
 * | --- | --- | --- |
 * | `InvalidRequest` | `InvalidArgument` | a method, path or header value that would split the request (refused before any write) |
 * | `NotHttp` | `Protocol` | the answer does not start with an HTTP/1.x status line |
 * | `Chunked` | `Protocol` | the answer has a `Transfer-Encoding` (only `Content-Length` or close-delimited bodies are read) |
 * | `BadLength` | `Protocol` | the `Content-Length` is not a non-negative integer |
 * | `HeadTooBig` | `TooBig` | no end of the status line and headers within `maxHeadBytes` |
 * | `Closed` | `Unavailable` | the peer closed the connection before a complete answer |
 * | `Timeout` | `TimedOut` | no complete answer within `timeoutMs` |
 * | `Socket` | `Unavailable` | the stream failed (its error code, e.g. `ECONNREFUSED`, in `errnoName`) |
 */
export type HttpErrorReason =
  | 'InvalidRequest'
  | 'NotHttp'
  | 'Chunked'
  | 'BadLength'
  | 'HeadTooBig'
  | 'Closed'
  | 'Timeout'
  | 'Socket';

/** The codes an {@link HttpError} carries (SDK-wide `ErrorCode`s). */
export type HttpErrorCode = Extract<
  ErrorCode,
  'InvalidArgument' | 'Protocol' | 'TooBig' | 'Unavailable' | 'TimedOut'
>;

const CODE_OF: { readonly [R in HttpErrorReason]: HttpErrorCode } = {
  InvalidRequest: 'InvalidArgument',
  NotHttp: 'Protocol',
  Chunked: 'Protocol',
  BadLength: 'Protocol',
  HeadTooBig: 'TooBig',
  Closed: 'Unavailable',
  Timeout: 'TimedOut',
  Socket: 'Unavailable',
};

/**
 * The one error type of `@datapath/http` (a `DatapathError` of `@datapath/errors`): `code` from the
 * SDK-wide set, `reason` saying which {@link HttpErrorReason}, the stream's error preserved as `cause`.
 *
 * @example Telling a peer that is not HTTP from one that is gone
 * ```ts
 * import { HttpError, ResponseReader } from '@datapath/http';
 * const reader = new ResponseReader();
 * reader.push(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'));
 * try {
 *   reader.read(false);
 * } catch (e) {
 *   if (e instanceof HttpError) console.log(e.code, e.reason); // Protocol NotHttp
 * }
 * ```
 */
export class HttpError extends DatapathError {
  /** Always `'HttpError'`. */
  override readonly name: string = 'HttpError';
  /** Machine-readable failure code. */
  declare readonly code: HttpErrorCode;
  /** Which failure it was. */
  declare readonly reason: HttpErrorReason;

  constructor(
    reason: HttpErrorReason,
    message: string,
    options: { errnoName?: string | undefined; target?: string | undefined; cause?: unknown } = {},
  ) {
    super(CODE_OF[reason], message, { ...options, reason });
  }
}
