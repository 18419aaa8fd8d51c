import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { structDecoderIn } from '../src/codec.js';
import {
  align,
  array,
  BpfError,
  be16,
  be32,
  bytes,
  type Codec,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  ipv6,
  lpmKey,
  lpmKeyCodec,
  mac,
  pad,
  struct,
  u8,
  u16,
  u32,
  u64,
} from '../src/index.js';

function enc<T>(c: Codec<T>, v: T): string {
  const view = new DataView(new ArrayBuffer(c.size));
  new Uint8Array(view.buffer).fill(0xaa); // proves every byte is written
  c.encode(v, view, 0);
  return Buffer.from(view.buffer).toString('hex');
}

function dec<T>(c: Codec<T>, hex: string): T {
  const b = Buffer.from(hex, 'hex');
  return c.decode(new DataView(b.buffer, b.byteOffset, b.length), 0);
}

function golden<T>(c: Codec<T>, v: T, hex: string): void {
  expect(enc(c, v)).toBe(hex);
  expect(dec(c, hex)).toEqual(v);
}

const invalid = expect.objectContaining({ name: 'BpfError', code: 'InvalidArgument' });

describe('scalar codecs: golden bytes (x86_64 little-endian host)', () => {
  it('integers', () => {
    golden(u8, 0xfe, 'fe');
    golden(i8, -2, 'fe');
    golden(u16, 0x1234, '3412');
    golden(i16, -2, 'feff');
    golden(u32, 0x12345678, '78563412');
    golden(i32, -2, 'feffffff');
    golden(u64, 0x0102030405060708n, '0807060504030201');
    golden(i64, -2n, 'feffffffffffffff');
    golden(be16, 8080, '1f90');
    golden(be32, 0x0a000001, '0a000001');
  });

  it('addresses', () => {
    golden(ipv4, '10.244.0.1', '0af40001');
    golden(ipv6, 'fd00::1', 'fd000000000000000000000000000001');
    golden(ipv6, '2001:db8:0:1::', '20010db8000000010000000000000000');
    golden(mac, '02:42:ac:11:00:02', '0242ac110002');
    expect(dec(ipv6, '00000000000000000000ffff0a000001')).toBe('::ffff:10.0.0.1'); // RFC 5952 §5, as inet_ntop
    expect(() => enc(ipv4, '010.0.0.1')).toThrow(invalid); // no leading zeros (octal in inet_aton)
  });

  it('bytes and arrays', () => {
    golden(bytes(3), Uint8Array.from([1, 2, 3]), '010203');
    golden(array(u16, 3), [1, 2, 0xffff], '01000200ffff');
    expect(array(u32, 4)).toMatchObject({ size: 16, align: 4 });
  });

  it('rejects out-of-range and malformed values with InvalidArgument', () => {
    for (const [c, v] of [
      [u8, 256],
      [u8, -1],
      [i8, 128],
      [u16, 65536],
      [u32, 2 ** 32],
      [u32, 1.5],
      [u32, '1'],
      [u64, -1n],
      [u64, 2n ** 64n],
      [u64, 1],
      [i64, 2n ** 63n],
      [ipv4, '10.0.0.256'],
      [ipv4, '10.0.0'],
      [ipv6, '10.0.0.1'],
      [mac, '02:42:ac:11:00'],
      [bytes(2), Uint8Array.from([1])],
      [array(u8, 2), [1, 2, 3]],
    ] as [Codec<unknown>, unknown][]) {
      expect(() => enc(c, v)).toThrow(invalid);
    }
  });
});

