// Services through the agent API, against a real agent: pods made through the API, a ClusterIP service
// created through the API that a pod reaches on every backend (TCP and UDP), replaced (selector narrowed,
// an explicit backend added), listed by the CLI talking to the running agent, restored by a restarted
// agent, deleted (connections to it then fail); bad bodies answered 4xx with the maps unchanged.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, scanLeaks, type TestNetns, uniqueName, withNetns } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { type AgentApiError, AgentClient } from '../src/api/client.js';
import type { ServiceInfo, ServiceRequest } from '../src/api/schema.js';
import { ApiServer } from '../src/api/server.js';
import { main } from '../src/cli.js';
import { dumpLbMaps } from '../src/service-lb.js';
import { cgroup2Root } from '../src/sys/cgroup.js';
import { type Listener, startListener } from '../src/sys/netns-exec.js';
import { probeService, shopScenario } from './helpers/services.js';

const VIP = '10.96.0.10';

const web = (over: Partial<ServiceRequest> = {}): ServiceRequest => ({
  namespace: 'shop',
  name: 'web',
  clusterIP: VIP,
  ports: [
    { port: 80, targetPort: 8080 },
    { port: 53, protocol: 'UDP', targetPort: 5353 },
  ],
  selector: { app: 'web' },
  ...over,
});

it('services through the API: create, reach every backend, replace, list (CLI), restart, delete; bad input changes nothing', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-apisvc-'));
  rmSync(stateDir, { recursive: true });
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.1.0/24' };
  let agent = await Agent.start(o, shopScenario());
  let server = await ApiServer.listen(agent);
  const client = new AgentClient({ socketPath: join(stateDir, 'api.sock') });
  const listeners: Listener[] = [];
  try {
    await withNetns(4, async (c: TestNetns, ...pods: TestNetns[]) => {
      const eps = [];
      for (const [i, n] of pods.entries()) {
        eps.push(
          await client.createEndpoint({
            containerId: `web${i}`,
            netns: n.path,
            podNamespace: 'shop',
            podName: `web-${i}`,
            labels: { app: 'web', tier: i === 0 ? 'a' : 'b' },
          }),
        );
        listeners.push(
          await startListener(n.path, `shop/web-${i}`, [
            { port: 8080, protocol: 'TCP' },
            { port: 5353, protocol: 'UDP' },
          ]),
        );
      }
      await client.createEndpoint({
        containerId: 'client',
        netns: c.path,
        podNamespace: 'shop',
        podName: 'client',
      });
      const names = pods.map((_, i) => `shop/web-${i}`);

      /** `n` probes from the client pod (in the agent's pod cgroup) to the VIP: the answering backend or the failure. */
      const send = (n: number, protocol: 'TCP' | 'UDP' = 'TCP', timeoutMs?: number) =>
        probeService(
          {
            netns: c.path,
            inCgroup: (f) => agent.inPodCgroup(f),
            host: VIP,
            port: protocol === 'TCP' ? 80 : 53,
            protocol,
          },
          n,
          timeoutMs,
        );

      // create: 201, three backends, every one answers over TCP and UDP
      const created: ServiceInfo = await client.createService(web());
      expect(created.service).toBe('shop/web');
      expect(created.backends.filter((b) => b.protocol === 'TCP').map((b) => b.pod)).toEqual(names);
      expect(created.spec.selector).toEqual({ app: 'web' });
      for (const proto of ['TCP', 'UDP'] as const)
        expect(new Set(await send(24, proto)), proto).toEqual(new Set(names));

      // bad input: 4xx, nothing written
      const maps = dumpLbMaps(agent.state.pinDir);
      const before = await client.services();
      const bad: [Promise<unknown>, number, string][] = [
        [client.createService({ ...web(), color: 'blue' } as ServiceRequest), 400, 'UnknownField'],
        [client.createService(web({ name: 'other', ports: [{ port: 70000 }] })), 400, 'InvalidBody'],
        [
          client.createService(web({ name: 'other', ports: [{ port: 80, protocol: 'SCTP' as 'TCP' }] })),
          400,
          'InvalidBody',
        ],
        [client.createService(web({ name: 'other', clusterIP: '10.96.0.300' })), 400, 'InvalidScenario'],
        [client.createService(web({ name: 'other' })), 409, 'ServiceConflict'], // the same frontend
        [client.createService(web()), 409, 'ServiceConflict'], // exists
        [client.raw('PUT', '/v1/services/shop/other', JSON.stringify(web()), 'application/json'), 400, ''],
        [client.deleteService('shop/nope'), 404, ''],
      ];
      for (const [p, status, reason] of bad) {
        const r = await p.then(
          (x) => x as { status?: number },
          (e: AgentApiError) => e,
        );
        const got = 'status' in r && typeof r.status === 'number' ? r.status : 0;
        expect(got, JSON.stringify(r)).toBe(status);
        if (reason !== '') expect((r as AgentApiError).reason).toBe(reason);
      }
      expect(dumpLbMaps(agent.state.pinDir)).toEqual(maps);
      expect(await client.services()).toEqual(before);

      // replace: the selector narrowed to web-0, web-1 given by address; web-2 gets no new connection
      const replaced = await client.putService(
        web({ selector: { app: 'web', tier: 'a' }, backends: [{ address: eps[1]!.ip, port: 8080 }] }),
      );
      expect(replaced.backends.filter((b) => b.protocol === 'TCP').map((b) => b.address)).toEqual([
        eps[0]!.ip,
        eps[1]!.ip,
      ]);
      expect(new Set(await send(16))).toEqual(new Set(['shop/web-0', 'shop/web-1']));

      // the CLI talks to the running agent
      let out = '';
      const code = await main(['service', 'list', '--json', '--state-dir', stateDir], {
        out: (s) => {
          out += s;
        },
        err: () => undefined,
      });
      expect(code).toBe(0);
      expect((JSON.parse(out) as ServiceInfo[]).map((s) => s.spec)).toEqual([replaced.spec]);

      // a restarted agent restores the service from its state
      await server.close();
      agent.close();
      agent = await Agent.restore(o);
      server = await ApiServer.listen(agent);
      expect((await client.service('shop/web')).spec).toEqual(replaced.spec);
      expect(new Set(await send(12))).toEqual(new Set(['shop/web-0', 'shop/web-1']));

      // delete: gone from the API and the maps; connections to the VIP fail
      expect(await client.deleteService('shop/web')).toEqual({ removed: true, service: 'shop/web' });
      expect(await client.services()).toEqual([]);
      const after = dumpLbMaps(agent.state.pinDir);
      expect(after.services.filter((s) => s.frontend.startsWith(VIP))).toEqual([]);
      expect(after.backends).toEqual([]);
      expect((await send(3, 'TCP', 700)).filter((r) => names.includes(r))).toEqual([]);
    });
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
    client.close();
    await server.close();
    agent.destroy();
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(stateDir)).toBe(false);
  expect(existsSync(join(cgroup2Root(), prefix))).toBe(false);
});
