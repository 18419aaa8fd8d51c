// @datapath/ip from its published tarball: parse, format (RFC 5952), prefixes, typed errors.
import {
  formatIp,
  formatPrefix,
  IpError,
  ipToBytes,
  parseIp,
  parsePrefix,
  prefixContains,
} from '@datapath/ip';

const pods = parsePrefix('fd00:0:0:1::/64');
const ip = parseIp('FD00:0:0:1:0:0:0:A');
if (!prefixContains(pods, ip)) throw new Error('containment is wrong');
if (ipToBytes('10.0.0.1').join('.') !== '10.0.0.1') throw new Error('bytes are wrong');
try {
  parsePrefix('10.0.0.1/24');
  throw new Error('host bits were accepted');
} catch (err) {
  if (!(err instanceof IpError) || err.code !== 'InvalidArgument') throw err;
}
console.log(`${formatIp(ip)} in ${formatPrefix(pods)}`);
