// The API client's HTTP/1.1 transport against node:http and hand-written servers on a unix socket in a temp
// directory: kept-alive reuse, a connection per concurrent request, a connection the server dropped while idle
// (reported as reused, retried once by AgentClient), and how the failures of the framing (@datapath/http, whose
// own tests cover answers in pieces, non-HTTP and chunked answers, oversized heads and timeouts) read here.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentApiError, AgentClient } from '../src/api/client.js';
import { type TransportError, UnixHttpTransport } from '../src/api/transport.js';

let cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.reverse()) c();
  cleanup = [];
});

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-transport-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 's.sock');
}

async function listen<S extends Server | HttpServer>(server: S, path: string): Promise<S> {
  await new Promise<void>((r) => server.listen(path, () => r()));
  cleanup.push(() => {
    server.close();
    (server as HttpServer).closeAllConnections?.();
  });
  return server;
}

/** A node:http server echoing method, url, content type and body; counts its connections. */
async function echo(path: string) {
  const conns: Socket[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = JSON.stringify({
        method: req.method,
        url: req.url,
        type: req.headers['content-type'] ?? null,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(req.url?.startsWith('/created') ? 201 : 200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(text),
        'X-Twice': ['a', 'b'],
      });
      res.end(text);
    });
  });
  server.on('connection', (s) => conns.push(s));
  await listen(server, path);
  return { server, conns };
}

describe('UnixHttpTransport', () => {
  it('sends method, path, type and body; reads status, headers and body; reuses one connection', async () => {
    const path = socketPath();
    const { conns } = await echo(path);
    const t = new UnixHttpTransport(path);
    cleanup.push(() => t.close());
    const body = JSON.stringify({ name: 'pod-ü', n: 1 });
    const a = await t.request('POST', '/created?x=1', body, 'application/json', 5_000);
    expect(a.status).toBe(201);
    expect(JSON.parse(a.body)).toEqual({
      method: 'POST',
      url: '/created?x=1',
      type: 'application/json',
      body,
    });
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.headers['x-twice']).toEqual(['a', 'b']);
    const b = await t.request('GET', '/v1/health', undefined, 'application/json', 5_000);
    expect(JSON.parse(b.body)).toMatchObject({ method: 'GET', type: null, body: '' });
    expect(conns).toHaveLength(1);
    // Two at once: two connections, both answered.
    const both = await Promise.all([
      t.request('GET', '/1', undefined, 'application/json', 5_000),
      t.request('GET', '/2', undefined, 'application/json', 5_000),
    ]);
    expect(both.map((x) => JSON.parse(x.body).url)).toEqual(['/1', '/2']);
    expect(conns).toHaveLength(2);
  });

  it('reports the framing failures of @datapath/http (tested there) as errno-style codes', async () => {
    const path = socketPath();
    await listen(
      createServer((s) => {
        s.on('data', (d) => {
          const url = d.toString('latin1').split(' ')[1];
          if (url === '/garbage') s.end('SSH-2.0-hello\r\n\r\n');
          else if (url === '/cut') s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{');
          // '/silent': never answers
        });
      }),
      path,
    );
    const t = new UnixHttpTransport(path);
    cleanup.push(() => t.close());
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'answered',
        (e: TransportError) => e.code,
      );
    expect(await code(t.request('GET', '/silent', undefined, 'application/json', 100))).toBe('ETIMEDOUT');
    expect(await code(t.request('GET', '/garbage', undefined, 'application/json', 5_000))).toBe('EPROTO');
    expect(await code(t.request('GET', '/cut', undefined, 'application/json', 5_000))).toBe('ECONNRESET');
    expect(await code(t.request('GET', '/a b', undefined, 'application/json', 5_000))).toBe('EINVAL');
    expect(await code(t.request('GET', '/a\r\nX: 1', undefined, 'application/json', 5_000))).toBe('EINVAL');
    expect(await code(t.request('POST', '/', '{}', 'application/json\r\nX: 1', 5_000))).toBe('EINVAL');
    const missing = new UnixHttpTransport(`${path}.none`);
    expect(await code(missing.request('GET', '/', undefined, 'application/json', 5_000))).toBe('ENOENT');
  });

  it('a kept-alive connection the server dropped while idle fails as reused; AgentClient sends once more', async () => {
    const path = socketPath();
    const { server, conns } = await echo(path);
    const t = new UnixHttpTransport(path);
    cleanup.push(() => t.close());
    await t.request('GET', '/first', undefined, 'application/json', 5_000);
    // The server ends the idle connection (as at its keep-alive timeout): the next request opens a new one.
    server.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    const again = await t.request('GET', '/second', undefined, 'application/json', 5_000);
    expect(JSON.parse(again.body).url).toBe('/second');
    expect(conns).toHaveLength(2);

    // A connection closed by the server without the client noticing yet (no FIN read): the request on it breaks.
    const raw = socketPath();
    let served = 0;
    await listen(
      createServer((s) => {
        s.once('data', () => {
          served++;
          // Answers once, then drops the connection the moment the next request arrives.
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
          s.once('data', () => s.destroy());
        });
      }),
      raw,
    );
    const rt = new UnixHttpTransport(raw);
    cleanup.push(() => rt.close());
    await rt.request('GET', '/v1/health', undefined, 'application/json', 5_000);
    const err = await rt.request('GET', '/v1/health', undefined, 'application/json', 5_000).catch((e) => e);
    expect(err).toMatchObject({ code: 'ECONNRESET', reused: true });
    const client = new AgentClient({ socketPath: raw });
    cleanup.push(() => client.close());
    expect(await client.status()).toEqual({});
    expect(await client.status()).toEqual({});
    expect(served).toBe(3);
    const down = new AgentClient({ socketPath: `${raw}.none` });
    const e = (await down.health().catch((x) => x)) as AgentApiError;
    expect([e.status, e.code, e.reason]).toEqual([0, 'Unavailable', 'ENOENT']);
  });
});
