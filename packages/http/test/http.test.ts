// @datapath/http, the one HTTP/1.1 framing of the SDK's local clients (the agent API client, the CNI plugin's
// agent mode): request bytes, the answer reader fed in every split, and exchange() against real servers on a
// unix socket in a temp directory (node:http, and hand-written ones for what node:http never sends).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatapathError } from '@datapath/errors';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_HEAD_BYTES,
  exchange,
  formatRequest,
  HttpError,
  type ReadResponse,
  ResponseReader,
} from '../src/index.js';

const failure = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as HttpError;
  }
  throw new Error('expected a failure');
};

describe('formatRequest', () => {
  it('writes the request line, Host, and for a body its type and UTF-8 length', () => {
    expect(formatRequest('GET', '/v1/health', { host: 'agent' })).toBe(
      'GET /v1/health HTTP/1.1\r\nHost: agent\r\n\r\n',
    );
    expect(formatRequest('GET', '/')).toBe('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const body = '{"name":"pod-ü"}';
    const wire = formatRequest('POST', '/v1/x?a=1', { host: 'agent', body, contentType: 'application/json' });
    expect(wire.toString('utf8')).toBe(
      `POST /v1/x?a=1 HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n${body}`,
    );
    expect(Buffer.byteLength(body)).toBe(17);
    // An empty body still says its length; no type unless given.
    expect(formatRequest('POST', '/c', { host: 'agent', body: '' }).toString('latin1')).toBe(
      'POST /c HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\n\r\n',
    );
    // The type goes only with a body.
    expect(formatRequest('GET', '/', { contentType: 'application/json' })).not.toContain('Content-Type');
  });

  it('refuses what would split or smuggle a request', () => {
    const bad: [string, string, string?][] = [
      ['GET', '/a b'],
      ['GET', '/a\r\nX: 1'],
      ['GET', '/a\tb'],
      ['GET', '/ü'],
      ['GET', ''],
      ['', '/'],
      ['GE T', '/'],
      ['POST', '/', 'application/json\r\nX: 1'],
      ['POST', '/', 'a\x00b'],
      ['POST', '/', 'a\u0100b'],
    ];
    for (const [method, path, type] of bad) {
      const e = failure(() => formatRequest(method, path, { body: '{}', contentType: type }));
      expect(e, JSON.stringify([method, path, type])).toBeInstanceOf(HttpError);
      expect([e.code, e.reason, e.name]).toEqual(['InvalidArgument', 'InvalidRequest', 'HttpError']);
      expect(e).toBeInstanceOf(DatapathError);
    }
    expect(failure(() => formatRequest('GET', '/', { host: 'a\r\nb' })).reason).toBe('InvalidRequest');
    // A tab and Latin-1 are fine in a value.
    const latin = formatRequest('POST', '/', { body: '', contentType: 'text/plain;\tq=é' }) as Buffer;
    expect(latin.includes(0xe9)).toBe(true);
  });
});

/** Feeds `text` to a reader in the pieces given by `cuts` and reads after each; the first result. */
function feed(text: string | Buffer, cuts: number[], ended = false): ReadResponse | undefined {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const reader = new ResponseReader();
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    reader.push(bytes.subarray(at, cut));
    at = cut;
    const got = reader.read(false);
    if (got !== undefined) return got;
  }
  return reader.read(ended);
}

