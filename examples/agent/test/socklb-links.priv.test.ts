// The agent's socket-LB cgroup links are pinned in its pin directory: they stay attached while no agent
// runs (closed, or `agent serve` killed with SIGKILL), so a pod keeps reaching a ClusterIP; a restarted
// agent adopts them (each link gets its newly loaded program in place: one set of links, never two,
// `bpftool cgroup show` as the oracle), and a service created through the killed agent's API survives
// (journaled before the answer); `agent down` detaches them and removes the pins.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { AgentClient } from '../src/api/client.js';
import { main } from '../src/cli.js';
import { cgroup2Root, inCgroup } from '../src/sys/cgroup.js';
import { type Listener, startListener } from '../src/sys/netns-exec.js';
import {
  attachedPrograms,
  pinnedLinks,
  probeService,
  SOCKET_LB_ATTACH_TYPES,
  shopScenario,
} from './helpers/services.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const VIP = '10.96.0.10';
const HOOKS = [
  'connect4',
  'connect6',
  'sendmsg4',
  'sendmsg6',
  'recvmsg4',
  'recvmsg6',
  'getpeername4',
  'getpeername6',
  'sock_release',
];

async function until(what: string, fn: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

it('socket LB links outlive the agent (closed, killed with SIGKILL), a restart adopts them (one set), agent down removes them', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-socklinks-'));
  rmSync(stateDir, { recursive: true });
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.1.0/24', log: () => undefined };
  const cgroupDir = join(cgroup2Root(), prefix);
  const listeners: Listener[] = [];
  let child: ReturnType<typeof spawn> | undefined;
  let agent: Agent | undefined = await Agent.start(o, shopScenario(VIP));
  try {
    agent.addPods([
      { namespace: 'shop', name: 'web-1', labels: { app: 'web' } },
      { namespace: 'shop', name: 'web-2', labels: { app: 'web' } },
      { namespace: 'shop', name: 'client', labels: { app: 'client' } },
    ]);
    for (const w of ['shop/web-1', 'shop/web-2'])
      listeners.push(await startListener(agent.resolve(w).netnsPath, w, [{ port: 8080, protocol: 'TCP' }]));
    const clientNetns = agent.resolve('shop/client').netnsPath;
    const linkDir = join(agent.state.pinDir, 'lb', 'links');
    const send = (n: number, host = VIP) =>
      probeService({ netns: clientNetns, inCgroup: (f) => inCgroup(cgroupDir, f), host }, n);
    const oneSet = () => {
      const a = attachedPrograms(cgroupDir);
      // one program per hook, each hook once (bpftool's names for the attach types)
      expect(a.map((e) => e.type)).toEqual(SOCKET_LB_ATTACH_TYPES);
      return a;
    };
    expect(new Set(await send(8))).toEqual(new Set(['shop/web-1', 'shop/web-2']));
    oneSet();
    const first = pinnedLinks(linkDir);
    expect(Object.keys(first).sort()).toEqual([...HOOKS].sort());

    // 1. the agent closes (exits): the links stay, the pod still reaches the service
    agent.close();
    agent = undefined;
    expect(new Set(await send(8))).toEqual(new Set(['shop/web-1', 'shop/web-2']));
    oneSet();

    // 2. `agent serve` restores the agent and adopts the links (same links, its own programs), then is killed
    child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--state-dir', stateDir], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    await until(
      'agent serve',
      () => existsSync(join(stateDir, 'api.sock')) || child!.exitCode !== null,
      60_000,
    );
    expect(child.exitCode, err).toBeNull();
    const served = pinnedLinks(linkDir);
    for (const h of HOOKS) {
      expect(served[h]!.id, h).toBe(first[h]!.id); // adopted, not attached again
      expect(served[h]!.prog, h).not.toBe(first[h]!.prog); // the new agent's program, swapped in place
    }
    expect(
      oneSet()
        .map((e) => e.id)
        .sort(),
    ).toEqual(
      Object.values(served)
        .map((l) => l.prog)
        .sort(),
    );
    // a service created through the API of the served agent: journaled before the answer
    const api = new AgentClient({ socketPath: join(stateDir, 'api.sock') });
    try {
      await api.createService({
        namespace: 'shop',
        name: 'extra',
        clusterIP: '10.96.0.11',
        ports: [{ port: 80, targetPort: 8080 }],
        selector: { app: 'web' },
      });
    } finally {
      api.close();
    }
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(new Set(await send(8))).toEqual(new Set(['shop/web-1', 'shop/web-2']));
    expect(new Set(await send(8, '10.96.0.11'))).toEqual(new Set(['shop/web-1', 'shop/web-2']));
    oneSet();

    // 3. restored again in this process: still one set; then `agent down` removes links and pins
    agent = await Agent.restore(o);
    expect(agent.services().map((x) => x.name)).toEqual(['web', 'extra']);
    oneSet();
    expect(Object.keys(pinnedLinks(linkDir)).sort()).toEqual([...HOOKS].sort());
    agent.close();
    agent = undefined;
    let out = '';
    expect(
      await main(['down', '--state-dir', stateDir, '--name', 'links'], {
        out: (s) => {
          out += s;
        },
        err: (s) => {
          out += s;
        },
      }),
      out,
    ).toBe(0);
    expect(existsSync(linkDir)).toBe(false);
    expect(existsSync(cgroupDir)).toBe(false);
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(listeners.map((l) => l.close()));
    if (agent) agent.destroy();
    else if (existsSync(stateDir)) (await Agent.restore(o)).destroy();
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(stateDir)).toBe(false);
});
