import { invalid } from './errors.js';
import { bigintToGroups, groupsToBigint, v4At, v4Text, v6Groups, v6Text } from './text.js';

/** An IP family: 4 or 6. */
export type IpFamily = 4 | 6;

/** A parsed address: its family and its value, a uint32 (IPv4) or a uint128 (IPv6) as a bigint. */
export interface IpAddress {
  /** 4 or 6. */
  readonly family: IpFamily;
  /** The address as an unsigned integer in network order: `10.0.0.1` is `0x0a000001n`. */
  readonly value: bigint;
}

/**
 * Width of an address of `family` in bits.
 *
 * @example
 * ```ts
 * import { familyWidth } from '@datapath/ip';
 * familyWidth(6); // 128
 * ```
 */
export function familyWidth(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

/**
 * Parses a dotted quad to a uint32 number, without allocating: the fast path for IPv4 arithmetic.
 * Four decimal octets, no leading zeros (`010.0.0.1` is refused, as by the kernel's `ip` and Go).
 *
 * @returns the address, or `undefined` when `text` is not an IPv4 address.
 * @example
 * ```ts
 * import { tryParseIpv4 } from '@datapath/ip';
 * tryParseIpv4('10.0.0.1'); // 167772161
 * ```
 */
export function tryParseIpv4(text: string): number | undefined {
  if (typeof text !== 'string') return undefined;
  const n = v4At(text, 0, text.length);
  return n < 0 ? undefined : n;
}

/**
 * Parses IPv6 text (RFC 4291 §2.2, a trailing dotted quad allowed, no zone) to a uint128.
 *
 * @returns the address, or `undefined` when `text` is not an IPv6 address.
 * @example
 * ```ts
 * import { tryParseIpv6 } from '@datapath/ip';
 * tryParseIpv6('fd00::1'); // 0xfd000000000000000000000000000001n
 * ```
 */
export function tryParseIpv6(text: string): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  const g = [0, 0, 0, 0, 0, 0, 0, 0];
  return v6Groups(text, g) ? groupsToBigint(g) : undefined;
}

/**
 * Formats a uint32 as a dotted quad.
 *
 * @example
 * ```ts
 * import { formatIpv4 } from '@datapath/ip';
 * formatIpv4(0x0a000001); // '10.0.0.1'
 * ```
 */
export function formatIpv4(n: number): string {
  return v4Text(n >>> 0);
}

/**
 * Formats a uint128 as RFC 5952 text (IPv4-mapped addresses as `::ffff:a.b.c.d`).
 *
 * @example
 * ```ts
 * import { formatIpv6 } from '@datapath/ip';
 * formatIpv6(0xfd000000000000000000000000000001n); // 'fd00::1'
 * ```
 */
export function formatIpv6(v: bigint): string {
  const g = [0, 0, 0, 0, 0, 0, 0, 0];
  bigintToGroups(v, g);
  return v6Text(g);
}

function parse(text: string): IpAddress | undefined {
  if (typeof text !== 'string') return undefined;
  if (text.indexOf(':') < 0) {
    const n = v4At(text, 0, text.length);
    return n < 0 ? undefined : { family: 4, value: BigInt(n) };
  }
  const g = [0, 0, 0, 0, 0, 0, 0, 0];
  return v6Groups(text, g) ? { family: 6, value: groupsToBigint(g) } : undefined;
}

/** `IPv4` / `IPv6`, for messages. */
export const FAMILY_NAME = { 4: 'IPv4', 6: 'IPv6' } as const;

/**
 * Parses an IPv4 or IPv6 address; with `family`, only an address of that family.
 *
 * @returns the address, or `undefined` when `text` is not one (of `family`).
 * @example
 * ```ts
 * import { tryParseIp } from '@datapath/ip';
 * tryParseIp('fd00::1')?.family; // 6
 * tryParseIp('fd00::1', 4); // undefined
 * ```
 */
export function tryParseIp(text: string, family?: IpFamily): IpAddress | undefined {
  const ip = parse(text);
  return ip === undefined || (family !== undefined && ip.family !== family) ? undefined : ip;
}

/**
 * Parses an IPv4 or IPv6 address; with `family`, only an address of that family.
 * Equivalent to: `inet_pton(3)` (IPv4 strictly as four decimal octets).
 *
 * @throws {@link IpError} `InvalidArgument` when `text` is not an address, or not one of `family`.
 * @example Parsing an address
 * ```ts
 * import { parseIp } from '@datapath/ip';
 * const ip = parseIp('10.0.0.1'); // { family: 4, value: 167772161n }
 * parseIp('10.0.0.1', 6); // throws IpError: parseIp: expected an IPv6 address, got "10.0.0.1"
 * ```
 */
export function parseIp(text: string, family?: IpFamily): IpAddress {
  return parseOrThrow(text, family, 'parseIp');
}

