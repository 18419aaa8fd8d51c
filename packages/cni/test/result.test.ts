import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALL_VERSIONS,
  CniError,
  type CniResult,
  convertResult,
  formatResult,
  parseResult,
  validateResultShape,
} from '../src/index.js';

// A 1.1.0 result using every field the newest version has.
const FULL: CniResult = {
  interfaces: [
    { name: 'lxc1234', mac: '0a:58:0a:f4:00:01', mtu: 1500 },
    { name: 'eth0', mac: '0a:58:0a:f4:00:02', mtu: 1500, sandbox: '/run/netns/pod', pciID: '0000:00:01.0' },
  ],
  ips: [
    { address: '10.244.0.2/32', gateway: '10.244.0.1', interface: 1 },
    { address: '10.244.0.3/32', interface: 1 },
    { address: 'fd00::2/128', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [
    { dst: '10.244.0.1/32', scope: 253 },
    { dst: '0.0.0.0/0', gw: '10.244.0.1', mtu: 1400, table: 254, priority: 10, advmss: 1360 },
    { dst: '::/0', gw: 'fd00::1' },
  ],
  dns: {
    nameservers: ['10.96.0.10'],
    search: ['svc.cluster.local'],
    options: ['ndots:5'],
    domain: 'cluster.local',
  },
};

describe('formatResult', () => {
  it('writes 1.1.0 with every field', () => {
    const out = formatResult(FULL, '1.1.0');
    expect(out).toEqual({ cniVersion: '1.1.0', ...FULL });
    validateResultShape(out, '1.1.0');
  });

  it('writes 1.0.0 without the 1.1-only interface and route fields', () => {
    const out = formatResult(FULL, '1.0.0');
    expect(out).toEqual({
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'lxc1234', mac: '0a:58:0a:f4:00:01' },
        { name: 'eth0', mac: '0a:58:0a:f4:00:02', sandbox: '/run/netns/pod' },
      ],
      ips: FULL.ips,
      routes: [
        { dst: '10.244.0.1/32' },
        { dst: '0.0.0.0/0', gw: '10.244.0.1' },
        { dst: '::/0', gw: 'fd00::1' },
      ],
      dns: FULL.dns,
    });
    validateResultShape(out, '1.0.0');
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'])('writes %s with ips[].version', (v) => {
    const out = formatResult(FULL, v);
    expect(out).toMatchObject({
      cniVersion: v,
      ips: [
        { version: '4', address: '10.244.0.2/32', gateway: '10.244.0.1', interface: 1 },
        { version: '4', address: '10.244.0.3/32', interface: 1 },
        { version: '6', address: 'fd00::2/128', gateway: 'fd00::1', interface: 1 },
      ],
    });
    validateResultShape(out, v);
  });

  it.each(['0.1.0', '0.2.0'])(
    'writes %s with the first address per family and routes split by family',
    (v) => {
      const out = formatResult(FULL, v);
      expect(out).toEqual({
        cniVersion: v,
        ip4: {
          ip: '10.244.0.2/32',
          gateway: '10.244.0.1',
          routes: [{ dst: '10.244.0.1/32' }, { dst: '0.0.0.0/0', gw: '10.244.0.1' }],
        },
        ip6: { ip: 'fd00::2/128', gateway: 'fd00::1', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
        dns: FULL.dns,
      });
      validateResultShape(out, v);
    },
  );

  it('matches the Debian ptp 0.2.0 output shape (no empty dns)', () => {
    const r = parseResult({
      cniVersion: '0.2.0',
      ip4: { ip: '198.18.0.3/24', gateway: '198.18.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      dns: {},
    });
    expect(formatResult(r, '0.2.0')).toEqual({
      cniVersion: '0.2.0',
      ip4: { ip: '198.18.0.3/24', gateway: '198.18.0.1', routes: [{ dst: '0.0.0.0/0' }] },
    });
  });

  it('refuses a version it does not speak', () => {
    expect(() => formatResult(FULL, '0.5.0')).toThrow(CniError);
  });
});

describe('parseResult', () => {
  it('reads 0.2.0 into the newest shape', () => {
    expect(
      parseResult({
        cniVersion: '0.2.0',
        ip4: { ip: '10.244.0.2/24', gateway: '10.244.0.1', routes: [{ dst: '0.0.0.0/0' }] },
        ip6: { ip: 'fd00::2/64', routes: [{ dst: '::/0', gw: 'fd00::1' }] },
      }),
    ).toEqual({
      cniVersion: '0.2.0',
      ips: [{ address: '10.244.0.2/24', gateway: '10.244.0.1' }, { address: 'fd00::2/64' }],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0', gw: 'fd00::1' }],
    });
  });

  it('reads 0.4.0 dropping ips[].version, and uses the given version when cniVersion is missing', () => {
    const r = parseResult({ ips: [{ version: '4', address: '10.244.0.2/24' }] }, '0.4.0');
    expect(r).toEqual({ cniVersion: '0.4.0', ips: [{ address: '10.244.0.2/24' }] });
  });

  it('drops unknown keys like libcni but rejects malformed values with code 6', () => {
    expect(parseResult({ cniVersion: '1.0.0', extra: 1, ips: [{ address: '10.0.0.1/8', foo: 2 }] })).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: '10.0.0.1/8' }],
    });
    for (const bad of [
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1' }] },
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.300/8' }] },
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/33' }] },
      { cniVersion: '1.0.0', interfaces: [{ name: 'a', mac: 'zz' }] },
      { cniVersion: '1.0.0', ips: [{ address: '10.0.0.1/8', interface: 0 }] },
      { cniVersion: '0.4.0', ips: [{ address: '10.0.0.1/8' }] },
      { cniVersion: '1.1.0', routes: [{ dst: '0.0.0.0/0', gw: 'x' }] },
      [],
      null,
    ]) {
      try {
        parseResult(bad);
        expect.unreachable(JSON.stringify(bad));
      } catch (err) {
        expect((err as CniError).code).toBe(6);
      }
    }
    expect(() => parseResult({ cniVersion: '9.9.9' })).toThrow(/unsupported result version/);
  });
});

