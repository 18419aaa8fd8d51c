import {
  checkValue,
  describe,
  FAMILY_NAME,
  formatIp,
  type IpAddress,
  type IpFamily,
  tryParseIp,
} from './address.js';
import { invalid } from './errors.js';

/** A prefix (CIDR block): family, network address (host bits always zero) and length. */
export interface IpPrefix {
  /** 4 or 6. */
  readonly family: IpFamily;
  /** The network address as an unsigned integer; its host bits are zero. */
  readonly value: bigint;
  /** Prefix length: 0–32 (IPv4) or 0–128 (IPv6). */
  readonly length: number;
}

/** An interface address with its prefix, as `10.0.0.1/24` means on a link (Go's `net.ParseCIDR`). */
export interface IpCidr {
  /** The address as written (host bits kept). */
  readonly address: IpAddress;
  /** Its prefix (host bits cleared). */
  readonly prefix: IpPrefix;
}

/** Options of {@link parseCidr} and {@link tryParseCidr}. */
export interface CidrOptions {
  /** Accept only this family. */
  family?: IpFamily;
  /** Accept a bare address as a host prefix (`/32` or `/128`). Default false. */
  bare?: boolean;
}

/** Options of {@link parsePrefix} and {@link tryParsePrefix}. */
export interface PrefixOptions extends CidrOptions {
  /**
   * True (the default): refuse a prefix with host bits set (`10.0.0.1/24`). False: clear them
   * (`10.0.0.1/24` → `10.0.0.0/24`).
   */
  strict?: boolean;
}

const WIDTH = { 4: 32, 6: 128 } as const;
const ALL = { 4: 0xffffffffn, 6: (1n << 128n) - 1n } as const;

/** Netmasks by family and length: immutable tables. */
const MASKS: { readonly 4: readonly bigint[]; readonly 6: readonly bigint[] } = {
  4: Object.freeze(Array.from({ length: 33 }, (_, n) => ALL[4] ^ ((1n << BigInt(32 - n)) - 1n))),
  6: Object.freeze(Array.from({ length: 129 }, (_, n) => ALL[6] ^ ((1n << BigInt(128 - n)) - 1n))),
};

/** The netmask of `length` bits of `family`, as an unsigned integer. */
function maskOf(family: IpFamily, length: number): bigint {
  return MASKS[family][length]!;
}

/** Parses `addr/len` into address and length, or a reason it is not one. */
function split(
  text: string,
  options: CidrOptions | undefined,
): { address: IpAddress; length: number } | string {
  if (typeof text !== 'string') return 'expected a string';
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const address = tryParseIp(addrText);
  if (address === undefined)
    return slash < 0 && options?.bare !== true
      ? 'expected address/length'
      : `invalid address ${JSON.stringify(addrText)}`;
  const family = options?.family;
  if (family !== undefined && address.family !== family) return `expected an ${FAMILY_NAME[family]} prefix`;
  if (slash < 0) {
    if (options?.bare !== true) return 'missing /length';
    return { address, length: WIDTH[address.family] };
  }
  const lenText = text.slice(slash + 1);
  const l = lenText.length;
  // 1-3 decimal digits, no sign, no leading zero (`/08` is refused as by Go).
  if (l < 1 || l > 3 || (l > 1 && lenText.charCodeAt(0) === 48))
    return `invalid prefix length ${JSON.stringify(lenText)}`;
  let length = 0;
  for (let i = 0; i < l; i++) {
    const c = lenText.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return `invalid prefix length ${JSON.stringify(lenText)}`;
    length = length * 10 + c;
  }
  if (length > WIDTH[address.family])
    return `prefix length ${length} is out of range for ${FAMILY_NAME[address.family]} (0-${WIDTH[address.family]})`;
  return { address, length };
}

function prefix(text: string, options: PrefixOptions | undefined): IpPrefix | string {
  const s = split(text, options);
  if (typeof s === 'string') return s;
  const { family, value } = s.address;
  const masked = value & maskOf(family, s.length);
  if (masked !== value && options?.strict !== false)
    return `host bits are set (the prefix is ${formatIp({ family, value: masked })}/${s.length})`;
  return { family, value: masked, length: s.length };
}

