import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { query } from '@datapath/loader';
import { inNetns, ipJson, requireRoot, run, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LbError } from '../src/errors.js';
import { NatDir } from '../src/netdev.gen.js';
import { monotonicSeconds, NodeNetdev, natClosing } from '../src/netdev.js';
import {
  buildTopology,
  CLUSTER_CIDR,
  NODE_ADDR,
  NODE_ADDR6,
  POD_CIDR,
  POD_CIDR6,
  type Topology,
  WORLD_ADDR,
  WORLD_ADDR6,
} from './helpers/topology.js';
import { type HeldConnection, holdConnection, runClient, startServer } from './helpers/traffic.js';

const MASQ = { podCidr: POD_CIDR, clusterCidr: CLUSTER_CIDR };
/** `addr:port` the server saw, from a client answer. */
const seen = (answer: string | undefined) => String(answer).split(' ')[0]!;
const fromNode = new RegExp(`^${NODE_ADDR.replaceAll('.', '\\.')}:\\d+$`);

/** Programs attached to the node's ext0 (tcx chains and legacy tc filters), as the kernel reports them. */
function attachedOnExt(t: Topology): string[] {
  const q = query({ ifname: 'ext0', netns: t.nodeNetns });
  return [...q.tcx.ingress.programs, ...q.tcx.egress.programs, ...q.tc].map((p) => p.name);
}

