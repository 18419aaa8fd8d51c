// The quick config checks (no zod schema built) against the zod schemas they stand in for: whenever a quick
// check returns a value, the schema must accept the same input and produce the same value; the configs
// runtimes send most must take the quick path; anything unusual must be left to the schema, which words
// the errors.

import { CniError, parseConfig, parseWithSchema } from '@datapath/cni';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
// The base config's quick path is internal to @datapath/cni; these tests hold it to the schema too.
import { quickNetConf } from '../../cni/src/config.js';
import { parsePluginConfig, pluginConfigSchema, quickPluginConfig } from '../src/config.js';

// The base rules through the zod schema: a `dns` section (valid when empty) is one the quick check leaves to it.
const full = (json: object) => {
  const { dns: _dns, ...rest } = parseConfig({ ...json, dns: {} });
  return rest;
};

const bench = {
  cniVersion: '1.0.0',
  name: 'pods',
  type: 'datapath-cni',
  ipMasq: false,
  ipam: {
    type: 'host-local',
    ranges: [[{ subnet: '198.18.0.0/16' }]],
    routes: [{ dst: '0.0.0.0/0' }],
    dataDir: '/var/lib/cni/networks',
  },
};

const ip = fc.oneof(
  fc.constantFrom('10.244.0.1', '10.244.0.300', 'fd00::1', 'fd00::g', '', '1.2.3'),
  fc.ipV4(),
  fc.ipV6(),
);
const cidr = fc.oneof(
  fc.constantFrom('10.244.0.0/24', '10.244.0.0/33', 'fd00::/64', 'fd00::/129', '10.0.0.0', '/8'),
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 40 })).map(([a, p]) => `${a}/${p}`),
);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
const junk = fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.boolean(), fc.constant([]));

/** Configs that are mostly well formed, with junk one time in `junkOdds` per field. */
function configs(junkOdds: number) {
  const or = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: a, weight: junkOdds - 1 }, { arbitrary: junk, weight: 1 });
  const rare = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: fc.constant(undefined), weight: junkOdds }, { arbitrary: a, weight: 1 });
  const range = fc.record(
    {
      subnet: or(cidr),
      rangeStart: maybe(or(ip)),
      rangeEnd: maybe(ip),
      gateway: maybe(ip),
      extra: rare(fc.string()),
    },
    { requiredKeys: [] },
  );
  const route = fc.record(
    { dst: or(cidr), gw: maybe(ip), metric: rare(fc.integer()) },
    { requiredKeys: ['dst'] },
  );
  const ipam = fc.record(
    {
      type: fc.constantFrom('host-local', 'host-local', 'host-local', 'dhcp', '', 'static'),
      ranges: maybe(or(fc.array(fc.array(range, { minLength: 1, maxLength: 2 }), { maxLength: 2 }))),
      subnet: maybe(or(cidr)),
      rangeStart: maybe(ip),
      gateway: maybe(or(ip)),
      routes: maybe(or(fc.array(route, { maxLength: 3 }))),
      dataDir: maybe(fc.constantFrom('/var/lib/cni', 'relative', '/tmp/x')),
      custom: maybe(fc.string()),
    },
    { requiredKeys: ['type'] },
  );
  return fc.record(
    {
      cniVersion: maybe(or(fc.constantFrom('1.0.0', '0.4.0', '0.3.1'))),
      name: or(fc.constantFrom('pods', 'a.b-c')),
      type: fc.constantFrom('datapath-cni', 'datapath-cni', ''),
      capabilities: maybe(
        or(fc.dictionary(fc.oneof(fc.string(), fc.constant('__proto__')), or(fc.boolean()), { maxKeys: 3 })),
      ),
      args: maybe(or(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }))),
      prevResult: maybe(fc.anything()),
      mode: maybe(fc.constantFrom('ptp', 'cilium', 'bridge', 7)),
      mtu: maybe(
        fc.oneof(
          fc.integer({ min: 0, max: 70000 }),
          fc.integer({ min: 0, max: 100 }),
          fc.constantFrom(67, 68, 1500, 65535, 65536, 1500.5),
          junk,
        ),
      ),
      hostNetns: maybe(fc.constantFrom('/run/netns/h', 'h', 1)),
      ipam: or(ipam),
      other: maybe(fc.anything()),
    },
    { requiredKeys: ['name', 'type', 'ipam'] },
  );
}

