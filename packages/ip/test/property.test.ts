// Property tests of @datapath/ip against references that share no code with it: Node's own address
// code (net.isIPv4/isIPv6 and SocketAddress, i.e. libuv's inet_pton/inet_ntop; BlockList for
// containment) and ipaddr.js (a dev dependency, for the bytes of a parsed address and network masks).
import { BlockList, isIPv4, isIPv6, SocketAddress } from 'node:net';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import {
  formatIp,
  formatPrefix,
  type IpAddress,
  type IpPrefix,
  ipFromBytes,
  ipToBytes,
  parseIp,
  parsePrefix,
  prefixContains,
  prefixFirst,
  prefixLast,
  prefixOverlaps,
  tryParseIp,
} from '../src/index.js';

const RUNS = { numRuns: 400 };

/** 16 bytes with long zero runs likely (RFC 5952 compression is about them). */
const v6Bytes = fc
  .array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  })
  .chain((g) =>
    fc.constantFrom(
      g,
      [0, 0, 0, 0, 0, 0xffff, g[6]!, g[7]!], // IPv4-mapped
      [0, 0, 0, 0, 0, 0, g[6]!, g[7]!], // IPv4-compatible (deprecated)
    ),
  )
  .map((g) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 255])));
const v4Bytes = fc.uint8Array({ minLength: 4, maxLength: 4 });

/** Text of 16 bytes in a random legal spelling: any zero run compressed, random case and leading zeros. */
const v6Spelling = fc
  .record({
    bytes: v6Bytes,
    upper: fc.boolean(),
    pad: fc.boolean(),
    quad: fc.boolean(),
    cut: fc.nat(8),
    cutLen: fc.nat(8),
  })
  .map(({ bytes, upper, pad, quad, cut, cutLen }) => {
    const g = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
    let parts = g.map((x) => x.toString(16).padStart(pad ? 4 : 1, '0'));
    if (quad) parts = [...parts.slice(0, 6), `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`];
    // Compress a zero run [cut, cut+n) when there is one there.
    let n = 0;
    while (cut + n < parts.length && n < cutLen && /^0+$/.test(parts[cut + n]!)) n++;
    let text =
      n > 0 ? `${parts.slice(0, cut).join(':')}::${parts.slice(cut + n).join(':')}` : parts.join(':');
    if (upper) text = text.toUpperCase();
    return { text, bytes };
  });

/** Near-miss text: tokens that valid addresses are made of, in any order. */
const ipLike = fc
  .array(
    fc.oneof(
      fc.constantFrom(':', '::', '.', '0', '00', '1', '255', '256', 'ffff', 'FfFf', '12345', 'g', '%', '/'),
      fc.integer({ min: 0, max: 0xffff }).map((x) => x.toString(16)),
      fc.integer({ min: 0, max: 300 }).map(String),
    ),
    { maxLength: 18 },
  )
  .map((t) => t.join(''));

describe('parsing agrees with Node (libuv inet_pton) and ipaddr.js', () => {
  it('accepts exactly what net.isIPv4 / net.isIPv6 accept (no zones)', () => {
    fc.assert(
      fc.property(ipLike, (text) => {
        const ours = tryParseIp(text);
        const ref = text.includes('%') ? 0 : isIPv4(text) ? 4 : isIPv6(text) ? 6 : 0;
        expect(ours?.family ?? 0).toBe(ref);
      }),
      { numRuns: 3000 },
    );
  });

  it('parses every legal IPv6 spelling to the bytes ipaddr.js reads', () => {
    fc.assert(
      fc.property(v6Spelling, ({ text, bytes }) => {
        expect(isIPv6(text)).toBe(true);
        expect(ipToBytes(text)).toEqual(bytes);
        // ipaddr.js 2.5 reads `::a.b.c.d` as `::ffff:a.b.c.d` (inet_pton and the URL parser do not): the
        // URL parser is the reference there.
        if (/^::[\d.]+$/.test(text))
          expect(new URL(`http://[${text}]/`).hostname).toBe(`[${formatIp(bytes)}]`);
        else expect(ipToBytes(text)).toEqual(Uint8Array.from(ipaddr.IPv6.parse(text).toByteArray()));
        expect(ipToBytes(parseIp(text))).toEqual(bytes);
      }),
      RUNS,
    );
  });

  it('parses dotted quads to the bytes ipaddr.js reads', () => {
    fc.assert(
      fc.property(v4Bytes, (bytes) => {
        const text = bytes.join('.');
        expect(ipToBytes(text)).toEqual(Uint8Array.from(ipaddr.IPv4.parse(text).toByteArray()));
        expect(parseIp(text).value).toBe(BigInt(Buffer.from(bytes).readUInt32BE(0)));
      }),
      RUNS,
    );
  });
});

