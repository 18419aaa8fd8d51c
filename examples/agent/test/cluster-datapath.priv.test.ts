/**
 * The cluster datapath with real packets between two nodes (namespaces on a fabric bridge, no etcd): the
 * ipcache is filled through the cluster writer, policy entries straight into each node's trie.
 *
 * - tunnel mode: pod traffic crosses in VXLAN (the devices' counters move), and node 2's ingress policy
 *   enforces against the identity carried in the VNI, even where node 2's ipcache says otherwise;
 * - native mode: pod traffic crosses routed (no VXLAN device), and the identity comes from the ipcache by
 *   source address;
 * - the remote-node, host and world entities hold for traffic from the other node, the node itself and an
 *   address outside the cluster.
 */
import { addrAdd, routeReplace } from '@datapath/netdev';
import { Handle, Netns } from '@datapath/netlink';
import { inNetns, ipJson, requireRoot, scanLeaks } from '@datapath/testutils';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricDir, MetricReason } from '../src/datapath.gen.js';
import { REMOTE_NODE_IDENTITY } from '../src/ipcache.js';
import {
  remoteNodeRoutes,
  setupNodeDatapath,
  TUNNEL_DEV,
  teardownNodeDatapath,
  VXLAN_OVERHEAD,
} from '../src/node-datapath.js';
import { type ProbeOutcome, runProbes, startListener } from '../src/sys/netns-exec.js';
import { ANY, type PodFx, type TwoNodes, twoNodes } from './helpers/two-nodes.js';

const TCP = 6;
const tcp = (identity: number, port: number, direction: 'ingress' | 'egress' = 'ingress') => ({
  direction,
  identity,
  protocol: TCP,
  port,
  prefixLen: 24,
});

let cluster: TwoNodes | undefined;
async function start(mode: 'tunnel' | 'native', hostRouting = true): Promise<TwoNodes> {
  cluster = await twoNodes(mode, { hostRouting });
  return cluster;
}
afterEach(() => {
  const c = cluster;
  cluster = undefined;
  if (c === undefined) return;
  c.close();
  expect(scanLeaks(c.prefix)).toEqual({ netns: [], links: [], pins: [] });
});

async function probe(
  from: string,
  to: string,
  port: number,
  protocol: 'TCP' | 'UDP' = 'TCP',
  localAddress?: string,
): Promise<ProbeOutcome['result']> {
  const [r] = await runProbes(`/run/netns/${from}`, [
    { id: 0, host: to, port, protocol, timeoutMs: 1000, ...(localAddress ? { localAddress } : {}) },
  ]);
  return r!.result;
}

const ping = (from: string, to: string): boolean => {
  try {
    inNetns(from, 'ping', ['-c', '1', '-W', '1', '-q', to]);
    return true;
  } catch {
    return false;
  }
};

function vxlanPackets(c: TwoNodes, n: 0 | 1): { rx: number; tx: number } {
  const [l] = ipJson<{ stats64: { rx: { packets: number }; tx: { packets: number } } }[]>(
    ['-s', 'link', 'show', TUNNEL_DEV],
    c.nodes[n].netns.name,
  );
  return { rx: l!.stats64.rx.packets, tx: l!.stats64.tx.packets };
}

function drops(c: TwoNodes, n: 0 | 1, pod: PodFx, reason: number): bigint {
  return c.nodes[n].dp
    .counters()
    .filter((k) => k.lxcId === pod.lxcId && k.reason === reason && k.dir === MetricDir.DIR_INGRESS)
    .reduce((a, k) => a + k.packets, 0n);
}

/**
 * Pods a1 (1001), a2 (1002), a3 (1003) on node 1, b (2001) on node 2. b's ingress: 1001 on TCP/80; 1003 on
 * everything but a deny on TCP/80 (the deny wins); 1002 nothing (default deny). The a pods may send anything.
 */
