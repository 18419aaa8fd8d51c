// The codecs and the LPM model checked against the real kernel: compiled maps are written into real
// BPF_MAP_TYPE_LPM_TRIE maps with the documented layouts, and every lookup the datapath would make is done by the
// kernel and compared with the in-process emulation (`verdict`, `ipcacheLookup`).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fdClose, MapFlags, MapType, mapCreate, mapLookup, mapUpdate } from '@datapath/libbpf';
import { requireRoot, uniqueName } from '@datapath/testutils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileScenario,
  decodePolicyValue,
  encodeIpcache,
  encodeIpcacheKey,
  encodePolicyKey,
  encodePolicyMap,
  ipcacheLookup,
  type MapState,
  PolicyEngine,
  type PolicyState,
  verdict,
} from '../src/index.js';
import { allProbes, cluster } from './gen.js';

const PROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;

function lpm(keySize: number, valueSize: number, maxEntries: number): number {
  return mapCreate({
    type: MapType.LpmTrie,
    keySize,
    valueSize,
    maxEntries,
    flags: MapFlags.NoPrealloc,
    name: uniqueName().slice(0, 15),
  });
}

/** Kernel-side `__policy_can_access`: two LPM lookups (peer id, then 0), deny wins, more specific L4 wins. */
function kernelDecision(
  fd: number,
  direction: 'ingress' | 'egress',
  peer: number,
  proto: number,
  port: number,
) {
  const get = (identity: number) => {
    const v = new Uint8Array(8);
    const key = encodePolicyKey({ direction, identity, protocol: proto, port, prefixLen: 24 });
    return mapLookup(fd, key, v) ? decodePolicyValue(v) : undefined;
  };
  const l3 = get(peer);
  const any = get(0);
  if (!l3 && !any) return 'drop';
  if (l3?.deny || any?.deny) return 'deny';
  return 'allow';
}

function checkState(
  state: PolicyState,
  flows: { from: string; to: string; port: number; protocol: 'TCP' | 'UDP' | 'SCTP' }[],
) {
  const fds = new Map<MapState, number>();
  const ipc = lpm(24, 8, 4096);
  try {
    for (const e of encodeIpcache(state)) mapUpdate(ipc, e.key, e.value);
    for (const ep of state.endpoints.values()) {
      if (fds.has(ep.policy)) continue;
      const fd = lpm(12, 8, Math.max(16, ep.policy.size));
      fds.set(ep.policy, fd);
      for (const e of encodePolicyMap(ep.policy)) mapUpdate(fd, e.key, e.value);
    }
    let checked = 0;
    for (const f of flows) {
      const want = verdict(state, f);
      for (const l of want.lookups) {
        const fd = fds.get(state.endpoints.get(l.endpoint)!.policy)!;
        expect(
          kernelDecision(fd, l.direction, l.peerIdentity, PROTO[f.protocol], f.port),
          `${f.from}->${f.to} ${l.direction}`,
        ).toBe(l.decision);
        checked++;
      }
      for (const end of [f.from, f.to]) {
        const ip = end.startsWith('world:') ? end.slice(6) : state.endpoints.get(end)?.ip;
        if (ip === undefined) continue;
        const v = new Uint8Array(8);
        const hit = mapLookup(ipc, encodeIpcacheKey(ip), v);
        const id = hit ? new DataView(v.buffer).getUint32(0, true) : 2;
        expect(id, `ipcache ${ip}`).toBe(ipcacheLookup(state, ip).identity);
      }
    }
    return checked;
  } finally {
    fdClose(ipc);
    for (const fd of fds.values()) fdClose(fd);
  }
}

describe('compiled maps in real LPM tries', () => {
  it('answer every lookup of the shipped scenarios as the emulation does', (ctx) => {
    requireRoot(ctx);
    const dir = fileURLToPath(new URL('../scenarios/', import.meta.url));
    let checked = 0;
    for (const name of [
      '32-cnp-l4-deny-beats-l3-allow.json',
      '45-cnp-port-range.json',
      '14-e2e-egress-ipblock-except.json',
      '42-cnp-cidrset-except.json',
    ]) {
      const { engine, scenario } = compileScenario(JSON.parse(readFileSync(dir + name, 'utf8')));
      checked += checkState(
        engine.state(),
        scenario.probes.map((p) => ({ from: p.from, to: p.to, port: p.port, protocol: p.protocol ?? 'TCP' })),
      );
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('answer every lookup of random clusters as the emulation does', (ctx) => {
    requireRoot(ctx);
    fc.assert(
      fc.property(cluster, (c) => {
        const engine = new PolicyEngine({ enforcement: c.enforcement });
        engine.load({
          namespaces: Object.fromEntries(Object.entries(c.namespaces).map(([n, labels]) => [n, { labels }])),
          pods: c.pods.map((p) => ({
            namespace: p.ns,
            name: p.name,
            labels: p.labels,
            ip: p.ip,
            ports: p.ports,
          })),
          policies: c.policies,
        });
        checkState(
          engine.state(),
          allProbes(c).filter((_, i) => i % 4 === 0),
        );
      }),
      { numRuns: 25 },
    );
  }, 180_000);
});
