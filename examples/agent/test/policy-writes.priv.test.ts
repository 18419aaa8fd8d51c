// A policy change on a running agent with 200 pods writes exactly the map entries that changed: the writes are
// counted at the map handles and compared with the difference of kernel dumps taken before and after.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyString, type PolicyObject } from '@datapath/policy';
import { requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../src/agent.js';

const PODS = 200;

const allowClients = (port: number): PolicyObject => ({
  kind: 'NetworkPolicy',
  metadata: { name: 'servers', namespace: 'x' },
  spec: {
    podSelector: { matchLabels: { app: 'server' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port }] }],
  },
});

const appOf = (i: number) => (i % 20 === 0 ? 'server' : i % 10 === 1 ? 'client' : `w${i % 7}`);

/** Every entry of the policy trie and the ipcache, as text. */
function dumpAll(agent: Agent): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of agent.datapath.policy.dump())
    out.set(`policy ${k.lxcId} ${keyString(k.key)}`, JSON.stringify(v));
  for (const [k, v] of agent.datapath.ipcache.dump()) out.set(`ipcache ${k}`, JSON.stringify(v));
  return out;
}

/** How many writes take `before` to `after`: deleted, added and changed entries. */
function difference(before: Map<string, string>, after: Map<string, string>): number {
  let n = 0;
  for (const k of before.keys()) if (!after.has(k)) n++;
  for (const [k, v] of after) if (before.get(k) !== v) n++;
  return n;
}

/** Counts the writes and dumps of the policy trie and the ipcache made through the agent's map handles. */
function countWrites(agent: Agent) {
  const spies = [
    vi.spyOn(agent.datapath.policy, 'set'),
    vi.spyOn(agent.datapath.policy, 'delete'),
    vi.spyOn(agent.datapath.ipcache, 'set'),
    vi.spyOn(agent.datapath.ipcache, 'delete'),
  ];
  const dumps = [vi.spyOn(agent.datapath.policy, 'dump'), vi.spyOn(agent.datapath.ipcache, 'dump')];
  let writes = 0;
  let dumped = 0;
  return {
    writes: () => writes,
    dumps: () => dumped,
    /** Stops counting (the counts stay readable). */
    restore: () => {
      writes = spies.reduce((a, s) => a + s.mock.calls.length, 0);
      dumped = dumps.reduce((a, s) => a + s.mock.calls.length, 0);
      for (const s of [...spies, ...dumps]) s.mockRestore();
    },
  };
}

let made: { prefix: string; stateDir: string }[] = [];

afterEach(() => {
  for (const { prefix, stateDir } of made) {
    const leaks = scanLeaks(prefix);
    for (const p of leaks.pins) rmSync(p, { recursive: true, force: true });
    expect(leaks).toEqual({ netns: [], links: [], pins: [] });
    expect(existsSync(stateDir)).toBe(false);
  }
  made = [];
});

describe('agent policy path on 200 pods (real maps)', () => {
  it('writes only the entries a policy change or a pod removal changes, one write each, and never dumps', async (ctx) => {
    requireRoot(ctx);
    const prefix = uniqueName();
    const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-'));
    rmSync(stateDir, { recursive: true });
    made.push({ prefix, stateDir });
    const agent = await Agent.start(
      { name: prefix, prefix, stateDir, podCidr: '10.244.8.0/24', attach: 'tc' },
      { namespaces: { x: { labels: {} } }, policies: [allowClients(80)], enforcement: 'default' },
    );
    try {
      agent.addPods(
        Array.from({ length: PODS }, (_, i) => ({
          namespace: 'x',
          name: `p${i}`,
          labels: { app: appOf(i) },
        })),
      );
      expect(agent.pods()).toHaveLength(PODS);
      // every endpoint's trie entries are the engine's map for it, under its lxc id
      const state = agent.policy.state();
      for (const pod of agent.pods()) {
        const ep = state.endpoints.get(pod.key)!;
        expect(ep.endpointId).toBe(pod.lxcId);
        expect(agent.datapath.policyEntries(pod.lxcId).length).toBe(ep.policy.size);
      }

      // a policy change: the servers' maps swap port 80 for 8080, nothing else changes
      let before = dumpAll(agent);
      let count = countWrites(agent);
      const sync = agent.setPolicies([allowClients(8080)]);
      count.restore();
      let after = dumpAll(agent);
      const servers = agent.pods().filter((p) => p.labels.app === 'server').length;
      expect(difference(before, after)).toBe(2 * servers);
      expect(count.writes()).toBe(difference(before, after));
      expect(count.dumps()).toBe(0);
      expect(sync.writes).toBe(count.writes());
      expect(Object.keys(sync.endpoints)).toHaveLength(servers);

      // the same policies again: nothing to write
      count = countWrites(agent);
      expect(agent.setPolicies([allowClients(8080)]).writes).toBe(0);
      count.restore();
      expect(count.writes()).toBe(0);

      // a client goes: its own entries, its ipcache entry, and nothing else (its identity stays: other clients)
      before = dumpAll(agent);
      count = countWrites(agent);
      agent.removePod('x/p1');
      count.restore();
      after = dumpAll(agent);
      expect(count.writes()).toBe(difference(before, after));
      expect(count.dumps()).toBe(0);
      expect([...after.keys()].some((k) => k.startsWith(`policy ${agent.state.pods['x/p11']!.lxcId} `))).toBe(
        true,
      );
    } finally {
      agent.destroy();
    }
  }, 300_000);
});