describe('validateResultShape', () => {
  it('rejects fields a version does not have', () => {
    expect(() =>
      validateResultShape({ cniVersion: '1.0.0', interfaces: [{ name: 'a', mtu: 1 }] }, '1.0.0'),
    ).toThrow(CniError);
    expect(() =>
      validateResultShape({ cniVersion: '1.0.0', ips: [{ version: '4', address: '1.2.3.4/32' }] }, '1.0.0'),
    ).toThrow(CniError);
    expect(() =>
      validateResultShape({ cniVersion: '0.4.0', ips: [{ address: '1.2.3.4/32' }] }, '0.4.0'),
    ).toThrow(CniError);
    expect(() =>
      validateResultShape({ cniVersion: '0.4.0', ips: [{ version: '6', address: '1.2.3.4/32' }] }, '0.4.0'),
    ).toThrow(/not IPv6/);
    expect(() => validateResultShape({ cniVersion: '0.2.0', ips: [] }, '0.2.0')).toThrow(CniError);
    expect(() => validateResultShape({ cniVersion: '1.0.0' }, '0.4.0')).toThrow(/cniVersion/);
  });
});

// ---- properties: every version pair ---------------------------------------------------------------

const octet = fc.integer({ min: 0, max: 255 });
const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const v6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((w) => w.map((x) => x.toString(16)).join(':'));
const hex = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
const macArb = fc.array(hex, { minLength: 6, maxLength: 6 }).map((b) => b.join(':'));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const resultArb: fc.Arbitrary<CniResult> = fc
  .record({
    interfaces: fc.array(
      fc.record(
        {
          name: fc.constantFrom('eth0', 'lxcabc', 'net1'),
          mac: opt(macArb),
          mtu: opt(fc.integer({ min: 68, max: 9000 })),
          sandbox: opt(fc.constant('/run/netns/p')),
        },
        { requiredKeys: ['name'] },
      ),
      { maxLength: 3 },
    ),
    ips: fc.array(
      fc.oneof(
        fc.record({ a: v4, p: fc.integer({ min: 0, max: 32 }), gw: opt(v4) }),
        fc.record({ a: v6, p: fc.integer({ min: 0, max: 128 }), gw: opt(v6) }),
      ),
      { maxLength: 4 },
    ),
    routes: fc.array(
      fc.oneof(
        fc.record({
          dst: v4.map((a) => `${a}/24`),
          gw: opt(v4),
          table: opt(fc.integer({ min: 0, max: 255 })),
        }),
        fc.record({ dst: v6.map((a) => `${a}/64`), gw: opt(v6), scope: opt(fc.constantFrom(0, 253, 254)) }),
      ),
      { maxLength: 4 },
    ),
  })
  .map(({ interfaces, ips, routes }) => {
    const r: CniResult = {};
    // Drops the undefined keys of a generated record (exact optional property types).
    const clean = <T extends object>(o: T) =>
      Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
        [K in keyof T]: Exclude<T[K], undefined>;
      };
    if (interfaces.length) r.interfaces = interfaces.map(clean);
    if (ips.length)
      r.ips = ips.map((c, i) =>
        clean({
          address: `${c.a}/${c.p}`,
          gateway: c.gw,
          interface: interfaces.length ? i % interfaces.length : undefined,
        }),
      );
    if (routes.length) r.routes = routes.map(clean);
    return r;
  });

describe('conversion properties', () => {
  it('every version pair produces a valid shape of the target version', () => {
    fc.assert(
      fc.property(
        resultArb,
        fc.constantFrom(...ALL_VERSIONS),
        fc.constantFrom(...ALL_VERSIONS),
        (r, from, to) => {
          const a = formatResult(r, from);
          validateResultShape(a, from);
          const b = convertResult(a, to);
          validateResultShape(b, to);
          expect(b.cniVersion).toBe(to);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('converting up and back down is lossless', () => {
    fc.assert(
      fc.property(
        resultArb,
        fc.constantFrom(...ALL_VERSIONS),
        fc.constantFrom(...ALL_VERSIONS),
        (r, a, b) => {
          const [lo, hi] = [a, b].sort((x, y) => ALL_VERSIONS.indexOf(x) - ALL_VERSIONS.indexOf(y)) as [
            string,
            string,
          ];
          const low = formatResult(r, lo);
          expect(convertResult(convertResult(low, hi), lo)).toEqual(low);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('versions with the same shape are identical but for cniVersion', () => {
    fc.assert(
      fc.property(resultArb, (r) => {
        const strip = (o: object) => ({ ...o, cniVersion: 'x' });
        expect(strip(formatResult(r, '0.3.0'))).toEqual(strip(formatResult(r, '0.4.0')));
        expect(strip(formatResult(r, '0.1.0'))).toEqual(strip(formatResult(r, '0.2.0')));
        expect(parseResult(formatResult(r, '1.1.0'))).toEqual({ cniVersion: '1.1.0', ...r });
      }),
    );
  });
});
