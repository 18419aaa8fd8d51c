// The agent's local API on its unix socket, against a real agent (namespaces, datapath, policy): IPAM with
// expiration (timer and restart), endpoints wired into namespaces the test made (identity, policy with real
// packets against a scenario pod), policy apply in JSON and YAML, the peer-credential check with a uid-65534
// child, and hostile input (limits, malformed JSON, unknown fields/paths, a few hundred random requests)
// leaving the agent serving with its state intact; an `agent serve` killed with SIGKILL right after it
// answered keeps every change it reported (the state journal) when restored.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore } from '@datapath/ipam/file-store';
import { hostIfname } from '@datapath/netdev';
import type { PolicyObject } from '@datapath/policy';
import { requireRoot, scanLeaks, type TestNetns, uniqueName, withNetns } from '@datapath/testutils';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { type AgentApiError, AgentClient } from '../src/api/client.js';
import { ApiServer } from '../src/api/server.js';
import { loadState, saveState } from '../src/state.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

let made: { prefix: string; stateDir: string }[] = [];

function options(): AgentOptions & { prefix: string; stateDir: string } {
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-api-'));
  rmSync(stateDir, { recursive: true });
  made.push({ prefix, stateDir });
  return { name: prefix, prefix, stateDir, podCidr: '10.244.1.0/24' };
}

afterEach(() => {
  for (const { prefix, stateDir } of made) {
    const leaks = scanLeaks(prefix);
    for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
    expect(leaks).toEqual({ netns: [], links: [], pins: [] });
    expect(existsSync(stateDir)).toBe(false);
  }
  made = [];
});

const allowFromClient: PolicyObject = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-client', namespace: 'shop' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }],
  },
};

/** An agent with a scenario pod `shop/server`, serving its API; destroyed afterwards. */
async function withServing<T>(
  fn: (ctx: { agent: Agent; server: ApiServer; client: AgentClient; o: AgentOptions }) => Promise<T>,
  lease = 30_000,
): Promise<T> {
  const o = options();
  const agent = await Agent.start(o, {
    namespaces: { shop: { labels: { team: 'shop' } } },
    policies: [allowFromClient],
    enforcement: 'default',
  });
  let server: ApiServer | undefined;
  const client = new AgentClient({ socketPath: join(o.stateDir, 'api.sock') });
  try {
    agent.addPods([{ namespace: 'shop', name: 'server', labels: { app: 'server' } }]);
    server = await ApiServer.listen(agent, { cniLeaseMs: lease, maxBodyBytes: 64 * 1024 });
    return await fn({ agent, server, client, o });
  } finally {
    client.close();
    await server?.close();
    agent.destroy();
  }
}

async function probe(fromNetns: string, ip: string): Promise<string> {
  const [r] = await runProbes(fromNetns, [{ id: 0, host: ip, port: 80, protocol: 'TCP', timeoutMs: 700 }]);
  return r!.result;
}

async function until(what: string, fn: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Sends raw bytes on a fresh connection and returns everything the agent answered until it closed. */
function rawExchange(socketPath: string, bytes: string | Buffer, waitMs = 300): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    let got = '';
    s.on('data', (d) => {
      got += d.toString();
    });
    s.on('error', () => undefined);
    s.on('connect', () => s.write(bytes));
    const done = () => resolve(got);
    s.on('close', done);
    setTimeout(() => {
      s.destroy();
      done();
    }, waitMs);
  });
}

