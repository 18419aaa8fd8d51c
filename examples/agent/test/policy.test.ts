import { fileURLToPath } from 'node:url';
import { encodeIpcacheKey, encodeIpcacheValue, encodePolicyKey, encodePolicyValue } from '@datapath/policy';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { compilePolicy, loadScenario, parseScenario, StickyIdentities } from '../src/policy.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const demo = fileURLToPath(new URL('../scenarios/demo.json', import.meta.url));

describe('@datapath/policy codecs produce the layouts bpf/datapath.h reads', () => {
  it('encodes an exact-port ingress key: prefixlen 40+24, identity LE, dport big-endian', () => {
    const k = encodePolicyKey({
      direction: 'ingress',
      identity: 261,
      protocol: 6,
      port: 6379,
      prefixLen: 24,
    });
    expect(hex(k)).toBe('40000000' + '05010000' + '00' + '06' + '18eb');
  });

  it('encodes an egress allow-all key with only the 40 static bits', () => {
    const k = encodePolicyKey({ direction: 'egress', identity: 0, protocol: 0, port: 0, prefixLen: 0 });
    expect(hex(k)).toBe('28000000' + '00000000' + '01' + '00' + '0000');
  });

  it('packs deny and the L4 prefix length into the flags byte as the C bitfield does', () => {
    expect(hex(encodePolicyValue({ deny: true, prefixLen: 24, proxyPort: 0, authType: 0 }))).toBe(
      '0000c10000000000',
    );
    expect(hex(encodePolicyValue({ deny: false, prefixLen: 15, proxyPort: 0, authType: 0 }))).toBe(
      '0000780000000000',
    );
  });

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

describe('parseScenario', () => {
  it('loads the bundled demo scenario', () => {
    const s = loadScenario(demo);
    expect(s.pods).toHaveLength(8);
    expect(Object.keys(s.namespaces)).toEqual(['web', 'api', 'data']);
    expect(s.probes.every((p) => p.expect === 'allow' || p.expect === 'deny')).toBe(true);
  });

  it('rejects a bad field with its path', () => {
    expect(() => parseScenario({ pods: [{ ns: 'x' }] })).toThrowError(/pods\[0\]\.name/);
    expect(() =>
      parseScenario({ pods: [], probes: [{ from: 'x/a', to: 'x/b', port: 80, protocol: 'ICMP' }] }),
    ).toThrowError(/probes\[0\]\.protocol/);
    expect(() => parseScenario({ pods: [], enforcement: 'sometimes' })).toThrowError(AgentError);
  });

  it('accepts allowed/denied spellings of expect and adds namespaces named only by pods', () => {
    const s = parseScenario({
      pods: [{ ns: 'x', name: 'a' }],
      probes: [{ from: 'x/a', to: 'host', port: 80, expect: 'denied' }],
    });
    expect(s.probes[0]?.expect).toBe('deny');
    expect(s.namespaces.x).toEqual({ labels: {} });
  });
});

describe('compilePolicy', () => {
  it('gives the demo scenario exactly the verdicts it expects', () => {
    const s = loadScenario(demo);
    const c = compilePolicy({
      namespaces: s.namespaces,
      pods: s.pods.map((p) => ({
        ns: p.ns,
        name: p.name,
        labels: p.labels ?? {},
        ip: p.ip!,
        ports: p.ports,
      })),
      policies: s.policies,
      enforcement: s.enforcement,
      hostIp: '10.244.1.1',
    });
    for (const p of s.probes) {
      const v = c.verdict({ from: p.from, to: p.to, port: p.port as number, protocol: p.protocol ?? 'TCP' });
      expect(`${p.from}→${p.to}:${p.port} ${v}`).toBe(`${p.from}→${p.to}:${p.port} ${p.expect}`);
    }
    // the Cilium deny became one ingress deny entry for the payments identity in redis' map
    const redis = c.policyTable('data/redis');
    const payments = c.identityOf('api/payments');
    expect(redis.filter((e) => e.value.deny).map((e) => e.key.identity)).toEqual([payments]);
    // and every entry encodes to the map's sizes
    for (const e of c.policyEntries('data/redis')) {
      expect(e.key.length).toBe(12);
      expect(e.value.length).toBe(8);
    }
    expect(c.ipcacheTable.get('10.244.1.1/32')?.identity).toBe(1);
  });
});

describe('StickyIdentities', () => {
  const input = (pods: string[]) => ({
    namespaces: { x: { labels: {} } },
    pods: pods.map((name, i) => ({
      ns: 'x',
      name,
      labels: { app: name },
      ip: `10.244.1.${10 + i}`,
      ports: [],
    })),
    policies: [],
    enforcement: 'default',
    hostIp: '10.244.1.1',
  });

  it('gives a label set the same identity whatever the compile order, and across a restart', () => {
    const ids = new StickyIdentities();
    const first = compilePolicy({ ...input(['b', 'a']), identities: ids });
    const a = first.identityOf('x/a');
    const b = first.identityOf('x/b');
    expect(a).not.toBe(b);
    expect(ids.changed).toBe(true);
    // another compile, other order, a pod more: the same numbers
    const again = compilePolicy({ ...input(['a', 'c', 'b']), identities: ids });
    expect([again.identityOf('x/a'), again.identityOf('x/b')]).toEqual([a, b]);
    // an incremental update agrees with a full compile
    const inc = compilePolicy({ ...input([]), identities: ids });
    inc.upsertPod({ ns: 'x', name: 'b', labels: { app: 'b' }, ip: '10.244.1.20', ports: [] });
    expect(inc.identityOf('x/b')).toBe(b);
    // restored from the persisted table (a fresh allocator): the same numbers, new labels get new ones
    const restored = new StickyIdentities(JSON.parse(JSON.stringify(ids)) as Record<string, number>);
    const after = compilePolicy({ ...input(['c', 'd', 'a', 'b']), identities: restored });
    expect([after.identityOf('x/a'), after.identityOf('x/b'), after.identityOf('x/c')]).toEqual([
      a,
      b,
      again.identityOf('x/c'),
    ]);
    expect(new Set(['a', 'b', 'c', 'd'].map((p) => after.identityOf(`x/${p}`))).size).toBe(4);
  });
});