async function policyMatrix(c: TwoNodes, lie = false) {
  const a1 = c.addPod(0, 1001);
  const a2 = c.addPod(0, 1002);
  const a3 = c.addPod(0, 1003);
  const b = c.addPod(1, 2001);
  // Node 2's ipcache lies about a2 (says 1001, which b allows).
  if (lie) c.nodes[1].ipc.upsert({ prefix: `${a2.ip}/32`, identity: 1001, node: c.nodes[0].underlay });
  for (const a of [a1, a2, a3]) c.policy(0, a, ANY('egress'));
  c.policy(1, b, ANY('egress'));
  c.policy(1, b, tcp(1001, 80));
  c.policy(1, b, { direction: 'ingress', identity: 1003, protocol: 0, port: 0, prefixLen: 0 });
  c.policy(1, b, tcp(1003, 80), true);
  await using _l = await listen(b, [80, 81]);
  const out = {
    a1_80: await probe(a1.netns.name, b.ip, 80),
    a2_80: await probe(a2.netns.name, b.ip, 80),
    a3_80: await probe(a3.netns.name, b.ip, 80),
    a3_81: await probe(a3.netns.name, b.ip, 81),
  };
  return { out, a1, a2, a3, b };
}

async function listen(pod: PodFx, ports: number[], protocols: ('TCP' | 'UDP')[] = ['TCP']) {
  const l = await startListener(
    pod.netns.path,
    pod.ip,
    ports.flatMap((port) => protocols.map((protocol) => ({ port, protocol }))),
  );
  return { [Symbol.asyncDispose]: () => l.close() };
}

