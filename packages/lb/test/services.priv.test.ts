// Per-packet service features beyond plain NodePort, against the real kernel: session affinity (ClientIP
// with a timeout) on the outward device and at a pod's veth, and external IPs routed to the node from
// the world (IPv4 and IPv6) and reached from a pod without socket LB.
import { spawn } from 'node:child_process';
import { requireRoot, run } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { NodeNetdev } from '../src/netdev.js';
import { PodLb } from '../src/pod-lb.js';
import { expectServiceFlows, PORT6, scoped, serviceLab } from './helpers/service-lab.js';
import { NODE_ADDR, NODE_ADDR6, WORLD_ADDR, WORLD_ADDR6 } from './helpers/topology.js';
import { runClient } from './helpers/traffic.js';

const EXTERNAL_IP = '198.18.7.7';
const EXTERNAL_IP6 = 'fd00:e::7';
const CLUSTER_IP = '10.96.0.10';

/**
 * One client process: for each port in turn, `n` sequential connections (TCP: connect, send, read the
 * answer; UDP: a fresh socket per request) to host:port; the backend name (`be0`/`be1`) of each, or
 * `error <code>`.
 */
const MULTI = `const [proto, host, portList, n] = process.argv.slice(1);
const net = require('net'), dgram = require('dgram');
const one = (port) => new Promise((resolve) => {
  const name = (d) => (String(d).trim().split(' ')[0].split('@')[1] || 'none');
  if (proto === 'tcp') {
    let data = '';
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => { s.destroy(); resolve('error timeout'); });
    s.on('connect', () => s.write('hi'));
    s.on('data', (d) => { data += d; });
    s.on('end', () => { resolve(name(data)); s.end(); });
    s.on('error', (e) => resolve('error ' + e.code));
  } else {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => { s.close(); resolve('error timeout'); }, 2000);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(name(m)); });
    s.send('hi', port, host);
  }
});
(async () => {
  const out = {};
  for (const p of portList.split(',').map(Number)) { out[p] = []; for (let i = 0; i < Number(n); i++) out[p].push(await one(p)); }
  process.stdout.write(JSON.stringify(out));
})();`;

function multiClient(
  netns: string,
  proto: 'tcp' | 'udp',
  host: string,
  ports: readonly number[],
  n: number,
): Promise<Record<number, string[]>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '-e', MULTI, proto, host, ports.join(','), String(n)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Record<number, string[]>)
        : reject(new Error(`client exited ${code}`)),
    );
  });
}

/** The one backend each port's connections reached; fails when a port's connections went to several. */
function sticky(got: Record<number, string[]>, what: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const [port, names] of Object.entries(got)) {
    expect(
      names.filter((n) => n.startsWith('error') || n === 'none'),
      `${what} :${port}`,
    ).toEqual([]);
    expect(new Set(names).size, `${what} :${port}: ${names.join(',')}`).toBe(1);
    out.set(Number(port), names[0]!);
  }
  return out;
}
/**
 * A connected UDP socket sends to host:port twice; the answer, or the error the socket reports (an
 * ICMP port unreachable shows as ECONNREFUSED on a connected socket), or `error timeout`.
 */
const UDP_CONNECTED = `const [host, port] = process.argv.slice(1);
const s = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
const out = (r) => { process.stdout.write(r); process.exit(0); };
setTimeout(() => out('error timeout'), 2000);
s.on('error', (e) => out('error ' + e.code));
s.on('message', (m) => out(String(m)));
const send = () => s.send('hi', (e) => e && out('error ' + e.code));
s.connect(Number(port), host, () => { send(); setTimeout(send, 300); });`;

function udpConnected(netns: string, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '-e', UDP_CONNECTED, host, String(port)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`udp client exited ${code}`)),
    );
  });
}

const differs = (a: Map<number, string>, b: Map<number, string>) => [...a].some(([p, n]) => b.get(p) !== n);

