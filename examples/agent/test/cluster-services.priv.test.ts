// Services across a two-node cluster (etcd on loopback, one agent process per node, native routing): a
// ClusterIP whose backends all run on the other node. The client's node derives them from the ipcache
// mirror, its socket LB picks a remote pod address and the cross-node path carries the flow; policy on the
// backend still holds.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, runPrefix, scanLeaks } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { Agent } from '../src/agent.js';
import { clusterDown, clusterUp } from '../src/cluster.js';
import { runClusterProbes } from '../src/cluster-run.js';
import { dumpLbMaps } from '../src/service-lb.js';
import { cgroup2Root, inCgroup } from '../src/sys/cgroup.js';
import { runProbes, startListener } from '../src/sys/netns-exec.js';

const root = process.getuid?.() === 0;
describe.skipIf(!root)('services in a cluster', () => {
  it('two nodes: the service of pods on n2 is reached from n1 over TCP and UDP, every backend answers, policy holds', async (ctx) => {
    requireRoot(ctx);
    const prefix = `${runPrefix()}${randomBytes(2).toString('hex').slice(0, 3)}`;
    const dir = mkdtempSync(join(tmpdir(), 'dp-cluster-svc-'));
    const o = { name: 'c', prefix, stateDir: join(dir, 'state'), ttlSeconds: 2, timeoutMs: 45_000 };
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
    const file = join(dir, 'scenario.json');
    writeFileSync(
      file,
      JSON.stringify({
        nodes: ['n1', 'n2'],
        namespaces: { x: {} },
        pods: [
          pod('client', 'n1', 'client', '10.244.1.10'),
          pod('other', 'n1', 'other', '10.244.1.11'),
          pod('srv-1', 'n2', 'srv', '10.244.2.10'),
          pod('srv-2', 'n2', 'srv', '10.244.2.11'),
        ],
        services: [
          {
            namespace: 'x',
            name: 'srv',
            clusterIP: '10.96.0.30',
            selector: { app: 'srv' },
            ports: [
              { port: 80, protocol: 'TCP', targetPort: 8080 },
              { port: 53, protocol: 'UDP', targetPort: 5353 },
            ],
          },
        ],
        policies: [
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name: 'srv-from-client', namespace: 'x' },
            spec: {
              podSelector: { matchLabels: { app: 'srv' } },
              policyTypes: ['Ingress'],
              ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }] }],
            },
          },
        ],
        probes: [
          { from: 'x/client', to: 'svc/x/srv:80', expect: 'allow' },
          { from: 'x/client', to: 'svc/x/srv:53', protocol: 'UDP', expect: 'allow' },
          { from: 'x/other', to: 'svc/x/srv:80', expect: 'deny' },
        ],
      }),
    );
    let up = false;
    try {
      const c = await clusterUp(file, o);
      up = true;
      const report = await runClusterProbes(c, 1000);
      expect(report.results.map((r) => [r.from, r.to, r.protocol, r.measured, r.mismatch])).toEqual([
        ['x/client@n1', 'svc/x/srv', 'TCP', 'allow', false],
        ['x/client@n1', 'svc/x/srv', 'UDP', 'allow', false],
        ['x/other@n1', 'svc/x/srv', 'TCP', 'deny', false],
      ]);
      expect(report.results[0]!.detail).toMatch(/^backend x\/srv-[12]@n2$/);

      // n1 wrote n2's pods as the backends (from its ipcache mirror), with their node.
      const n1 = c.nodes.find((n) => n.name === 'n1')!;
      const s1 = Agent.readState({ name: n1.name, prefix: n1.prefix, stateDir: n1.stateDir });
      const n2 = c.nodes.find((n) => n.name === 'n2')!;
      const s2 = Agent.readState({ name: n2.name, prefix: n2.prefix, stateDir: n2.stateDir });
      const tcp = s1.serviceStatus![0]!.backends.filter((b) => b.protocol === 'TCP');
      expect(tcp.map((b) => [b.pod, b.address, b.node, b.state])).toEqual([
        ['x/srv-1', s2.pods['x/srv-1']!.ip, 'n2', 'active'],
        ['x/srv-2', s2.pods['x/srv-2']!.ip, 'n2', 'active'],
      ]);
      expect(Object.keys(s1.pods).sort()).toEqual(['x/client', 'x/other']);
      const dump = dumpLbMaps(s1.pinDir);
      expect(
        dump.backends
          .filter((b) => b.protocol === 'TCP')
          .map((b) => b.address)
          .sort(),
      ).toEqual(tcp.map((b) => b.address).sort());

      // Many connections from n1's client: both remote backends answer, none fails.
      const listeners = await Promise.all(
        ['x/srv-1', 'x/srv-2'].map((k) =>
          startListener(`/run/netns/${s2.pods[k]!.netns}`, k, [{ port: 8080, protocol: 'TCP' }]),
        ),
      );
      try {
        const outs = await inCgroup(join(cgroup2Root(), n1.prefix), () =>
          runProbes(
            `/run/netns/${s1.pods['x/client']!.netns}`,
            Array.from({ length: 24 }, (_, id) => ({
              id,
              host: '10.96.0.30',
              port: 80,
              protocol: 'TCP' as const,
              timeoutMs: 3000,
            })),
          ),
        );
        const replies = outs.map((x) => (x.result === 'connected' ? x.reply : x.result));
        expect(new Set(replies)).toEqual(new Set(['x/srv-1', 'x/srv-2']));
      } finally {
        await Promise.all(listeners.map((l) => l.close()));
      }
      await clusterDown(o);
      up = false;
      for (const n of c.nodes) expect(existsSync(join(cgroup2Root(), n.prefix))).toBe(false);
    } finally {
      if (up) await clusterDown(o).catch(() => undefined);
      const leaks = scanLeaks(prefix);
      for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
      expect(leaks).toEqual({ netns: [], links: [], pins: [] });
    }
  });
});