describe('ResponseReader', () => {
  it('reads an answer split at every byte, with repeated headers as a list and a UTF-8 body', () => {
    const text =
      'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Twice: a\r\nx-twice: b\r\nContent-Length: 13\r\n\r\n{"n":"pod-ü"}';
    expect(Buffer.byteLength(text) - text.indexOf('{')).toBe(14); // ü is two bytes
    const whole =
      'HTTP/1.1 201 Created\r\nX-Twice: a\r\nx-twice: b\r\nContent-Length: 14\r\n\r\n{"n":"pod-ü"}';
    const bytes = Buffer.from(whole, 'utf8');
    for (let cut = 0; cut <= bytes.length; cut++) {
      // Two pieces at every position, including one inside the ü and one inside the CRLFCRLF.
      const got = feed(bytes, [cut]);
      expect(got, `cut at ${cut}`).toEqual({
        response: {
          status: 201,
          headers: { 'x-twice': ['a', 'b'], 'content-length': '14' },
          body: '{"n":"pod-ü"}',
        },
        reusable: true,
      });
    }
    // One byte at a time.
    expect(
      feed(
        bytes,
        Array.from({ length: bytes.length }, (_, i) => i),
      )?.response.body,
    ).toBe('{"n":"pod-ü"}');
    // Until the last byte arrives there is no answer.
    const r = new ResponseReader();
    r.push(bytes.subarray(0, bytes.length - 1));
    expect(r.read(false)).toBeUndefined();
    expect(r.read(true)).toBeUndefined();
  });

  it('says when the connection cannot carry another request', () => {
    expect(feed('HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n{}', [])?.reusable).toBe(
      false,
    );
    expect(
      feed('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}', [])?.reusable,
    ).toBe(true);
    // More than announced: the surplus would be taken for the next answer.
    const surplus = feed('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK', []);
    expect([surplus?.response.body, surplus?.reusable]).toEqual(['{}', false]);
    // No length: the body runs to the close (and only then is the answer complete).
    const open = new ResponseReader();
    open.push(Buffer.from('HTTP/1.0 500 Oops\r\n\r\nno length '));
    expect(open.read(false)).toBeUndefined();
    open.push(Buffer.from('here'));
    expect(open.read(true)).toEqual({
      response: { status: 500, headers: {}, body: 'no length here' },
      reusable: false,
    });
    // 204 and 304 have no body without a length.
    for (const status of [204, 304])
      expect(feed(`HTTP/1.1 ${status} X\r\n\r\n`, [])).toEqual({
        response: { status, headers: {}, body: '' },
        reusable: true,
      });
  });

  it('refuses answers that are not HTTP/1.x, chunked, or of a bad length', () => {
    const refused = (text: string, cuts: number[] = []) => failure(() => feed(text, cuts));
    for (const text of [
      'SSH-2.0-OpenSSH_9\r\n\r\n',
      'HTTP/2 200\r\n\r\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'hello',
    ])
      expect([refused(text).code, refused(text).reason], text).toEqual(['Protocol', 'NotHttp']);
    // Refused as soon as the first bytes show it, without waiting for a head's end.
    expect(refused('SSH-2.0-', [2]).reason).toBe('NotHttp');
    expect(refused('{"error":').message).toContain('not an HTTP answer');
    const chunked = refused('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect([chunked.code, chunked.reason]).toEqual(['Protocol', 'Chunked']);
    for (const cl of ['-1', '1e3', 'x', '', '99999999999999999999'])
      expect(refused(`HTTP/1.1 200 OK\r\nContent-Length: ${cl}\r\n\r\n`).reason, cl).toBe('BadLength');
    expect(refused('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}').reason).toBe(
      'BadLength',
    );
  });

  it('refuses a head longer than maxHeadBytes, with or without its end', () => {
    const long = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(DEFAULT_MAX_HEAD_BYTES)}`;
    const open = new ResponseReader();
    open.push(Buffer.from(long));
    const e = failure(() => open.read(false));
    expect([e.code, e.reason]).toEqual(['TooBig', 'HeadTooBig']);
    expect(failure(() => feed(`${long}\r\nContent-Length: 0\r\n\r\n`, [])).reason).toBe('HeadTooBig');
    const small = new ResponseReader({ maxHeadBytes: 64 });
    small.push(Buffer.from(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(60)}\r\n\r\n`));
    expect(failure(() => small.read(false)).reason).toBe('HeadTooBig');
    // Just under the limit is fine.
    const fits = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(DEFAULT_MAX_HEAD_BYTES - 40)}\r\nContent-Length: 0\r\n\r\n`;
    expect(feed(fits, [1000, 30_000])?.response.status).toBe(200);
  });
});

describe('exchange', () => {
  let cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.reverse()) c();
    cleanup = [];
  });

  async function serve(onConnection: (s: Socket) => void): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'dp-http-'));
    const path = join(dir, 's.sock');
    const server: Server = createServer(onConnection);
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanup.push(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return path;
  }

  function socket(path: string): Socket {
    const s = connect(path);
    cleanup.push(() => s.destroy());
    return s;
  }

  /** A server that answers each request with `answer(firstLine)` written in `piece`-byte writes. */
  const scripted = (answer: (line: string) => string | undefined, piece = 1 << 20) =>
    serve((s) =>
      s.on('data', async (d) => {
        const text = answer(d.toString('latin1').split('\r\n')[0]!);
        if (text === undefined) return;
        const bytes = Buffer.from(text, 'utf8');
        for (let i = 0; i < bytes.length; i += piece) {
          s.write(bytes.subarray(i, i + piece));
          if (piece < bytes.length) await new Promise((r) => setTimeout(r, 2));
        }
      }),
    );

  const reasonOf = (p: Promise<unknown>) =>
    p.then(
      () => 'answered',
      (e: HttpError) => (e instanceof HttpError ? e.reason : `not an HttpError: ${e}`),
    );

  it('sends the request and reads node:http answers, twice on one connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dp-http-'));
    const path = join(dir, 's.sock');
    const conns: Socket[] = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const text = JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, body });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
    server.on('connection', (s) => conns.push(s));
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanup.push(() => {
      server.close();
      server.closeAllConnections();
      rmSync(dir, { recursive: true, force: true });
    });
    const s = socket(path);
    const listeners = () => ['data', 'end', 'error', 'close'].map((e) => s.listenerCount(e));
    const before = listeners();
    const a = await exchange(s, formatRequest('POST', '/v1/cni', { host: 'agent', body: '{"ü":1}' }));
    expect(a.reusable).toBe(true);
    expect(JSON.parse(a.response.body)).toEqual({
      method: 'POST',
      url: '/v1/cni',
      host: 'agent',
      body: '{"ü":1}',
    });
    // Text (a request without a body) goes out as Latin-1: node:http reads the same Host back.
    const b = await exchange(s, formatRequest('GET', '/v1/health', { host: 'hôte' }), { timeoutMs: 5_000 });
    expect(JSON.parse(b.response.body)).toMatchObject({
      method: 'GET',
      url: '/v1/health',
      host: 'hôte',
      body: '',
    });
    expect(conns).toHaveLength(1);
    // Its listeners are gone once it settled.
    expect(listeners()).toEqual(before);
  });

  it('reads an answer written in pieces, and one without a length up to the close', async () => {
    const path = await scripted((line) => {
      if (line.startsWith('GET /pieces')) return 'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world';
      return undefined;
    }, 7);
    const got = await exchange(socket(path), formatRequest('GET', '/pieces'), { timeoutMs: 5_000 });
    expect([got.response.status, got.response.body, got.reusable]).toEqual([200, 'hello world', true]);
    const closing = await serve((s) =>
      s.once('data', () => s.end('HTTP/1.1 500 Oops\r\n\r\nno length here')),
    );
    const c = await exchange(socket(closing), formatRequest('GET', '/'), { timeoutMs: 5_000 });
    expect([c.response.status, c.response.body, c.reusable]).toEqual([500, 'no length here', false]);
  });

  it('fails typed: not HTTP, chunked, oversized head, closed early, timeout, unreachable', async () => {
    const path = await scripted((line) => {
      const url = line.split(' ')[1];
      if (url === '/garbage') return 'SSH-2.0-hello\r\n';
      if (url === '/chunked')
        return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
      if (url === '/huge') return `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(100_000)}\r\n\r\n`;
      return undefined; // '/silent' and '/half'
    }, 4096);
    const on = (url: string, timeoutMs = 5_000) =>
      reasonOf(exchange(socket(path), formatRequest('GET', url), { timeoutMs }));
    expect(await on('/garbage')).toBe('NotHttp');
    expect(await on('/chunked')).toBe('Chunked');
    expect(await on('/huge')).toBe('HeadTooBig');
    const t0 = performance.now();
    const silent = exchange(socket(path), formatRequest('GET', '/silent'), { timeoutMs: 100 });
    const timedOut = (await silent.catch((e) => e)) as HttpError;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    expect([timedOut.code, timedOut.reason, timedOut.message]).toEqual([
      'TimedOut',
      'Timeout',
      'no answer within 100 ms',
    ]);
    // The peer closes halfway through the body, or without a word.
    const half = await serve((s) =>
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a"')),
    );
    const closed = (await exchange(socket(half), formatRequest('GET', '/')).catch((e) => e)) as HttpError;
    expect([closed.code, closed.reason]).toEqual(['Unavailable', 'Closed']);
    const mute = await serve((s) => s.once('data', () => s.destroy()));
    expect(await reasonOf(exchange(socket(mute), formatRequest('GET', '/')))).toBe('Closed');
    // No such socket: the stream's error, its code kept.
    const gone = (await exchange(socket(`${path}.none`), formatRequest('GET', '/')).catch(
      (e) => e,
    )) as HttpError;
    expect([gone.code, gone.reason, gone.errnoName]).toEqual(['Unavailable', 'Socket', 'ENOENT']);
    expect((gone.cause as { code?: string }).code).toBe('ENOENT');
  });
});
