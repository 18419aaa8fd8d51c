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
import { quickShape, schemaFor } from '../src/result.js';

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
        expect((err as CniError).cniCode).toBe(6);
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

describe('quick shape check (no zod schema built for plain results)', () => {
  const ip = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('10.244.0.300', 'fd00::g', ''));
  const cidr = fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 40 })).map(([a, p]) => `${a}/${p}`),
    fc.constantFrom('fd00::2/64', 'fd00::/129', '10.0.0.1'),
  );
  const junk = fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.constant([]), fc.constant({}));
  const or = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: a, weight: 12 }, { arbitrary: junk, weight: 1 });
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 2 });
  const rare = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 12 }, { arbitrary: a, weight: 1 });
  // Keys whose generated value is undefined are left out, as in JSON.
  const clean = <T extends object>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  const uint = or(fc.oneof(fc.nat(), fc.constant(-1), fc.constant(1.5)));
  const results = fc
    .record(
      {
        cniVersion: fc.constantFrom('0.3.1', '0.4.0', '1.0.0', '1.1.0'),
        interfaces: opt(
          or(
            fc.array(
              fc
                .record(
                  {
                    name: or(fc.constantFrom('eth0', 'veth1')),
                    mac: opt(or(fc.constantFrom('0a:58:0a:f4:00:01', '0A-58-0A-F4-00-01', '0a:58'))),
                    sandbox: opt(fc.constantFrom('/run/netns/p')),
                    mtu: rare(uint),
                    socketPath: rare(fc.string()),
                    pciID: rare(fc.string()),
                    other: rare(fc.string()),
                  },
                  { requiredKeys: [] },
                )
                .map(clean),
              { maxLength: 3 },
            ),
          ),
        ),
        ips: opt(
          or(
            fc.array(
              fc
                .record(
                  {
                    version: opt(fc.constantFrom('4', '6', '5')),
                    address: or(cidr),
                    gateway: opt(or(ip)),
                    interface: opt(uint),
                    other: rare(fc.string()),
                  },
                  { requiredKeys: [] },
                )
                .map(clean),
              { maxLength: 3 },
            ),
          ),
        ),
        routes: opt(
          or(
            fc.array(
              fc
                .record(
                  {
                    dst: or(cidr),
                    gw: opt(or(ip)),
                    mtu: rare(uint),
                    table: rare(uint),
                    other: rare(fc.string()),
                  },
                  { requiredKeys: [] },
                )
                .map(clean),
              { maxLength: 3 },
            ),
          ),
        ),
        dns: rare(fc.record({ nameservers: fc.array(fc.ipV4(), { maxLength: 2 }) })),
        extra: rare(fc.string()),
      },
      { requiredKeys: ['cniVersion'] },
    )
    .map(clean);
  const shapes = ['v04', 'v10', 'v11'] as const;

  it('says yes only when both schemas return the value unchanged', () => {
    let yes = 0;
    fc.assert(
      fc.property(results, fc.constantFrom(...shapes), (r, shape) => {
        if (!quickShape(r, shape)) return;
        yes++;
        for (const strict of [true, false]) {
          const z = schemaFor(strict, shape).safeParse(r);
          expect(z.success).toBe(true);
          expect(z.data).toEqual(r);
        }
      }),
      { numRuns: 3000 },
    );
    expect(yes).toBeGreaterThan(200); // the generator reaches the quick path
  });

  it('takes the quick path for what datapath-cni prints, and leaves DNS and unknown keys to the schema', () => {
    const { dns: _dns, ...plain } = FULL;
    const out = formatResult(plain, '1.1.0');
    expect(quickShape(out, 'v11')).toBe(true);
    expect(quickShape(formatResult(plain, '1.0.0'), 'v10')).toBe(true);
    expect(quickShape(formatResult(plain, '0.4.0'), 'v04')).toBe(true);
    expect(quickShape({ ...out, dns: { nameservers: ['10.0.0.10'] } }, 'v11')).toBe(false);
    expect(quickShape({ ...out, x: 1 }, 'v11')).toBe(false);
    expect(quickShape(formatResult(FULL, '0.2.0'), 'v02')).toBe(false);
  });
});