describe('cluster datapath: two nodes, real packets', () => {
  it('tunnel: TCP, UDP and ICMP cross in VXLAN both ways; pods get MTU 1450', async (ctx) => {
    requireRoot(ctx);
    const c = await start('tunnel');
    expect(c.nodes[0].nd.podMtu).toBe(1500 - VXLAN_OVERHEAD);
    const a = c.addPod(0, 1001);
    const b = c.addPod(1, 2001);
    c.allowAll(0, a);
    c.allowAll(1, b);
    const [eth0] = ipJson<{ mtu: number }[]>(['link', 'show', 'eth0'], a.netns.name);
    expect(eth0!.mtu).toBe(1450);
    const before = vxlanPackets(c, 1);
    await using _b = await listen(b, [80], ['TCP', 'UDP']);
    await using _a = await listen(a, [80], ['TCP', 'UDP']);
    expect(await probe(a.netns.name, b.ip, 80, 'TCP')).toBe('connected');
    expect(await probe(a.netns.name, b.ip, 80, 'UDP')).toBe('connected');
    expect(await probe(b.netns.name, a.ip, 80, 'TCP')).toBe('connected');
    expect(await probe(b.netns.name, a.ip, 80, 'UDP')).toBe('connected');
    expect(ping(a.netns.name, b.ip)).toBe(true);
    expect(ping(b.netns.name, a.ip)).toBe(true);
    const after = vxlanPackets(c, 1);
    // every pod packet crossed the tunnel: both directions of 5 exchanges, each at least 2 packets
    expect(after.rx - before.rx).toBeGreaterThanOrEqual(10);
    expect(after.tx - before.tx).toBeGreaterThanOrEqual(10);
    // Bad input leaves nothing behind: a second collect-metadata device on the same port is refused by
    // the kernel, an unknown mode before any syscall; the node keeps its tunnel.
    const n2 = c.nodes[1];
    const tunnel = n2.dp.tunnelIfindex;
    expect(() => setupNodeDatapath(n2.dp, n2.ns, { mode: 'tunnel', tunnelDev: 'dp_vx2' })).toThrowError(
      expect.objectContaining({ name: 'AgentError', code: 'AlreadyExists' }),
    );
    expect(() => setupNodeDatapath(n2.dp, n2.ns, { mode: 'geneve' as never })).toThrowError(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    const links = ipJson<{ ifname: string }[]>(['link', 'show'], n2.netns.name).map((l) => l.ifname);
    expect(links).toContain(TUNNEL_DEV);
    expect(links).not.toContain('dp_vx2');
    expect(n2.dp.tunnelIfindex).toBe(tunnel);
  }, 60_000);

  it('tunnel: node 2 enforces ingress against the identity in the VNI (allow, default deny, deny wins)', async (ctx) => {
    requireRoot(ctx);
    const c = await start('tunnel');
    // Node 2's ipcache says a2 is 1001 (which b allows): in tunnel mode the VNI (1002) decides.
    const { out, a3, b } = await policyMatrix(c, true);
    expect(out).toEqual({ a1_80: 'connected', a2_80: 'timeout', a3_80: 'timeout', a3_81: 'connected' });
    expect(drops(c, 1, b, MetricReason.REASON_POLICY_DENIED)).toBeGreaterThan(0n);
    expect(drops(c, 1, b, MetricReason.REASON_POLICY_DENY)).toBeGreaterThan(0n);
    // the CT entries on node 2 carry the VNI identity of the allowed flows
    const ids = [...c.nodes[1].dp.ct.entries()].map(([, e]) => e.srcSecId);
    expect(ids).toContain(1001);
    expect(ids).toContain(a3.secId);
    expect(ids).not.toContain(1002);
  }, 60_000);

  for (const hostRouting of [true, false])
    it(`native${hostRouting ? " with host routing (the nodes' stacks forward nothing)" : " through the nodes' stacks"}: routed without a tunnel; identity from the ipcache by source address`, async (ctx) => {
      requireRoot(ctx);
      const c = await start('native', hostRouting);
      const n1 = c.nodes[0];
      expect(n1.nd).toEqual(
        hostRouting
          ? {
              mode: 'native',
              podMtu: 1500,
              netdev: { dev: 'eth0', ifindex: expect.any(Number), attach: 'tcx' },
            }
          : { mode: 'native', podMtu: 1500 },
      );
      expect(n1.dp.hostRouting).toBe(hostRouting);
      expect(n1.dp.config.get(0)?.netdevIfindex).toBe(hostRouting ? n1.nd.netdev!.ifindex : 0);
      expect(
        ipJson<{ ifname: string }[]>(['link', 'show'], n1.netns.name).some((l) => l.ifname === TUNNEL_DEV),
      ).toBe(false);
      // With host routing, pod packets never reach the nodes' IP forwarding: a FORWARD chain that drops
      // everything changes nothing (without it, this would cut every cross-node flow).
      if (hostRouting)
        for (const n of c.nodes) inNetns(n.netns.name, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
      const { out, a1, b } = await policyMatrix(c);
      expect(out).toEqual({ a1_80: 'connected', a2_80: 'timeout', a3_80: 'timeout', a3_81: 'connected' });
      expect(ping(a1.netns.name, b.ip)).toBe(false); // ICMP: not allowed for 1001 (TCP/80 only)
      await using _u = await listen(b, [53], ['UDP']);
      expect(await probe(a1.netns.name, b.ip, 53, 'UDP')).toBe('timeout');
      // b's ingress now allows 1001 everything: UDP and ICMP cross too
      c.policy(1, b, { direction: 'ingress', identity: 1001, protocol: 0, port: 0, prefixLen: 0 });
      expect(await probe(a1.netns.name, b.ip, 53, 'UDP')).toBe('connected');
      expect(ping(a1.netns.name, b.ip)).toBe(true);
      // the source identity is the ipcache's: change it on node 2 and a1 is a stranger there
      c.nodes[1].ipc.upsert({ prefix: `${a1.ip}/32`, identity: 1002, node: c.nodes[0].underlay });
      expect(await probe(a1.netns.name, b.ip, 80)).toBe('timeout');
      if (hostRouting) {
        const [fwd] = inNetns(c.nodes[1].netns.name, 'iptables', ['-w', '-L', 'FORWARD', '-v', '-x', '-n'])
          .split('\n')
          .filter((l) => l.startsWith('Chain FORWARD'));
        expect(fwd).toMatch(/policy DROP 0 packets/);
        // back to the stack on node 1: host routing off, from_netdev gone; its FORWARD chain now cuts a flow
        // that crossed a moment ago
        const a3 = c.nodes[0].pods[2]!;
        expect(await probe(a3.netns.name, b.ip, 53, 'UDP')).toBe('connected');
        teardownNodeDatapath(n1.dp, n1.ns, n1.nd);
        expect(n1.dp.hostRouting).toBe(false);
        expect(n1.dp.config.get(0)?.netdevIfindex).toBe(0);
        expect(await probe(a3.netns.name, b.ip, 53, 'UDP')).toBe('timeout');
      }
    }, 60_000);

  it("native with host routing: the next hop is the ipcache's node on the underlay device, its MAC from the neighbour table (resolved when missing); too big for the device: the stack answers", async (ctx) => {
    requireRoot(ctx);
    const c = await start('native');
    const [n1, n2] = c.nodes;
    const a = c.addPod(0, 1001);
    const b = c.addPod(1, 2001);
    c.allowAll(0, a);
    c.allowAll(1, b);
    for (const n of c.nodes) {
      inNetns(n.netns.name, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
      inNetns(n.netns.name, 'ip', ['neigh', 'flush', 'dev', 'eth0']);
    }
    const neighbour = (n: typeof n1, addr: string) =>
      ipJson<{ dst: string; state?: string[] }[]>(['neigh', 'show', 'dev', 'eth0'], n.netns.name).find(
        (e) => e.dst === addr,
      );
    expect(neighbour(n1, n2.underlay)).toBeUndefined();
    await using _b = await listen(b, [80]);
    // no neighbour entry for node 2 on node 1: bpf_redirect_neigh makes one, resolves it and sends the
    // packet it held (a map of MACs without the neighbour table behind it would lose it)
    expect(await probe(a.netns.name, b.ip, 80)).toBe('connected');
    expect(neighbour(n1, n2.underlay)?.state).toEqual(
      expect.arrayContaining([expect.stringMatching(/REACHABLE|STALE|DELAY|PROBE/)]),
    );
    // from_container asks no FIB: with node 1's route to node 2's pods gone, the ipcache's node still takes
    // a's packets there (only the node's own traffic needs the route)
    inNetns(n1.netns.name, 'ip', ['route', 'del', n2.podCidr]);
    expect(await probe(a.netns.name, b.ip, 80)).toBe('connected');
    expect(() => inNetns(n1.netns.name, 'ping', ['-c', '1', '-W', '1', '-q', b.ip])).toThrow();
    for (const r of remoteNodeRoutes({ underlay: n2.underlay, podCidrs: [n2.podCidr] })) {
      using fns = Netns.open({ path: n1.netns.path });
      using h = Handle.open(fns);
      routeReplace(r, { handle: h });
    }
    // A packet bigger than the underlay device's MTU (1400 here, pods at 1500) that is not GSO goes to node
    // 1's stack, which answers "fragmentation needed" (before its FORWARD chain): a's route to b learns 1400.
    inNetns(n1.netns.name, 'ip', ['link', 'set', 'eth0', 'mtu', '1400']);
    expect(() =>
      inNetns(a.netns.name, 'ping', ['-c', '1', '-W', '1', '-M', 'do', '-s', '1450', b.ip]),
    ).toThrow();
    expect(inNetns(a.netns.name, 'ip', ['route', 'get', b.ip])).toMatch(/mtu 1400/);
    expect(ping(a.netns.name, b.ip)).toBe(true); // a small one still crosses
  }, 60_000);

  for (const mode of ['tunnel', 'native'] as const)
    it(`entities (${mode}): remote-node (the other node), host (this node) and world (outside the cluster)`, async (ctx) => {
      requireRoot(ctx);
      const c = await start(mode);
      const b = c.addPod(1, 2001);
      c.policy(1, b, ANY('egress'));
      c.policy(1, b, tcp(REMOTE_NODE_IDENTITY, 80));
      c.policy(1, b, tcp(1, 80));
      c.policy(1, b, tcp(2, 81));
      // An outside address on the fabric, routed to node 2's pods: in no ipcache, so world.
      {
        using fns = Netns.open({ path: c.fabric.path });
        using h = Handle.open(fns);
        addrAdd('br0', '198.18.0.100/24', { handle: h });
        routeReplace({ dst: '10.244.2.0/24', via: c.nodes[1].underlay }, { handle: h });
      }
      await using _l = await listen(b, [80, 81]);
      const n1 = c.nodes[0].netns.name;
      const n2 = c.nodes[1].netns.name;
      expect({
        remoteNode80: await probe(n1, b.ip, 80),
        remoteNode81: await probe(n1, b.ip, 81),
        host80: await probe(n2, b.ip, 80),
        host81: await probe(n2, b.ip, 81),
        world80: await probe(c.fabric.name, b.ip, 80),
        world81: await probe(c.fabric.name, b.ip, 81),
      }).toEqual({
        remoteNode80: 'connected',
        remoteNode81: 'timeout',
        host80: 'connected',
        host81: 'timeout',
        world80: 'timeout',
        world81: 'connected',
      });
    }, 60_000);
});
