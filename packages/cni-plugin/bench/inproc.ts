// In-process endpoint setup through the SDK (no exec): planEndpoint + applyEndpoint (timed alone, and
// with host-local IPAM over @datapath/ipam's FileStore before it) from @datapath/netdev — the work of a datapath-cni ADD without the
// process start. Run inside a private "host" namespace (bench/run.ts does it with nsenter); it creates
// its own pod namespaces and removes everything it made. Prints one JSON line: per-op milliseconds
// (removeP50: removeEndpoint alone, i.e. the RTM_DELLINK of the veth, which waits for the kernel).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEndpoint, planEndpoint, removeEndpoint } from '@datapath/netdev';
import { netnsAdd, netnsDelete } from '@datapath/netlink';
import { HostLocalIpam } from '../src/host-local.js';

const N = Number(process.env.N ?? 100);
const WARMUP = 5;
const prefix = process.env.NS_PREFIX ?? `cnip${process.pid}`;
const dataDir = mkdtempSync(join(tmpdir(), 'cni-inproc-'));
const names: string[] = [];
const add: number[] = [];
const ep: number[] = [];
const del: number[] = [];
const rm: number[] = [];
try {
  for (let i = 0; i < N + WARMUP; i++) {
    const ns = netnsAdd(`${prefix}-${i}`);
    ns.close();
    names.push(`${prefix}-${i}`);
  }
  const ipam = new HostLocalIpam(join(dataDir, 'bench'), [[{ subnet: '198.18.0.0/16' }]]);
  for (let i = 0; i < N + WARMUP; i++) {
    const id = `inproc-${i}`;
    const t0 = performance.now();
    const [lease] = ipam.allocate(id, 'eth0');
    const tp = performance.now();
    const plan = planEndpoint({
      containerId: id,
      netns: `/run/netns/${names[i]}`,
      ifname: 'eth0',
      mtu: 1500,
      addresses: [lease!.address],
      gateway: lease!.gateway,
      mode: 'ptp',
    });
    applyEndpoint(plan);
    const t1 = performance.now();
    ipam.release(id, 'eth0');
    const tr = performance.now();
    removeEndpoint(plan);
    const t2 = performance.now();
    if (i >= WARMUP) {
      add.push(t1 - t0);
      ep.push(t1 - tp);
      del.push(t2 - t1);
      rm.push(t2 - tr);
    }
  }
  ipam.close();
} finally {
  for (const n of names) {
    try {
      netnsDelete(n);
    } catch {
      // best effort
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
}
const p50 = (a: number[]) => [...a].sort((x, y) => x - y)[Math.ceil(a.length / 2) - 1] ?? Number.NaN;
console.log(
  JSON.stringify({
    n: add.length,
    addP50: p50(add),
    endpointP50: p50(ep),
    delP50: p50(del),
    removeP50: p50(rm),
  }),
);
