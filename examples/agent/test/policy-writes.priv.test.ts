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

  it('async pod setups and removals write the engine state, in order with sync policy changes made meanwhile', async (ctx) => {
    requireRoot(ctx);
    const prefix = uniqueName();
    const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-'));
    rmSync(stateDir, { recursive: true });
    made.push({ prefix, stateDir });
    const agent = await Agent.start(
      { name: prefix, prefix, stateDir, podCidr: '10.244.9.0/24' },
      { namespaces: { x: { labels: {} } }, policies: [allowClients(80)], enforcement: 'default' },
    );
    /** What the maps must hold: the engine's entries for the local endpoints and its ipcache. */
    const expected = () => {
      const out = new Map<string, string>();
      const st = agent.policy.state();
      for (const ep of st.endpoints.values())
        for (const e of ep.policy.values())
          out.set(`policy ${ep.endpointId} ${keyString(e.key)}`, JSON.stringify(e.value));
      for (const [k, v] of st.ipcache) out.set(`ipcache ${k}`, JSON.stringify(v));
      return out;
    };
    const keysOf = (m: Map<string, string>) => [...m.keys()].sort();
    try {
      const pods = Array.from({ length: 16 }, (_, i) => ({
        namespace: 'x',
        name: `a${i}`,
        labels: { app: appOf(i) },
      }));
      // Policy changes made (sync) while async setups are queued and writing: whichever lands first, the maps
      // end as the engine's order says.
      const adding = agent.addPodsAsync(pods, { concurrency: 8 });
      await new Promise((r) => setTimeout(r, 20));
      agent.setPolicies([allowClients(8080)]);
      await adding;
      agent.setPolicies([allowClients(9090)]);
      // Conntrack entries of a pod that goes are removed (the walk and deletes through the async map forms).
      const ipOf = (k: string) => agent.state.pods[k]!.ip;
      const entry = {
        createdNs: 1n,
        seenJiffies: 1n,
        rev: 0,
        srcSecId: 0,
        dstSecId: 0,
        flags: 0,
        dropReason: 0,
        dropLxc: 0,
      };
      const ct = (saddr: string, daddr: string) => ({ saddr, daddr, sport: 40000, dport: 80, proto: 6 });
      agent.datapath.ct.set(ct(ipOf('x/a1'), ipOf('x/a2')), entry);
      agent.datapath.ct.set(ct(ipOf('x/a2'), ipOf('x/a3')), entry);
      agent.datapath.ct.set(ct(ipOf('x/a2'), ipOf('x/a4')), entry);
      const removing = Promise.all(['x/a1', 'x/a3', 'x/a0'].map((k) => agent.removePodAsync(k)));
      agent.setPolicies([allowClients(80)]);
      await removing;
      expect(agent.pods()).toHaveLength(13);
      expect(agent.datapath.ct.dump().map(([k]) => `${k.saddr}>${k.daddr}`)).toEqual([
        `${ipOf('x/a2')}>${ipOf('x/a4')}`,
      ]);
      const dumped = dumpAll(agent);
      expect(keysOf(dumped)).toEqual(keysOf(expected()));
      for (const [k, v] of expected())
        if (k.startsWith('policy ')) expect([k, dumped.get(k)]).toEqual([k, v]);
      // Deterministically: an async write queued first and a sync write of the same key right after it
      // end with the sync one's value (the later one in the engine's order), then the delete.
      const prefix9 = '198.18.77.1/32';
      const change = (identity: number) => ({
        map: 'ipcache' as const,
        op: 'update' as const,
        prefix: prefix9,
        value: { identity, flags: 0 },
      });
      const first = agent.datapath.writeChangesAsync([change(1111)]);
      agent.datapath.writeChanges([change(2222)]);
      await first;
      expect(agent.datapath.ipcache.get(prefix9)?.identity).toBe(2222);
      await agent.datapath.writeChangesAsync([{ map: 'ipcache', op: 'delete', prefix: prefix9 }]);
      expect(dumpAll(agent).has(`ipcache ${prefix9}`)).toBe(false); // (a lookup would match 0.0.0.0/0)
      // The state file was written through the async saves: it lists exactly the pods left.
      const { loadState } = await import('../src/state.js');
      expect(Object.keys(loadState(stateDir).pods).sort()).toEqual(
        agent
          .pods()
          .map((p) => p.key)
          .sort(),
      );
    } finally {
      agent.destroy();
    }
  }, 120_000);
});
