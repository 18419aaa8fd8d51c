import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceWriter } from '../src/datapath.js';
import { NatDir } from '../src/netdev.gen.js';
import { NodeNetdev } from '../src/netdev.js';
import { PodLb } from '../src/pod-lb.js';
import {
  buildTopology,
  CLUSTER_CIDR,
  NODE_ADDR,
  NODE_ADDR6,
  POD_CIDR,
  type Topology,
  WORLD_ADDR6,
} from './helpers/topology.js';
import { holdConnection, runClient, type Server, startServer } from './helpers/traffic.js';

const NODE_PORT = 30080;
const CLUSTER_IP = '10.96.0.10';
const CLUSTER_IP6 = 'fd00:96::10';
/** The IPv6 backends' port (servers on `::`, apart from the IPv4 ones). */
const PORT6 = 8086;
/** A test's services, written through the package's writer; all removed when the test ends. */
const scoped = (writer: ServiceWriter) => ({
  upsert: (input: unknown) => writer.upsert(input),
  writer,
  [Symbol.dispose]() {
    for (const name of writer.table.names()) writer.remove(name);
    writer.close();
  },
});
/** The backend name of an answer (`<peer>@<name> <local port> <remote>`). */
const nameOf = (a: string) => a.split(' ')[0]!.split('@')[1];
/** The address the client talked to (`… <remote addr:port>`). */
const remoteOf = (a: string) => a.split(' ')[2];
/** The client address:port the backend saw. */
const peerOf = (a: string) => a.split(' ')[0]!.split('@')[0];

