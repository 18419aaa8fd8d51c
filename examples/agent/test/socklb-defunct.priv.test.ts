// The agent's pinned socket-LB links when they went defunct while no agent ran: (1) two of them detached
// with `bpftool link detach` (the pod's connect() to the ClusterIP then reaches no backend), (2) the pod
// cgroup removed and made again (every link loses its cgroup). A restored agent replaces each defunct link
// with a new one on the cgroup (bpftool: each hook once, the defunct links' ids gone, the fitting ones
// adopted in place) and the pod reaches the service again; nothing is left after destroy.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { cgroup2Root, inCgroup } from '../src/sys/cgroup.js';
import { type Listener, runProbes, startListener } from '../src/sys/netns-exec.js';

const VIP = '10.96.0.40';
const TYPES = [
  'inet4_connect',
  'inet4_getpeername',
  'inet6_connect',
  'inet6_getpeername',
  'inet_sock_release',
  'udp4_recvmsg',
  'udp4_sendmsg',
  'udp6_recvmsg',
  'udp6_sendmsg',
].map((t) => `cgroup_${t}`);

function bpftool(args: string[]): unknown {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim() || '[]');
}

/** `bpftool cgroup show CGROUP`: the attach types there, sorted (each hook once when all is well). */
const attachedTypes = (cgroupDir: string) =>
  (bpftool(['cgroup', 'show', cgroupDir]) as { attach_type: string }[]).map((e) => e.attach_type).sort();

/** The link id pinned under each hook name (`bpftool link show pinned`). */
function pinnedLinks(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of readdirSync(dir))
    out[name] = (bpftool(['link', 'show', 'pinned', join(dir, name)]) as { id: number }).id;
  return out;
}

it('defunct pinned socket-LB links (detached by bpftool, or their cgroup removed and made again) are replaced by a restored agent', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-defunct-'));
  rmSync(stateDir, { recursive: true });
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.5.0/24', log: () => undefined };
  const cgroupDir = join(cgroup2Root(), prefix);
  const listeners: Listener[] = [];
  let agent: Agent | undefined = await Agent.start(o, {
    namespaces: { shop: { labels: {} } },
    policies: [],
    enforcement: 'default',
    services: [
      {
        namespace: 'shop',
        name: 'web',
        type: 'ClusterIP',
        clusterIPs: [VIP],
        externalIPs: [],
        ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }],
        selector: { app: 'web' },
        sessionAffinity: 'None',
      },
    ],
  });
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
    const send = async (n: number, timeoutMs = 2000) =>
      (
        await inCgroup(cgroupDir, () =>
          runProbes(
            clientNetns,
            Array.from({ length: n }, (_, id) => ({
              id,
              host: VIP,
              port: 80,
              protocol: 'TCP' as const,
              timeoutMs,
            })),
          ),
        )
      ).map((x) => (x.result === 'connected' ? x.reply! : x.result));
    expect(await send(4)).toEqual(Array(4).fill('shop/web-1'));
    expect(attachedTypes(cgroupDir)).toEqual(TYPES);
    const first = pinnedLinks(linkDir);

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
    const second = pinnedLinks(linkDir);
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
    const third = pinnedLinks(linkDir);
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
