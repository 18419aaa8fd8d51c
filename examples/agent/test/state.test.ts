// The state journal without privileges: records replayed over the snapshot in order, a record cut short
// (a crash mid-write) ignored, a journal of an older generation (a crash mid-compaction) skipped, and a
// compaction folding the journal into the snapshot.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AgentState,
  journalPath,
  loadState,
  type PodRecord,
  StateStore,
  saveState,
  statePath,
} from '../src/state.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fresh(): { dir: string; state: AgentState } {
  const dir = mkdtempSync(join(tmpdir(), 'dp-state-'));
  dirs.push(dir);
  const state: AgentState = {
    version: 1,
    name: 't',
    prefix: 't',
    podCidr: '10.244.1.0/24',
    hostIp: '10.244.1.1',
    nodeNetns: 'tn',
    worldNetns: 'tw',
    worldIps: [],
    pinDir: '/sys/fs/bpf/t',
    enforcement: 'default',
    namespaces: {},
    policies: [],
    pods: {},
    startedAt: '2026-01-01T00:00:00.000Z',
  };
  return { dir, state };
}

const pod = (name: string, ip: string, lxcId: number): PodRecord => ({
  key: `shop/${name}`,
  ns: 'shop',
  name,
  labels: { app: name },
  ports: [],
  ip,
  netns: `/run/netns/${name}`,
  lxcId,
  hostIfname: `lxc${lxcId}`,
  hostIfindex: 10 + lxcId,
  mac: '02:00:00:00:00:01',
  nodeMac: '02:00:00:00:00:02',
  identity: 256 + lxcId,
  attach: 'tcx',
});

describe('state journal', () => {
  it('replays pods, leases, address reservations and fields over the snapshot in order', () => {
    const { dir, state } = fresh();
    const store = StateStore.open(dir, state);
    try {
      store.append([
        { pod: 'shop/a', value: pod('a', '10.244.1.2', 1) },
        { lease: '10.244.1.9', value: { owner: 'x', expiresAt: 5 } },
        { field: 'namespaces', value: { shop: { labels: {} } } },
      ]);
      store.append([{ ipam: '10.244.1.2', value: 'shop/a' }]);
      store.append([{ ipam: '10.244.1.3', value: 'shop/b' }]);
      store.append([{ pod: 'shop/b', value: pod('b', '10.244.1.3', 2) }]);
      store.append([
        { pod: 'shop/a', value: null },
        { lease: '10.244.1.9', value: null },
        { field: 'terminating', value: ['shop/b'] },
      ]);
      store.append([{ ipam: '10.244.1.2', value: null }]);
      const got = loadState(dir);
      expect(Object.keys(got.pods)).toEqual(['shop/b']);
      expect(got.pods['shop/b']).toEqual(pod('b', '10.244.1.3', 2));
      expect(got.leases).toEqual({});
      expect(got.namespaces).toEqual({ shop: { labels: {} } });
      expect(got.terminating).toEqual(['shop/b']);
      expect(got.ipam).toEqual({ '10.244.1.3': 'shop/b' });
      // The snapshot itself was not rewritten by the appends.
      expect(JSON.parse(readFileSync(statePath(dir), 'utf8')).pods).toEqual({});
    } finally {
      store.close();
    }
  });

  it('ignores a last record cut short, and a new store folds it away', () => {
    const { dir, state } = fresh();
    const store = StateStore.open(dir, state);
    store.append([{ pod: 'shop/a', value: pod('a', '10.244.1.2', 1) }]);
    store.close();
    appendFileSync(journalPath(dir), '{"pod":"shop/b","value":{"key":"sh');
    const got = loadState(dir);
    expect(Object.keys(got.pods)).toEqual(['shop/a']);
    const again = StateStore.open(dir, got);
    again.append([{ pod: 'shop/c', value: pod('c', '10.244.1.4', 3) }]);
    again.close();
    expect(Object.keys(loadState(dir).pods).sort()).toEqual(['shop/a', 'shop/c']);
  });

  it('skips a journal of an older generation (a compaction cut short after the snapshot)', () => {
    const { dir, state } = fresh();
    const store = StateStore.open(dir, state);
    store.append([{ pod: 'shop/a', value: pod('a', '10.244.1.2', 1) }]);
    store.close();
    const journal = readFileSync(journalPath(dir), 'utf8');
    // The compaction's snapshot (without shop/a, removed by a change folded into it) landed, its journal did not.
    const next = loadState(dir);
    delete next.pods['shop/a'];
    saveState(dir, next);
    writeFileSync(journalPath(dir), journal);
    expect(loadState(dir).pods).toEqual({});
  });

  it('folds the journal into a new snapshot once it outgrows it', () => {
    const { dir, state } = fresh();
    const store = StateStore.open(dir, state);
    try {
      let n = 0;
      while (!store.compactionDue) {
        n++;
        const p = pod(`p${n}`, `10.244.1.${n % 250}`, n);
        state.pods[p.key] = p;
        store.append([{ pod: p.key, value: p }]);
      }
      expect(n).toBeGreaterThan(50);
      store.snapshot(state);
      expect(store.compactionDue).toBe(false);
      expect(readFileSync(journalPath(dir), 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
      expect(Object.keys(loadState(dir).pods)).toHaveLength(n);
    } finally {
      store.close();
    }
  });
});