describe('per-packet load balancing at tc: NodePort on the outward device, ClusterIP at the pod veth', () => {
  let t: Topology;
  let prefix: string;
  let pinDir: string;
  const servers: Server[] = [];
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return; // every test skips itself (requireRoot)
    prefix = uniqueName();
    t = buildTopology(prefix, 3);
    pinDir = mkdtempSync(join('/sys/fs/bpf', `${prefix}-`));
    // pods 0 and 1 are backends: TCP and UDP servers on 8080 answering with their name
    for (const [i, p] of t.pods.slice(0, 2).entries()) {
      servers.push(await startServer(p.ns, 'tcp', 8080, '0.0.0.0', `be${i}`));
      servers.push(await startServer(p.ns, 'udp', 8080, '0.0.0.0', `be${i}`));
      servers.push(await startServer(p.ns, 'tcp', PORT6, '::', `be${i}`));
      servers.push(await startServer(p.ns, 'udp', PORT6, '::', `be${i}`));
    }
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
    t?.close();
    if (prefix) expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });

  /** The two backend pods, `be0` and `be1`, in the package's service model. */
  const backends = () => t.pods.slice(0, 2).map((p) => ({ address: p.ip, port: 8080 }));
  const service = (
    name: string,
    protocol: 'TCP' | 'UDP',
    frontend: { kind: 'NodePort' | 'ClusterIP'; address: string; port: number },
    list: { address: string; port: number; state?: 'active' | 'terminating' }[],
  ) => ({ name, protocol, frontends: [frontend], backends: list });
  const nodePort = { kind: 'NodePort', address: NODE_ADDR, port: NODE_PORT } as const;
  const clusterIp = { kind: 'ClusterIP', address: CLUSTER_IP, port: 80 } as const;

  it('NodePort from the world over TCP and UDP: spread over the backends, replies come from nodeAddr:nodePort', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      {
        nodeAddress: NODE_ADDR,
        nodePort: true,
        masquerade: { podCidr: POD_CIDR, clusterCidr: CLUSTER_CIDR },
      },
      { ifname: 'ext0', netns: t.nodeNetns, pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, backends()));
    svc.upsert(service('np-udp', 'UDP', nodePort, backends()));
    const tcp = await runClient(t.world, {
      proto: 'tcp',
      host: NODE_ADDR,
      port: NODE_PORT,
      count: 30,
      concurrency: 4,
    });
    expect(tcp.filter((a) => a.startsWith('error'))).toEqual([]);
    expect(new Set(tcp.map(nameOf))).toEqual(new Set(['be0', 'be1']));
    // the backends saw the world client's own address (no SNAT for local backends)
    for (const a of tcp) expect(peerOf(a)).toMatch(/^198\.18\.0\.2:\d+$/);
    for (const a of tcp) expect(remoteOf(a)).toBe(`${NODE_ADDR}:${NODE_PORT}`);
    const udp = await runClient(t.world, {
      proto: 'udp',
      host: NODE_ADDR,
      port: NODE_PORT,
      count: 30,
      concurrency: 4,
    });
    expect(udp.filter((a) => a.startsWith('error'))).toEqual([]);
    expect(new Set(udp.map(nameOf))).toEqual(new Set(['be0', 'be1']));
    // the UDP replies came from the service address, not from a backend
    for (const a of udp) expect(remoteOf(a)).toBe(`${NODE_ADDR}:${NODE_PORT}`);
    const s = dev.stats();
    expect(s.svcNew).toBe(60n);
    expect(s.svcReply).toBeGreaterThan(0n);
    expect(s.snatOut).toBe(0n); // replies of a service flow are not masqueraded
    const halves = await dev.flows();
    expect(halves.filter((h) => h.key.dir === NatDir.NAT_DIR_SVC)).toHaveLength(60);
    expect(halves.filter((h) => h.key.dir === NatDir.NAT_DIR_RSVC)).toHaveLength(60);
  });

  it('NodePort with Maglev selection: the table is written through the writer and flows spread by it', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: t.nodeNetns, pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    const ops = svc.upsert({ ...service('np-maglev', 'TCP', nodePort, backends()), selection: 'maglev' });
    expect(ops.filter((o) => o.map === 'maglev').length).toBe(1);
    const table = svc.writer.table.get('np-maglev')!.maglev!;
    expect(new Set(table).size).toBe(2);
    const tcp = await runClient(t.world, {
      proto: 'tcp',
      host: NODE_ADDR,
      port: NODE_PORT,
      count: 30,
      concurrency: 4,
    });
    // without the table (or with a lookup the verifier rejects) no backend is found: refused
    expect(tcp.filter((a) => a.startsWith('error'))).toEqual([]);
    expect(new Set(tcp.map(nameOf))).toEqual(new Set(['be0', 'be1']));
    for (const a of tcp) expect(remoteOf(a)).toBe(`${NODE_ADDR}:${NODE_PORT}`);
  });

  it('IPv6: NodePort from the world and ClusterIP from a pod without socket LB, TCP and UDP, replies translated back', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodeAddress6: NODE_ADDR6, nodePort: true },
      { ifname: 'ext0', netns: t.nodeNetns, pinDir },
    );
    using lb = await PodLb.load({ pinDir });
    const client = t.pods[2]!;
    await lb.attach({ ifname: client.hostIf, netns: t.nodeNetns });
    using svc = scoped(dev.serviceWriter());
    for (const protocol of ['TCP', 'UDP'] as const)
      svc.upsert({
        name: `web6-${protocol}`,
        protocol,
        frontends: [
          { kind: 'NodePort', address: NODE_ADDR6, port: NODE_PORT },
          { kind: 'ClusterIP', address: CLUSTER_IP6, port: 80 },
        ],
        backends: t.pods.slice(0, 2).map((p) => ({ address: p.ip6, port: PORT6 })),
      });
    const before = dev.stats().svcNew;
    const paths = [
      { from: t.world, host: NODE_ADDR6, port: NODE_PORT, peer: WORLD_ADDR6 },
      { from: client.ns, host: CLUSTER_IP6, port: 80, peer: client.ip6 },
    ];
    for (const { from, host, port, peer } of paths)
      for (const proto of ['tcp', 'udp'] as const) {
        const what = `${proto} to [${host}]:${port}`;
        const got = await runClient(from, { proto, host, port, count: 20, concurrency: 4 });
        expect(
          got.filter((a) => a.startsWith('error')),
          what,
        ).toEqual([]);
        expect(new Set(got.map(nameOf)), what).toEqual(new Set(['be0', 'be1']));
        // the backend saw the client's own address; the client saw only the frontend
        for (const a of got) expect(peerOf(a)!.replace(/:\d+$/, ''), what).toBe(peer);
        for (const a of got) expect(remoteOf(a), what).toBe(`${host}:${port}`);
      }
    expect(dev.stats().svcNew - before).toBe(80n);
    const halves = await dev.flows6();
    expect(halves.filter((h) => h.key.dir === NatDir.NAT_DIR_SVC)).toHaveLength(80);
    expect(halves.filter((h) => h.key.dir === NatDir.NAT_DIR_RSVC)).toHaveLength(80);
  });

  it('a terminating backend keeps its open flow through the flow map; new flows avoid it', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: t.nodeNetns, pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, backends()));
    const before = dev.stats().svcNew; // the counters live in the pinned maps, across attachments
    const held = await holdConnection(t.world, NODE_ADDR, NODE_PORT);
    try {
      const victim = held.greeting.split('@')[1]!;
      const other = victim === 'be0' ? 'be1' : 'be0';
      const victimIp = t.pods[Number(victim.slice(2))]!.ip;
      svc.upsert(
        service(
          'np-tcp',
          'TCP',
          nodePort,
          backends().map((b) => (b.address === victimIp ? { ...b, state: 'terminating' as const } : b)),
        ),
      );
      const fresh = await runClient(t.world, {
        proto: 'tcp',
        host: NODE_ADDR,
        port: NODE_PORT,
        count: 20,
        concurrency: 4,
      });
      expect(new Set(fresh.map(nameOf))).toEqual(new Set([other]));
      expect(await held.exchange('still-there')).toBe(`pong still-there@${victim}`);
      // even removed from the service entirely, the open flow goes on
      svc.upsert(
        service(
          'np-tcp',
          'TCP',
          nodePort,
          backends().filter((b) => b.address !== victimIp),
        ),
      );
      expect(await held.exchange('again')).toBe(`pong again@${victim}`);
      expect(dev.stats().svcNew - before).toBe(21n);
    } finally {
      await held.close();
    }
  });

  it('a service without a backend refuses cleanly (reset), not a black hole', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: t.nodeNetns, pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, []));
    const before = dev.stats().noBackend;
    expect(await runClient(t.world, { proto: 'tcp', host: NODE_ADDR, port: NODE_PORT })).toEqual([
      'error ECONNREFUSED',
    ]);
    expect(dev.stats().noBackend - before).toBe(1n);
  });

  it('ClusterIP per packet from a pod without socket LB: backends answer, the pod sees the service address', async (ctx) => {
    requireRoot(ctx);
    using lb = await PodLb.load({ pinDir });
    const client = t.pods[2]!;
    await lb.attach({ ifname: client.hostIf, netns: t.nodeNetns });
    using svc = scoped(lb.serviceWriter());
    svc.upsert(service('web-tcp', 'TCP', clusterIp, backends()));
    svc.upsert(service('web-udp', 'UDP', clusterIp, backends()));
    const tcp = await runClient(client.ns, {
      proto: 'tcp',
      host: CLUSTER_IP,
      port: 80,
      count: 20,
      concurrency: 4,
    });
    expect(tcp.filter((a) => a.startsWith('error'))).toEqual([]);
    expect(new Set(tcp.map(nameOf))).toEqual(new Set(['be0', 'be1']));
    for (const a of tcp) expect(peerOf(a)).toMatch(new RegExp(`^${client.ip.replaceAll('.', '\\.')}:`));
    const udp = await runClient(client.ns, {
      proto: 'udp',
      host: CLUSTER_IP,
      port: 80,
      count: 20,
      concurrency: 4,
    });
    expect(udp.filter((a) => a.startsWith('error'))).toEqual([]);
    expect(new Set(udp.map(nameOf))).toEqual(new Set(['be0', 'be1']));
    for (const a of udp) expect(remoteOf(a)).toBe(`${CLUSTER_IP}:80`);
  });
});
