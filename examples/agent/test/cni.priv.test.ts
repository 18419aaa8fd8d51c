// datapath-cni in agent mode against a real resident agent (in this process, serving its API on a unix
// socket) through a real CNI client: cnitool (libcni), chained with Debian's `tuning`. The plugin is
// installed twice: in front of it the C shim (native/shim.c), and the Node client alone (shim: false).
// ADD makes a pod the agent lists with its identity; traffic between it and a scenario pod obeys policy
// (real packets) and shows in the agent's events by name; CHECK; an agent restart keeps the pod and its established TCP flow; DEL removes everything. kill -9 of the shim (30 runs) and of the Node client (10) at
// random points of ADD leaves nothing once the lease expires (or a confirmed pod that DEL removes); 50
// concurrent ADDs and DELs; dual stack (IPv6 addresses, and the datapath's IPv4-only forwarding); an agent that is down is CNI error 11 (ADD) and 50 (STATUS).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Installation, installPlugin } from '@datapath/cni-plugin';
import { Netns } from '@datapath/netlink';
import type { PolicyObject } from '@datapath/policy';
import {
  createNetns,
  deleteNetns,
  ipJson,
  requireRoot,
  scanLeaks,
  type TestNetns,
  uniqueName,
} from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { ApiServer } from '../src/api/server.js';
import { type AgentEvent, decodeRecord, EventNamer } from '../src/events.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const CNITOOL = join(ROOT, '.toolchain/bin/cnitool');
const DEBIAN_PLUGINS = '/usr/lib/cni';
const CACHE = '/var/lib/cni';
const LEASE_MS = 3_000;

const allowFrom = (app: string): PolicyObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'allow-client', namespace: 'shop' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app } } }], ports: [{ port: 80 }] }],
  },
});

let o: AgentOptions & { prefix: string; stateDir: string };
let agent: Agent;
let server: ApiServer;
let client: AgentClient;
let shim: Installation & { dir: string };
let node: Installation & { dir: string };
let host: TestNetns;
let work: string;
let hadCache = true;
const made: TestNetns[] = [];

function newPod(): TestNetns {
  const ns = createNetns();
  made.push(ns);
  return ns;
}

async function serve(a: Agent): Promise<void> {
  agent = a;
  server = await ApiServer.listen(agent, { cniLeaseMs: LEASE_MS });
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) return;
  hadCache = existsSync(join(CACHE, 'results'));
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-cni-'));
  rmSync(stateDir, { recursive: true });
  o = { name: prefix, prefix, stateDir, podCidr: '10.244.1.0/24', podCidr6: 'fd00:10:244:1::/112' };
  const a = await Agent.start(o, {
    namespaces: { shop: { labels: { team: 'shop' } } },
    policies: [allowFrom('client')],
    enforcement: 'default',
  });
  a.addPods([{ namespace: 'shop', name: 'server', labels: { app: 'server' } }]);
  await serve(a);
  client = new AgentClient({ socketPath: server.socketPath });
  work = mkdtempSync(join(tmpdir(), 'dp-agent-cni-work-'));
  const bin = (name: string) => {
    const dir = join(work, name);
    return dir;
  };
  shim = { ...installPlugin({ binDir: bin('shim') }), dir: bin('shim') };
  node = { ...installPlugin({ binDir: bin('node'), shim: false }), dir: bin('node') };
  host = createNetns();
}, 120_000);

afterAll(async () => {
  if (process.getuid?.() !== 0) return;
  client?.close();
  await server?.close();
  agent?.destroy();
  for (const ns of made) deleteNetns(ns.name);
  if (host) deleteNetns(host.name);
  rmSync(work, { recursive: true, force: true });
  for (const f of existsSync(join(CACHE, 'results')) ? readdirSync(join(CACHE, 'results')) : [])
    if (f.startsWith(o.prefix)) rmSync(join(CACHE, 'results', f), { force: true });
  if (!hadCache) {
    for (const d of [join(CACHE, 'results'), CACHE]) {
      try {
        rmdirSync(d);
      } catch {
        // not empty or gone
      }
    }
  }
  const leaks = scanLeaks(o.prefix);
  for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
  expect(leaks).toEqual({ netns: [], links: [], pins: [] });
});