describe('formatting is RFC 5952 canonical', () => {
  it('matches inet_ntop (Node SocketAddress), which prints mapped addresses as ::ffff:a.b.c.d', () => {
    fc.assert(
      fc.property(v6Bytes, (bytes) => {
        const ip = ipFromBytes(bytes);
        const ntop = new SocketAddress({ address: formatIp(ip), family: 'ipv6' }).address;
        const compat = ip.value >> 32n === 0n && bytes[12]! + bytes[13]! !== 0;
        // inet_ntop also prints deprecated IPv4-compatible addresses (::a.b.c.d) with a dotted quad;
        // RFC 5952 §5 recommends it only for IPv4-mapped ones, so those two differ on purpose.
        if (compat) expect(ntop).toMatch(/^::\d+\.\d+\.\d+\.\d+$/);
        else expect(formatIp(ip)).toBe(ntop);
      }),
      RUNS,
    );
  });

  it('compresses and lower-cases as the WHATWG URL serializer does (non-mapped addresses)', () => {
    fc.assert(
      fc.property(v6Spelling, ({ text, bytes }) => {
        const ours = formatIp(bytes);
        if (ours.includes('.')) return; // URL prints the mapped form in hex
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${ours}]`);
      }),
      RUNS,
    );
  });

  it('round-trips text, value and bytes for both families', () => {
    fc.assert(
      fc.property(fc.oneof(v4Bytes, v6Bytes), (bytes) => {
        const text = formatIp(bytes);
        const ip = parseIp(text);
        expect(formatIp(ip)).toBe(text);
        expect(ipToBytes(ip)).toEqual(bytes);
        expect(ipFromBytes(bytes)).toEqual(ip);
      }),
      RUNS,
    );
  });
});

const family = fc.constantFrom(4 as const, 6 as const);
const prefixText = family.chain((f) =>
  fc
    .record({
      bytes: f === 4 ? v4Bytes : v6Bytes,
      len: fc.integer({ min: 0, max: f === 4 ? 32 : 128 }),
    })
    .map(({ bytes, len }) => ({ family: f, text: `${formatIp(bytes)}/${len}`, addr: formatIp(bytes), len })),
);

function blockList(p: IpPrefix): BlockList {
  const b = new BlockList();
  b.addSubnet(formatIp(prefixFirst(p)), p.length, p.family === 4 ? 'ipv4' : 'ipv6');
  return b;
}

describe('prefixes agree with ipaddr.js masks and Node BlockList containment', () => {
  it('clears host bits as ipaddr.js networkAddressFromCIDR, and strict parsing refuses them', () => {
    fc.assert(
      fc.property(prefixText, ({ family, text, addr, len }) => {
        const p = parsePrefix(text, { strict: false });
        const cls = family === 4 ? ipaddr.IPv4 : ipaddr.IPv6;
        const network = cls.networkAddressFromCIDR(text).toByteArray();
        expect(ipToBytes(prefixFirst(p))).toEqual(Uint8Array.from(network));
        if (family === 4)
          expect(ipToBytes(prefixLast(p))).toEqual(
            Uint8Array.from(ipaddr.IPv4.broadcastAddressFromCIDR(text).toByteArray()),
          );
        const hostBitsSet = formatIp(prefixFirst(p)) !== formatIp(parseIp(addr));
        if (hostBitsSet) expect(() => parsePrefix(text)).toThrow(/host bits are set/);
        else expect(formatPrefix(parsePrefix(text))).toBe(formatPrefix(p));
        expect(p.length).toBe(len);
      }),
      RUNS,
    );
  });

  it('contains an address exactly when BlockList does, and the last address is inside', () => {
    fc.assert(
      fc.property(prefixText, fc.oneof(v4Bytes, v6Bytes), ({ text }, bytes) => {
        const p = parsePrefix(text, { strict: false });
        const ip = ipFromBytes(bytes);
        const list = blockList(p);
        const ref = ip.family === p.family && list.check(formatIp(ip), ip.family === 4 ? 'ipv4' : 'ipv6');
        expect(prefixContains(p, ip)).toBe(ref);
        // An address inside the prefix, made by keeping the prefix bits of p and the host bits of ip.
        if (ip.family === p.family) {
          const mixed = { family: p.family, value: p.value | (ip.value & (prefixLast(p).value - p.value)) };
          expect(prefixContains(p, mixed)).toBe(true);
          expect(list.check(formatIp(mixed), p.family === 4 ? 'ipv4' : 'ipv6')).toBe(true);
        }
        expect(list.check(formatIp(prefixLast(p)), p.family === 4 ? 'ipv4' : 'ipv6')).toBe(true);
      }),
      RUNS,
    );
  });

  it('contains and overlaps prefixes as BlockList does', () => {
    fc.assert(
      fc.property(prefixText, prefixText, (a, b) => {
        const pa = parsePrefix(a.text, { strict: false });
        const pb = parsePrefix(b.text, { strict: false });
        const t = (f: 4 | 6) => (f === 4 ? 'ipv4' : 'ipv6');
        const inA = (x: IpAddress) => x.family === pa.family && blockList(pa).check(formatIp(x), t(x.family));
        const inB = (x: IpAddress) => x.family === pb.family && blockList(pb).check(formatIp(x), t(x.family));
        // a contains b ⇔ both ends of b are in a; they overlap ⇔ one holds the other's first address.
        expect(prefixContains(pa, pb)).toBe(inA(prefixFirst(pb)) && inA(prefixLast(pb)));
        expect(prefixOverlaps(pa, pb)).toBe(inA(prefixFirst(pb)) || inB(prefixFirst(pa)));
      }),
      RUNS,
    );
  });
});
