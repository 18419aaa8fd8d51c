// @datapath/ipam from its published tarball: a node's pod IPs (one per owner, with a safe rollback and a
// release cooldown) in a host-local directory, and an operator's cluster pool.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterPool, HostScope, IpamError } from '@datapath/ipam';
import { FileStore, hostLocalOwner } from '@datapath/ipam/file-store';

const dir = mkdtempSync(join(tmpdir(), 'ipam-consumer-'));
try {
  using store = new FileStore(dir);
  const ipam = new HostScope({ v4: ['10.244.1.0/24'], store, onePerOwner: true, cooldownMs: 30_000 });
  const pod = hostLocalOwner('c0ffee', 'eth0');
  const lease = ipam.allocateOrGet(4, pod); // CNI ADD; a retried ADD gets the same address back
  try {
    if (ipam.owner(lease.v4 ?? '') !== pod) throw new Error(`unexpected owner of ${lease.v4}`);
  } catch (err) {
    ipam.rollback(lease); // frees only what this ADD created, never a live pod's address
    throw err;
  }
  ipam.releaseOwner(pod); // CNI DEL: the address rests 30 s before anyone gets it again
  if (ipam.cooling(4) !== 1) throw new Error('the released address is not cooling');
  const pool = new ClusterPool({ v4: { cidrs: ['10.244.0.0/16'], maskSize: 24 } });
  const node = pool.allocateNode('node-a');
  try {
    pool.occupyNode('node-b', node.v4);
    throw new Error('a CIDR was handed out twice');
  } catch (err) {
    if (!(err instanceof IpamError)) throw err;
  }
  console.log(`pod ip ${lease.v4} (now cooling); node-a ${node.v4.join(',')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
