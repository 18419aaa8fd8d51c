// NodePort with every backend on another node, in a two-node cluster (etcd on loopback, one agent process per
// node), in each routing mode: a client in n1's world namespace connects to n1's address at the nodePort; n1
// translates the flow to a backend on n2 and its source to n1's address (SNAT, a port from the NAT map), sends it
// over the tunnel or the underlay; n2's reply comes back to n1, which translates it back to the client. The
// backend's policy on n2 sees the world identity (tunnel: the VNI) or remote-node (native: n1's address).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import { requireRoot, runPrefix, scanLeaks } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { type ClusterRecord, clusterDown, clusterUp, killNode, restartNode } from '../src/cluster.js';
import { runClusterProbes } from '../src/cluster-run.js';
import { Datapath, NODEPORT_SNAT_PORTS } from '../src/datapath.js';
import { addWorldAddress } from '../src/node.js';
import { type ProbeRequest, runProbes, startListener } from '../src/sys/netns-exec.js';

const root = process.getuid?.() === 0;

/** The scenario: backends only on n2; `srv` admits `entity` (the identity n2 sees in this mode), `locked` the other. */
function scenario(entity: string, other: string) {
  const pod = (name: string, node: string, app: string, ip: string) => ({
    namespace: 'x',
    name,
    node,
    ip,
    labels: { app },
    ports: [
      { port: 8080, protocol: 'TCP' },
      { port: 5353, protocol: 'UDP' },
    ],
  });
  const allow = (name: string, app: string, from: string) => ({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace: 'x' },
    spec: { endpointSelector: { matchLabels: { app } }, ingress: [{ fromEntities: [from] }] },
  });
  return {
    nodes: ['n1', 'n2'],
    namespaces: { x: {} },
    pods: [
      pod('idle', 'n1', 'idle', '10.244.1.10'),
      pod('srv-1', 'n2', 'srv', '10.244.2.10'),
      pod('srv-2', 'n2', 'srv', '10.244.2.11'),
      pod('locked', 'n2', 'locked', '10.244.2.12'),
    ],
    services: [
      {
        namespace: 'x',
        name: 'srv',
        type: 'NodePort',
        clusterIP: '10.96.0.40',
        selector: { app: 'srv' },
        ports: [
          { port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 },
          { port: 53, protocol: 'UDP', targetPort: 5353, nodePort: 30053 },
        ],
      },
      {
        namespace: 'x',
        name: 'locked',
        type: 'NodePort',
        clusterIP: '10.96.0.41',
        selector: { app: 'locked' },
        ports: [{ port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30081 }],
      },
    ],
    policies: [allow('srv', 'srv', entity), allow('locked', 'locked', other)],
    // `agent cluster run`'s world → NodePort probes: per packet to n1's address, compiled for this mode's identity
    probes: [
      { from: 'world:198.18.9.9', fromNode: 'n1', to: 'svc/x/srv:80', expect: 'allow' },
      { from: 'world:198.18.9.9', fromNode: 'n1', to: 'svc/x/locked:80', expect: 'deny' },
    ],
  };
}

