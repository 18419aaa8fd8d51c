import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToIp, bytesToMac, ipToBytes, macToBytes, parseAttrs, Writer } from '../src/codec/bytes.js';

describe('IP text codec', () => {
  it('round-trips every IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(bytesToIp(ipToBytes(ip))).toBe(ip);
      }),
    );
  });

  it('round-trips IPv6 addresses through bytes (text normalised to RFC 5952)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = bytesToIp(bytes);
        expect([...ipToBytes(text)]).toEqual([...bytes]);
      }),
    );
  });

  it('formats IPv6 like the kernel tools do', () => {
    expect(bytesToIp(ipToBytes('fd00:0:0:0:0:0:0:1'))).toBe('fd00::1');
    expect(bytesToIp(ipToBytes('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(bytesToIp(ipToBytes('::'))).toBe('::');
    expect(bytesToIp(ipToBytes('::ffff:10.1.2.3'))).toBe('::ffff:10.1.2.3'); // as inet_ntop (RFC 5952 §5)
    expect(bytesToIp(Uint8Array.from([2, 0, 0, 0, 0, 1]))).toBe('02:00:00:00:00:01'); // other lengths: hex
    expect(bytesToIp(ipToBytes('1:0:2:3:4:5:6:7'))).toBe('1:0:2:3:4:5:6:7');
  });

  it('rejects malformed addresses', () => {
    for (const bad of [
      '',
      '1.2.3',
      '256.1.1.1',
      '01.2.3.4x',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      'g::1',
      '1:2:3:4:5:6:7::8:9',
    ]) {
      expect(() => ipToBytes(bad)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
    expect(() => ipToBytes('nope', 'addrAdd')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument', op: 'addrAdd' }),
    );
  });

  it('round-trips MAC addresses and rejects bad ones', () => {
    expect(bytesToMac(macToBytes('02:AB:cd:00:00:01'))).toBe('02:ab:cd:00:00:01');
    expect(() => macToBytes('02:ab:cd')).not.toThrow(); // any even length: infiniband etc.
    expect(() => macToBytes('zz:00:00:00:00:00')).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
  });
});

describe('netlink attributes', () => {
  it('pads to 4 bytes, sets NLA_F_NESTED on nests and parses back', () => {
    const w = new Writer();
    w.attrString(3, 'ab').nest(18, (w) => w.attrU8(7, 1).attrU32(1, 0xdeadbeef));
    const bytes = w.finish();
    // "ab\0" = 3 bytes + 4 header = 7 → padded to 8.
    expect([...bytes.subarray(0, 8)]).toEqual([7, 0, 3, 0, 0x61, 0x62, 0, 0]);
    expect(new DataView(bytes.buffer).getUint16(10, true)).toBe(18 | 0x8000);
    const attrs = parseAttrs(bytes);
    expect(attrs.map((a) => a.type)).toEqual([3, 18]);
    const inner = parseAttrs(attrs[1]!.data);
    expect(inner.map((a) => [a.type, a.data.byteLength])).toEqual([
      [7, 1],
      [1, 4],
    ]);
  });

  it('rejects an attribute whose length runs past the buffer', () => {
    expect(() => parseAttrs(Uint8Array.from([40, 0, 3, 0, 1, 2, 3, 4]))).toThrow(
      expect.objectContaining({ code: 'Protocol' }),
    );
  });
});
