import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flowHash, LbError, maglevBackendFor, ServiceTable } from '../src/index.js';

// An independent lookup3 `jhash_3words` in BigInt arithmetic (mod 2^32 after every step).
function refJhash3(a: number, b: number, c: number, init: number): number {
  const m = 0xffffffffn;
  const rol = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & m;
  const iv = (BigInt(init) + 0xdeadbeefn + 12n) & m;
  let [x, y, z] = [(BigInt(a) + iv) & m, (BigInt(b) + iv) & m, (BigInt(c) + iv) & m];
  const sub = (p: bigint, q: bigint) => (p - q + (1n << 32n)) & m;
  z = sub(z ^ y, rol(y, 14n));
  x = sub(x ^ z, rol(z, 11n));
  y = sub(y ^ x, rol(x, 25n));
  z = sub(z ^ y, rol(y, 16n));
  x = sub(x ^ z, rol(z, 4n));
  y = sub(y ^ x, rol(x, 14n));
  z = sub(z ^ y, rol(y, 24n));
  return Number(z);
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 65535 });

describe('flowHash', () => {
  it('IPv4: jhash_3words(addr, sport << 16 | dport, proto, seed) over host-order fields', () => {
    fc.assert(
      fc.property(
        u32,
        port,
        port,
        fc.constantFrom('TCP', 'UDP' as const),
        u32,
        (addr, sp, dp, proto, seed) => {
          const source = [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
          const want = refJhash3(addr, ((sp << 16) | dp) >>> 0, proto === 'TCP' ? 6 : 17, seed);
          expect(flowHash({ source, sourcePort: sp, destinationPort: dp, protocol: proto }, seed)).toBe(want);
        },
      ),
    );
  });

  it('IPv6: the first three address words, then the fourth with the ports and protocol', () => {
    fc.assert(
      fc.property(fc.array(u32, { minLength: 4, maxLength: 4 }), port, port, u32, (w, sp, dp, seed) => {
        const source = w.map((x) => `${(x >>> 16).toString(16)}:${(x & 0xffff).toString(16)}`).join(':');
        const h = refJhash3(w[0]!, w[1]!, w[2]!, seed);
        const want = refJhash3(w[3]!, ((sp << 16) | dp) >>> 0, 17, h);
        expect(flowHash({ source, sourcePort: sp, destinationPort: dp, protocol: 'UDP' }, seed)).toBe(want);
      }),
    );
  });

  it('the seed matters; bad input is a typed InvalidArgument', () => {
    const t = { source: '10.244.1.2', sourcePort: 40000, destinationPort: 80, protocol: 'TCP' } as const;
    expect(flowHash(t, 1)).not.toBe(flowHash(t, 2));
    for (const bad of [
      { ...t, source: '10.244.1' },
      { ...t, sourcePort: 70000 },
      { ...t, protocol: 'SCTP' },
    ]) {
      const err = (() => {
        try {
          flowHash(bad as never);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(LbError);
      expect((err as LbError).code).toBe('InvalidArgument');
    }
    expect(() => flowHash(t, -1)).toThrow(LbError);
  });

  it('maglevBackendFor: the backend of the table entry hash % size; undefined for a random service', () => {
    const table = new ServiceTable({ tableSize: 251 });
    const backends = [1, 2, 3].map((i) => ({ address: `10.244.1.${i}`, port: 8080 }));
    const frontends = [{ address: '10.96.0.10', port: 80 }];
    table.upsert({ name: 'm', protocol: 'TCP', selection: 'maglev', frontends, backends }).commit();
    table
      .upsert({ name: 'r', protocol: 'TCP', frontends: [{ address: '10.96.0.11', port: 80 }], backends })
      .commit();
    const m = table.get('m')!;
    for (let sp = 1000; sp < 1100; sp++) {
      const t = { source: '10.244.2.2', sourcePort: sp, destinationPort: 80, protocol: 'TCP' } as const;
      const id = m.maglev![flowHash(t, 9) % 251]!;
      expect(maglevBackendFor(m, t, 9)).toBe(m.service.backends[m.backendIds.indexOf(id)]);
      expect(maglevBackendFor(table.get('r')!, t, 9)).toBeUndefined();
    }
  });
});