describe('agent API', () => {
  it('owns its socket (0600 in a 0700 directory) and answers health and status', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ server, client, o }) => {
      expect(statSync(server.socketPath).mode & 0o777).toBe(0o600);
      expect(statSync(o.stateDir!).mode & 0o777).toBe(0o700);
      expect(await client.health()).toBe(true);
      const st = await client.status();
      expect(st).toMatchObject({ name: o.name, podCidr: '10.244.1.0/24', endpoints: 1, policies: 1 });
      // a second server on the same socket is refused while the first answers
      await expect(ApiServer.listen({ options: { stateDir: o.stateDir } } as Agent)).rejects.toMatchObject({
        reason: 'AlreadyRunning',
      });
    });
  });

  it('IPAM: an unconfirmed address expires (timer), a confirmed one stays, release frees', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ client }) => {
      const a = await client.allocate('test:a', { expiresInMs: 300 });
      const b = await client.allocate('test:b', { expiresInMs: 300 });
      expect(a.ip).not.toBe(b.ip);
      expect(a.expiresAt).toBeGreaterThan(Date.now() - 1000);
      expect((await client.allocations()).pending[a.ip]?.owner).toBe('test:a');
      await client.confirm(b.ip);
      await until('a to expire', async () => (await client.allocations()).allocations[a.ip] === undefined);
      const after = await client.allocations();
      expect(after.allocations[b.ip]).toBe('test:b');
      expect(after.pending).toEqual({});
      // a late confirmation of the expired address is a clear 404
      await expect(client.confirm(a.ip)).rejects.toMatchObject({ status: 404, code: 'NotFound' });
      expect(await client.release(b.ip)).toEqual({ ip: b.ip, released: true });
      expect(await client.release(b.ip)).toEqual({ ip: b.ip, released: false });
      await expect(client.allocate('x', { family: 6 })).rejects.toMatchObject({ status: 422 });
    });
  });

  it('endpoints into a namespace the caller made: identity, policy with real packets, get/list/delete', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ agent, client }) => {
      await withNetns(2, async (c1: TestNetns, c2: TestNetns) => {
        const lease = await client.allocate('cni:c1:eth0', { expiresInMs: 2_000 });
        const e1 = await client.createEndpoint({
          containerId: 'c1',
          netns: c1.path,
          ifname: 'eth0',
          podNamespace: 'shop',
          podName: 'client',
          labels: { app: 'client' },
          ip: lease.ip,
        });
        expect(e1).toMatchObject({ pod: 'shop/client', ip: lease.ip, source: 'cni', containerId: 'c1' });
        expect(e1.identity).toBeGreaterThan(255);
        expect((await client.allocations()).pending).toEqual({}); // taking the address confirmed it
        const e2 = await client.createEndpoint({
          containerId: 'c2',
          netns: c2.path,
          podNamespace: 'shop',
          podName: 'other',
          labels: { app: 'other' },
        });
        expect(e2.identity).not.toBe(e1.identity);
        expect((await client.endpoints()).map((e) => e.pod).sort()).toEqual([
          'shop/client',
          'shop/other',
          'shop/server',
        ]);
        expect(await client.endpoint(e1.id)).toEqual(e1);
        // the same attachment twice is a conflict, and leaves nothing new
        await expect(
          client.createEndpoint({
            containerId: 'c1',
            netns: c1.path,
            podNamespace: 'shop',
            podName: 'again',
          }),
        ).rejects.toMatchObject({ status: 409 });

        const server = agent.resolve('shop/server');
        const l = await startListener(server.netnsPath, 'shop/server', [{ port: 80, protocol: 'TCP' }]);
        try {
          expect(await probe(c1.path, server.ip)).toBe('connected');
          expect(await probe(c2.path, server.ip)).toBe('timeout');
          // policy through the API (YAML): allow `other` too
          const yaml = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-client, namespace: shop }
spec:
  podSelector: { matchLabels: { app: server } }
  ingress:
    - from: [{ podSelector: { matchLabels: { app: other } } }, { podSelector: { matchLabels: { app: client } } }]
      ports: [{ port: 80 }]
`;
          const sync = await client.applyPolicies({ yaml });
          expect(sync.writes).toBeGreaterThan(0);
          expect(await probe(c2.path, server.ip)).toBe('connected');
          // and back in JSON
          await client.applyPolicies([allowFromClient]);
          expect(await probe(c2.path, server.ip)).toBe('timeout');
          expect((await client.policies()).policies).toHaveLength(1);
        } finally {
          await l.close();
        }

        expect(await client.deleteEndpoint(e1.id)).toMatchObject({ removed: true });
        await expect(client.endpoint(e1.id)).rejects.toMatchObject({ status: 404 });
        expect(await client.deleteAttachment('c2', 'eth0')).toEqual({ removed: true });
        expect(await client.deleteAttachment('c2', 'eth0')).toEqual({ removed: false });
        const links = spawnSync('ip', ['-n', c1.name, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout;
        expect(JSON.parse(links).map((x: { ifname: string }) => x.ifname)).toEqual(['lo']);
        expect(
          Object.values((await client.allocations()).allocations).filter((o) => o.startsWith('cni:')),
        ).toEqual([]);
      });
    });
  });

  it('an endpoint create that fails once its veth exists (attach and routes under way) leaves nothing behind', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ agent, client, o }) => {
      await withNetns(async (c1: TestNetns) => {
        // The pod's default route is taken already: the pod's requests fail after the veth was made, while
        // the datapath is being attached to it.
        spawnSync('ip', ['-n', c1.name, 'link', 'set', 'lo', 'up']);
        spawnSync('ip', ['-n', c1.name, 'route', 'add', 'default', 'dev', 'lo']);
        const spec = {
          containerId: 'f1',
          netns: c1.path,
          podNamespace: 'shop',
          podName: 'failing',
          labels: { app: 'client' },
        };
        await expect(client.createEndpoint(spec)).rejects.toMatchObject({
          status: 409,
          code: 'AlreadyExists',
        });
        const state = loadState(o.stateDir!);
        const hostLinks = spawnSync('ip', ['-n', state.nodeNetns, '-j', 'link', 'show'], {
          encoding: 'utf8',
        }).stdout;
        expect(JSON.parse(hostLinks).map((x: { ifname: string }) => x.ifname)).not.toContain(
          hostIfname('f1', 'eth0', 'cilium'),
        );
        const podLinks = spawnSync('ip', ['-n', c1.name, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout;
        expect(JSON.parse(podLinks).map((x: { ifname: string }) => x.ifname)).toEqual(['lo']);
        const server = agent.pods().find((p) => p.key === 'shop/server')!;
        expect(readdirSync(join(agent.datapath.pinDir, 'links')).sort()).toEqual(
          [`ep${server.lxcId}_egress`, `ep${server.lxcId}_ingress`].sort(),
        );
        expect(agent.pods().map((p) => p.key)).toEqual(['shop/server']);
        expect(Object.values(agent.pool.allocations()).filter((x) => x.includes('f1'))).toEqual([]);
        expect(Object.keys(state.pods)).toEqual(['shop/server']);
        // The same pod and attachment go through once the route is gone (name, address and endpoint id free).
        spawnSync('ip', ['-n', c1.name, 'route', 'del', 'default', 'dev', 'lo']);
        const ep = await client.createEndpoint(spec);
        expect(ep).toMatchObject({ pod: 'shop/failing', attach: 'tcx' });
        expect(await client.deleteAttachment('f1', 'eth0')).toEqual({ removed: true });
      });
    });
  });

  it('a restarted agent keeps API-made endpoints and releases leases that expired while it was down', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const agent = await Agent.start(o, { namespaces: {}, policies: [], enforcement: 'default' });
    let again: Agent | undefined;
    try {
      await withNetns(async (c1) => {
        const rec = agent.addAttachedPod({
          namespace: 'shop',
          name: 'kept',
          labels: { app: 'kept' },
          attachment: { containerId: 'k1', ifname: 'eth0', netnsPath: c1.path },
        });
        const { ip: lost } = agent.allocateIp('test:lost', { expiresInMs: 150 });
        agent.close();
        await new Promise((r) => setTimeout(r, 300));
        again = await Agent.restore(o);
        expect(again.pool.allocations()[lost]).toBeUndefined();
        const kept = again.findAttachment('k1', 'eth0');
        expect(kept).toMatchObject({ ip: rec.ip, identity: rec.identity, lxcId: rec.lxcId });
        again.removeAttachment('k1', 'eth0');
      });
    } finally {
      (again ?? agent).destroy();
    }
  });

  it('keeps address reservations in its state journal; a restore takes over an older agent’s FileStore directory', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const agent = await Agent.start(o, { namespaces: {}, policies: [], enforcement: 'default' });
    let again: Agent | undefined;
    try {
      const a = agent.allocateIp('test:a');
      const b = agent.allocateIp('test:b');
      expect(agent.releaseIp(a.ip)).toBe(true);
      // Read back by another reader (the CLI's way): snapshot plus journal, no file per address.
      const table = { [agent.state.hostIp]: 'node:router', [b.ip]: 'test:b' };
      expect(loadState(o.stateDir).ipam).toEqual(table);
      expect(existsSync(join(o.stateDir, 'ipam'))).toBe(false);
      agent.close();
      // The layout of an agent before the table: the reservations as files in <stateDir>/ipam.
      const st = loadState(o.stateDir);
      delete st.ipam;
      saveState(o.stateDir, st);
      const files = new FileStore(join(o.stateDir, 'ipam'), { sync: false });
      files.transact((tx) => {
        for (const [ip, owner] of Object.entries(table)) tx.reserve(ip, owner);
      });
      files.close();
      again = await Agent.restore(o);
      expect(again.pool.allocations()).toEqual(table);
      expect(loadState(o.stateDir).ipam).toEqual(table);
      expect(existsSync(join(o.stateDir, 'ipam'))).toBe(false);
      const c = again.allocateIp('test:c');
      expect(Object.keys(table)).not.toContain(c.ip);
      expect(loadState(o.stateDir).ipam?.[c.ip]).toBe('test:c');
    } finally {
      (again ?? agent).destroy();
    }
  });

  it('an agent serve killed with SIGKILL right after its answers keeps every endpoint it reported', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const socket = join(o.stateDir, 'api.sock');
    // Made here (the test's prefix), served by a child process that restores it.
    (await Agent.start(o, { namespaces: {}, policies: [], enforcement: 'default' })).close();
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--state-dir', o.stateDir], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const client = new AgentClient({ socketPath: socket });
    let again: Agent | undefined;
    try {
      await until(
        `agent serve on ${socket}`,
        async () => existsSync(socket) || child.exitCode !== null,
        30_000,
      );
      expect(child.exitCode, err).toBeNull();
      await withNetns(3, async (a, b, c) => {
        const made = [];
        for (const [i, ns] of [a, b, c].entries())
          made.push(
            await client.createEndpoint({
              containerId: `kill${i}`,
              netns: ns.path,
              podNamespace: 'shop',
              podName: `k${i}`,
              labels: { app: `k${i % 2}` },
            }),
          );
        await client.deleteEndpoint(made[1]!.id);
        // The last change reported, then no chance to write anything more.
        const last = await client.createEndpoint({
          containerId: 'kill1b',
          netns: b.path,
          podNamespace: 'shop',
          podName: 'k1b',
          labels: { app: 'k1' },
        });
        child.kill('SIGKILL');
        await exited;
        const want = [made[0]!, made[2]!, last].map((e) => ({
          pod: e.pod,
          ip: e.ip,
          id: e.id,
          identity: e.identity,
        }));
        // A reader of the state files (the CLI) and a restored agent see exactly the reported endpoints.
        const read = Object.values(loadState(o.stateDir).pods).map((p) => ({
          pod: p.key,
          ip: p.ip,
          id: p.lxcId,
          identity: p.identity,
        }));
        expect(read.sort((x, y) => x.id - y.id)).toEqual(want.sort((x, y) => x.id - y.id));
        again = await Agent.restore(o);
        expect(
          again.pods().map((p) => ({ pod: p.key, ip: p.ip, id: p.lxcId, identity: p.identity })),
        ).toEqual(want);
        const held = Object.keys(again.pool.allocations()).filter((ip) => ip !== again!.state.hostIp);
        expect(held.sort()).toEqual(want.map((e) => e.ip).sort());
        for (const e of [made[0]!, made[2]!, last]) again.removeAttachment(e.containerId!, 'eth0');
      });
    } finally {
      client.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      if (again !== undefined) again.destroy();
      else if (existsSync(o.stateDir)) (await Agent.restore(o)).destroy();
    }
  }, 90_000);

  it('refuses a non-root peer (SO_PEERCRED), whatever the file modes say', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ server, client, o }) => {
      const script = `const http=require('http');const r=http.request({socketPath:${JSON.stringify(server.socketPath)},path:'/v1/status'},res=>{let b='';res.on('data',d=>b+=d);res.on('end',()=>{console.log(JSON.stringify({status:res.statusCode,body:b}))})});r.on('error',e=>console.log(JSON.stringify({error:e.code})));r.end()`;
      // async: the server answers from this process's event loop
      const asNobody = () =>
        new Promise<{ status?: number; body?: string; error?: string }>((resolve, reject) => {
          const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534 });
          let out = '';
          child.stdout.on('data', (d) => {
            out += d;
          });
          child.on('error', reject);
          child.on('close', () => resolve(JSON.parse(out.trim())));
        });
      // the modes keep it out first
      expect((await asNobody()).error).toBe('EACCES');
      // with the modes opened up (a mistake), the credential check still refuses it
      chmodSync(o.stateDir!, 0o711);
      chmodSync(server.socketPath, 0o666);
      try {
        const r = await asNobody();
        expect(r.status).toBe(403);
        expect(JSON.parse(r.body!).error).toMatchObject({ code: 'PermissionDenied' });
        expect(JSON.parse(r.body!).error.message).toContain('uid 65534');
      } finally {
        chmodSync(server.socketPath, 0o600);
        chmodSync(o.stateDir!, 0o700);
      }
      expect(await client.health()).toBe(true);
    });
  });

  it('answers bad requests with clear 4xx and survives a few hundred random ones with its state intact', async (ctx) => {
    requireRoot(ctx);
    await withServing(async ({ server, client }) => {
      const kept = await client.allocate('test:kept');
      const before = {
        eps: await client.endpoints(),
        ipam: await client.allocations(),
        policies: await client.policies(),
      };
      const err = async (p: Promise<unknown>) => {
        try {
          await p;
        } catch (e) {
          return e as AgentApiError;
        }
        throw new Error('expected a failure');
      };
      const json = (method: string, path: string, body: string, type = 'application/json') =>
        client
          .raw(method, path, body, type)
          .then((r) => ({ status: r.status, error: JSON.parse(r.body).error }));

      expect(await json('POST', '/v1/ipam/allocate', '{"owner":')).toMatchObject({
        status: 400,
        error: { reason: 'MalformedJson' },
      });
      const unknown = await json('POST', '/v1/ipam/allocate', '{"owner":"x","colour":"red"}');
      expect(unknown).toMatchObject({ status: 400, error: { reason: 'UnknownField' } });
      expect(unknown.error.message).toContain('"colour"');
      expect(
        await json('POST', '/v1/ipam/allocate', JSON.stringify({ owner: 'x', pad: 'x'.repeat(70_000) })),
      ).toMatchObject({
        status: 413,
        error: { code: 'TooBig' },
      });
      expect((await json('GET', '/v1/nothing', '')).status).toBe(404);
      expect((await json('GET', '/v2/status', '')).status).toBe(404);
      expect((await json('PATCH', '/v1/endpoints', '')).error).toMatchObject({ reason: 'MethodNotAllowed' });
      expect((await json('POST', '/v1/ipam/allocate', '{"owner":"x"}', 'text/plain')).status).toBe(415);
      expect(
        (
          await err(
            client.createEndpoint({ containerId: 'x', netns: 'relative', podNamespace: 'a', podName: 'b' }),
          )
        ).status,
      ).toBe(400);
      expect((await err(client.endpoint(4242))).status).toBe(404);
      // a 64 KiB header is refused by the HTTP layer
      expect(
        await rawExchange(server.socketPath, `GET /v1/health HTTP/1.1\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`),
      ).toMatch(/^HTTP\/1.1 431/);

      // A few hundred random malformed requests: garbage bytes, random JSON at random paths and methods.
      let seed = 7;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const paths = [
        '/v1/ipam/allocate',
        '/v1/ipam/release',
        '/v1/ipam/confirm',
        '/v1/endpoints',
        '/v1/endpoints/1',
        '/v1/policies',
        '/v1/cni',
        '/v1/x',
        '/',
        '/v1/endpoints/99999',
      ];
      const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];
      const junk = () => {
        const kinds = [
          () => '{',
          () => 'null',
          () => '[]',
          () => JSON.stringify({ owner: rnd(2) ? 1 : '', family: rnd(9), expiresInMs: -rnd(5) }),
          () => JSON.stringify({ ip: `10.244.1.${rnd(400)}`, extra: true }),
          () =>
            JSON.stringify({
              containerId: '../x',
              netns: '/proc/1/ns/net',
              podNamespace: 'A B',
              podName: '',
            }),
          () => JSON.stringify({ policies: [{ kind: 'NetworkPolicy' }] }),
          () => JSON.stringify({ env: { CNI_COMMAND: 'ADD', FOO: '1' }, stdin: '' }),
          () => Buffer.from(Array.from({ length: 1 + rnd(200) }, () => rnd(256))).toString('latin1'),
          () => `{"__proto__":{"x":1},"owner":"y","constructor":{}}`,
        ];
        return kinds[rnd(kinds.length)]!();
      };
      let fourxx = 0;
      for (let i = 0; i < 300; i++) {
        if (i % 10 === 0) {
          // not even HTTP
          await rawExchange(server.socketPath, Buffer.from(Array.from({ length: 64 }, () => rnd(256))), 50);
          continue;
        }
        const path = paths[rnd(paths.length)]!;
        const method = methods[rnd(methods.length)]!;
        // nothing that would change state on purpose: allocate needs a valid owner (never generated)
        // (policies only as JSON: a YAML `[]` would be a valid, empty policy set)
        const type = rnd(5) || path === '/v1/policies' ? 'application/json' : 'text/yaml';
        const r = await client.raw(method, path, method === 'GET' ? undefined : junk(), type);
        expect(r.status, `${method} ${path} → ${r.body}`).toBeLessThan(500);
        if (r.status >= 400) fourxx++;
      }
      expect(fourxx).toBeGreaterThan(200);
      expect(await client.health()).toBe(true);
      expect(await client.endpoints()).toEqual(before.eps);
      const ipam = await client.allocations();
      // the junk may have made no allocation; the kept one is still there
      expect(ipam.allocations[kept.ip]).toBe('test:kept');
      expect(ipam.allocations).toEqual(before.ipam.allocations);
      expect(await client.policies()).toEqual(before.policies);
    });
  });
});
