import type { Duplex } from 'node:stream';
import { HttpError } from './errors.js';
import { type ReadResponse, ResponseReader } from './response.js';

/** Options of {@link exchange}. */
export interface ExchangeOptions {
  /** Fail with `TimedOut` when no complete answer came within this many milliseconds; default: no limit. */
  timeoutMs?: number | undefined;
  /** The most bytes the answer's head may take (default 64 KiB). */
  maxHeadBytes?: number | undefined;
}

/**
 * Writes one request ({@link formatRequest}'s text or bytes; text is written as Latin-1) on a connected (or
 * connecting) stream, such as a `net.Socket` to a unix socket, and
 * reads its answer with a {@link ResponseReader}. Only one exchange at a time on a stream: its listeners
 * are removed once it settles, and the stream is left open either way (the caller keeps it for another
 * request when `reusable`, or destroys it).
 *
 * @throws {@link HttpError} (as a rejection): `Unavailable` when the stream fails (reason `Socket`, its code
 *   in `errnoName`) or the peer closes before a complete answer (`Closed`); `TimedOut` after `timeoutMs`;
 *   `Protocol` or `TooBig` for an answer {@link ResponseReader} refuses.
 *
 * @example One request on a unix socket
 * ```ts
 * import { connect } from 'node:net';
 * import { exchange, formatRequest } from '@datapath/http';
 * const socket = connect('/run/datapath-agent/demo/api.sock');
 * try {
 *   const { response } = await exchange(socket, formatRequest('GET', '/v1/health'), { timeoutMs: 2_000 });
 *   console.log(response.status);
 * } catch (e) {
 *   console.log((e as Error).message);
 * } finally {
 *   socket.destroy();
 * }
 * ```
 */
export function exchange(
  stream: Duplex,
  request: string | Uint8Array,
  options: ExchangeOptions = {},
): Promise<ReadResponse> {
  return new Promise<ReadResponse>((resolve, reject) => {
    const reader = new ResponseReader({ maxHeadBytes: options.maxHeadBytes });
    let settled = false;
    const finish = (err: HttpError | undefined, got?: ReadResponse) => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onEnd);
      if (err !== undefined) reject(err);
      else resolve(got!);
    };
    const check = (ended: boolean) => {
      let got: ReadResponse | undefined;
      try {
        got = reader.read(ended);
      } catch (err) {
        finish(err as HttpError);
        return;
      }
      if (got !== undefined) finish(undefined, got);
      else if (ended)
        finish(new HttpError('Closed', 'the peer closed the connection before a complete answer'));
    };
    const onData = (b: Buffer) => {
      reader.push(b);
      check(false);
    };
    const onEnd = () => check(true);
    const onError = (err: Error & { code?: string }) =>
      finish(new HttpError('Socket', err.message, { errnoName: err.code, cause: err }));
    const timeoutMs = options.timeoutMs;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => finish(new HttpError('Timeout', `no answer within ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onEnd);
    if (typeof request === 'string') stream.write(request, 'latin1');
    else stream.write(request);
  });
}
