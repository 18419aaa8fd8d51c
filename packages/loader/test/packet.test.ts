import { ipv6 } from '@datapath/bpf-maps';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BpfError, buildPacket, internetChecksum, type Layer, parsePacket } from '../src/index.js';

// An independent, obviously correct Internet checksum: 32-bit words summed as BigInt, folded once at the end.
function slowChecksum(bytes: Uint8Array): number {
  let sum = 0n;
  for (let i = 0; i < bytes.length; i += 2) sum += BigInt((bytes[i]! << 8) | (bytes[i + 1] ?? 0));
  while (sum >> 16n) sum = (sum & 0xffffn) + (sum >> 16n);
  return Number(~sum & 0xffffn);
}

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => Number.parseInt(h, 16)));

describe('internetChecksum', () => {
  it('matches the RFC 1071 worked example and a textbook IPv4 header', () => {
    // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2, complement 220d.
    expect(internetChecksum(hex('0001f203f4f5f6f7'))).toBe(0x220d);
    // A captured IPv4 header (checksum b861 in place) verifies to zero, and recomputes to b861 when zeroed.
    const h = hex('450000730000400040110000c0a80001c0a800c7');
    expect(internetChecksum(h)).toBe(0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    expect(internetChecksum(h)).toBe(0);
  });

  it('equals a slow reference on random bytes, split anywhere', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (b, cut) => {
        const at = Math.min(cut, b.length);
        expect(internetChecksum(b.subarray(0, at), b.subarray(at))).toBe(slowChecksum(b));
      }),
    );
  });
});

const mac = fc
  .array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .map((b) => b.map((x) => x.toString(16).padStart(2, '0')).join(':'));
const ip4 = fc.ipV4();
const ip6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((g) => g.map((x) => x.toString(16)).join(':'));
const port = fc.integer({ min: 0, max: 0xffff });
const payload = fc
  .uint8Array({ minLength: 1, maxLength: 64 })
  .map((bytes): Layer => ({ kind: 'payload', bytes }));
const l4 = (v6: boolean) =>
  fc.oneof(
    fc.record({
      kind: fc.constant('tcp' as const),
      sport: port,
      dport: port,
      seq: fc.nat(),
      ack: fc.nat(),
      flags: fc.record({ syn: fc.boolean(), ack: fc.boolean(), fin: fc.boolean(), rst: fc.boolean() }),
    }),
    fc.record({ kind: fc.constant('udp' as const), sport: port, dport: port.filter((p) => p !== 4789) }),
    fc.record({
      kind: fc.constant(v6 ? ('icmpv6' as const) : ('icmp' as const)),
      type: fc.integer({ min: 0, max: 255 }),
      id: port,
      seq: port,
    }),
  );
const packet: fc.Arbitrary<Layer[]> = fc.oneof(
  fc
    .tuple(
      mac,
      mac,
      ip4,
      ip4,
      fc.integer({ min: 1, max: 255 }),
      l4(false),
      fc.option(payload, { nil: undefined }),
    )
    .map(([s, d, a, b, ttl, l, p]): Layer[] => [
      { kind: 'eth', src: s, dst: d },
      { kind: 'ipv4', src: a, dst: b, ttl },
      l,
      ...(p ? [p] : []),
    ]),
  fc
    .tuple(mac, mac, ip6, ip6, l4(true), fc.option(payload, { nil: undefined }))
    .map(([s, d, a, b, l, p]): Layer[] => [
      { kind: 'eth', src: s, dst: d },
      { kind: 'ipv6', src: a, dst: b },
      l,
      ...(p ? [p] : []),
    ]),
  fc.tuple(mac, mac, ip4, ip4).map(([s, d, a, b]): Layer[] => [
    { kind: 'eth', src: s, dst: d },
    { kind: 'arp', op: 1, senderMac: s, senderIp: a, targetMac: '00:00:00:00:00:00', targetIp: b },
  ]),
);