describe.skipIf(!root)('NodePort to backends on another node', () => {
  for (const [mode, entity, other, id] of [
    ['tunnel', 'world', 'remote-node', 2],
    ['native', 'remote-node', 'world', 6],
  ] as const) {
    it(`${mode}: world → n1:nodePort is answered by n2's backends over TCP and UDP, translated back; policy on n2 holds`, async (ctx) => {
      requireRoot(ctx);
      const prefix = `${runPrefix()}${randomBytes(2).toString('hex').slice(0, 3)}`;
      const dir = mkdtempSync(join(tmpdir(), 'dp-cluster-np-'));
      const o = { name: 'np', prefix, stateDir: join(dir, 'state'), ttlSeconds: 2, timeoutMs: 45_000, mode };
      const file = join(dir, 'scenario.json');
      writeFileSync(file, JSON.stringify(scenario(entity, other)));
      let up = false;
      try {
        const c = await clusterUp(file, o);
        up = true;
        const [n1, n2] = c.nodes.map((n) =>
          Agent.readState({ name: n.name, prefix: n.prefix, stateDir: n.stateDir }),
        );
        const report = await runClusterProbes(c, 2000);
        expect(report.results.map((r) => [r.from, r.to, r.port, r.measured, r.compiled, r.mismatch])).toEqual(
          [
            ['world:198.18.9.9@n1', 'svc/x/srv', 30080, 'allow', 'allow', false],
            ['world:198.18.9.9@n1', 'svc/x/locked', 30081, 'deny', 'deny', false],
          ],
        );
        expect(report.results[0]!.detail).toMatch(/^backend x\/srv-[12]@n2$/);
        // Each node has the other's router address behind that node (a backend's replies to n1's address are
        // encapsulated back to n1 in tunnel mode), whether it learnt it from etcd's list or from the watch.
        expect(routerEntries(c)).toEqual(expectedRouterEntries(c));
        const earlier = (await natOut(n1!.pinDir, '198.18.9.9')).length;
        const clientIp = '198.18.9.9';
        {
          using world = Netns.open({ name: n1!.worldNetns });
          using node = Netns.open({ name: n1!.nodeNetns });
          addWorldAddress(world, node, `${n1!.prefix}w`, clientIp);
        }
        const listeners = await Promise.all(
          ['x/srv-1', 'x/srv-2', 'x/locked'].map((k) =>
            startListener(`/run/netns/${n2!.pods[k]!.netns}`, k, [
              { port: 8080, protocol: 'TCP' },
              { port: 5353, protocol: 'UDP' },
            ]),
          ),
        );
        try {
          const probe = (
            n: number,
            port: number,
            protocol: 'TCP' | 'UDP',
            timeoutMs = 3000,
          ): ProbeRequest[] =>
            Array.from({ length: n }, (_, i) => ({
              id: i,
              host: n1!.hostIp,
              port,
              protocol,
              timeoutMs,
              localAddress: clientIp,
            }));
          const world = `/run/netns/${n1!.worldNetns}`;
          // Many connections: every one answered by a backend on n2 (a connected socket takes replies only
          // from n1's address and the nodePort: the reply was translated back).
          const tcp = await runProbes(world, probe(40, 30080, 'TCP'));
          expect(tcp.filter((x) => x.result !== 'connected')).toEqual([]);
          expect(new Set(tcp.map((x) => x.reply))).toEqual(new Set(['x/srv-1', 'x/srv-2']));
          const udp = await runProbes(world, probe(16, 30053, 'UDP'));
          expect(udp.filter((x) => x.result !== 'connected')).toEqual([]);
          expect(new Set(udp.map((x) => x.reply))).toEqual(new Set(['x/srv-1', 'x/srv-2']));

          // n2 saw the flows from n1's address (SNAT), with the identity of this mode.
          using dp2 = Datapath.attachPinned(n2!.pinDir);
          const fromN1 = dp2.ct
            .dump()
            .filter(([k, v]) => k.saddr === n1!.hostIp && (v.flags & 1) === 0)
            .map(([, v]) => v.srcSecId);
          expect(fromN1.length).toBeGreaterThanOrEqual(40);
          expect(new Set(fromN1)).toEqual(new Set([id]));
          // n1 gave them ports of its NodePort range, one pair per flow; a port is taken once per backend address,
          // port and protocol (the key of the reply's translation), another backend's flow may reuse it.
          const out = await natOut(n1!.pinDir, clientIp);
          expect(out.length - earlier).toBe(56);
          const claims = out.map((o) => `${o.backend}:${o.backendPort}/${o.proto} ${o.port}`);
          expect(new Set(claims).size).toBe(claims.length);
          for (const { port: p } of out) {
            expect(p).toBeGreaterThanOrEqual(NODEPORT_SNAT_PORTS.min);
            expect(p).toBeLessThanOrEqual(NODEPORT_SNAT_PORTS.max);
          }

          // An established NodePort flow after a policy revision change on both nodes (any ipcache or policy
          // write bumps it): its next packets are checked again, each way, with the identity the flow was
          // admitted with (n2's reply to n1's address is not re-judged as from remote-node in tunnel mode).
          {
            using ns = Netns.open({ path: world });
            const sock = ns.connect({ host: n1!.hostIp, port: 30080, localAddress: clientIp });
            const next = () =>
              new Promise<string>((resolve, reject) => {
                const t = setTimeout(() => resolve('timeout'), 5000);
                sock.once('data', (d: Buffer) => {
                  clearTimeout(t);
                  resolve(d.toString().trim());
                });
                sock.once('error', reject);
              });
            try {
              expect(['x/srv-1', 'x/srv-2']).toContain(await next());
              for (const n of [n1!, n2!]) {
                using dp = Datapath.attachPinned(n.pinDir);
                dp.bumpPolicyRevision();
              }
              const echoed = next();
              sock.write('after the revision\n');
              expect(await echoed).toBe('after the revision');
            } finally {
              sock.destroy();
            }
          }

          // The backend whose policy admits only the other identity: no connection.
          const denied = await runProbes(world, probe(3, 30081, 'TCP', 1000));
          expect(denied.map((x) => x.result)).toEqual(['timeout', 'timeout', 'timeout']);
        } finally {
          await Promise.all(listeners.map((l) => l.close()));
        }
        if (mode === 'tunnel') {
          // n2 restarted: its first sync lists n1's router address from etcd (the path that once wrote it without
          // n1's underlay address, so the backends' replies to n1 left unencapsulated and were lost).
          await killNode(o, 'n2');
          await restartNode(o, 'n2');
          expect(routerEntries(c)).toEqual(expectedRouterEntries(c));
          const listener = await startListener(`/run/netns/${n2!.pods['x/srv-1']!.netns}`, 'x/srv-1', [
            { port: 8080, protocol: 'TCP' },
          ]);
          try {
            const again = await runProbes(`/run/netns/${n1!.worldNetns}`, [
              {
                id: 0,
                host: n1!.hostIp,
                port: 30080,
                protocol: 'TCP',
                timeoutMs: 3000,
                localAddress: clientIp,
              },
            ]);
            // srv-2 has no listener now: its answer is a reset, which came back through n1 all the same
            expect(['connected', 'refused']).toContain(again[0]!.result);
          } finally {
            await listener.close();
          }
        }
        await clusterDown(o);
        up = false;
      } finally {
        if (up) await clusterDown(o).catch(() => undefined);
        const leaks = scanLeaks(prefix);
        for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
        rmSync(dir, { recursive: true, force: true });
        expect(leaks).toEqual({ netns: [], links: [], pins: [] });
      }
    });
  }
});

