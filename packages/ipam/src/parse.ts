// Address and CIDR arguments of the allocators, parsed by @datapath/ip; a failure is `InvalidCidr`.
import { type IpAddress, type IpPrefix, tryParseIp, tryParsePrefix } from '@datapath/ip';
import { fail } from './errors.js';

/**
 * Parses a CIDR the way Go's `net.ParseCIDR` does and clears the host bits: `10.0.0.1/24` →
 * `10.0.0.0/24`. Throws `InvalidCidr`.
 */
export function parseCidr(text: string, op: string): IpPrefix {
  return (
    tryParsePrefix(text, { strict: false }) ??
    fail(
      'InvalidCidr',
      op,
      `invalid CIDR ${typeof text === 'string' ? JSON.stringify(text) : String(text)}`,
      String(text),
    )
  );
}

/** Parses an IP address; throws `InvalidCidr`. */
export function parseIp(text: string, op: string): IpAddress {
  return (
    tryParseIp(text) ?? fail('InvalidCidr', op, `invalid IP address ${JSON.stringify(text)}`, String(text))
  );
}
