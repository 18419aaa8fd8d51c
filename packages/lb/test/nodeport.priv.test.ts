import { requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { NodeNetdev } from '../src/netdev.js';
import { PodLb } from '../src/pod-lb.js';
import {
  expectServiceFlows,
  nameOf,
  PORT6,
  peerOf,
  remoteOf,
  scoped,
  serviceLab,
} from './helpers/service-lab.js';
import {
  CLUSTER_CIDR,
  NODE_ADDR,
  NODE_ADDR6,
  POD_CIDR,
  WORLD_ADDR,
  WORLD_ADDR6,
} from './helpers/topology.js';
import { holdConnection, runClient } from './helpers/traffic.js';

const NODE_PORT = 30080;
const CLUSTER_IP = '10.96.0.10';
const CLUSTER_IP6 = 'fd00:96::10';

describe('per-packet load balancing at tc: NodePort on the outward device, ClusterIP at the pod veth', () => {
  const lab = serviceLab();

  /** The two backend pods, `be0` and `be1`, in the package's service model. */
  const backends = () => lab.t.pods.slice(0, 2).map((p) => ({ address: p.ip, port: 8080 }));
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
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, backends()));
    svc.upsert(service('np-udp', 'UDP', nodePort, backends()));
    const tcp = await runClient(lab.t.world, {
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
    const udp = await runClient(lab.t.world, {
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
    expect(s.svcNew).toBeGreaterThan(0n);
    expect(s.svcReply).toBeGreaterThan(0n);
    expect(s.snatOut).toBe(0n); // replies of a service flow are not masqueraded
    // every connection and request went through a service flow of the map, to the backend that answered
    // (not a count of new flows: a request socket may get the source port of an earlier one and share
    // its flow)
    const halves = await dev.flows();
    const be = Object.fromEntries(backends().map((b, i) => [`be${i}`, b]));
    const flow = { saddr: WORLD_ADDR, daddr: NODE_ADDR, dport: NODE_PORT, backends: be };
    expectServiceFlows(halves, tcp, { ...flow, proto: 'tcp' }, 'tcp');
    expectServiceFlows(halves, udp, { ...flow, proto: 'udp' }, 'udp');
  });

  it('NodePort with Maglev selection: the table is written through the writer and flows spread by it', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    const ops = svc.upsert({ ...service('np-maglev', 'TCP', nodePort, backends()), selection: 'maglev' });
    expect(ops.filter((o) => o.map === 'maglev').length).toBe(1);
    const table = svc.writer.table.get('np-maglev')!.maglev!;
    expect(new Set(table).size).toBe(2);
    const tcp = await runClient(lab.t.world, {
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
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using lb = await PodLb.load({ pinDir: lab.pinDir });
    const client = lab.t.pods[2]!;
    await lb.attach({ ifname: client.hostIf, netns: lab.t.nodeNetns });
    using svc = scoped(dev.serviceWriter());
    for (const protocol of ['TCP', 'UDP'] as const)
      svc.upsert({
        name: `web6-${protocol}`,
        protocol,
        frontends: [
          { kind: 'NodePort', address: NODE_ADDR6, port: NODE_PORT },
          { kind: 'ClusterIP', address: CLUSTER_IP6, port: 80 },
        ],
        backends: lab.t.pods.slice(0, 2).map((p) => ({ address: p.ip6, port: PORT6 })),
      });
    const before = dev.stats().svcNew;
    const be = Object.fromEntries(
      lab.t.pods.slice(0, 2).map((p, i) => [`be${i}`, { address: p.ip6, port: PORT6 }]),
    );
    const made: [answers: string[], flow: Parameters<typeof expectServiceFlows>[2], what: string][] = [];
    const paths = [
      { from: lab.t.world, host: NODE_ADDR6, port: NODE_PORT, peer: WORLD_ADDR6 },
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
        made.push([got, { proto, saddr: peer, daddr: host, dport: port, backends: be }, what]);
      }
    expect(dev.stats().svcNew).toBeGreaterThan(before);
    const halves = await dev.flows6();
    for (const [got, flow, what] of made) expectServiceFlows(halves, got, flow, what);
  });

  it('a terminating backend keeps its open flow through the flow map; new flows avoid it', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, backends()));
    const before = dev.stats().svcNew; // the counters live in the pinned maps, across attachments
    const held = await holdConnection(lab.t.world, NODE_ADDR, NODE_PORT);
    try {
      const victim = held.greeting.split('@')[1]!;
      const other = victim === 'be0' ? 'be1' : 'be0';
      const victimIp = lab.t.pods[Number(victim.slice(2))]!.ip;
      svc.upsert(
        service(
          'np-tcp',
          'TCP',
          nodePort,
          backends().map((b) => (b.address === victimIp ? { ...b, state: 'terminating' as const } : b)),
        ),
      );
      const fresh = await runClient(lab.t.world, {
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
      expect(dev.stats().svcNew).toBeGreaterThan(before);
      // the fresh connections' flows lead to the other backend, the held one's still to the victim
      const halves = await dev.flows();
      const be = Object.fromEntries(backends().map((b, i) => [`be${i}`, b]));
      const flow = {
        proto: 'tcp',
        saddr: WORLD_ADDR,
        daddr: NODE_ADDR,
        dport: NODE_PORT,
        backends: be,
      } as const;
      expectServiceFlows(halves, fresh, flow, 'fresh');
      // the held connection's answer has no local port: the backend saw the client's own (no SNAT)
      const heldAnswer = `${held.greeting} ${peerOf(held.greeting)!.split(':')[1]}`;
      expectServiceFlows(halves, [heldAnswer], flow, 'held');
    } finally {
      await held.close();
    }
  });

  it('a service without a backend refuses cleanly (reset), not a black hole', async (ctx) => {
    requireRoot(ctx);
    using dev = await NodeNetdev.attach(
      { nodeAddress: NODE_ADDR, nodePort: true },
      { ifname: 'ext0', netns: lab.t.nodeNetns, pinDir: lab.pinDir },
    );
    using svc = scoped(dev.serviceWriter());
    svc.upsert(service('np-tcp', 'TCP', nodePort, []));
    const before = dev.stats().noBackend;
    expect(await runClient(lab.t.world, { proto: 'tcp', host: NODE_ADDR, port: NODE_PORT })).toEqual([
      'error ECONNREFUSED',
    ]);
    expect(dev.stats().noBackend - before).toBe(1n);
  });

  it('ClusterIP per packet from a pod without socket LB: backends answer, the pod sees the service address', async (ctx) => {
    requireRoot(ctx);
    using lb = await PodLb.load({ pinDir: lab.pinDir });
    const client = lab.t.pods[2]!;
    await lb.attach({ ifname: client.hostIf, netns: lab.t.nodeNetns });
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
