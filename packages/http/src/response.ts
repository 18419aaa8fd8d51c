import { HttpError } from './errors.js';

/** Header names in lower case; a header sent more than once is a list, in the order received. */
export type HttpHeaders = Record<string, string | string[] | undefined>;

/** An answer: status, headers and the body as UTF-8 text. */
export interface HttpResponse {
  /** The status code, e.g. 200. */
  status: number;
  /** The headers, by lower-case name. */
  headers: HttpHeaders;
  /** The body, decoded as UTF-8 (empty when there is none). */
  body: string;
}

/** A complete answer, and whether its connection can carry another request. */
export interface ReadResponse {
  /** The answer. */
  response: HttpResponse;
  /**
   * False when the connection must not be reused: the answer said `Connection: close`, its body ran to the
   * close, or more bytes followed it than it announced.
   */
  reusable: boolean;
}

/** Options of {@link ResponseReader}. */
export interface ResponseReaderOptions {
  /** The most bytes the status line and headers may take (default 64 KiB, as Node's own parser). */
  maxHeadBytes?: number | undefined;
}

/** The default limit of a response head: 64 KiB. */
export const DEFAULT_MAX_HEAD_BYTES = 64 * 1024;

const HEADER_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: |$)/;
const STATUS_START = Buffer.from('HTTP/1.');

/**
 * Reads one HTTP/1.1 answer from the bytes of a connection as they arrive: the head (status line and
 * headers), then a body of `Content-Length` bytes, none for 204 and 304, or (no length) everything up to
 * the close. Bytes may arrive in any pieces. A chunked answer is refused, not decoded.
 *
 * @example Feeding an answer in two pieces
 * ```ts
 * import { ResponseReader } from '@datapath/http';
 * const reader = new ResponseReader();
 * reader.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel'));
 * console.log(reader.read(false)); // undefined: two bytes missing
 * reader.push(Buffer.from('lo'));
 * console.log(reader.read(false)?.response.body); // hello
 * ```
 */
export class ResponseReader {
  #chunks: Buffer[] = [];
  #size = 0;
  #head: { status: number; headers: HttpHeaders; bodyAt: number; closing: boolean } | undefined;
  #want: number | 'close' = 'close';
  readonly #maxHead: number;

  constructor(options: ResponseReaderOptions = {}) {
    this.#maxHead = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
  }

  /** Adds bytes received. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /**
   * The answer once complete, else undefined (more bytes needed). `ended`: the peer closed, so a body
   * without a length is complete; an answer still incomplete then stays undefined.
   *
   * @throws {@link HttpError} `Protocol` (reasons `NotHttp`, `Chunked`, `BadLength`) for an answer this
   *   reader does not take; `TooBig` (reason `HeadTooBig`) for a head longer than `maxHeadBytes`.
   */
  read(ended: boolean): ReadResponse | undefined {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [all];
    if (this.#head === undefined) {
      const end = all.indexOf(HEADER_END);
      if (end < 0) {
        if (all.length > this.#maxHead) this.#tooBig();
        // Bytes that cannot start a status line: no point waiting for the rest of a head.
        const n = Math.min(all.length, STATUS_START.length);
        if (all.compare(STATUS_START, 0, n, 0, n) !== 0) this.#notHttp(all.toString('latin1', 0, 80));
        return undefined;
      }
      if (end > this.#maxHead) this.#tooBig();
      this.#head = this.#parseHead(all.toString('latin1', 0, end), end + 4);
    }
    const { status, headers, bodyAt, closing } = this.#head;
    const want = this.#want;
    if (want === 'close') {
      if (!ended) return undefined;
      return { response: { status, headers, body: all.toString('utf8', bodyAt) }, reusable: false };
    }
    if (all.length - bodyAt < want) return undefined;
    return {
      response: { status, headers, body: all.toString('utf8', bodyAt, bodyAt + want) },
      reusable: !closing && all.length - bodyAt === want,
    };
  }

  #parseHead(
    text: string,
    bodyAt: number,
  ): { status: number; headers: HttpHeaders; bodyAt: number; closing: boolean } {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0] ?? '');
    if (m === null) this.#notHttp(lines[0] ?? '');
    const headers: HttpHeaders = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const had = headers[name];
      headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
    }
    const status = Number(m[1]);
    const te = headers['transfer-encoding'];
    if (te !== undefined)
      throw new HttpError('Chunked', `an answer with Transfer-Encoding ${String(te)} (expected a length)`);
    const cl = headers['content-length'];
    if (cl !== undefined) {
      const n = typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : Number.NaN;
      if (!Number.isSafeInteger(n)) throw new HttpError('BadLength', `bad Content-Length ${String(cl)}`);
      this.#want = n;
    } else if (status === 204 || status === 304) this.#want = 0;
    else this.#want = 'close';
    const conn = headers.connection;
    const closing = typeof conn === 'string' && conn.toLowerCase() === 'close';
    return { status, headers, bodyAt, closing };
  }

  #notHttp(start: string): never {
    throw new HttpError(
      'NotHttp',
      `not an HTTP answer: ${JSON.stringify(start.split('\r\n')[0]!.slice(0, 80))}`,
    );
  }

  #tooBig(): never {
    throw new HttpError('HeadTooBig', `an answer head longer than ${this.#maxHead} bytes`);
  }
}
