// The agent's pinned socket-LB links when they went defunct while no agent ran: (1) two of them detached
// with `bpftool link detach` (the pod's connect() to the ClusterIP then reaches no backend), (2) the pod
// cgroup removed and made again (every link loses its cgroup). A restored agent replaces each defunct link
// with a new one on the cgroup (bpftool: each hook once, the defunct links' ids gone, the fitting ones
// adopted in place) and the pod reaches the service again; nothing is left after destroy.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { cgroup2Root, inCgroup } from '../src/sys/cgroup.js';
import { type Listener, startListener } from '../src/sys/netns-exec.js';
import {
  attachedPrograms,
  bpftool,
  pinnedLinks,
  probeService,
  shopScenario,
  SOCKET_LB_ATTACH_TYPES as TYPES,
} from './helpers/services.js';

const VIP = '10.96.0.40';

/** The attach types on the cgroup (each hook once when all is well). */
const attachedTypes = (cgroupDir: string) => attachedPrograms(cgroupDir).map((e) => e.type);

/** The link id pinned under each hook name. */
const pinnedIds = (dir: string) =>
  Object.fromEntries(Object.entries(pinnedLinks(dir)).map(([hook, l]) => [hook, l.id]));

it('defunct pinned socket-LB links (detached by bpftool, or their cgroup removed and made again) are replaced by a restored agent', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-defunct-'));
  rmSync(stateDir, { recursive: true });
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.5.0/24', log: () => undefined };
  const cgroupDir = join(cgroup2Root(), prefix);
  const listeners: Listener[] = [];
  let agent: Agent | undefined = await Agent.start(o, shopScenario(VIP));
  try {
    agent.addPods([
      { namespace: 'shop', name: 'web-1', labels: { app: 'web' } },
      { namespace: 'shop', name: 'client', labels: { app: 'client' } },
    ]);
    listeners.push(
      await startListener(agent.resolve('shop/web-1').netnsPath, 'shop/web-1', [
        { port: 8080, protocol: 'TCP' },
      ]),
    );
    const clientNetns = agent.resolve('shop/client').netnsPath;
    const linkDir = join(agent.state.pinDir, 'lb', 'links');
    const send = (n: number, timeoutMs?: number) =>
      probeService({ netns: clientNetns, inCgroup: (f) => inCgroup(cgroupDir, f), host: VIP }, n, timeoutMs);
    expect(await send(4)).toEqual(Array(4).fill('shop/web-1'));
    expect(attachedTypes(cgroupDir)).toEqual(TYPES);
    const first = pinnedIds(linkDir);

    // 1. two links detached while no agent runs: their hooks run nothing, the pin files stay
    agent.close();
    agent = undefined;
    for (const hook of ['connect4', 'sendmsg4']) bpftool(['link', 'detach', 'id', String(first[hook])]);
    expect(attachedTypes(cgroupDir)).toEqual(
      TYPES.filter((t) => t !== 'cgroup_inet4_connect' && t !== 'cgroup_udp4_sendmsg'),
    );
    expect(readdirSync(linkDir).sort()).toEqual(Object.keys(first).sort());
    expect((await send(2, 700)).filter((r) => r === 'shop/web-1')).toEqual([]);

    agent = await Agent.restore(o);
    expect(attachedTypes(cgroupDir)).toEqual(TYPES);
    const second = pinnedIds(linkDir);
    for (const [hook, id] of Object.entries(first)) {
      if (hook === 'connect4' || hook === 'sendmsg4') expect(second[hook], hook).not.toBe(id);
      else expect(second[hook], hook).toBe(id); // adopted in place
    }
    expect(await send(4)).toEqual(Array(4).fill('shop/web-1'));

    // 2. the cgroup removed and made again while no agent runs: every link lost its cgroup
    agent.close();
    agent = undefined;
    rmdirSync(cgroupDir);
    mkdirSync(cgroupDir);
    expect(attachedTypes(cgroupDir)).toEqual([]);
    expect((await send(2, 700)).filter((r) => r === 'shop/web-1')).toEqual([]);

    agent = await Agent.restore(o);
    expect(attachedTypes(cgroupDir)).toEqual(TYPES);
    const third = pinnedIds(linkDir);
    for (const [hook, id] of Object.entries(second)) expect(third[hook], hook).not.toBe(id);
    expect(Object.keys(third).sort()).toEqual(Object.keys(first).sort());
    expect(await send(4)).toEqual(Array(4).fill('shop/web-1'));
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
    try {
      (agent ?? (await Agent.restore(o))).destroy();
    } finally {
      rmSync(stateDir, { recursive: true, force: true }); // when a failed restore left it
    }
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(stateDir)).toBe(false);
  expect(existsSync(cgroupDir)).toBe(false);
});