function parseOrThrow(text: string, family: IpFamily | undefined, op: string): IpAddress {
  const ip = parse(text);
  if (ip === undefined)
    return invalid(
      op,
      `invalid ${family ? FAMILY_NAME[family] : 'IP'} address ${JSON.stringify(text)}`,
      text,
    );
  if (family !== undefined && ip.family !== family)
    return invalid(op, `expected an ${FAMILY_NAME[family]} address, got ${JSON.stringify(text)}`, text);
  return ip;
}

/**
 * Formats an address (or its 4 or 16 network-order bytes) as text: a dotted quad, or RFC 5952 IPv6
 * (lower case, longest zero run compressed, `::ffff:a.b.c.d` for IPv4-mapped addresses).
 *
 * @throws {@link IpError} `InvalidArgument` for bytes that are not 4 or 16 long, or a value out of range.
 * @example
 * ```ts
 * import { formatIp, parseIp } from '@datapath/ip';
 * formatIp(parseIp('FD00:0:0::0001')); // 'fd00::1'
 * formatIp(new Uint8Array([10, 0, 0, 1])); // '10.0.0.1'
 * ```
 */
export function formatIp(ip: IpAddress | Uint8Array): string {
  if (ip instanceof Uint8Array) {
    if (ip.length === 4) return v4Text(((ip[0]! << 24) | (ip[1]! << 16) | (ip[2]! << 8) | ip[3]!) >>> 0);
    if (ip.length !== 16)
      return invalid('formatIp', `expected 4 or 16 bytes, got ${ip.length}`, `${ip.length} bytes`);
    const g = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 8; i++) g[i] = (ip[2 * i]! << 8) | ip[2 * i + 1]!;
    return v6Text(g);
  }
  checkValue(ip, 'formatIp');
  return ip.family === 4 ? v4Text(Number(ip.value)) : formatIpv6(ip.value);
}

const MAX = { 4: 0xffffffffn, 6: (1n << 128n) - 1n } as const;

/** Throws unless `ip` is a well-formed address object. */
export function checkValue(ip: IpAddress, op: string): void {
  if (
    (ip?.family !== 4 && ip?.family !== 6) ||
    typeof ip.value !== 'bigint' ||
    ip.value < 0n ||
    ip.value > MAX[ip.family]
  )
    invalid(op, 'expected an IPv4 or IPv6 address { family, value }', describe(ip));
}

/** A short description of a rejected value for an error's target. */
export function describe(x: unknown): string {
  if (typeof x !== 'object' || x === null) return String(x);
  const o = x as { family?: unknown; value?: unknown };
  return `{ family: ${String(o.family)}, value: ${String(o.value)} }`;
}

/**
 * The 4 or 16 network-order bytes of an address, given as text (parsed as by {@link parseIp}) or
 * parsed.
 *
 * @throws {@link IpError} `InvalidArgument` for text that is not an address (of `family`).
 * @example
 * ```ts
 * import { ipToBytes } from '@datapath/ip';
 * ipToBytes('10.0.0.1'); // Uint8Array [10, 0, 0, 1]
 * ipToBytes('fd00::1').length; // 16
 * ```
 */
export function ipToBytes(ip: string | IpAddress, family?: IpFamily): Uint8Array {
  if (typeof ip === 'string') {
    if (ip.indexOf(':') < 0) {
      const n = v4At(ip, 0, ip.length);
      if (n >= 0 && family !== 6)
        return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    } else {
      const g = [0, 0, 0, 0, 0, 0, 0, 0];
      if (family !== 4 && v6Groups(ip, g)) {
        const out = new Uint8Array(16);
        for (let i = 0; i < 8; i++) {
          out[2 * i] = g[i]! >>> 8;
          out[2 * i + 1] = g[i]! & 255;
        }
        return out;
      }
    }
    parseOrThrow(ip, family, 'ipToBytes'); // throws the precise error
  } else if (typeof ip !== 'object' || ip === null) parseOrThrow(ip, family, 'ipToBytes');
  const a = ip as IpAddress;
  checkValue(a, 'ipToBytes');
  if (family !== undefined && a.family !== family)
    invalid('ipToBytes', `expected an ${FAMILY_NAME[family]} address`, describe(a));
  const n = a.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = a.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * The address held in 4 (IPv4) or 16 (IPv6) network-order bytes.
 *
 * @throws {@link IpError} `InvalidArgument` for any other length.
 * @example
 * ```ts
 * import { ipFromBytes } from '@datapath/ip';
 * ipFromBytes(new Uint8Array([10, 0, 0, 1])); // { family: 4, value: 167772161n }
 * ```
 */
export function ipFromBytes(bytes: Uint8Array): IpAddress {
  if (!(bytes instanceof Uint8Array) || (bytes.length !== 4 && bytes.length !== 16))
    return invalid(
      'ipFromBytes',
      'expected 4 or 16 bytes',
      bytes instanceof Uint8Array ? `${bytes.length} bytes` : String(bytes),
    );
  if (bytes.length === 4)
    return {
      family: 4,
      value: BigInt(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0),
    };
  const g = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 8; i++) g[i] = (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  return { family: 6, value: groupsToBigint(g) };
}
