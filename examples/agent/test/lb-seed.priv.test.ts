// The agent's Maglev settings reach the kernel: started with --lb-selection maglev and a hash seed, a NodePort
// service's Maglev table in the pinned lb_maglev map is the one an independent build with that seed gives (not
// the seed-0 one), and both per-packet programs on the node's world device (datapath.c's from_world and
// @datapath/lb's from_netdev) were loaded with that lb_hash_seed (bpftool reads their .rodata); a restore keeps
// the settings and refuses a different seed. Together with flowHash's own tests this is what makes a flow pick
// the same backend on every node of a cluster started with one seed.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maglevTable } from '@datapath/lb';
import { bpftoolJson, requireRoot, scanLeaks, uniqueName } from '@datapath/testutils';
import { expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../src/agent.js';
import { AGENT_MAGLEV_TABLE } from '../src/layout.js';
import { dumpLbMaps } from '../src/service-lb.js';
import { parseServices } from '../src/services.js';
import { cgroup2Root } from '../src/sys/cgroup.js';

const SEED = 0x5eed1234;
const BACKENDS = ['10.244.4.10', '10.244.4.11', '10.244.4.12', '10.244.4.13'];

interface MapEntry {
  key: string[] | number;
  value: string[] | number;
  formatted?: { value?: unknown };
}

/** The u32s of a bpftool byte dump (hex strings, little-endian words). */
const words = (bytes: readonly string[]): number[] =>
  Array.from({ length: bytes.length / 4 }, (_, i) =>
    Buffer.from(bytes.slice(i * 4, i * 4 + 4).map((b) => Number.parseInt(b, 16))).readUInt32LE(0),
  );

/**
 * The `lb_hash_seed` of every program that uses the agent's pinned `lb_services` map and has one (from each
 * program's .rodata, BTF-formatted by bpftool), by program name.
 */
function seedsOf(pinDir: string): Record<string, number> {
  const out: Record<string, number> = {};
  const svcMap = bpftoolJson<{ id: number }>(['map', 'show', 'pinned', join(pinDir, 'lb', 'lb_services')]).id;
  for (const info of bpftoolJson<{ id: number; name: string; map_ids?: number[] }[]>(['prog', 'show'])) {
    if (!info.map_ids?.includes(svcMap)) continue;
    for (const m of info.map_ids) {
      const map = bpftoolJson<{ name: string }>(['map', 'show', 'id', String(m)]);
      if (!map.name.endsWith('.rodata')) continue;
      const dump = bpftoolJson<{ formatted?: { value?: { '.rodata'?: Record<string, unknown>[] } } }[]>([
        'map',
        'dump',
        'id',
        String(m),
      ]);
      const v = (dump[0]?.formatted?.value?.['.rodata'] ?? []).find((x) => 'lb_hash_seed' in x);
      if (v !== undefined) out[info.name] = Number(v.lb_hash_seed);
    }
  }
  return out;
}

it('--lb-selection maglev --lb-hash-seed: the Maglev tables and every per-packet program use the seed; fixed for the agent', async (ctx) => {
  requireRoot(ctx);
  const prefix = uniqueName();
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-agent-lbseed-'));
  rmSync(stateDir, { recursive: true });
  const o: AgentOptions = { name: prefix, prefix, stateDir, podCidr: '10.244.4.0/24' };
  const services = parseServices(
    [
      {
        namespace: 'shop',
        name: 'web',
        type: 'NodePort',
        clusterIP: '10.96.0.30',
        ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
        backends: BACKENDS.map((address) => ({ address })),
      },
    ],
    undefined,
  );
  let agent = await Agent.start(
    { ...o, lbSelection: 'maglev', lbHashSeed: SEED },
    { namespaces: { shop: { labels: {} } }, policies: [], enforcement: 'default', services },
  );
  try {
    expect(agent.state.lb).toEqual({ selection: 'maglev', hashSeed: SEED });
    const checkTable = () => {
      const dump = dumpLbMaps(agent.state.pinDir);
      const master = dump.services.find((s) => s.frontend === '10.96.0.30:80' && s.slot === 0);
      expect(master?.flags).toContain('Maglev');
      const addressOf = new Map(dump.backends.map((b) => [b.id, b.address]));
      const outer = bpftoolJson<MapEntry[]>([
        'map',
        'dump',
        'pinned',
        join(agent.state.pinDir, 'lb', 'lb_maglev'),
      ]);
      // key: the frontend's rev-NAT id (u16); value: the inner map's id (u32)
      const bytes = (x: string[]) => Buffer.from(x.map((b) => Number.parseInt(b, 16)));
      const entry = outer.find((e) => bytes(e.key as string[]).readUInt16LE(0) === master!.revNatId);
      expect(entry, JSON.stringify(outer)).toBeDefined();
      const innerId = bytes(entry!.value as string[]).readUInt32LE(0);
      const inner = bpftoolJson<MapEntry[]>(['map', 'dump', 'id', String(innerId)]);
      const got = words(inner[0]!.value as string[]).map((id) => addressOf.get(id));
      const build = (seed: number) =>
        Array.from(
          maglevTable(
            BACKENDS.map((a) => ({ key: `${a}:8080` })),
            AGENT_MAGLEV_TABLE,
            { seed },
          ),
          (i) => BACKENDS[i],
        );
      expect(got.length).toBe(AGENT_MAGLEV_TABLE);
      expect(build(SEED)).not.toEqual(build(0));
      expect(got).toEqual(build(SEED));
    };
    checkTable();
    // both per-packet programs on the world device carry the seed
    const seeds = seedsOf(agent.state.pinDir);
    expect(Object.keys(seeds).sort(), JSON.stringify(seeds)).toEqual(['from_netdev', 'from_world']);
    expect(new Set(Object.values(seeds))).toEqual(new Set([SEED]));

    // a restore keeps the settings (tables rewritten with the same seed); a different seed is refused
    agent.close();
    await expect(Agent.restore({ ...o, lbHashSeed: SEED + 1 })).rejects.toMatchObject({
      code: 'InvalidArgument',
      message: expect.stringMatching(/lb hashSeed/),
    });
    agent = await Agent.restore(o);
    expect(agent.state.lb).toEqual({ selection: 'maglev', hashSeed: SEED });
    checkTable();
    expect(new Set(Object.values(seedsOf(agent.state.pinDir)))).toEqual(new Set([SEED]));
  } finally {
    agent.destroy();
  }
  expect(scanLeaks(prefix)).toEqual({ netns: [], links: [], pins: [] });
  expect(existsSync(stateDir)).toBe(false);
  expect(existsSync(join(cgroup2Root(), prefix))).toBe(false);
});