/** Every node's ipcache entry of each other node's router address: `node: address → underlay`. */
function routerEntries(c: ClusterRecord): string[] {
  const states = c.nodes.map((n) =>
    Agent.readState({ name: n.name, prefix: n.prefix, stateDir: n.stateDir }),
  );
  const out: string[] = [];
  for (const [i, n] of c.nodes.entries()) {
    using dp = Datapath.attachPinned(states[i]!.pinDir);
    for (const [j, other] of c.nodes.entries()) {
      if (i === j) continue;
      const v = dp.ipcache.get(`${states[j]!.hostIp}/32`);
      out.push(`${n.name}: ${other.name} → ${v?.identity ?? '-'} via ${v?.tunnelEndpoint ?? '-'}`);
    }
  }
  return out;
}

function expectedRouterEntries(c: ClusterRecord): string[] {
  return c.nodes.flatMap((n) =>
    c.nodes.filter((x) => x !== n).map((other) => `${n.name}: ${other.name} → 6 via ${other.address}`),
  );
}

/** n1's NodePort flows from `client` (the `out` halves of its nat4 map, read with bpftool): SNAT port, backend. */
async function natOut(
  pinDir: string,
  client: string,
): Promise<{ port: number; backend: string; backendPort: number; proto: number }[]> {
  const { execFileSync } = await import('node:child_process');
  const dump = JSON.parse(
    execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', join(pinDir, 'lb', 'nat4')], {
      encoding: 'utf8',
    }),
  ) as { formatted?: { key: Record<string, number>; value: Record<string, number> } }[];
  const ip = (n: number) => [0, 8, 16, 24].map((s) => (n >>> s) & 0xff).join('.');
  const be16 = (n: number) => ((n & 0xff) << 8) | (n >> 8);
  return dump
    .map((e) => e.formatted!)
    .filter((e) => e.key.dir === 1 && ip(e.key.saddr!) === client)
    .map((e) => ({
      port: be16(e.value.to_port!),
      backend: ip(e.key.daddr!),
      backendPort: be16(e.key.dport!),
      proto: e.key.proto!,
    }));
}
