import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeIpcacheKey,
  decodeIpcacheValue,
  decodePolicyKey,
  decodePolicyValue,
  encodeChanges,
  encodeIpcacheKey,
  encodeIpcacheValue,
  encodePolicyKey,
  encodePolicyValue,
  PolicyEngine,
  PolicyError,
  type PolicyKey,
} from '../src/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('policy map key codec (struct policy_key, 12 bytes)', () => {
  it('matches golden bytes', () => {
    // prefixlen 64 LE | sec_label 256 LE | egress 0 | proto 6 | dport 80 BE
    expect(
      hex(encodePolicyKey({ direction: 'ingress', identity: 256, protocol: 6, port: 80, prefixLen: 24 })),
    ).toBe('40000000' + '00010000' + '00' + '06' + '0050');
    // egress, any identity, UDP any port: prefixlen 48
    expect(
      hex(encodePolicyKey({ direction: 'egress', identity: 0, protocol: 17, port: 0, prefixLen: 8 })),
    ).toBe('30000000' + '00000000' + '01' + '11' + '0000');
    // ingress from host, any protocol: prefixlen 40
    expect(
      hex(encodePolicyKey({ direction: 'ingress', identity: 1, protocol: 0, port: 0, prefixLen: 0 })),
    ).toBe('28000000' + '01000000' + '00' + '00' + '0000');
    // 8000/19 (8000–8031), identity 2^24+5
    expect(
      hex(
        encodePolicyKey({ direction: 'egress', identity: 16777221, protocol: 6, port: 8000, prefixLen: 19 }),
      ),
    ).toBe('3b000000' + '05000001' + '01' + '06' + '1f40');
  });

  it('round-trips every valid key', () => {
    const key = fc
      .record({
        direction: fc.constantFrom('ingress' as const, 'egress' as const),
        identity: fc.nat(0xffffffff),
        protocol: fc.constantFrom(6, 17, 132),
        port: fc.nat(65535),
        prefixLen: fc.integer({ min: 8, max: 24 }),
      })
      .map((k): PolicyKey => {
        const keep = k.prefixLen - 8;
        return { ...k, port: keep === 0 ? 0 : k.port & ((0xffff << (16 - keep)) & 0xffff) };
      });
    fc.assert(
      fc.property(key, (k) => {
        expect(decodePolicyKey(encodePolicyKey(k))).toEqual(k);
      }),
    );
  });

  it('rejects malformed keys with InvalidArgument', () => {
    const bad: PolicyKey[] = [
      { direction: 'ingress', identity: 1, protocol: 6, port: 81, prefixLen: 23 },
      { direction: 'ingress', identity: 1, protocol: 6, port: 0, prefixLen: 0 },
      { direction: 'ingress', identity: 1, protocol: 0, port: 0, prefixLen: 4 },
      { direction: 'ingress', identity: -1, protocol: 6, port: 80, prefixLen: 24 },
      { direction: 'ingress', identity: 1, protocol: 6, port: 80, prefixLen: 25 },
    ];
    for (const k of bad) expect(() => encodePolicyKey(k)).toThrow(PolicyError);
    expect(() => decodePolicyKey(new Uint8Array(11))).toThrow(/12 bytes/);
    expect(() => decodePolicyKey(Uint8Array.from([0x50, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 80]))).toThrow(
      /not in 40..64/,
    );
  });
});

describe('policy map value codec (struct policy_entry, 8 bytes)', () => {
  it('matches golden bytes', () => {
    expect(hex(encodePolicyValue({ deny: false, prefixLen: 24, proxyPort: 0, authType: 0 }))).toBe(
      '0000c00000000000',
    );
    expect(hex(encodePolicyValue({ deny: true, prefixLen: 8, proxyPort: 0, authType: 0 }))).toBe(
      '0000410000000000',
    );
    expect(hex(encodePolicyValue({ deny: false, prefixLen: 0, proxyPort: 15001, authType: 1 }))).toBe(
      '3a99000100000000',
    );
  });
  it('round-trips', () => {
    fc.assert(
      fc.property(
        fc.record({
          deny: fc.boolean(),
          prefixLen: fc.integer({ min: 0, max: 24 }),
          proxyPort: fc.nat(65535),
          authType: fc.nat(127),
        }),
        (v) => {
          expect(decodePolicyValue(encodePolicyValue(v))).toEqual(v);
        },
      ),
    );
    expect(() => encodePolicyValue({ deny: false, prefixLen: 25, proxyPort: 0, authType: 0 })).toThrow(
      PolicyError,
    );
  });
});

describe('ipcache codecs', () => {
  it('matches golden bytes', () => {
    expect(hex(encodeIpcacheKey('10.244.1.5/32'))).toBe(
      `40000000 0000 00 01 0af40105 ${'00'.repeat(12)}`.replaceAll(' ', ''),
    );
    expect(hex(encodeIpcacheKey('0.0.0.0/0'))).toBe(
      `20000000 0000 00 01 ${'00'.repeat(16)}`.replaceAll(' ', ''),
    );
    expect(hex(encodeIpcacheKey('fd00::1/128'))).toBe(
      `a0000000 0000 00 02 fd00 ${'00'.repeat(13)} 01`.replaceAll(' ', ''),
    );
    expect(hex(encodeIpcacheValue({ identity: 256, flags: 1 }))).toBe('0001000001000000');
  });
  it('round-trips and canonicalises host bits away', () => {
    expect(decodeIpcacheKey(encodeIpcacheKey('10.244.1.77/24'))).toBe('10.244.1.0/24');
    expect(decodeIpcacheKey(encodeIpcacheKey('fd00:1:2::/48'))).toBe('fd00:1:2::/48');
    expect(decodeIpcacheValue(encodeIpcacheValue({ identity: 16777217, flags: 2 }))).toEqual({
      identity: 16777217,
      flags: 2,
    });
    expect(() => encodeIpcacheKey('10.0.0.0/33')).toThrow(PolicyError);
    const k = encodeIpcacheKey('10.0.0.0/8');
    k[7] = 3;
    expect(() => decodeIpcacheKey(k)).toThrow(/family/);
  });
});

describe('encodeChanges', () => {
  it('encodes every change of a compile', () => {
    const engine = new PolicyEngine();
    const changes = engine.load({
      namespaces: { x: {} },
      pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }],
      policies: [
        { kind: 'NetworkPolicy', metadata: { name: 'd', namespace: 'x' }, spec: { podSelector: {} } },
      ],
    });
    const enc = encodeChanges(changes);
    expect(enc).toHaveLength(changes.length);
    const pol = enc.filter((c) => c.map === 'policy').map((c) => decodePolicyKey(c.key));
    expect(pol).toEqual(
      expect.arrayContaining([
        { direction: 'egress', identity: 0, protocol: 0, port: 0, prefixLen: 0 },
        { direction: 'ingress', identity: 1, protocol: 0, port: 0, prefixLen: 0 },
      ]),
    );
    const ipc = enc.find((c) => c.map === 'ipcache')!;
    expect(decodeIpcacheKey(ipc.key)).toBe('10.244.0.10/32');
    expect(decodeIpcacheValue(ipc.value!)).toEqual({ identity: 256, flags: 1 });
  });
});
