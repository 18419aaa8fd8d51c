// The agent's lb settings, pure: --lb-selection / --lb-hash-seed parsed and checked, fixed for a running
// agent, and handed by the cluster to every node's `node up` (the same seed on each).
import { describe, expect, it } from 'vitest';
import { type ClusterNodeRecord, type ClusterRecord, nodeArgs } from '../src/cluster.js';
import { AgentError } from '../src/errors.js';
import {
  DEFAULT_LB_SETTINGS,
  lbSettingsFlags,
  lbSettingsFromFlags,
  resolveLbSettings,
} from '../src/lb-settings.js';

function thrown(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('did not throw');
}

describe('lbSettingsFromFlags', () => {
  it('reads decimal and hex seeds and the selection; absent flags stay absent', () => {
    expect(lbSettingsFromFlags({})).toEqual({});
    expect(lbSettingsFromFlags({ 'lb-hash-seed': '42' })).toEqual({ hashSeed: 42 });
    expect(lbSettingsFromFlags({ 'lb-hash-seed': '0xDEADBEEF', 'lb-selection': 'maglev' })).toEqual({
      hashSeed: 0xdeadbeef,
      selection: 'maglev',
    });
    expect(lbSettingsFromFlags({ 'lb-hash-seed': '4294967295' })).toEqual({ hashSeed: 0xffffffff });
    expect(lbSettingsFromFlags({ 'lb-hash-seed': '0' })).toEqual({ hashSeed: 0 });
  });

  it('refuses seeds outside u32 or not integers, and unknown selections', () => {
    for (const seed of ['4294967296', '-1', '1.5', '', 'abc', '0x', '0x123456789', '1e3', ' 7'])
      expect(thrown(() => lbSettingsFromFlags({ 'lb-hash-seed': seed })).message, seed).toMatch(
        /--lb-hash-seed must be an unsigned 32-bit integer/,
      );
    const e = thrown(() => lbSettingsFromFlags({ 'lb-selection': 'roundrobin' }));
    expect(e.code).toBe('InvalidArgument');
    expect(e.message).toMatch(/random or maglev/);
  });
});

describe('resolveLbSettings', () => {
  it('fills the fixed defaults for a new agent', () => {
    expect(DEFAULT_LB_SETTINGS).toEqual({ selection: 'random', hashSeed: 0 });
    expect(resolveLbSettings({})).toEqual({ selection: 'random', hashSeed: 0 });
    expect(resolveLbSettings({ hashSeed: 9 })).toEqual({ selection: 'random', hashSeed: 9 });
    expect(thrown(() => resolveLbSettings({ hashSeed: 2 ** 32 })).code).toBe('InvalidArgument');
    expect(thrown(() => resolveLbSettings({ hashSeed: -3 })).code).toBe('InvalidArgument');
  });

  it("keeps a running agent's settings and refuses a different one", () => {
    const saved = { selection: 'maglev' as const, hashSeed: 7 };
    expect(resolveLbSettings({}, saved)).toEqual(saved);
    expect(resolveLbSettings({ hashSeed: 7, selection: 'maglev' }, saved)).toEqual(saved);
    expect(thrown(() => resolveLbSettings({ hashSeed: 8 }, saved)).message).toMatch(/hashSeed 7, not 8/);
    expect(thrown(() => resolveLbSettings({ selection: 'random' }, saved)).code).toBe('InvalidArgument');
  });
});

describe('cluster nodes', () => {
  const record = (lb?: ClusterRecord['lb']): ClusterRecord => ({
    version: 1,
    name: 'c',
    prefix: 'dpc-c',
    stateDir: '/run/x',
    mode: 'native',
    fabric: 'dpc-c-fab',
    etcd: { endpoints: ['http://127.0.0.1:2379'] },
    etcdPrefix: 'datapath/c/',
    scenario: '/run/x/scenario.json',
    ttlSeconds: 5,
    ...(lb === undefined ? {} : { lb }),
    nodes: [],
    createdAt: '',
  });
  const nodes: ClusterNodeRecord[] = ['n1', 'n2', 'n3'].map((name, i) => ({
    name,
    prefix: `dpc-c-${name}`,
    stateDir: `/run/x/${name}`,
    address: `198.18.0.${i + 1}`,
    pid: 0,
    log: '',
  }));
  /** What `node up` parses back from its arguments. */
  const parsed = (args: string[]) => {
    const flag = (f: string) => {
      const i = args.indexOf(f);
      return i < 0 ? undefined : args[i + 1];
    };
    const v: { 'lb-selection'?: string; 'lb-hash-seed'?: string } = {};
    const sel = flag('--lb-selection');
    const seed = flag('--lb-hash-seed');
    if (sel !== undefined) v['lb-selection'] = sel;
    if (seed !== undefined) v['lb-hash-seed'] = seed;
    return lbSettingsFromFlags(v);
  };

  it('every node gets the same selection and seed', () => {
    const c = record({ selection: 'maglev', hashSeed: 0xdeadbeef });
    for (const n of nodes)
      expect(parsed(nodeArgs(c, n))).toEqual({ selection: 'maglev', hashSeed: 0xdeadbeef });
    // without settings the nodes get none and all take the same fixed defaults
    for (const n of nodes) expect(parsed(nodeArgs(record(), n))).toEqual({});
    expect(lbSettingsFlags({ hashSeed: 0 })).toEqual(['--lb-hash-seed', '0']);
  });
});
