// Services in the agent against the real kernel: the scenario's ClusterIP reached over TCP and UDP through
// the socket LB, every backend answering, policy applied to the backend, graceful termination with no
// failed connection to a live backend, restart with an established flow, the CLI's JSON against the
// maps, and bad input leaving the maps as they were.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netns } from '@datapath/netlink';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { main } from '../src/cli.js';
import { loadScenario } from '../src/policy.js';
import { runScenario } from '../src/run.js';
import { dumpLbMaps } from '../src/service-lb.js';
import type { ServiceSpec, ServiceView } from '../src/services.js';
import { cgroup2Root } from '../src/sys/cgroup.js';
import { type Listener, runProbes, startListener } from '../src/sys/netns-exec.js';

const scenarioFile = fileURLToPath(new URL('../scenarios/services.json', import.meta.url));
const VIP = '10.96.0.10';
const WEB = ['shop/web-1', 'shop/web-2', 'shop/web-3'];

function options(): AgentOptions & { prefix: string; stateDir: string } {
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-svc-'));
  rmSync(stateDir, { recursive: true });
  return { name: prefix, prefix, stateDir, podCidr: '10.244.1.0/24' };
}

function expectClean(o: { prefix: string; stateDir: string }): void {
  expect(scanLeaks(o.prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(o.stateDir)).toBe(false);
  expect(existsSync(join(cgroup2Root(), o.prefix))).toBe(false);
}

async function cli(o: AgentOptions, ...args: string[]): Promise<unknown> {
  let out = '';
  let err = '';
  const code = await main([...args, '--json', '--name', 'svc', '--state-dir', o.stateDir!], {
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
  });
  expect({ code, err }).toEqual({ code: 0, err: '' });
  return JSON.parse(out);
}

const root = process.getuid?.() === 0;
describe.skipIf(!root)('agent services (socket LB on the pod cgroup)', () => {
  it('the scenario: TCP and UDP to the ClusterIP, the denied client, the service without backends', async (ctx) => {
    requireRoot(ctx);
    const o = options();
    const report = await runScenario(loadScenario(scenarioFile), { ...o, timeoutMs: 800 });
    const rows = report.results.map((r) => [r.from, r.to, r.protocol, r.measured, r.mismatch]);
    expect(rows).toEqual([
      ['shop/client', 'svc/shop/web', 'TCP', 'allow', false],
      ['shop/client', 'svc/shop/web', 'UDP', 'allow', false],
      ['guest/visitor', 'svc/shop/web', 'TCP', 'deny', false],
      ['shop/client', 'svc/shop/nobody', 'TCP', 'deny', false],
      ['shop/client', 'shop/web-1', 'TCP', 'allow', false],
      // NodePort from outside the node, per packet on the node's device: the policy's ipBlock holds.
      ['world:198.18.7.7', 'svc/shop/web-np', 'TCP', 'allow', false],
      ['world:198.18.8.8', 'svc/shop/web-np', 'TCP', 'deny', false],
    ]);
    expect(report.results[5]!.port).toBe(30080);
    expect(WEB.map((w) => `backend ${w}`)).toContain(report.results[5]!.detail);
    expect(report.results[3]!.detail).toBe('refused (no backend)');
    expect(WEB.map((w) => `backend ${w}`)).toContain(report.results[0]!.detail);
    expectClean(o);
  });

  describe('one agent kept up', () => {
    const o = options();
    let agent: Agent;
    const listeners: Listener[] = [];
    const scenario = loadScenario(scenarioFile);

    beforeAll(async () => {
      if (!root) return;
      agent = await Agent.start(o, {
        namespaces: scenario.namespaces,
        policies: scenario.policies ?? [],
        enforcement: 'default',
        services: scenario.services,
      });
      agent.addPods(scenario.pods);
      for (const w of WEB)
        listeners.push(
          await startListener(agent.resolve(w).netnsPath, w, [
            { port: 8080, protocol: 'TCP' },
            { port: 5353, protocol: 'UDP' },
          ]),
        );
    });
    afterAll(async () => {
      await Promise.all(listeners.map((l) => l.close()));
      agent?.destroy();
      expectClean(o);
    });

    /** `n` probes from the client to the service; the answer (backend) or the failure of each. */
    const send = (n: number, protocol: 'TCP' | 'UDP' = 'TCP') =>
      agent.inPodCgroup(() =>
        runProbes(
          agent.resolve('shop/client').netnsPath,
          Array.from({ length: n }, (_, id) => ({
            id,
            host: VIP,
            port: protocol === 'TCP' ? 80 : 53,
            protocol,
            timeoutMs: 2000,
          })),
        ),
      );
    const answers = (outs: { result: string; reply?: string }[]) =>
      outs.map((x) => (x.result === 'connected' ? x.reply! : x.result));

    it('every backend answers, over TCP and UDP (UDP replies come from the service address)', async (ctx) => {
      requireRoot(ctx);
      for (const proto of ['TCP', 'UDP'] as const) {
        const got = answers(await send(30, proto));
        expect(
          got.every((a) => WEB.includes(a)),
          got.join(','),
        ).toBe(true);
        expect(new Set(got)).toEqual(new Set(WEB));
      }
    });

    it('service list and lb map dump (--json) agree with each other and with the pods', async (ctx) => {
      requireRoot(ctx);
      const list = (await cli(o, 'service', 'list')) as ServiceView[];
      const web = list.find((s) => s.service === 'shop/web')!;
      expect(web.frontends).toEqual([VIP]);
      const tcp = web.backends.filter((b) => b.protocol === 'TCP');
      expect(tcp.map((b) => [b.pod, b.address, b.port, b.state])).toEqual(
        WEB.map((w) => [w, agent.resolve(w).ip, 8080, 'active']),
      );
      expect(list.find((s) => s.service === 'shop/nobody')!.backends).toEqual([]);
      const dump = (await cli(o, 'lb', 'map', 'dump')) as ReturnType<typeof dumpLbMaps>;
      const master = dump.services.find((e) => e.frontend === `${VIP}:80` && e.slot === 0)!;
      expect(master).toMatchObject({ protocol: 'TCP', count: 3 });
      const slotIds = dump.services
        .filter((e) => e.frontend === `${VIP}:80` && e.slot > 0)
        .map((e) => e.backendId);
      const slotted = dump.backends.filter((b) => slotIds.includes(b.id));
      expect(slotted.map((b) => `${b.address}:${b.port}/${b.protocol}`).sort()).toEqual(
        tcp.map((b) => `${b.address}:${b.port}/TCP`).sort(),
      );
      expect(dump.revNat.map((r) => r.frontend).sort()).toEqual(
        [`${VIP}:53`, `${VIP}:80`, '10.96.0.11:80', '10.96.0.12:80', `${agent.state.hostIp}:30080`].sort(),
      );
      const np = dump.services.find((e) => e.frontend === `${agent.state.hostIp}:30080` && e.slot === 0)!;
      expect(np).toMatchObject({ count: 3, flags: ['NodePort'] });
      expect(dump.services.find((e) => e.frontend === '10.96.0.11:80')).toMatchObject({ slot: 0, count: 0 });
    });

    it('a pod going: terminating (its open connection carries on, no new ones), then gone; no failure on live backends', async (ctx) => {
      requireRoot(ctx);
      // An established connection through the service, held open.
      using ns = Netns.open({ path: agent.resolve('shop/client').netnsPath });
      const held = await agent.inPodCgroup(
        () =>
          new Promise<{ sock: ReturnType<Netns['connect']>; backend: string }>((resolve, reject) => {
            const sock = ns.connect({ host: VIP, port: 80 });
            sock.once('error', reject);
            sock.once('data', (d: Buffer) => resolve({ sock, backend: d.toString().trim() }));
          }),
      );
      const echo = (text: string) =>
        new Promise<string>((resolve) => {
          held.sock.once('data', (d: Buffer) => resolve(d.toString()));
          held.sock.write(text);
        });
      try {
        expect(WEB).toContain(held.backend);
        const before = dumpLbMaps(agent.state.pinDir);
        const written = agent.terminatePod(held.backend);
        // Only the two services that select the pod were written, nothing of shop/nobody.
        expect([...written.keys()].sort()).toEqual([
          'shop/web-np:80/TCP',
          'shop/web:53/UDP',
          'shop/web:80/TCP',
        ]);
        expect(before.revNat).toEqual(dumpLbMaps(agent.state.pinDir).revNat);
        const during = answers(await send(30));
        expect(during.filter((a) => !WEB.includes(a))).toEqual([]);
        expect(during).not.toContain(held.backend);
        expect(await echo('still there\n')).toBe('still there\n');
        const states = (agent.serviceViews()[0]!.backends ?? []).filter((b) => b.pod === held.backend);
        expect(states.map((b) => b.state)).toEqual(['terminating', 'terminating']);
        // Removed while new connections keep coming: none of them fails.
        const load = send(40);
        agent.removePod(held.backend);
        const after = answers([...(await load), ...(await send(20))]);
        expect(after.filter((a) => !WEB.includes(a))).toEqual([]);
        expect(after.slice(40)).not.toContain(held.backend);
        const dump = dumpLbMaps(agent.state.pinDir);
        const gone = agent.pods().length === 4 && !dump.backends.some((b) => b.state === 'terminating');
        expect(gone).toBe(true);
        expect(agent.serviceViews()[0]!.backends.map((b) => b.pod)).not.toContain(held.backend);
      } finally {
        held.sock.destroy();
      }
    });

    it('a restart: the services come back from state and pinned maps, an established flow survives', async (ctx) => {
      requireRoot(ctx);
      using ns = Netns.open({ path: agent.resolve('shop/client').netnsPath });
      const sock = await agent.inPodCgroup(
        () =>
          new Promise<ReturnType<Netns['connect']>>((resolve, reject) => {
            const s = ns.connect({ host: VIP, port: 80 });
            s.once('error', reject);
            s.once('data', () => resolve(s));
          }),
      );
      try {
        const before = agent.serviceViews();
        agent.close();
        agent = await Agent.restore(o);
        expect(agent.serviceViews()).toEqual(before);
        const reply = await new Promise<string>((resolve) => {
          sock.once('data', (d: Buffer) => resolve(d.toString()));
          sock.write('after restart\n');
        });
        expect(reply).toBe('after restart\n');
        // The maps hold exactly the services again (the old ids swept), and new connections work.
        const dump = dumpLbMaps(agent.state.pinDir);
        expect(dump.revNat).toHaveLength(5);
        const live = new Set(before.flatMap((s) => s.backends.map((b) => `${b.address}:${b.port}`)));
        expect(dump.backends.map((b) => `${b.address}:${b.port}`).sort()).toEqual([...live].sort());
        const got = answers(await send(20));
        expect(got.filter((a) => !WEB.includes(a))).toEqual([]);
      } finally {
        sock.destroy();
      }
    });

    it('a pod added that a selector picks becomes a backend; bad services change nothing', async (ctx) => {
      requireRoot(ctx);
      agent.addPods([
        { namespace: 'shop', name: 'web-4', labels: { app: 'web' }, ports: [{ port: 8080, name: 'http' }] },
      ]);
      listeners.push(
        await startListener(agent.resolve('shop/web-4').netnsPath, 'shop/web-4', [
          { port: 8080, protocol: 'TCP' },
        ]),
      );
      const got = answers(await send(40));
      expect(got).toContain('shop/web-4');
      expect(got.filter((a) => !WEB.includes(a) && a !== 'shop/web-4')).toEqual([]);

      const before = dumpLbMaps(agent.state.pinDir);
      const good = agent.services();
      const nobody = good.find((s) => s.name === 'nobody')!;
      const dup: ServiceSpec = { ...nobody, name: 'other', clusterIPs: [VIP] }; // 10.96.0.10:80/TCP twice
      await expect(agent.setServices([...good, dup])).rejects.toMatchObject({
        name: 'AgentError',
        reason: 'InvalidScenario',
      });
      expect(dumpLbMaps(agent.state.pinDir)).toEqual(before);
      expect(agent.services()).toEqual(good);
    });
  });
});
