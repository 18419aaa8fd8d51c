import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Codec } from '@datapath/bpf-maps';
import { encodeIpcacheKey, encodeIpcacheValue, encodePolicyKey } from '@datapath/policy';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { engineFromState, flowVerdict, loadPolicies, loadScenario, StickyIdentities } from '../src/policy.js';
import { ipcacheKey, ipcacheValue, policyTrieKey, policyTrieValue } from '../src/policy-map.js';
import type { AgentState, PodRecord } from '../src/state.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const demo = fileURLToPath(new URL('../scenarios/demo.json', import.meta.url));

describe("@datapath/policy's ipcache codec produces the layout bpf/datapath.h reads", () => {
  it('encodes ipcache keys for IPv4 and IPv6 prefixes (family 1 / 2 after cluster id and pad)', () => {
    expect(hex(encodeIpcacheKey('10.244.200.0/24'))).toBe(
      ['38000000', '0000', '00', '01', '0af4c800', '00'.repeat(12)].join(''),
    );
    expect(hex(encodeIpcacheKey('fd00::1/128'))).toBe(
      ['a0000000', '0000', '00', '02', 'fd00', '0'.repeat(24), '0001'].join(''),
    );
    const v = encodeIpcacheValue({ identity: 16777216, flags: 2 });
    // struct remote_endpoint_info { u32 sec_identity; u32 flags; }
    expect(hex(v)).toBe('0000000102000000');
  });
});

describe('the policy trie codecs (policy-map.ts over the generated ones) write the layouts bpf/datapath.h reads', () => {
  const bytes = <T>(c: Codec<T>, v: T) => {
    const b = new Uint8Array(c.size);
    c.encode(v, new DataView(b.buffer), 0);
    return b;
  };
  it('struct lxc_policy_key: prefixlen 72 + L4 prefix, the endpoint id, then Cilium key after its prefixlen', () => {
    const key = { direction: 'ingress', identity: 261, protocol: 6, port: 6379, prefixLen: 24 } as const;
    const b = bytes(policyTrieKey, { lxcId: 7, key });
    expect(hex(b)).toBe(`${'60000000'}${'07000000'}${'05010000'}00${'06'}18eb`);
    // Cilium's key bytes after its prefixlen are the same (its `egress:1, pad:7` is our plain `egress` byte).
    expect(hex(b.subarray(8))).toBe(hex(encodePolicyKey(key).subarray(4)));
    expect(policyTrieKey.decode(new DataView(b.buffer), 0)).toEqual({ lxcId: 7, key });
    const egressAny = { direction: 'egress', identity: 0, protocol: 0, port: 0, prefixLen: 0 } as const;
    expect(hex(bytes(policyTrieKey, { lxcId: 1, key: egressAny }))).toBe('48000000010000000000000001000000');
    expect(() => bytes(policyTrieKey, { lxcId: -1, key })).toThrowError(/InvalidArgument|-1/);
    expect(() => bytes(policyTrieKey, { lxcId: 1, key: { ...key, prefixLen: 25 } })).toThrowError(AgentError);
  });
  it('struct policy_entry: one byte each for deny and the L4 prefix length (no bitfields)', () => {
    const v = { deny: true, prefixLen: 8, proxyPort: 0, authType: 0 };
    expect(hex(bytes(policyTrieValue, v))).toBe('0000010800000000');
    expect(policyTrieValue.decode(new DataView(bytes(policyTrieValue, v).buffer), 0)).toEqual(v);
    const allow = { deny: false, prefixLen: 24, proxyPort: 0x1234, authType: 3 };
    expect(hex(bytes(policyTrieValue, allow))).toBe('1234001803000000');
    expect(policyTrieValue.decode(new DataView(bytes(policyTrieValue, allow).buffer), 0)).toEqual(allow);
  });
  it('the ipcache key and value are the @datapath/policy encodings', () => {
    expect(hex(bytes(ipcacheKey, '10.244.1.0/24'))).toBe(hex(encodeIpcacheKey('10.244.1.0/24')));
    expect(ipcacheKey.decode(new DataView(bytes(ipcacheKey, 'fd00::1/128').buffer), 0)).toBe('fd00::1/128');
    // the value's first 8 bytes; the tunnel endpoint follows (test/ipcache.test.ts)
    expect(hex(bytes(ipcacheValue, { identity: 256, flags: 1 }).subarray(0, 8))).toBe(
      hex(encodeIpcacheValue({ identity: 256, flags: 1 })),
    );
  });
});

