// The Node client of agent mode against a stand-in agent on a unix socket (no root, no kernel): the
// request it sends, the confirmation sent before anything is printed, and the CNI errors for an agent that
// is down (11, 50 for STATUS) or that answers badly.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { forwardToAgent } from '../src/sys/agent-forward.js';

let dir: string | undefined;
let server: Server | undefined;
// Every temp dir made (a test may make two fake agents): removed after each test.
const dirs: string[] = [];
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  dir = undefined;
});

async function fakeAgent(
  answer: (path: string, body: string) => { status: number; headers?: Record<string, string>; body: string },
) {
  dir = mkdtempSync(join(tmpdir(), 'cni-fwd-'));
  dirs.push(dir);
  const seen: { method: string; path: string; body: string }[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      seen.push({ method: req.method!, path: req.url!, body });
      const a = answer(req.url!, body);
      res.writeHead(a.status, { 'Content-Length': Buffer.byteLength(a.body), ...a.headers });
      res.end(a.body);
    });
  });
  const socket = join(dir, 'api.sock');
  await new Promise<void>((r) => server!.listen(socket, () => r()));
  return { socket, seen };
}

const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  HOME: '/root',
};

describe('agent mode Node client', () => {
  it('forwards the CNI_* variables and stdin in one request and confirms before returning the answer', async () => {
    const result = '{"cniVersion":"1.0.0","ips":[]}\n';
    const { socket, seen } = await fakeAgent((path) =>
      path === '/v1/cni'
        ? {
            status: 200,
            headers: { 'X-Cni-Exit': '0', 'X-Cni-Confirm': '/v1/cni/confirm?ip=10.244.1.9&owner=o' },
            body: result,
          }
        : { status: 200, body: '{}' },
    );
    const stdin = '{"cniVersion":"1.0.0","name":"n","type":"datapath-cni","mode":"agent"}';
    const r = await forwardToAgent(env, stdin, { agentSocket: socket, cniVersion: '1.0.0' });
    expect(r).toEqual({ stdout: result, status: 0 });
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      'POST /v1/cni',
      'POST /v1/cni/confirm?ip=10.244.1.9&owner=o',
    ]);
    // only CNI_* travels
    expect(JSON.parse(seen[0]!.body)).toEqual({
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' },
      stdin,
    });
  });

  it('fails the ADD (code 11) when the confirmation is refused: the lease expired meanwhile', async () => {
    const { socket } = await fakeAgent((path) =>
      path === '/v1/cni'
        ? { status: 200, headers: { 'X-Cni-Exit': '0', 'X-Cni-Confirm': '/v1/cni/confirm?ip=1' }, body: '{}' }
        : { status: 404, body: '{"error":{"code":"NotFound","message":"expired"}}' },
    );
    const r = await forwardToAgent(env, '{}', { agentSocket: socket, cniVersion: '1.0.0' });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0', code: 11 });
  });

  it('passes the plugin exit status through, and says 999 for an agent that answers an HTTP error', async () => {
    const { socket } = await fakeAgent(() => ({
      status: 200,
      headers: { 'X-Cni-Exit': '1' },
      body: '{"code":7}',
    }));
    expect(await forwardToAgent(env, '{}', { agentSocket: socket })).toEqual({
      stdout: '{"code":7}',
      status: 1,
    });
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const bad = await fakeAgent(() => ({ status: 400, body: '{"error":{"message":"unknown field"}}' }));
    const r = await forwardToAgent(env, '{}', { agentSocket: bad.socket, cniVersion: '0.4.0' });
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '0.4.0', code: 999 });
    expect(r.stdout).toContain('HTTP 400');
  });

  it('an agent that is not there: code 11, and 50 for STATUS, naming the socket', async () => {
    const sock = '/nonexistent/datapath/api.sock';
    const add = await forwardToAgent(env, '{}', { agentSocket: sock, cniVersion: '1.1.0' });
    expect(add.status).toBe(1);
    expect(JSON.parse(add.stdout)).toMatchObject({ cniVersion: '1.1.0', code: 11 });
    expect(JSON.parse(add.stdout).msg).toContain(sock);
    const st = await forwardToAgent({ ...env, CNI_COMMAND: 'STATUS' }, '{}', { agentSocket: sock });
    expect(JSON.parse(st.stdout)).toMatchObject({ code: 50 });
  });

  it('an agent that answers something that is not HTTP/1.1 with a length: code 999, not "unreachable"', async () => {
    for (const answer of [
      'SSH-2.0-hello\r\n',
      'HTTP/1.1 200 OK\r\nX-Cni-Exit: 0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
      // a confirmation path that would split the request
      'HTTP/1.1 200 OK\r\nX-Cni-Exit: 0\r\nX-Cni-Confirm: /v1/cni/confirm x\r\nContent-Length: 2\r\n\r\n{}',
    ]) {
      dir = mkdtempSync(join(tmpdir(), 'cni-fwd-'));
      const socket = join(dir, 'api.sock');
      const raw = createNetServer((s) => s.once('data', () => s.write(answer)));
      await new Promise<void>((r) => raw.listen(socket, () => r()));
      try {
        const r = await forwardToAgent(env, '{}', { agentSocket: socket, cniVersion: '1.0.0' });
        expect(r.status, answer).toBe(1);
        expect(JSON.parse(r.stdout), answer).toMatchObject({
          code: 999,
          msg: `datapath agent at ${socket} answered badly`,
        });
      } finally {
        raw.close();
        rmSync(dir, { recursive: true, force: true });
        dir = undefined;
      }
    }
  });
});