/**
 * Parses a prefix `address/length`, like {@link parsePrefix}.
 *
 * @returns the prefix, or `undefined` when `text` is not one.
 * @example
 * ```ts
 * import { tryParsePrefix } from '@datapath/ip';
 * tryParsePrefix('10.0.0.1/24'); // undefined: host bits set
 * tryParsePrefix('10.0.0.1/24', { strict: false }); // { family: 4, value: 167772160n, length: 24 }
 * ```
 */
export function tryParsePrefix(text: string, options?: PrefixOptions): IpPrefix | undefined {
  const p = prefix(text, options);
  return typeof p === 'string' ? undefined : p;
}

/**
 * Parses a prefix `address/length` (decimal length, no leading zero). By default host bits must be zero;
 * with `strict: false` they are cleared. With `bare: true` a plain address is its host prefix.
 *
 * @throws {@link IpError} `InvalidArgument` for text that is not a prefix (of `family`), a length out of
 * range, or (strict) host bits set.
 * @example Parsing strictly and leniently
 * ```ts
 * import { formatPrefix, parsePrefix } from '@datapath/ip';
 * parsePrefix('10.244.0.0/16'); // { family: 4, value: 183762944n, length: 16 }
 * formatPrefix(parsePrefix('FD00::1/64', { strict: false })); // 'fd00::/64'
 * ```
 */
export function parsePrefix(text: string, options?: PrefixOptions): IpPrefix {
  const p = prefix(text, options);
  return typeof p === 'string' ? invalid('parsePrefix', `${p} in ${JSON.stringify(text)}`, text) : p;
}

function cidr(text: string, options: CidrOptions | undefined): IpCidr | string {
  const s = split(text, options);
  if (typeof s === 'string') return s;
  const { family, value } = s.address;
  return {
    address: s.address,
    prefix: { family, value: value & maskOf(family, s.length), length: s.length },
  };
}

/**
 * Parses an interface address `address/length`, like {@link parseCidr}.
 *
 * @returns the address and its prefix, or `undefined` when `text` is not one.
 * @example
 * ```ts
 * import { tryParseCidr } from '@datapath/ip';
 * tryParseCidr('10.0.0.1/33'); // undefined
 * ```
 */
export function tryParseCidr(text: string, options?: CidrOptions): IpCidr | undefined {
  const c = cidr(text, options);
  return typeof c === 'string' ? undefined : c;
}

/**
 * Parses an interface address `address/length` into the address (host bits kept) and its prefix (host
 * bits cleared), as Go's `net.ParseCIDR`. Equivalent to: the argument of `ip addr add 10.0.0.1/24`.
 *
 * @throws {@link IpError} `InvalidArgument` for text that is not `address/length` (of `family`) or a length
 * out of range.
 * @example Splitting an interface address
 * ```ts
 * import { formatIp, formatPrefix, parseCidr } from '@datapath/ip';
 * const { address, prefix } = parseCidr('10.0.0.1/24');
 * console.log(formatIp(address), formatPrefix(prefix)); // 10.0.0.1 10.0.0.0/24
 * ```
 */
export function parseCidr(text: string, options?: CidrOptions): IpCidr {
  const c = cidr(text, options);
  return typeof c === 'string' ? invalid('parseCidr', `${c} in ${JSON.stringify(text)}`, text) : c;
}

function checkPrefix(p: IpPrefix, op: string): void {
  if (
    (p?.family !== 4 && p?.family !== 6) ||
    !Number.isInteger(p.length) ||
    p.length < 0 ||
    p.length > WIDTH[p.family] ||
    typeof p.value !== 'bigint' ||
    p.value < 0n ||
    p.value > ALL[p.family] ||
    (p.value & maskOf(p.family, p.length)) !== p.value
  )
    invalid(op, 'expected a prefix { family, value, length } with host bits zero', describe(p));
}

/**
 * Canonical text of a prefix: `10.0.0.0/8`, `fd00::/64`.
 *
 * @throws {@link IpError} `InvalidArgument` for a malformed prefix object.
 * @example
 * ```ts
 * import { formatPrefix, prefixOf, parseIp } from '@datapath/ip';
 * formatPrefix(prefixOf(parseIp('10.1.2.3'), 8)); // '10.0.0.0/8'
 * ```
 */
