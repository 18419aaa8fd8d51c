// `agent service apply <file>` and `agent service delete <name>` against a running agent (its API on the
// socket): a YAML file's service applied through the CLI, reached from a pod on both backends, bad files
// refused with typed errors and the maps unchanged, deleted through the CLI (gone from `agent lb map dump`,
// connections to it fail, a second delete is NotFound); then the same commands with no agent serving (on the
// state files).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, scanLeaks, type TestNetns, uniqueName, withNetns } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { ApiServer } from '../src/api/server.js';
import { main } from '../src/cli.js';
import type { dumpLbMaps } from '../src/service-lb.js';
import { cgroup2Root } from '../src/sys/cgroup.js';
import { type Listener, startListener } from '../src/sys/netns-exec.js';
import { probeService, shopScenario } from './helpers/services.js';

const VIP = '10.96.0.20';
const WEB = `namespace: shop
name: web
clusterIP: ${VIP}
ports:
  - { port: 80, targetPort: 8080 }
selector: { app: web }
`;

it('service apply/delete through the CLI: a running agent gets the file, a pod reaches it, delete empties the maps', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-clisvc-'));
  rmSync(stateDir, { recursive: true });
  const files = mkdtempSync(join(tmpdir(), 'dp-agent-clisvc-files-'));
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.3.0/24' };
  const agent = await Agent.start(o, shopScenario());
  let server: ApiServer | undefined = await ApiServer.listen(agent);
  const client = new AgentClient({ socketPath: join(stateDir, 'api.sock') });
  const listeners: Listener[] = [];
  let closed = false;

  /** One CLI command line: exit code, stdout, stderr. */
  const cli = async (...args: string[]) => {
    let out = '';
    let err = '';
    const code = await main([...args, '--state-dir', stateDir], {
      out: (s) => {
        out += s;
      },
      err: (s) => {
        err += s;
      },
    });
    return { code, out, err };
  };
  const file = (name: string, text: string) => {
    const p = join(files, name);
    writeFileSync(p, text);
    return p;
  };
  const lbDump = async () =>
    JSON.parse((await cli('lb', 'map', 'dump', '--json')).out) as ReturnType<typeof dumpLbMaps>;

  try {
    await withNetns(3, async (c: TestNetns, ...pods: TestNetns[]) => {
      for (const [i, n] of pods.entries()) {
        await client.createEndpoint({
          containerId: `web${i}`,
          netns: n.path,
          podNamespace: 'shop',
          podName: `web-${i}`,
          labels: { app: 'web' },
        });
        listeners.push(await startListener(n.path, `shop/web-${i}`, [{ port: 8080, protocol: 'TCP' }]));
      }
      await client.createEndpoint({
        containerId: 'client',
        netns: c.path,
        podNamespace: 'shop',
        podName: 'client',
      });
      const names = pods.map((_, i) => `shop/web-${i}`);
      const send = (n: number, timeoutMs?: number) =>
        probeService({ netns: c.path, inCgroup: (f) => agent.inPodCgroup(f), host: VIP }, n, timeoutMs);

      // nothing serves the VIP yet
      expect((await send(2, 700)).filter((r) => names.includes(r))).toEqual([]);

      // apply through the CLI: the running agent has it, both backends answer
      const applied = await cli('service', 'apply', file('web.yaml', WEB));
      expect(applied, applied.err).toMatchObject({ code: 0 });
      expect(applied.out).toMatch(/shop\/web +created .*through the agent API/s);
      expect((await client.service('shop/web')).backends.map((b) => b.pod)).toEqual(names);
      expect(new Set(await send(16))).toEqual(new Set(names));

      // bad files: typed errors, the agent's services and maps unchanged
      const maps = await lbDump();
      expect(maps.services.some((s) => s.frontend === `${VIP}:80`)).toBe(true);
      const bad: [string, string, RegExp][] = [
        [
          'zero-ports.yaml',
          WEB.replace(/ports:\n.*\n/, 'ports: []\n'),
          /ports: .*\[InvalidArgument InvalidScenario\]/,
        ],
        [
          'sctp.yaml',
          WEB.replace('targetPort: 8080', 'targetPort: 8080, protocol: SCTP'),
          /protocol.*\[InvalidArgument InvalidScenario\]/,
        ],
        // another service on web's frontend: refused before any request (nothing half-applied)
        [
          'dup.yaml',
          `${WEB.replace('name: web', 'name: a')}---\n${WEB.replace('name: web', 'name: b').replace(VIP, '10.96.0.21')}`,
          /\[AlreadyExists ServiceConflict\]/,
        ],
        ['missing.yaml', '', /no service/],
      ];
      for (const [name, text, msg] of bad) {
        const r = await cli('service', 'apply', file(name, text));
        expect(r.code, name).toBe(1);
        expect(r.err, name).toMatch(msg);
      }
      expect(await lbDump()).toEqual(maps);
      expect((await client.services()).map((s) => s.service)).toEqual(['shop/web']);

      // delete through the CLI: gone from the API, the lb maps and the wire
      const del = await cli('service', 'delete', 'web');
      expect(del, del.err).toMatchObject({ code: 0 });
      expect(del.out).toMatch(/shop\/web deleted \(through the agent API\)/);
      expect(await client.services()).toEqual([]);
      const after = await lbDump();
      expect(after.services.filter((s) => s.frontend.startsWith(VIP))).toEqual([]);
      expect(after.backends).toEqual([]);
      expect((await send(3, 700)).filter((r) => names.includes(r))).toEqual([]);
      const again = await cli('service', 'delete', 'shop/web');
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/no service shop\/web \[NotFound\]/);

      // no agent serving: the same commands work on the state files
      await server!.close();
      server = undefined;
      agent.close();
      closed = true;
      const offline = await cli('service', 'apply', file('web.yaml', WEB));
      expect(offline, offline.err).toMatchObject({ code: 0 });
      expect(offline.out).toMatch(/shop\/web +created .*to the agent state/s);
      expect((await lbDump()).services.some((s) => s.frontend === `${VIP}:80`)).toBe(true);
      expect((await cli('service', 'delete', 'shop/web')).code).toBe(0);
      expect((await lbDump()).services).toEqual([]);
    });
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
    client.close();
    await server?.close();
    if (closed) (await Agent.restore(o)).destroy();
    else agent.destroy();
    rmSync(files, { recursive: true, force: true });
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(stateDir)).toBe(false);
  expect(existsSync(join(cgroup2Root(), prefix))).toBe(false);
});
