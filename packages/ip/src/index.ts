export type { IpAddress, IpFamily } from './address.js';
export {
  familyWidth,
  formatIp,
  formatIpv4,
  formatIpv6,
  ipFromBytes,
  ipToBytes,
  parseIp,
  tryParseIp,
  tryParseIpv4,
  tryParseIpv6,
} from './address.js';
export type { IpErrorCode } from './errors.js';
export { IpError } from './errors.js';
export type { CidrOptions, IpCidr, IpPrefix, PrefixOptions } from './prefix.js';
export {
  formatPrefix,
  parseCidr,
  parsePrefix,
  prefixContains,
  prefixFirst,
  prefixLast,
  prefixMask,
  prefixOf,
  prefixOverlaps,
  prefixSize,
  tryParseCidr,
  tryParsePrefix,
} from './prefix.js';