export function formatPrefix(p: IpPrefix): string {
  checkPrefix(p, 'formatPrefix');
  return `${formatIp(p)}/${p.length}`;
}

/**
 * The prefix of `length` bits that contains `ip` (the address masked).
 *
 * @throws {@link IpError} `InvalidArgument` for a length out of range for the family.
 * @example
 * ```ts
 * import { formatPrefix, parseIp, prefixOf } from '@datapath/ip';
 * formatPrefix(prefixOf(parseIp('fd00::1:2'), 112)); // 'fd00::1:0/112'
 * ```
 */
export function prefixOf(ip: IpAddress, length: number): IpPrefix {
  checkValue(ip, 'prefixOf');
  if (!Number.isInteger(length) || length < 0 || length > WIDTH[ip.family])
    return invalid(
      'prefixOf',
      `prefix length ${length} is out of range for ${FAMILY_NAME[ip.family]}`,
      String(length),
    );
  return { family: ip.family, value: ip.value & maskOf(ip.family, length), length };
}

/**
 * Whether `p` contains the address or the whole prefix `x` (false for the other family).
 *
 * @example
 * ```ts
 * import { parseIp, parsePrefix, prefixContains } from '@datapath/ip';
 * const pods = parsePrefix('10.244.0.0/16');
 * prefixContains(pods, parseIp('10.244.3.4')); // true
 * prefixContains(pods, parsePrefix('10.0.0.0/8')); // false
 * ```
 */
export function prefixContains(p: IpPrefix, x: IpAddress | IpPrefix): boolean {
  if (p.family !== x.family) return false;
  const len = (x as Partial<IpPrefix>).length;
  if (len !== undefined && len < p.length) return false;
  return (x.value & maskOf(p.family, p.length)) === p.value;
}

/**
 * Whether two prefixes share an address (one contains the other); false across families.
 *
 * @example
 * ```ts
 * import { parsePrefix, prefixOverlaps } from '@datapath/ip';
 * prefixOverlaps(parsePrefix('10.0.0.0/8'), parsePrefix('10.1.0.0/16')); // true
 * ```
 */
export function prefixOverlaps(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false;
  const m = maskOf(a.family, Math.min(a.length, b.length));
  return (a.value & m) === (b.value & m);
}

/**
 * The netmask of a prefix as an address (`255.255.255.0` for a /24).
 *
 * @example
 * ```ts
 * import { formatIp, parsePrefix, prefixMask } from '@datapath/ip';
 * formatIp(prefixMask(parsePrefix('10.0.0.0/20'))); // '255.255.240.0'
 * ```
 */
export function prefixMask(p: IpPrefix): IpAddress {
  return { family: p.family, value: maskOf(p.family, p.length) };
}

/**
 * The first address of a prefix: its network address.
 *
 * @example
 * ```ts
 * import { formatIp, parsePrefix, prefixFirst } from '@datapath/ip';
 * formatIp(prefixFirst(parsePrefix('10.0.0.0/24'))); // '10.0.0.0'
 * ```
 */
export function prefixFirst(p: IpPrefix): IpAddress {
  return { family: p.family, value: p.value };
}

/**
 * The last address of a prefix: all host bits set (the IPv4 broadcast address).
 *
 * @example
 * ```ts
 * import { formatIp, parsePrefix, prefixLast } from '@datapath/ip';
 * formatIp(prefixLast(parsePrefix('10.0.0.0/24'))); // '10.0.0.255'
 * ```
 */
export function prefixLast(p: IpPrefix): IpAddress {
  return { family: p.family, value: p.value | (ALL[p.family] ^ maskOf(p.family, p.length)) };
}

/**
 * The number of addresses in a prefix, 2^(width − length).
 *
 * @example
 * ```ts
 * import { parsePrefix, prefixSize } from '@datapath/ip';
 * prefixSize(parsePrefix('fd00::/64')); // 18446744073709551616n
 * ```
 */
export function prefixSize(p: IpPrefix): bigint {
  return 1n << BigInt(WIDTH[p.family] - p.length);
}
