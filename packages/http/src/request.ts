import { HttpError } from './errors.js';

// A method or request target may hold only visible ASCII (RFC 9112 §3: no spaces, no controls; anything
// else is percent-encoded by the caller); a header value no line break, NUL or other control but tab, and
// nothing beyond Latin-1 (the head is written as Latin-1 bytes).
const UNSAFE_TOKEN = /[^\x21-\x7e]/;
const UNSAFE_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** What {@link formatRequest} writes beside the request line. */
export interface RequestOptions {
  /** The `Host` header; default `localhost`. */
  host?: string | undefined;
  /** The body (sent as UTF-8 with its `Content-Length`); none: no body and no length. */
  body?: string | undefined;
  /** The `Content-Type` of the body; sent only with a body. */
  contentType?: string | undefined;
}

/**
 * Serialises one HTTP/1.1 request: request line, `Host`, and for a body its `Content-Type` and
 * `Content-Length`, then the body as UTF-8. Equivalent to what `curl --unix-socket` sends, minus its
 * `User-Agent` and `Accept`. A request without a body comes back as Latin-1 text (no copy made; write it
 * with `'latin1'`, as {@link exchange} does), one with a body as bytes.
 *
 * @throws {@link HttpError} `InvalidArgument` (reason `InvalidRequest`) for a method or path with a space,
 *   control or non-ASCII character, or a header value with a line break or control character.
 *
 * @example A JSON POST
 * ```ts
 * import { formatRequest } from '@datapath/http';
 * const wire = formatRequest('POST', '/v1/cni', { host: 'agent', body: '{}', contentType: 'application/json' });
 * console.log(wire.toString().split('\r\n')[0]); // POST /v1/cni HTTP/1.1
 * ```
 */
export function formatRequest(method: string, path: string, options: RequestOptions = {}): string | Buffer {
  const { host = 'localhost', body, contentType } = options;
  if (UNSAFE_TOKEN.test(method) || UNSAFE_TOKEN.test(path) || method === '' || path === '')
    invalid(`invalid request ${JSON.stringify(`${method} ${path}`)}`, `${method} ${path}`);
  if (UNSAFE_VALUE.test(host)) invalid(`invalid Host ${JSON.stringify(host)}`, host);
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  if (body === undefined) return `${head}\r\n`;
  if (contentType !== undefined) {
    if (UNSAFE_VALUE.test(contentType))
      invalid(`invalid Content-Type ${JSON.stringify(contentType)}`, contentType);
    head += `Content-Type: ${contentType}\r\n`;
  }
  const length = Buffer.byteLength(body, 'utf8');
  head += `Content-Length: ${length}\r\n\r\n`;
  const wire = Buffer.allocUnsafe(head.length + length);
  wire.write(head, 0, 'latin1');
  wire.write(body, head.length, 'utf8');
  return wire;
}

function invalid(message: string, target: string): never {
  throw new HttpError('InvalidRequest', message, { target });
}