/** A conflist of datapath-cni in agent mode (+ tuning), in its own NETCONFPATH directory. */
function netconf(net: string, extra: Record<string, unknown> = {}): string {
  const dir = join(work, `net-${net}`);
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  writeFileSync(
    join(dir, `10-${net}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: net,
      plugins: [
        {
          type: 'datapath-cni',
          mode: 'agent',
          agentSocket: server.socketPath,
          capabilities: { labels: true },
          ...extra,
        },
        { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.accept_redirects': '0' } },
      ],
    }),
  );
  return dir;
}

interface Step {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** cnitool as a runtime: inside the test's "host" namespace, only PATH and cnitool's variables. */
function cnitool(
  inst: { dir: string },
  conf: string,
  command: string,
  net: string,
  pod: TestNetns,
  env: Record<string, string> = {},
): Promise<Step> {
  return new Promise((resolveStep, reject) => {
    const child = spawn('nsenter', [`--net=${host.path}`, CNITOOL, command, net, pod.path], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        NETCONFPATH: conf,
        CNI_PATH: `${inst.dir}:${DEBIAN_PLUGINS}`,
        CNI_IFNAME: 'eth0',
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (status) => resolveStep({ status, stdout, stderr }));
  });
}

const ok = (s: Step) => {
  expect(s.status, `${s.stdout}\n${s.stderr}`).toBe(0);
  return s.stdout;
};

/** The plugin exec'd directly, as a runtime does (GC and STATUS: cnitool 1.1.2 has no such commands). */
function start(
  bin: string,
  env: Record<string, string>,
  config: unknown,
): { child: ChildProcess; done: Promise<Step> } {
  const child = spawn(bin, [], { env: { PATH: '/usr/bin:/bin', CNI_PATH: DEBIAN_PLUGINS, ...env } });
  const done = new Promise<Step>((resolveStep, reject) => {
    let stdout = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.on('error', reject);
    child.on('close', (status) => resolveStep({ status, stdout, stderr: '' }));
  });
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(JSON.stringify(config));
  return { child, done };
}
const plugin = (bin: string, env: Record<string, string>, config: unknown) => start(bin, env, config).done;

const links = (ns: string) => ipJson<{ ifname: string }[]>(['link', 'show'], ns).map((l) => l.ifname);
const cniPods = async () => (await client.endpoints()).filter((e) => e.source === 'cni');
const cniAddresses = async () =>
  Object.entries((await client.allocations()).allocations).filter(([, owner]) => owner.startsWith('cni:'));
const nodeLinks = () => links(agent.state.nodeNetns).filter((l) => l.startsWith('lxc'));
const pins = () => readdirSync(agent.state.pinDir, { recursive: true }).map(String).sort();

/** Lines read from a socket, one `next()` at a time (rejects after 3 s or when the socket fails). */
class LineReader {
  #buf = '';
  readonly #lines: string[] = [];
  readonly #waiting: ((line: string | Error) => void)[] = [];
  constructor(socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buf += d;
      for (let i = this.#buf.indexOf('\n'); i >= 0; i = this.#buf.indexOf('\n')) {
        this.#push(this.#buf.slice(0, i));
        this.#buf = this.#buf.slice(i + 1);
      }
    });
    socket.on('error', (err) => this.#push(err));
  }
  #push(line: string | Error): void {
    const w = this.#waiting.shift();
    if (w) w(line);
    else if (typeof line === 'string') this.#lines.push(line);
  }
  next(): Promise<string> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line within 3 s')), 3_000);
      this.#waiting.push((l) => {
        clearTimeout(timer);
        if (l instanceof Error) reject(l);
        else resolve(l);
      });
    });
  }
}

async function probe(from: string, to: string): Promise<string> {
  const [r] = await runProbes(from, [{ id: 0, host: to, port: 80, protocol: 'TCP', timeoutMs: 700 }]);
  return r!.result;
}

describe('datapath-cni agent mode through cnitool', () => {
  it('ADD (shim) → pod with identity and policy over real packets, tuning chained, CHECK, agent restart, DEL', async (ctx) => {
    requireRoot(ctx);
    expect(shim.forwarder).toBe('shim');
    const pod = newPod();
    const net = `${o.prefix}a`;
    const conf = netconf(net);
    const env = {
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=client',
      CAP_ARGS: JSON.stringify({ labels: { app: 'client' } }),
    };
    const baseLinks = nodeLinks();
    const result = JSON.parse(ok(await cnitool(shim, conf, 'add', net, pod, env))) as {
      interfaces: { name: string; sandbox?: string }[];
      ips: { address: string }[];
    };
    const ip = result.ips[0]!.address.split('/')[0]!;
    expect(result.ips[0]!.address).toMatch(/^10\.244\.1\.\d+\/32$/);
    const [ep] = await cniPods();
    expect(ep).toMatchObject({
      pod: 'shop/client',
      ip,
      labels: { app: 'client' },
      ifname: 'eth0',
      netns: pod.path,
    });
    expect(ep!.identity).toBeGreaterThan(255);
    expect((await client.allocations()).pending).toEqual({}); // the shim confirmed
    // tuning ran after us, in the pod
    const sysctl = spawnSync(
      'nsenter',
      [`--net=${pod.path}`, 'cat', '/proc/sys/net/ipv4/conf/eth0/accept_redirects'],
      {
        encoding: 'utf8',
      },
    );
    expect(sysctl.stdout.trim()).toBe('0');

    const target = agent.resolve('shop/server');
    const l = await startListener(target.netnsPath, 'shop/server', [{ port: 80, protocol: 'TCP' }]);
    try {
      expect(await probe(pod.path, target.ip)).toBe('connected');
      await client.applyPolicies([allowFrom('nobody')]);
      // What the monitor shows (the events ring, named from the agent's state): the CNI-created pod by name.
      const ring = agent.datapath.openEvents();
      const namer = new EventNamer(agent.state as never);
      const drain = () => {
        const out: AgentEvent[] = [];
        ring.read((view, off, len) => {
          const raw = decodeRecord(view, off, len);
          if (raw !== undefined) out.push(namer.describe(raw));
        });
        return out;
      };
      try {
        drain();
        expect(await probe(pod.path, target.ip)).toBe('timeout');
        // The pod's own IPv6 (router solicitations, MLD reports, sent at random delays after its link came up)
        // can be dropped in the same window as unsupported L3: the probe's drop is the first other one.
        expect(drain().filter((e) => e.type === 'drop' && e.reason !== 'unsupported-l3')[0]).toMatchObject({
          reason: 'policy-denied',
          source: expect.objectContaining({ ip, name: 'shop/client' }),
          destination: expect.objectContaining({ ip: target.ip, port: 80, name: 'shop/server' }),
          endpoint: expect.objectContaining({ pod: 'shop/server', direction: 'ingress' }),
        });
      } finally {
        ring.close();
      }
      await client.applyPolicies([allowFrom('client')]);
      ok(await cnitool(shim, conf, 'check', net, pod, env));

      // An established TCP flow from the CNI-created pod, opened from inside its namespace by this process.
      using podNs = Netns.open({ path: pod.path });
      const flow = podNs.connect({ host: target.ip, port: 80 });
      const lines = new LineReader(flow);
      try {
        expect(await lines.next()).toBe('shop/server'); // the listener's greeting
        flow.write('before\n');
        expect(await lines.next()).toBe('before');

        // agent restart: the pod keeps its address, identity, datapath and established flows; CHECK passes
        await server.close();
        agent.close();
        await serve(await Agent.restore(o));
        const again = (await cniPods())[0]!;
        expect(again).toMatchObject({ ip, identity: ep!.identity, id: ep!.id });
        flow.write('after\n'); // the same connection, across the restart
        expect(await lines.next()).toBe('after');
        expect(await probe(pod.path, target.ip)).toBe('connected');
        ok(await cnitool(shim, conf, 'check', net, pod, env));
      } finally {
        flow.destroy();
      }
    } finally {
      await l.close();
    }

    ok(await cnitool(shim, conf, 'del', net, pod, env));
    expect(await cniPods()).toEqual([]);
    expect(await cniAddresses()).toEqual([]);
    expect(links(pod.name)).toEqual(['lo']);
    expect(nodeLinks()).toEqual(baseLinks);
    // CHECK after DEL fails; a second DEL succeeds (idempotent)
    expect((await cnitool(shim, conf, 'check', net, pod, env)).status).not.toBe(0);
    ok(await cnitool(shim, conf, 'del', net, pod, env));
  });

  it('the Node client does the same; an agent that is down is code 11 for ADD and 50 for STATUS', async (ctx) => {
    requireRoot(ctx);
    expect(node.forwarder).toBe('node');
    const pod = newPod();
    const net = `${o.prefix}n`;
    const conf = netconf(net);
    const r = JSON.parse(ok(await cnitool(node, conf, 'add', net, pod))) as { ips: { address: string }[] };
    const [ep] = await cniPods();
    expect(ep).toMatchObject({ ip: r.ips[0]!.address.split('/')[0], namespace: 'default' });
    expect((await client.allocations()).pending).toEqual({});
    ok(await cnitool(node, conf, 'check', net, pod));
    ok(await cnitool(node, conf, 'del', net, pod));
    expect(await cniPods()).toEqual([]);

    const cfg = (socket: string) => ({
      cniVersion: '1.1.0',
      name: net,
      type: 'datapath-cni',
      mode: 'agent',
      agentSocket: socket,
    });
    for (const inst of [shim, node]) {
      const st = await plugin(inst.launcher, { CNI_COMMAND: 'STATUS' }, cfg(server.socketPath));
      expect(st.status, st.stdout).toBe(0);
      const down = await plugin(inst.launcher, { CNI_COMMAND: 'STATUS' }, cfg('/nonexistent/api.sock'));
      expect(down.status).toBe(1);
      expect(JSON.parse(down.stdout)).toMatchObject({ code: 50 });
      const add = await plugin(
        inst.launcher,
        { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'down1', CNI_NETNS: pod.path, CNI_IFNAME: 'eth0' },
        cfg('/nonexistent/api.sock'),
      );
      expect(add.status).toBe(1);
      const err = JSON.parse(add.stdout) as { code: number; msg: string };
      expect(err.code).toBe(11);
      expect(err.msg).toContain('/nonexistent/api.sock');
    }
  });

  // The shim's ADD takes a few ms, the Node client's its start (tens of ms) on top: each gets kill delays
  // that land before, during and after the agent's work.
  it.for([
    { forwarder: 'shim', runs: 30, maxDelayMs: 12 },
    { forwarder: 'node', runs: 10, maxDelayMs: 250 },
  ] as const)(
    'kill -9 of the $forwarder forwarder at random points of ADD ($runs runs): after the lease expires nothing is left but confirmed pods, which DEL and GC remove',
    async ({ forwarder, runs: n, maxDelayMs }, ctx) => {
      requireRoot(ctx);
      const inst = forwarder === 'shim' ? shim : node;
      expect(inst.forwarder).toBe(forwarder);
      const net = `${o.prefix}k${forwarder[0]}`;
      const cfg = {
        cniVersion: '1.1.0',
        name: net,
        type: 'datapath-cni',
        mode: 'agent',
        agentSocket: server.socketPath,
      };
      const basePins = pins();
      const baseLinks = nodeLinks();
      let seed = forwarder === 'shim' ? 21 : 42;
      const rnd = (k: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % k;
      };
      const runs: { id: string; pod: TestNetns; killed: boolean }[] = [];
      for (let i = 0; i < n; i++) {
        const pod = newPod();
        const id = `kill${forwarder[0]}${i}`;
        const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: id, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0' };
        const { child, done } = start(inst.launcher, env, cfg);
        await new Promise((r) => setTimeout(r, rnd(maxDelayMs)));
        child.kill('SIGKILL');
        const r = await done;
        runs.push({ id, pod, killed: r.status === null });
      }
      expect(runs.filter((r) => r.killed).length).toBeGreaterThan(n / 2);
      // killed between the agent's ADD and the confirmation: pods that exist with their lease still running
      const pendingAfterKills = Object.keys((await client.allocations()).pending).length;
      // the agent serves on (ADDs whose forwarder died still finish, one after the other, each lease
      // starting then); after the leases, every attachment is either gone entirely or a confirmed pod
      await new Promise((r) => setTimeout(r, LEASE_MS + 500));
      for (let t = 0; t < 40 && Object.keys((await client.allocations()).pending).length > 0; t++)
        await new Promise((r) => setTimeout(r, 250));
      expect((await client.allocations()).pending).toEqual({});
      let complete = 0;
      for (const r of runs) {
        const ep = (await cniPods()).find((e) => e.containerId === r.id);
        if (ep === undefined) {
          expect(links(r.pod.name), r.id).toEqual(['lo']);
          expect((await cniAddresses()).filter(([, owner]) => owner.includes(`:${r.id}:`))).toEqual([]);
        } else complete++;
      }
      // a runtime calls DEL after a failed ADD, then GC: nothing at all is left
      for (const r of runs) {
        const del = await plugin(
          inst.launcher,
          { CNI_COMMAND: 'DEL', CNI_CONTAINERID: r.id, CNI_NETNS: r.pod.path, CNI_IFNAME: 'eth0' },
          cfg,
        );
        expect(del.status, del.stdout).toBe(0);
      }
      const gc = await plugin(
        inst.launcher,
        { CNI_COMMAND: 'GC' },
        { ...cfg, 'cni.dev/valid-attachments': [] },
      );
      expect(gc.status, gc.stdout).toBe(0);
      expect(await cniPods()).toEqual([]);
      expect(await cniAddresses()).toEqual([]);
      expect(nodeLinks()).toEqual(baseLinks);
      expect(pins()).toEqual(basePins);
      for (const r of runs) expect(links(r.pod.name)).toEqual(['lo']);
      ctx.annotate(
        `${forwarder}: ${runs.filter((r) => r.killed).length}/${n} killed: ${pendingAfterKills} left a pending lease that expired, ${complete} had confirmed before the kill`,
      );
    },
  );

  it('dual stack (ipFamilies IPv4 + IPv6): /32 and /128 addresses and routes; IPv4 flows, the datapath drops IPv6 (it has no IPv6 path, counted as unsupported L3); DEL releases both', async (ctx) => {
    requireRoot(ctx);
    const net = `${o.prefix}6`;
    const conf = netconf(net, { ipFamilies: ['IPv4', 'IPv6'] });
    const [a, b] = [newPod(), newPod()];
    const add = async (pod: TestNetns, name: string) =>
      JSON.parse(
        ok(
          await cnitool(shim, conf, 'add', net, pod, {
            CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=dual;K8S_POD_NAME=${name}`,
          }),
        ),
      ) as { ips: { address: string; gateway: string }[]; routes: { dst: string; gw: string }[] };
    const ra = await add(a, 'a');
    const rb = await add(b, 'b');
    for (const r of [ra, rb]) {
      expect(r.ips.map((i) => i.address)).toEqual([
        expect.stringMatching(/^10\.244\.1\.\d+\/32$/),
        expect.stringMatching(/^fd00:10:244:1::[0-9a-f]+\/128$/),
      ]);
      expect(r.routes).toEqual(
        expect.arrayContaining([
          { dst: '0.0.0.0/0', gw: '169.254.1.1' },
          { dst: '::/0', gw: 'fe80::1' },
        ]),
      );
    }
    const [a4, a6] = ra.ips.map((i) => i.address.split('/')[0]!);
    const [b4, b6] = rb.ips.map((i) => i.address.split('/')[0]!);
    // the kernel's view inside the pod (ip as the oracle): the /128 without DAD, the default route
    const addrs = ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
      ['-6', 'addr', 'show', 'dev', 'eth0'],
      a.name,
    );
    expect(addrs[0]!.addr_info).toContainEqual(expect.objectContaining({ local: a6, prefixlen: 128 }));
    const routes6 = ipJson<{ dst: string; gateway?: string }[]>(['-6', 'route', 'show'], a.name);
    expect(routes6).toContainEqual(expect.objectContaining({ dst: 'default', gateway: 'fe80::1' }));
    const eps = await cniPods();
    expect(eps.find((e) => e.pod === 'dual/a')).toMatchObject({ ip: a4, ip6: a6 });
    expect((await client.allocations()).pending).toEqual({}); // both families confirmed
    const ping = (pod: TestNetns, to: string) =>
      spawnSync('nsenter', [`--net=${pod.path}`, 'ping', '-c', '1', '-W', '1', to], { encoding: 'utf8' })
        .status;
    const unsupported = () =>
      agent.datapath
        .counters()
        .filter((c) => c.lxcId === eps.find((e) => e.pod === 'dual/a')!.id && c.reason === 6)
        .reduce((n, c) => n + c.packets, 0n);
    const before = unsupported();
    expect(ping(a, b4!)).toBe(0);
    expect(ping(a, b6!)).not.toBe(0);
    expect(unsupported()).toBeGreaterThan(before);
    // DEL: both addresses go back, nothing is left
    ok(
      await cnitool(shim, conf, 'del', net, a, {
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=dual;K8S_POD_NAME=a',
      }),
    );
    ok(
      await cnitool(shim, conf, 'del', net, b, {
        CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=dual;K8S_POD_NAME=b',
      }),
    );
    expect(await cniPods()).toEqual([]);
    expect(await cniAddresses()).toEqual([]);
    for (const p of [a, b]) expect(links(p.name)).toEqual(['lo']);
    for (const ip of [a6, b6]) expect((await client.allocations()).allocations[ip!]).toBeUndefined();
    // IPAM allocate of family 6 through the API, confirm and release (no pod)
    const v6 = await client.allocate('dual-probe', { family: 6 });
    expect(v6.ip).toMatch(/^fd00:10:244:1::/);
    await client.release(v6.ip);
    expect((await client.allocations()).allocations[v6.ip]).toBeUndefined();
  });

  it('50 concurrent ADDs then 50 DELs through cnitool: no duplicate address, nothing left', async (ctx) => {
    requireRoot(ctx);
    const net = `${o.prefix}c`;
    const conf = netconf(net);
    const pods = Array.from({ length: 50 }, () => newPod());
    const adds = await Promise.all(pods.map((p) => cnitool(shim, conf, 'add', net, p)));
    const ips = adds.map((a) => (JSON.parse(ok(a)) as { ips: { address: string }[] }).ips[0]!.address);
    expect(new Set(ips).size).toBe(50);
    const eps = await cniPods();
    expect(eps.map((e) => `${e.ip}/32`).sort()).toEqual([...ips].sort());
    expect((await client.allocations()).pending).toEqual({});
    const dels = await Promise.all(pods.map((p) => cnitool(shim, conf, 'del', net, p)));
    for (const d of dels) ok(d);
    expect(await cniPods()).toEqual([]);
    expect(await cniAddresses()).toEqual([]);
    for (const p of pods) expect(links(p.name)).toEqual(['lo']);
  });
});