describe('buildPacket / parsePacket', () => {
  it('round-trips every layer field and produces checksums the parser verifies', () => {
    fc.assert(
      fc.property(packet, (layers) => {
        const bytes = buildPacket(layers);
        const parsed = parsePacket(bytes);
        expect(parsed.map((l) => l.kind)).toEqual(layers.map((l) => l.kind));
        layers.forEach((l, i) => {
          const p = parsed[i] as Record<string, unknown>;
          for (const [k, v] of Object.entries(l)) {
            if (k === 'flags' && typeof v === 'object') expect(p[k]).toMatchObject(v as object);
            else if (l.kind === 'ipv6' && (k === 'src' || k === 'dst'))
              expect(p[k]).toBe(normalise(v as string));
            else expect(p[k]).toEqual(v);
          }
          if ('checksumOk' in p) expect(p.checksumOk).toBe(true);
        });
        // Parsed layers carry every field: building them again gives the same bytes.
        expect(buildPacket(parsed as Layer[])).toEqual(bytes);
      }),
    );
  });

  it('checksums TCP/UDP over the pseudo-header, checked by the slow reference', () => {
    const bytes = buildPacket([
      { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
      { kind: 'ipv4', src: '10.244.0.10', dst: '10.244.1.20', id: 1 },
      { kind: 'udp', sport: 5000, dport: 53 },
      { kind: 'payload', bytes: new TextEncoder().encode('hello') },
    ]);
    const ip = bytes.subarray(14, 34);
    const udp = bytes.subarray(34);
    const pseudo = new Uint8Array([...ip.subarray(12, 20), 0, 17, 0, udp.length]);
    expect(slowChecksum(ip)).toBe(0);
    expect(slowChecksum(new Uint8Array([...pseudo, ...udp]))).toBe(0);
    expect(bytes.length).toBe(14 + 20 + 8 + 5);
  });

  it('parses VXLAN and its inner frame', () => {
    const inner: Layer[] = [
      { kind: 'eth', src: '02:00:00:00:00:0a', dst: '02:00:00:00:00:0b' },
      { kind: 'ipv4', src: '10.244.1.2', dst: '10.244.2.3' },
      { kind: 'icmp', type: 8, id: 7, seq: 1 },
    ];
    const bytes = buildPacket([
      { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
      { kind: 'ipv4', src: '198.18.0.1', dst: '198.18.0.2' },
      { kind: 'udp', sport: 40000, dport: 4789 },
      { kind: 'vxlan', vni: 0x123456 },
      ...inner,
    ]);
    const parsed = parsePacket(bytes);
    expect(parsed.map((l) => l.kind)).toEqual(['eth', 'ipv4', 'udp', 'vxlan', 'eth', 'ipv4', 'icmp']);
    expect(parsed[3]).toEqual({ kind: 'vxlan', vni: 0x123456, flags: 8 });
    expect(parsed.every((l) => !('checksumOk' in l) || l.checksumOk)).toBe(true);
  });

  it('reports a corrupt checksum and a truncated header as payload', () => {
    const bytes = buildPacket([
      { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
      { kind: 'ipv4', src: '10.0.0.1', dst: '10.0.0.2', checksum: 0x1234 },
      { kind: 'tcp', sport: 1, dport: 2, flags: { syn: true } },
    ]);
    const [, ip, tcp] = parsePacket(bytes);
    expect(ip).toMatchObject({ kind: 'ipv4', checksum: 0x1234, checksumOk: false });
    expect(tcp).toMatchObject({ kind: 'tcp', checksumOk: true, flags: { syn: true, ack: false } });
    expect(parsePacket(bytes.subarray(0, 20)).map((l) => l.kind)).toEqual(['eth', 'payload']);
  });

  it('rejects bad input with typed errors', () => {
    expect(() => buildPacket([])).toThrow(BpfError);
    expect(() => buildPacket([{ kind: 'eth', src: 'nope', dst: '02:00:00:00:00:02' }])).toThrow(/eth\.src/);
    expect(() =>
      buildPacket([
        { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
        { kind: 'ipv4', src: '10.0.0.1', dst: '10.0.0.2', ttl: 256 },
        { kind: 'udp', sport: 1, dport: 2 },
      ]),
    ).toThrow(/ttl must be a 8-bit/);
    expect(() => buildPacket([{ kind: 'tcp', sport: 1, dport: 2 }])).toThrow(/must follow an ipv4 or ipv6/);
  });
});

function normalise(addr: string): string {
  if (!addr.includes(':')) return addr;
  const v = new DataView(new ArrayBuffer(16));
  ipv6.encode(addr, v, 0);
  return ipv6.decode(v, 0);
}