describe('struct layout mirrors C', () => {
  it("Cilium's policy key: { u32 prefixlen; u32 identity; u8 dir; u8 proto; be16 dport } = 12 bytes", () => {
    const key = struct({ prefixlen: u32, identity: u32, dir: u8, proto: u8, dport: be16 }, { size: 12 });
    expect(key.offsets).toEqual({ prefixlen: 0, identity: 4, dir: 8, proto: 9, dport: 10 });
    golden(
      key,
      { prefixlen: 64, identity: 0x1234, dir: 1, proto: 6, dport: 443 },
      '40000000341200000106' + '01bb',
    );
  });

  it("Cilium's policy value with explicit padding and a u64 that aligns to 8", () => {
    const value = struct(
      { proxyPort: be16, flags: u8, auth: u8, _pad0: pad(2), _pad1: pad(2), packets: u64, bytes: u64 },
      { size: 24 },
    );
    expect(value.offsets.packets).toBe(8);
    golden(
      value,
      { proxyPort: 15001, flags: 1, auth: 0, packets: 3n, bytes: 0x100n },
      `3a99010000000000${'0300000000000000'}${'0001000000000000'}`,
    );
  });

  it('implicit C padding between fields and at the tail is zeroed', () => {
    const s = struct({ a: u8, b: u32, c: u16 }); // a@0, b@4, c@8, size 12
    expect(s.size).toBe(12);
    expect(s.offsets).toEqual({ a: 0, b: 4, c: 8 });
    expect(enc(s, { a: 1, b: 2, c: 3 })).toBe('010000000200000003000000');
  });

  it('packed structs and per-field alignment', () => {
    expect(struct({ a: u8, b: u32 }, { packed: true }).size).toBe(5);
    const s = struct({ a: u8, b: align(u64, 4) });
    expect(s.offsets.b).toBe(4);
    expect(s.size).toBe(12);
  });

  it('a wrong expected size is an error that shows the layout', () => {
    expect(() => struct({ a: u8, b: u32 }, { size: 5 })).toThrow(
      /computed size 8 differs from the expected size 5.*b@4\+4/,
    );
    expect(() => struct({ a: u8, b: u32 }, { size: 5 })).toThrow(BpfError);
  });

  it('missing fields are rejected, padding fields are not required', () => {
    const s = struct({ a: u8, _p: pad(3), b: u32 });
    expect(() => enc(s, { a: 1 } as never)).toThrow(invalid);
    expect(dec(s, '01ffffff02000000')).toEqual({ a: 1, b: 2 });
  });
});

describe('LPM keys', () => {
  it('ipv4 key: host-order prefixlen then network-order address, host bits cleared', () => {
    const k = lpmKeyCodec({ family: 'ipv4' });
    expect(k.size).toBe(8);
    expect(enc(k, { prefixLen: 8, addr: '10.1.2.3' })).toBe('080000000a000000');
    expect(enc(k, { prefixLen: 20, addr: '10.1.255.3' })).toBe('140000000a01f000');
    expect(dec(k, '100000000a010000')).toEqual({ prefixLen: 16, addr: '10.1.0.0' });
  });

  it("Cilium's ipcache key: static bits count in prefixlen and are decoded back", () => {
    const k = lpmKeyCodec({ family: 'ipv6', prefix: { _pad: pad(2), clusterId: u8, family: u8 } });
    expect(k.size).toBe(24);
    const v = lpmKey.fromCidr('fd00:10::/32', { clusterId: 7, family: 10 });
    golden(k, v, `40000000` + `0000070a` + `fd000010000000000000000000000000`);
    expect(dec(k, enc(k, v))).toEqual({ clusterId: 7, family: 10, prefixLen: 32, addr: 'fd00:10::' });
  });

  it('IPv4 in a 16-byte address field (Cilium ipcache), and C tail padding', () => {
    const k = lpmKeyCodec({
      family: 'ipv4',
      addressSize: 16,
      prefix: { _pad: pad(2), clusterId: u8, family: u8 },
    });
    expect(k.size).toBe(24);
    golden(
      k,
      lpmKey.fromCidr('10.244.0.0/16', { clusterId: 0, family: 2 }),
      `30000000000000020af40000${'0'.repeat(24)}`,
    );
    const odd = lpmKeyCodec({ family: 'ipv4', prefix: { proto: u8 } }); // { u32; u8; u8[4] } → sizeof 12
    expect(odd.size).toBe(12);
    golden(odd, { proto: 6, prefixLen: 24, addr: '10.0.1.0' }, '20000000060a000100000000');
    expect(() => lpmKeyCodec({ family: 'ipv6', addressSize: 4 })).toThrow(invalid);
  });

  it('fromCidr parses, masks and validates', () => {
    expect(lpmKey.fromCidr('10.1.2.3/8')).toEqual({ addr: '10.0.0.0', prefixLen: 8 });
    expect(lpmKey.fromCidr('10.1.2.3')).toEqual({ addr: '10.1.2.3', prefixLen: 32 });
    expect(lpmKey.fromCidr('fd00::1/127')).toEqual({ addr: 'fd00::', prefixLen: 127 });
    expect(lpmKey.fromCidr('fd00::1')).toEqual({ addr: 'fd00::1', prefixLen: 128 });
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'fd00::/129', '300.0.0.0/8', '']) {
      expect(() => lpmKey.fromCidr(bad)).toThrow(invalid);
    }
    const k = lpmKeyCodec({ family: 'ipv4' });
    expect(() => enc(k, { prefixLen: 33, addr: '10.0.0.0' })).toThrow(invalid);
    expect(() => lpmKeyCodec({ family: 'ipx' as 'ipv4' })).toThrow(invalid);
  });
});