describe('per-packet services: session affinity and external IPs', () => {
  const lab = serviceLab();

  it('session affinity (ClientIP, 1 s): each client sticks to one backend per service over TCP and UDP, clients differ, the choice changes after the timeout', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using lb = await PodLb.load({ pinDir: lab.pinDir });
    const pod = lab.t.pods[2]!;
    await lb.attach({ ifname: pod.hostIf, netns: lab.t.nodeNetns });
    using svc = scoped(dev.serviceWriter());
    // 12 services per protocol, two backends each: with affinity broken a client's 4 connections to
    // one service land on one backend with p = 1/8; with the timeout ignored the 24 choices after it
    // stay the same with p = 2^-24; two working clients agree on all 24 with p = 2^-24.
    const ports = Array.from({ length: 12 }, (_, i) => 30100 + i);
    for (const protocol of ['TCP', 'UDP'] as const)
      for (const port of ports)
        svc.upsert({
          name: `aff-${protocol}-${port}`,
          protocol,
          frontends: [{ kind: 'NodePort', address: NODE_ADDR, port }],
          backends: lab.t.pods.slice(0, 2).map((p) => ({ address: p.ip, port: 8080 })),
          affinity: { timeoutSeconds: 1 },
        });
    const phase = async (ns: string) => {
      const out = new Map<string, string>();
      for (const proto of ['tcp', 'udp'] as const)
        for (const [p, n] of sticky(await multiClient(ns, proto, NODE_ADDR, ports, 4), `${proto} from ${ns}`))
          out.set(`${proto}${p}`, n);
      return out;
    };
    const world1 = await phase(lab.t.world); // at the outward device (from_netdev), keyed by 198.18.0.2
    const pod1 = await phase(pod.ns); // at the pod's veth (from_container), keyed by the pod's address
    expect(new Set(world1.values())).toEqual(new Set(['be0', 'be1']));
    expect(differs(world1 as never, pod1 as never), 'two clients chose alike everywhere').toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    const world2 = await phase(lab.t.world);
    expect(differs(world1 as never, world2 as never), 'no choice changed after the timeout').toBe(true);
  });

  it('external IPs: from the world (IPv4 and IPv6) and from a pod without socket LB, TCP and UDP; a ClusterIP is not served to the world', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodeAddress6: NODE_ADDR6, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using lb = await PodLb.load({ pinDir: lab.pinDir });
    const pod = lab.t.pods[2]!;
    await lb.attach({ ifname: pod.hostIf, netns: lab.t.nodeNetns });
    using svc = scoped(dev.serviceWriter());
    // the world routes the external IPs (and, for the negative case, the ClusterIP) to the node, which
    // owns none of them
    run('ip', ['-n', lab.t.world, 'route', 'add', `${EXTERNAL_IP}/32`, 'via', NODE_ADDR]);
    run('ip', ['-n', lab.t.world, 'route', 'add', `${CLUSTER_IP}/32`, 'via', NODE_ADDR]);
    run('ip', ['-n', lab.t.world, '-6', 'route', 'add', `${EXTERNAL_IP6}/128`, 'via', NODE_ADDR6]);
    for (const protocol of ['TCP', 'UDP'] as const) {
      svc.upsert({
        name: `ext4-${protocol}`,
        protocol,
        frontends: [
          { kind: 'ClusterIP', address: CLUSTER_IP, port: 80 },
          { kind: 'ExternalIP', address: EXTERNAL_IP, port: 80 },
        ],
        backends: lab.t.pods.slice(0, 2).map((p) => ({ address: p.ip, port: 8080 })),
      });
      svc.upsert({
        name: `ext6-${protocol}`,
        protocol,
        frontends: [{ kind: 'ExternalIP', address: EXTERNAL_IP6, port: 80 }],
        backends: lab.t.pods.slice(0, 2).map((p) => ({ address: p.ip6, port: PORT6 })),
      });
    }
    const before = dev.stats().svcNew;
    const made: [answers: string[], flow: Parameters<typeof expectServiceFlows>[2], what: string][] = [];
    const paths = [
      { from: lab.t.world, host: EXTERNAL_IP, peer: WORLD_ADDR },
      { from: lab.t.world, host: EXTERNAL_IP6, peer: WORLD_ADDR6 },
      { from: pod.ns, host: EXTERNAL_IP, peer: pod.ip },
    ];
    for (const { from, host, peer } of paths)
      for (const proto of ['tcp', 'udp'] as const) {
        const what = `${proto} from ${from} to ${host}:80`;
        const got = await runClient(from, { proto, host, port: 80, count: 16, concurrency: 4 });
        expect(
          got.filter((a) => a.startsWith('error')),
          what,
        ).toEqual([]);
        expect(new Set(got.map((a) => a.split(' ')[0]!.split('@')[1])), what).toEqual(
          new Set(['be0', 'be1']),
        );
        // the backend saw the client itself; the client saw only the external IP
        for (const a of got) expect(a.split(' ')[0]!.split('@')[0]!.replace(/:\d+$/, ''), what).toBe(peer);
        for (const a of got) expect(a.split(' ')[2], what).toBe(`${host}:80`);
        const v6 = host.includes(':');
        const be = Object.fromEntries(
          lab.t.pods
            .slice(0, 2)
            .map((p, i) => [`be${i}`, v6 ? { address: p.ip6, port: PORT6 } : { address: p.ip, port: 8080 }]),
        );
        made.push([got, { proto, saddr: peer, daddr: host, dport: 80, backends: be }, what]);
      }
    // both programs count into the pinned nat_stats and write the pinned flow maps; every connection and
    // request went through a service flow to the backend that answered (not a count of new flows: a
    // request socket may get the source port of an earlier one and share its flow)
    expect(dev.stats().svcNew).toBeGreaterThan(before);
    const halves = [...(await dev.flows()), ...(await dev.flows6())];
    for (const [got, flow, what] of made) expectServiceFlows(halves, got, flow, what);
    // the same service's ClusterIP from the world: not translated, the node has no route for it
    const cip = await runClient(lab.t.world, { proto: 'tcp', host: CLUSTER_IP, port: 80, timeoutMs: 1000 });
    expect(cip[0]).toMatch(/^error /);
  });

  it('a service without a backend refuses per packet (ICMP port unreachable: ECONNREFUSED at once), not a black hole: ClusterIP from a pod (TCP, connected UDP, IPv4 and IPv6), external IP from the world', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodeAddress6: NODE_ADDR6, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using lb = await PodLb.load({ pinDir: lab.pinDir });
    const pod = lab.t.pods[2]!;
    await lb.attach({ ifname: pod.hostIf, netns: lab.t.nodeNetns });
    using svc = scoped(dev.serviceWriter());
    // Routes where an untranslated packet vanishes: the node sends the service ranges to the world,
    // which does not forward (without the refusal a client waits for its timeout).
    const routes = [
      ['-n', lab.t.node, 'route', 'replace', '10.96.0.0/12', 'via', WORLD_ADDR],
      ['-n', lab.t.node, '-6', 'route', 'replace', 'fd00:96::/64', 'via', WORLD_ADDR6],
      ['-n', lab.t.world, 'route', 'replace', `${EXTERNAL_IP}/32`, 'via', NODE_ADDR],
    ];
    for (const r of routes) run('ip', r);
    try {
      for (const protocol of ['TCP', 'UDP'] as const) {
        svc.upsert({
          name: `none4-${protocol}`,
          protocol,
          frontends: [
            { kind: 'ClusterIP', address: CLUSTER_IP, port: 80 },
            { kind: 'ExternalIP', address: EXTERNAL_IP, port: 80 },
          ],
          backends: [],
        });
        svc.upsert({
          name: `none6-${protocol}`,
          protocol,
          frontends: [{ kind: 'ClusterIP', address: 'fd00:96::10', port: 80 }],
          // only a terminating backend: no backend for new flows either
          backends: [{ address: lab.t.pods[0]!.ip6, port: PORT6, state: 'terminating' }],
        });
      }
      const before = dev.stats().noBackend;
      for (const host of [CLUSTER_IP, 'fd00:96::10']) {
        expect(await runClient(pod.ns, { proto: 'tcp', host, port: 80, count: 2 }), `tcp ${host}`).toEqual([
          'error ECONNREFUSED',
          'error ECONNREFUSED',
        ]);
        expect(await udpConnected(pod.ns, host, 80), `udp ${host}`).toBe('error ECONNREFUSED');
      }
      expect(await runClient(lab.t.world, { proto: 'tcp', host: EXTERNAL_IP, port: 80 })).toEqual([
        'error ECONNREFUSED',
      ]);
      expect(await udpConnected(lab.t.world, EXTERNAL_IP, 80)).toBe('error ECONNREFUSED');
      expect(dev.stats().noBackend - before).toBeGreaterThanOrEqual(8n);
    } finally {
      for (const r of routes)
        run(
          'ip',
          r.map((a) => (a === 'replace' ? 'del' : a)),
        );
    }
  });
});