describe('loadScenario and loadPolicies use @datapath/policy loaders (YAML or JSON)', () => {
  it('loads the bundled demo scenario', () => {
    const s = loadScenario(demo);
    expect(s.pods).toHaveLength(8);
    expect(Object.keys(s.namespaces)).toEqual(['web', 'api', 'data']);
    expect(s.probes.every((p) => p.expect === 'allow' || p.expect === 'deny')).toBe(true);
  });

  it('reads YAML policies, JSON lists and scenarios; bad input is InvalidScenario with the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpa-policy-'));
    try {
      const yaml = join(dir, 'p.yaml');
      writeFileSync(
        yaml,
        'kind: NetworkPolicy\nmetadata: { name: a, namespace: x }\nspec: { podSelector: {} }\n---\nkind: NetworkPolicy\nmetadata: { name: b, namespace: x }\nspec: { podSelector: {} }\n',
      );
      expect(loadPolicies(yaml).map((p) => p.metadata.name)).toEqual(['a', 'b']);
      expect(loadPolicies(demo).length).toBe(loadScenario(demo).policies?.length);
      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'kind: NetworkPolicy\nmetadata: { name: a }\nspec: { podSelector: 7 }\n');
      expect(() => loadPolicies(bad)).toThrowError(/spec\.podSelector/);
      const badScenario = join(dir, 's.yaml');
      writeFileSync(badScenario, 'namespaces: {}\npods: [{ namespace: x }]\nprobes: []\n');
      expect(() => loadScenario(badScenario)).toThrowError(AgentError);
      expect(() => loadScenario(badScenario)).toThrowError(/pods\[0\]\.name/);
      expect(() => loadScenario(join(dir, 'missing.yaml'))).toThrowError(/cannot read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const pod = (name: string, lxcId: number, labels: Record<string, string> = { app: name }): PodRecord => ({
  key: `x/${name}`,
  ns: 'x',
  name,
  labels,
  ports: [],
  ip: `10.244.1.${10 + lxcId}`,
  netns: '',
  lxcId,
  hostIfname: '',
  hostIfindex: 0,
  mac: '',
  nodeMac: '',
  identity: 0,
  attach: 'tc',
});

const stateOf = (
  pods: PodRecord[],
): Pick<AgentState, 'namespaces' | 'policies' | 'enforcement' | 'hostIp' | 'pods'> => ({
  namespaces: { x: { labels: {} } },
  policies: [],
  enforcement: 'default',
  hostIp: '10.244.1.1',
  pods: Object.fromEntries(pods.map((p) => [p.key, p])),
});

describe('engineFromState', () => {
  it('gives the demo scenario exactly the verdicts it expects; the lxc id is the endpoint id', () => {
    const s = loadScenario(demo);
    const pods = s.pods.map((p, i) => ({
      ...pod(p.name, 100 + i, p.labels ?? {}),
      key: `${p.namespace}/${p.name}`,
      ns: p.namespace,
      ip: p.ip,
      ports: (p.ports ?? []).map((x) => ({
        port: x.port,
        protocol: x.protocol ?? 'TCP',
        ...(x.name ? { name: x.name } : {}),
      })),
    }));
    const engine = engineFromState({
      ...stateOf(pods),
      namespaces: Object.fromEntries(
        Object.entries(s.namespaces).map(([n, v]) => [n, { labels: v.labels ?? {} }]),
      ),
      policies: s.policies ?? [],
      enforcement: s.enforcement ?? 'default',
    });
    for (const p of s.probes) {
      const v = flowVerdict(engine, { from: p.from, to: p.to, port: p.port, protocol: p.protocol ?? 'TCP' });
      expect(`${p.from}→${p.to}:${p.port} ${v}`).toBe(`${p.from}→${p.to}:${p.port} ${p.expect}`);
    }
    const state = engine.state();
    for (const p of pods) expect(state.endpoints.get(p.key)?.endpointId).toBe(p.lxcId);
    // the Cilium deny became one ingress deny entry for the payments identity in redis' map
    const redis = [...state.endpoints.get('data/redis')!.policy.values()];
    const payments = state.endpoints.get('api/payments')!.identity;
    expect(redis.filter((e) => e.value.deny).map((e) => e.key.identity)).toEqual([payments]);
    expect(state.ipcache.get('10.244.1.1/32')?.identity).toBe(1);
  });
});

describe('StickyIdentities', () => {
  it('gives a label set the same identity whatever the order, incrementally, and across a restart', () => {
    const ids = new StickyIdentities();
    const first = engineFromState(stateOf([pod('b', 1), pod('a', 2)]), ids).state().endpoints;
    const a = first.get('x/a')!.identity;
    const b = first.get('x/b')!.identity;
    expect(a).not.toBe(b);
    expect(ids.changed).toBe(true);
    // another engine, other order, a pod more: the same numbers
    const again = engineFromState(stateOf([pod('a', 1), pod('c', 2), pod('b', 3)]), ids).state().endpoints;
    expect([again.get('x/a')!.identity, again.get('x/b')!.identity]).toEqual([a, b]);
    // an incremental update agrees with a full build
    const inc = engineFromState(stateOf([]), ids);
    inc.upsertPod({ namespace: 'x', name: 'b', labels: { app: 'b' }, ip: '10.244.1.20', endpointId: 9 });
    expect(inc.state().endpoints.get('x/b')?.identity).toBe(b);
    // restored from the persisted table (a fresh allocator): the same numbers, new labels get new ones
    const restored = new StickyIdentities(JSON.parse(JSON.stringify(ids)) as Record<string, number>);
    const after = engineFromState(
      stateOf([pod('c', 1), pod('d', 2), pod('a', 3), pod('b', 4)]),
      restored,
    ).state().endpoints;
    const id = (n: string) => after.get(`x/${n}`)!.identity;
    expect([id('a'), id('b'), id('c')]).toEqual([a, b, again.get('x/c')!.identity]);
    expect(new Set(['a', 'b', 'c', 'd'].map(id)).size).toBe(4);
  });
});
