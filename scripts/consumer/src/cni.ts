// @datapath/cni from its published tarball: a 1.1.0 result converted to the 0.3.1 and 0.2.0 shapes.
import { CniError, convertResult } from '@datapath/cni';

const result = {
  cniVersion: '1.1.0',
  interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/run/netns/pod' }],
  ips: [{ address: '10.244.0.5/32', gateway: '10.244.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.244.0.1' }],
};
const v031 = convertResult(result, '0.3.1') as { ips: { version?: string }[] };
const v020 = convertResult(result, '0.2.0') as { ip4?: { ip: string } };
if (v031.ips[0]?.version !== '4' || v020.ip4?.ip !== '10.244.0.5/32') throw new Error('conversion lost data');
try {
  convertResult({ cniVersion: '9.9.9' }, '1.0.0');
  throw new Error('an unknown version was accepted');
} catch (err) {
  if (!(err instanceof CniError)) throw err;
  console.log(
    `0.3.1 ips[0].version=${v031.ips[0]?.version}; 0.2.0 ip4=${v020.ip4?.ip}; bad version -> code ${err.cniCode} (${err.code})`,
  );
}
