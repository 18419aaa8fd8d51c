// @datapath/ipam from its published tarball: a pod CIDR pool with owners, and an operator's cluster pool.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterPool, HostScope, IpamError } from '@datapath/ipam';
import { FileStore, hostLocalOwner } from '@datapath/ipam/file-store';

const dir = mkdtempSync(join(tmpdir(), 'ipam-consumer-'));
try {
  const ipam = new HostScope({ v4: ['10.244.1.0/24'], store: new FileStore(dir) });
  const pod = hostLocalOwner('c0ffee', 'eth0');
  const v4 = ipam.allocateNext(4, pod);
  if (ipam.owner(v4) !== pod) throw new Error(`unexpected owner of ${v4}`);
  ipam.releaseOwner(pod);
  const pool = new ClusterPool({ v4: { cidrs: ['10.244.0.0/16'], maskSize: 24 } });
  const node = pool.allocateNode('node-a');
  try {
    pool.occupyNode('node-b', node.v4);
    throw new Error('a CIDR was handed out twice');
  } catch (err) {
    if (!(err instanceof IpamError)) throw err;
  }
  console.log(`pod ip ${v4}; node-a ${node.v4.join(',')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
