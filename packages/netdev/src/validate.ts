// Input validation shared by the netdev functions and the endpoint planner: runs before any syscall.

import { formatIp, parseIp, prefixFirst, prefixOf, tryParseCidr, tryParseIp } from '@datapath/ip';
import { NetlinkError } from '@datapath/netlink';

/** Throws the `InvalidArgument` error of `op`. */
export function bad(op: string, message: string, target?: string): never {
  throw new NetlinkError(
    'InvalidArgument',
    `${op}: ${message}`,
    target === undefined ? { op } : { op, target },
  );
}

/**
 * Linux interface name rules: 1–15 bytes, not `.`/`..`/`all`/`default` (the kernel refuses those two:
 * they name the per-family sysctl directories), no `/`, `:`, NUL or whitespace, and no `%` (the kernel
 * expands `eth%d` to a free `eth0`, so the name asked for would not be the name made).
 */
export function checkIfname(name: unknown, op: string, what = 'interface name'): string {
  if (
    typeof name !== 'string' ||
    name === '' ||
    name === '.' ||
    name === '..' ||
    name === 'all' ||
    name === 'default' ||
    Buffer.byteLength(name) > 15 ||
    /[/:%\s\0]/.test(name)
  ) {
    bad(
      op,
      `invalid ${what} ${JSON.stringify(name)} (1-15 bytes, not all/default, no '/', ':', '%' or whitespace)`,
      String(name),
    );
  }
  return name;
}

/** MTU range accepted by the kernel for Ethernet-like links (IPv6 needs at least 1280). */
export function checkMtu(mtu: unknown, op: string, min = 68): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < min || mtu > 65535) {
    bad(op, `MTU must be an integer in [${min}, 65535], got ${JSON.stringify(mtu)}`);
  }
  return mtu;
}

/** A parsed, normalised IP address. */
export interface ParsedIp {
  /** Canonical text form. */
  address: string;
  /** 4 or 6. */
  family: 4 | 6;
}

/** A parsed, normalised prefix. */
export interface ParsedCidr extends ParsedIp {
  /** Prefix length. */
  prefixLen: number;
}

/** Parses an IP address (no prefix; `@datapath/ip` rules, IPv4-mapped IPv6 refused). */
export function parseIpText(text: unknown, op: string, what = 'IP address'): ParsedIp {
  const ip = typeof text === 'string' ? tryParseIp(text) : undefined;
  if (ip === undefined) return bad(op, `invalid ${what} ${JSON.stringify(text)}`, String(text));
  if (ip.family === 6 && ip.value >> 32n === 0xffffn)
    bad(op, `IPv4-mapped IPv6 address ${text} is not supported`, String(text));
  return { address: formatIp(ip), family: ip.family };
}

/** Parses `ip/len`, or a bare IP when `defaultFull` (then /32 or /128). */
export function parseCidrText(text: unknown, op: string, defaultFull = false, what = 'prefix'): ParsedCidr {
  if (typeof text !== 'string') bad(op, `invalid ${what} ${JSON.stringify(text)}`);
  const slash = text.indexOf('/');
  if (slash < 0 && !defaultFull) bad(op, `${what} ${JSON.stringify(text)} needs a /length`, text);
  const ip = parseIpText(slash < 0 ? text : text.slice(0, slash), op, what);
  const c = tryParseCidr(text, { bare: true });
  if (c === undefined) bad(op, `invalid prefix length in ${JSON.stringify(text)}`, text);
  return { ...ip, prefixLen: c.prefix.length };
}

/** The network address of a prefix (host bits cleared), as text. */
export function networkOf(c: ParsedCidr): string {
  return formatIp(prefixFirst(prefixOf(parseIp(c.address), c.prefixLen)));
}

/** Hardware address `aa:bb:cc:dd:ee:ff`, lower-cased; multicast and all-zero are refused. */
export function checkMac(mac: unknown, op: string): string {
  if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) {
    bad(op, `invalid MAC address ${JSON.stringify(mac)}`, String(mac));
  }
  const lower = mac.toLowerCase();
  if ((Number.parseInt(lower.slice(0, 2), 16) & 1) !== 0 || lower === '00:00:00:00:00:00') {
    bad(op, `MAC address ${mac} must be unicast and non-zero`, mac);
  }
  return lower;
}

/** The error of an async call whose signal fired before it started: `Interrupted`, reason `Aborted`. */
export function aborted(op: string, signal: AbortSignal): NetlinkError {
  return new NetlinkError('Interrupted', `${op}: aborted before it was sent to the kernel`, {
    op,
    reason: 'Aborted',
    cause: signal.reason,
  });
}
