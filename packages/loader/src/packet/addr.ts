import { BpfError, ipv4, ipv6, mac } from '@datapath/bpf-maps';

function fail(what: string, value: unknown): BpfError {
  return new BpfError('InvalidArgument', `buildPacket: ${what}: bad address ${JSON.stringify(value)}`, {
    op: 'buildPacket',
  });
}

function encode(codec: typeof ipv4, text: string, what: string): Uint8Array {
  const out = new Uint8Array(codec.size);
  try {
    codec.encode(text, new DataView(out.buffer), 0);
  } catch (err) {
    throw Object.assign(fail(what, text), { cause: err });
  }
  return out;
}

/** The 6 bytes of a `aa:bb:cc:dd:ee:ff` MAC. */
export function macBytes(text: string, what: string): Uint8Array {
  return encode(mac, text, what);
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address. */
export function addrBytes(text: string, len: 4 | 16, what: string): Uint8Array {
  return encode(len === 4 ? ipv4 : ipv6, text, what);
}

/** Text of the MAC (6 bytes), IPv4 (4) or IPv6 (16) address at `off`. */
export function addrText(view: DataView, off: number, len: 4 | 6 | 16): string {
  return (len === 4 ? ipv4 : len === 6 ? mac : ipv6).decode(view, off);
}
