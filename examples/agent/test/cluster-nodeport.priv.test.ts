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
import { clusterDown, clusterUp } from '../src/cluster.js';
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
          // A timeout on a loaded machine can be the prober starving: what did not connect is sent once more,
          // one at a time with a longer timeout (a real drop times out twice).
          const connect = async (reqs: ProbeRequest[]) => {
            const outs = await runProbes(world, reqs);
            for (const [i, o] of outs.entries())
              if (o.result === 'timeout')
                outs[i] = (await runProbes(world, [{ ...reqs[i]!, timeoutMs: reqs[i]!.timeoutMs * 2 }]))[0]!;
            return outs;
          };
          const tcp = await connect(probe(40, 30080, 'TCP'));
          expect(tcp.filter((x) => x.result !== 'connected')).toEqual([]);
          expect(new Set(tcp.map((x) => x.reply))).toEqual(new Set(['x/srv-1', 'x/srv-2']));
          const udp = await connect(probe(16, 30053, 'UDP'));
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
          // n1 gave them ports of its NodePort range, one pair per flow.
          const out = await natOut(n1!.pinDir, clientIp);
          expect(out.length - earlier).toBeGreaterThanOrEqual(56); // one pair per flow (a re-sent probe is a new flow)
          expect(new Set(out).size).toBe(out.length);
          for (const p of out) {
            expect(p).toBeGreaterThanOrEqual(NODEPORT_SNAT_PORTS.min);
            expect(p).toBeLessThanOrEqual(NODEPORT_SNAT_PORTS.max);
          }

          // The backend whose policy admits only the other identity: no connection.
          const denied = await runProbes(world, probe(3, 30081, 'TCP', 1000));
          expect(denied.map((x) => x.result)).toEqual(['timeout', 'timeout', 'timeout']);
        } finally {
          await Promise.all(listeners.map((l) => l.close()));
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

/** The SNAT ports of n1's NodePort flows from `client` (the `out` halves of its nat4 map, read with bpftool). */
async function natOut(pinDir: string, client: string): Promise<number[]> {
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
    .map((e) => be16(e.value.to_port!));
}