describe('round-trip properties', () => {
  it('integers, addresses and structs decode to what was encoded', () => {
    const s = struct({ a: u8, b: u64, c: be16, ip: ipv4, m: mac });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.integer({ min: 0, max: 65535 }),
        fc.ipV4(),
        fc.uint8Array({ minLength: 6, maxLength: 6 }),
        (a, b, c, ip, m) => {
          const macText = [...m].map((x) => x.toString(16).padStart(2, '0')).join(':');
          const v = { a, b, c, ip, m: macText };
          expect(dec(s, enc(s, v))).toEqual(v);
        },
      ),
    );
  });

  it('IPv6 text is canonical after a round trip (slow reference: ipaddr-free hextet compare)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        const hex = Buffer.from(b).toString('hex');
        const text = dec(ipv6, hex);
        expect(enc(ipv6, text)).toBe(hex);
        expect(text).not.toMatch(/(^|:)0\d/); // no leading zeros in a group
        expect(text.split('::').length).toBeLessThanOrEqual(2);
      }),
    );
  });

  it('LPM keys keep only prefix bits', () => {
    const k = lpmKeyCodec({ family: 'ipv4' });
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, len) => {
        const out = dec(k, enc(k, { addr: ip, prefixLen: len }));
        expect(out.prefixLen).toBe(len);
        const num = (t: string) => t.split('.').reduce((x, y) => x * 256 + Number(y), 0);
        const mask = len === 0 ? 0 : 2 ** 32 - 2 ** (32 - len);
        expect(num(out.addr)).toBe(Number(BigInt(num(ip)) & BigInt(mask)));
      }),
    );
  });
});

describe('struct decoder bound to a region (the ring reader’s typed-array path)', () => {
  // Every kind of field: typed-array reads (aligned u8/u16/u32/i32), the DataView ones (u64, i64, byte-order
  // swapped, misaligned in a packed struct) and codec calls (ipv4, arrays), with padding left out.
  const wide = struct({
    a: u8,
    b: u16,
    c: u32,
    d: i32,
    e: u64,
    f: i64,
    g: be16,
    h: be32,
    ip: ipv4,
    p: pad(4),
    x: array(u16, 3),
  });
  const packed = struct({ a: u8, b: u32, c: u16, d: i32, e: u8 }, { packed: true });
  it('decodes exactly what the struct’s own decoder does, at any 8-aligned record offset', () => {
    for (const codec of [wide, packed] as Codec<unknown>[]) {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 256, maxLength: 256 }), fc.nat(24), (raw, slot) => {
          const region = new Uint8Array(new ArrayBuffer(264), 8, 256);
          region.set(raw);
          const decode = structDecoderIn(codec, region)!;
          const o = slot * 8;
          if (o + codec.size > region.length) return;
          expect(decode(o)).toEqual(codec.decode(new DataView(region.buffer, region.byteOffset), o));
        }),
        { numRuns: 200 },
      );
    }
  });
  it('declines a region that is not 8-byte aligned and a codec that is not a struct', () => {
    expect(structDecoderIn(wide, new Uint8Array(new ArrayBuffer(64), 4, 32))).toBeUndefined();
    expect(structDecoderIn(u32, new Uint8Array(64))).toBeUndefined();
  });
});