describe('masquerade on the node’s outward device', () => {
  let t: Topology;
  let prefix: string;
  beforeAll(() => {
    if (process.getuid?.() !== 0) return; // every test skips itself (requireRoot)
    prefix = uniqueName();
    t = buildTopology(prefix, 4);
  });
  afterAll(() => {
    t?.close();
    if (prefix) expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  });

  it('gives pod traffic the node’s address towards a world with no route back; replies arrive (TCP, UDP, ICMP echo)', async (ctx) => {
    requireRoot(ctx);
    // the world has no route to the pod CIDR: only its own link
    const worldRoutes = ipJson<{ dst: string }[]>(['route', 'show'], t.world).map((r) => r.dst);
    expect(worldRoutes.some((d) => d.startsWith('10.244') || d === 'default')).toBe(false);
    const tcp = await startServer(t.world, 'tcp', 8080);
    const udp = await startServer(t.world, 'udp', 8081);
    const pod = t.pods[0]!;
    try {
      // without the programs, the pod's packets leave with its own address and the replies are lost
      expect(await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR, port: 8080, timeoutMs: 700 })).toEqual(
        ['error timeout'],
      );
      expect(tcp.peers).toEqual([]); // no SYN-ACK came back to complete it
      using dev = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, masquerade: MASQ },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      expect(attachedOnExt(t).sort()).toEqual(['from_netdev', 'to_netdev']);
      const [tcpAnswer] = await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR, port: 8080 });
      expect(seen(tcpAnswer)).toMatch(fromNode);
      const [udpAnswer] = await runClient(pod.ns, { proto: 'udp', host: WORLD_ADDR, port: 8081 });
      expect(seen(udpAnswer)).toMatch(fromNode);
      expect([...tcp.peers, ...udp.peers].every((p) => p.startsWith(`${NODE_ADDR}:`))).toBe(true);
      // ICMP echo: the world answers the node's address; the reply reaches the pod
      expect(inNetns(pod.ns, 'ping', ['-c', '2', '-W', '2', '-q', WORLD_ADDR])).toMatch(/2 received/);
      // the map holds each flow as a pair: out (pod -> world) and in (world -> node)
      const flows = await dev.flows();
      const outs = flows.filter((f) => f.key.dir === NatDir.NAT_DIR_OUT && f.key.saddr === pod.ip);
      expect(new Set(outs.map((f) => f.key.proto))).toEqual(new Set([1, 6, 17]));
      for (const o of outs) {
        expect(o.entry.toAddr).toBe(NODE_ADDR);
        const back = flows.find(
          (f) =>
            f.key.dir === NatDir.NAT_DIR_IN && f.key.proto === o.key.proto && f.key.dport === o.entry.toPort,
        );
        expect(back?.entry).toMatchObject({ toAddr: pod.ip, toPort: o.key.sport });
      }
      const s = dev.stats();
      expect(s.snatOut).toBeGreaterThan(0n);
      expect(s.snatIn).toBeGreaterThan(0n);
      expect(s.dropExhausted + s.dropMapFull).toBe(0n);
    } finally {
      await tcp.stop();
      await udp.stop();
    }
    expect(attachedOnExt(t)).toEqual([]); // `using` detached both
  });

  it('masquerades IPv6 too: the world sees the node’s IPv6 address and answers it (TCP, UDP, ICMPv6 echo)', async (ctx) => {
    requireRoot(ctx);
    const tcp = await startServer(t.world, 'tcp', 8090, '::');
    const udp = await startServer(t.world, 'udp', 8091, '::');
    const pod = t.pods[0]!;
    try {
      // without the programs, nothing comes back: the world has no route to fd00:1::/48
      expect(
        await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR6, port: 8090, timeoutMs: 700 }),
      ).toEqual(['error timeout']);
      using dev = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, nodeAddress6: NODE_ADDR6, masquerade: { ...MASQ, podCidr6: POD_CIDR6 } },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      const fromNode6 = new RegExp(`^${NODE_ADDR6}:\\d+$`);
      expect((await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR6, port: 8090 })).map(seen)).toEqual([
        expect.stringMatching(fromNode6),
      ]);
      expect((await runClient(pod.ns, { proto: 'udp', host: WORLD_ADDR6, port: 8091 })).map(seen)).toEqual([
        expect.stringMatching(fromNode6),
      ]);
      expect(inNetns(pod.ns, 'ping', ['-6', '-c', '2', '-W', '2', '-q', WORLD_ADDR6])).toMatch(/2 received/);
      const outs = (await dev.flows6()).filter((f) => f.key.dir === NatDir.NAT_DIR_OUT);
      expect(new Set(outs.map((f) => f.key.proto))).toEqual(new Set([6, 17, 58]));
      for (const o of outs) expect([o.key.saddr, o.entry.toAddr]).toEqual([pod.ip6, NODE_ADDR6]);
      // pod-to-pod IPv6 stays inside the cluster CIDR: nothing to translate (a v4 pod flow neither)
      expect((await dev.flows()).length).toBe(0);
    } finally {
      await tcp.stop();
      await udp.stop();
    }
  });

  it('gives two pods with the same source port to the same destination different node ports', async (ctx) => {
    requireRoot(ctx);
    const tcp = await startServer(t.world, 'tcp', 8082);
    const udp = await startServer(t.world, 'udp', 8083);
    try {
      using dev = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, masquerade: MASQ },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      for (const [proto, port] of [
        ['tcp', 8082],
        ['udp', 8083],
      ] as const) {
        const answers = await Promise.all(
          t.pods
            .slice(0, 2)
            .map((p) => runClient(p.ns, { proto, host: WORLD_ADDR, port, sourcePort: 40000 })),
        );
        const ports = answers.map(([a]) => seen(a).split(':'));
        expect(ports.map(([addr]) => addr)).toEqual([NODE_ADDR, NODE_ADDR]);
        expect(ports[0]![1]).not.toBe(ports[1]![1]);
        // one of them kept its port (port preservation), the other got another one from the range
        expect(ports.map(([, p]) => p)).toContain('40000');
      }
      const outs = (await dev.flows()).filter(
        (f) => f.key.dir === NatDir.NAT_DIR_OUT && f.key.sport === 40000,
      );
      expect(outs).toHaveLength(4);
      for (const proto of [6, 17]) {
        const mine = outs.filter((o) => o.key.proto === proto);
        expect(new Set(mine.map((o) => o.entry.toPort)).size).toBe(2);
      }
      expect(dev.stats().collisions).toBeGreaterThanOrEqual(2n);
    } finally {
      await tcp.stop();
      await udp.stop();
    }
  });

  it('runs 10 000 short connections from 4 pods without a port collision (map and server agree)', async (ctx) => {
    requireRoot(ctx);
    const tcp = await startServer(t.world, 'tcp', 8084);
    try {
      // flows stay in the map for the whole test: every connection must hold its own node port
      using dev = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, masquerade: MASQ, timeouts: { tcpClose: 3600 } },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      const perPod = 2500;
      const runs = await Promise.all(
        t.pods.map((p) =>
          runClient(p.ns, {
            proto: 'tcp',
            host: WORLD_ADDR,
            port: 8084,
            count: perPod,
            concurrency: 24,
            timeoutMs: 5000,
          }),
        ),
      );
      // (pod address, pod port) -> the (address, port) the server saw
      const podToNode = new Map<string, string>();
      runs.forEach((answers, i) => {
        expect(answers.filter((a) => a.startsWith('error'))).toEqual([]);
        expect(answers).toHaveLength(perPod);
        for (const a of answers) {
          const [nodeSide, podPort] = a.split(' ');
          const podSide = `${t.pods[i]!.ip}:${podPort}`;
          // a pod's kernel may reuse its own port after a close: the same tuple keeps its node port
          expect(podToNode.get(podSide) ?? nodeSide).toBe(nodeSide);
          podToNode.set(podSide, nodeSide!);
        }
      });
      expect(tcp.peers).toHaveLength(10_000);
      expect(tcp.peers.every((p) => fromNode.test(p))).toBe(true);
      // no collision: distinct pod tuples were given distinct node tuples, as the server saw them
      const nodeTuples = new Set(podToNode.values());
      expect(nodeTuples.size).toBe(podToNode.size);
      expect(new Set(tcp.peers)).toEqual(nodeTuples);
      // the map: one pair per pod tuple, no node port given twice towards the same peer
      const flows = (await dev.flows()).filter(
        (f) => f.key.proto === 6 && (f.key.dport === 8084 || f.key.sport === 8084),
      );
      const outs = flows.filter((f) => f.key.dir === NatDir.NAT_DIR_OUT);
      const ins = flows.filter((f) => f.key.dir === NatDir.NAT_DIR_IN);
      expect(outs).toHaveLength(podToNode.size);
      expect(ins).toHaveLength(podToNode.size);
      expect(new Set(outs.map((o) => `${NODE_ADDR}:${o.entry.toPort}`))).toEqual(nodeTuples);
      for (const o of outs)
        expect(podToNode.get(`${o.key.saddr}:${o.key.sport}`)).toBe(`${NODE_ADDR}:${o.entry.toPort}`);
      expect(new Set(ins.map((i) => i.key.dport))).toEqual(new Set(outs.map((o) => o.entry.toPort)));
      const s = dev.stats();
      expect(s.snatNew).toBe(BigInt(podToNode.size));
      expect(s.dropExhausted + s.dropMapFull).toBe(0n);
    } finally {
      await tcp.stop();
    }
  }, 180_000);

  it('leaves traffic inside the cluster CIDR and to the node itself untranslated', async (ctx) => {
    requireRoot(ctx);
    const pod = t.pods[1]!;
    // a "remote pod" 10.244.2.2 behind the world namespace, which now routes the pod CIDR back
    run('ip', ['-n', t.world, 'addr', 'add', '10.244.2.2/32', 'dev', 'lo']);
    run('ip', ['-n', t.world, 'route', 'add', POD_CIDR, 'via', NODE_ADDR]);
    run('ip', ['-n', t.node, 'route', 'add', '10.244.2.0/24', 'via', WORLD_ADDR]);
    const remote = await startServer(t.world, 'tcp', 8085, '10.244.2.2');
    const local = await startServer(t.node, 'tcp', 8086, NODE_ADDR);
    try {
      using dev = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, masquerade: MASQ },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      const fromPod = new RegExp(`^${pod.ip.replaceAll('.', '\\.')}:\\d+$`);
      expect((await runClient(pod.ns, { proto: 'tcp', host: '10.244.2.2', port: 8085 })).map(seen)).toEqual([
        expect.stringMatching(fromPod),
      ]);
      expect((await runClient(pod.ns, { proto: 'tcp', host: NODE_ADDR, port: 8086 })).map(seen)).toEqual([
        expect.stringMatching(fromPod),
      ]);
      expect((await dev.flows()).filter((f) => f.key.saddr === pod.ip || f.entry.toAddr === pod.ip)).toEqual(
        [],
      );
      expect(dev.stats().snatOut).toBe(0n);
    } finally {
      await remote.stop();
      await local.stop();
      run('ip', ['-n', t.world, 'route', 'del', POD_CIDR]);
    }
  });

  it('drops and counts a new flow when every candidate port is taken', async (ctx) => {
    requireRoot(ctx);
    const udp = await startServer(t.world, 'udp', 8087);
    try {
      using dev = await NodeNetdev.attach(
        {
          nodeAddress: NODE_ADDR,
          masquerade: { ...MASQ, portRange: { min: 50000, max: 50001 }, retries: 8 },
        },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      const pod = t.pods[2]!;
      const first = await runClient(pod.ns, {
        proto: 'udp',
        host: WORLD_ADDR,
        port: 8087,
        sourcePort: 41000,
      });
      const second = await runClient(pod.ns, {
        proto: 'udp',
        host: WORLD_ADDR,
        port: 8087,
        sourcePort: 41001,
      });
      expect([...first, ...second].map(seen).sort()).toEqual([`${NODE_ADDR}:50000`, `${NODE_ADDR}:50001`]);
      const third = await runClient(pod.ns, {
        proto: 'udp',
        host: WORLD_ADDR,
        port: 8087,
        sourcePort: 41002,
        timeoutMs: 500,
      });
      expect(third).toEqual(['error timeout']);
      const s = dev.stats();
      expect(s.dropExhausted).toBe(1n);
      expect(s.collisions).toBeGreaterThanOrEqual(8n);
      // the same tuple again reuses its pair: still answered
      const again = await runClient(pod.ns, {
        proto: 'udp',
        host: WORLD_ADDR,
        port: 8087,
        sourcePort: 41001,
      });
      expect(again.map(seen)).toEqual([expect.stringMatching(/^198\.18\.0\.1:5000[01]$/)]);
    } finally {
      await udp.stop();
    }
  });

  it('expires flows: UDP after its timeout, TCP after FIN from both sides; a reopened TCP tuple is open again', async (ctx) => {
    requireRoot(ctx);
    const tcp = await startServer(t.world, 'tcp', 8088);
    const udp = await startServer(t.world, 'udp', 8089);
    let held: HeldConnection | undefined;
    try {
      using dev = await NodeNetdev.attach(
        {
          nodeAddress: NODE_ADDR,
          masquerade: MASQ,
          timeouts: { udp: 30, tcpClose: 5, tcpEstablished: 3000, tcpSyn: 20 },
        },
        { ifname: 'ext0', netns: t.nodeNetns },
      );
      const pod = t.pods[3]!;
      await runClient(pod.ns, { proto: 'udp', host: WORLD_ADDR, port: 8089 });
      await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR, port: 8088, sourcePort: 42000 }); // opened, closed
      await runClient(pod.ns, { proto: 'tcp', host: WORLD_ADDR, port: 8088, sourcePort: 42001 }); // opened, closed
      const tcpHalves = (await dev.flows()).filter((f) => f.key.proto === 6);
      expect(tcpHalves).toHaveLength(4);
      for (const h of tcpHalves) expect(natClosing(h.entry)).toBe(true);
      // the same pod tuple opens a new connection (the server holds it open): its pair starts over
      held = await holdConnection(pod.ns, WORLD_ADDR, 8088, 42000);
      const now = monotonicSeconds();
      expect(await dev.gc(now)).toBe(0); // nothing has expired yet
      expect(await dev.gc(now + 8)).toBe(2); // the closed TCP pair of port 42001 (5 s), not UDP (30 s)
      const left = await dev.flows();
      expect(left.filter((f) => f.key.proto === 17)).toHaveLength(2);
      const open = left.filter((f) => f.key.proto === 6);
      expect(open).toHaveLength(2);
      for (const h of open) expect(natClosing(h.entry)).toBe(false);
      expect(await dev.gc(now + 40)).toBe(2); // UDP now; the open TCP flow stays (3000 s)
      expect((await dev.flows()).map((f) => f.key.proto)).toEqual([6, 6]);
      await held.close();
      held = undefined;
      // the client's FIN and the server's closing FIN mark the pair closing
      await expect.poll(async () => (await dev.flows()).every((f) => natClosing(f.entry))).toBe(true);
      expect(await dev.gc(monotonicSeconds() + 8)).toBe(2);
      expect(await dev.flows()).toEqual([]);
    } finally {
      await held?.close();
      await tcp.stop();
      await udp.stop();
    }
  });

  it('rejects bad configuration with typed errors and leaves nothing attached or pinned', async (ctx) => {
    requireRoot(ctx);
    const pinDir = mkdtempSync(join('/sys/fs/bpf', `${prefix}-`));
    try {
      const bad = [
        { nodeAddress: NODE_ADDR, masquerade: { ...MASQ, portRange: { min: 60000, max: 1000 } } },
        { masquerade: MASQ } as unknown as { nodeAddress: string },
        { nodeAddress: 'fd00::1', masquerade: MASQ },
        { nodeAddress: NODE_ADDR, masquerade: { podCidr: 'nope' } },
        { nodeAddress: NODE_ADDR, masquerade: { ...MASQ, retries: 0 } },
        { nodeAddress: NODE_ADDR, timeouts: { udp: -1 } },
      ];
      const reasons: string[] = [];
      for (const config of bad) {
        const err = await NodeNetdev.attach(config, { ifname: 'ext0', netns: t.nodeNetns, pinDir }).catch(
          (e) => e,
        );
        expect(err).toBeInstanceOf(LbError);
        expect(err.code).toBe('InvalidArgument');
        reasons.push(err.reason);
      }
      expect(reasons).toEqual([
        'InvalidPortRange',
        'InvalidAddress',
        'InvalidAddress',
        'InvalidCidr',
        'InvalidNatConfig',
        'InvalidNatConfig',
      ]);
      // an unknown device fails in the kernel step: the maps pinned for it are removed again
      const err = await NodeNetdev.attach(
        { nodeAddress: NODE_ADDR, masquerade: MASQ },
        { ifname: 'nosuchdev0', netns: t.nodeNetns, pinDir },
      ).catch((e) => e);
      expect(err.code).toBe('NotFound');
      expect(readdirSync(pinDir)).toEqual([]);
      expect(attachedOnExt(t)).toEqual([]);
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });
});