describe('quick config checks', () => {
  it('take the quick path for the configs runtimes send most', () => {
    expect(quickNetConf(bench)).toEqual({ ...bench });
    expect(quickPluginConfig(quickNetConf(bench)!)).toEqual({ ...bench, mode: 'ptp', mtu: 1500 });
    const delegated = { cniVersion: '1.1.0', name: 'n', type: 'datapath-cni', ipam: { type: 'dhcp' } };
    expect(quickPluginConfig(quickNetConf(delegated)!)).toMatchObject({ mode: 'ptp', mtu: 1500 });
    expect(quickNetConf({ name: 'n', type: 't' })).toEqual({ name: 'n', type: 't', cniVersion: '0.1.0' });
    // zod drops an own __proto__ key; such configs go to the schema.
    expect(
      quickNetConf(JSON.parse('{"name":"n","type":"t","capabilities":{"__proto__":true}}')),
    ).toBeUndefined();
  });

  it('leave dns, runtimeConfig and bpf sections to the schema', () => {
    expect(quickNetConf({ ...bench, dns: { nameservers: ['10.0.0.10'] } })).toBeUndefined();
    expect(quickNetConf({ ...bench, runtimeConfig: { mac: '02:00:00:00:00:01' } })).toBeUndefined();
    expect(quickPluginConfig({ ...bench, bpf: { object: '/x.o', program: 'p' } })).toBeUndefined();
  });

  it('base rules: a quick answer is always the schema’s answer', () => {
    fc.assert(
      fc.property(configs(5), (c) => {
        const quick = quickNetConf(c);
        if (quick === undefined) return;
        expect(full(c)).toEqual(quick);
      }),
      { numRuns: 2000 },
    );
  });

  it('plugin rules: a quick answer is always the schema’s answer', () => {
    let quickOnes = 0;
    fc.assert(
      fc.property(configs(20), (c) => {
        const base = quickNetConf(c);
        if (base === undefined) return;
        const quick = quickPluginConfig(base);
        if (quick === undefined) return;
        quickOnes++;
        expect(parseWithSchema(pluginConfigSchema(), base)).toEqual(quick);
      }),
      { numRuns: 3000 },
    );
    expect(quickOnes).toBeGreaterThan(100); // the generator reaches the quick path
  });

  it('errors still come from the schema, worded as before', () => {
    const bad = { ...bench, mtu: 20, ipam: { ...bench.ipam, ranges: [[{ subnet: '10.0.0.0/33' }]] } };
    expect(quickPluginConfig(bad)).toBeUndefined();
    let err: unknown;
    try {
      parsePluginConfig(quickNetConf(bad)!);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).cniCode).toBe(7);
    expect((err as CniError).details).toContain('mtu');
    expect((err as CniError).details).toContain('ipam');
    expect(() => parseConfig({ name: 'n', type: '' })).toThrow(CniError);
  });

  it('parseConfig accepts a validator function for the plugin’s own keys', () => {
    const own = z.looseObject({ mtu: z._default(z.int(), 1500) });
    const conf = parseConfig<{ mtu: number }>({ name: 'n', type: 't', mtu: 9000 }, (base) =>
      parseWithSchema(own, base),
    );
    expect(conf.mtu).toBe(9000);
    expect(() => parseConfig({ name: 'n', type: 't', mtu: 'x' }, (b) => parseWithSchema(own, b))).toThrow(
      CniError,
    );
  });
});

describe('agent mode in the config', () => {
  it('an in-process plugin refuses "mode": "agent" with code 7 (the binary forwards such configs)', () => {
    const base = parseConfig({ cniVersion: '1.1.0', name: 'n', type: 'datapath-cni', mode: 'agent' });
    let err: unknown;
    try {
      parsePluginConfig(base);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).cniCode).toBe(7);
    expect((err as Error).message).toContain('datapath agent');
  });
});
