// @datapath/netdev from its published tarball (root): a pod endpoint created and removed between two
// namespaces this program makes (one plays the host), checked through a netlink handle in the pod.
import { randomBytes } from 'node:crypto';
import { applyEndpoint, planEndpoint, removeEndpoint } from '@datapath/netdev';
import { Handle, netnsAdd, netnsDelete } from '@datapath/netlink';

const tag = randomBytes(3).toString('hex');
const hostName = `dpc${tag}h`;
const podName = `dpc${tag}p`;
const host = netnsAdd(hostName);
const pod = netnsAdd(podName);
try {
  const plan = planEndpoint({
    containerId: `consumer-${tag}`,
    netns: `/run/netns/${podName}`,
    ifname: 'eth0',
    mtu: 1500,
    addresses: ['10.244.9.5'],
    gateway: '10.244.9.1',
    mode: 'ptp',
  });
  const ep = applyEndpoint(plan, { hostNetns: host });
  const h = Handle.open(pod);
  const eth0 = h.linkGet({ name: 'eth0' });
  h.close();
  if (eth0.mtu !== 1500) throw new Error(`eth0 has mtu ${eth0.mtu}`);
  console.log(
    `${ep.host.name} <-> eth0 in ${podName}; removed: ${removeEndpoint(plan, { hostNetns: host })}`,
  );
} finally {
  host.close();
  pod.close();
  netnsDelete(podName);
  netnsDelete(hostName);
}
