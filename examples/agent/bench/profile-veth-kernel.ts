/**
 * The kernel's own cost of a pod endpoint on a node with few vs many interfaces (`node --import tsx
 * bench/profile-veth-kernel.ts`, root): no agent, no BPF, no policy. Two node namespaces made as the agent
 * makes its node (`createNodeNetns`: the node address on `lo`, forwarding on, rp_filter off; IPv6 off), one
 * filled to SMALL (16) pods, the other to LARGE (1000), each pod its own namespace with an endpoint from
 * `applyEndpoint` (`@datapath/netdev`: the agent's endpoint step, its netlink round trips). Then SAMPLES
 * endpoint creates timed on each node, alternating (the same machine load for both), each removed again after
 * its sample so the nodes stay at 16 and 1000. The runtime's namespace is made before the timing, as in the
 * agent benchmark. Per step: the netlink round trip (the request's encoding is a few µs and does not grow).
 * With PERF=1 the large node is also sampled alone afterwards, for `perf record -p`.
 * Environment: SAMPLES (32), SMALL (16), LARGE (1000).
 */
import { loadavg } from 'node:os';
import { applyEndpoint, planEndpoint, removeEndpoint } from '@datapath/netdev';
import { Handle, type Netns, netnsAdd, netnsDelete } from '@datapath/netlink';
import { createNodeNetns, sysctlIn } from '../src/node.js';

const SAMPLES = Number(process.env.SAMPLES ?? 32);
const SMALL = Number(process.env.SMALL ?? 16);
const LARGE = Number(process.env.LARGE ?? 1000);
const now = () => performance.now();
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN;
const prefix = `dpvk${process.pid % 1000}`;
const made: string[] = [];

interface Node {
  name: string;
  ns: Netns;
  host: Handle;
  next: number;
  subnet: number;
}

function makeNode(name: string, subnet: number): Node {
  const ns = createNodeNetns(name, `10.244.${subnet}.1`);
  made.push(name);
  sysctlIn(ns, 'net.ipv6.conf.all.disable_ipv6', '1');
  return { name, ns, host: Handle.open(ns), next: 0, subnet };
}

/** Makes a pod namespace (untimed) and its endpoint (timed, with per-step times); returns the plan. */
function add(node: Node, steps?: Map<string, number[]>, total?: number[]) {
  const i = node.next++;
  const name = `${node.name}p${i}`;
  netnsAdd(name).close();
  made.push(name);
  const plan = planEndpoint({
    containerId: name,
    netns: `/run/netns/${name}`,
    addresses: [`10.244.${node.subnet + ((i + 2) >> 8)}.${(i + 2) & 255}`],
    gateway: `10.244.${node.subnet}.1`,
    mode: 'cilium',
  });
  plan.host.sysctls = []; // rp_filter is off node-wide: the agent drops the per-device write then
  let t = now();
  let last = 'prepare';
  const lap = (step: string) => {
    const t1 = now();
    if (steps !== undefined) {
      if (!steps.has(last)) steps.set(last, []);
      steps.get(last)!.push(t1 - t);
    }
    t = t1;
    last = step;
  };
  const t0 = now();
  t = t0;
  applyEndpoint(plan, { hostNetns: node.ns, hostHandle: node.host, onStep: lap });
  lap('close');
  total?.push(now() - t0);
  return { plan, name };
}

const nodes: Node[] = [];
try {
  const small = makeNode(`${prefix}s`, 16);
  const large = makeNode(`${prefix}l`, 32);
  nodes.push(small, large);
  const load0 = loadavg()[0]!;
  while (small.next < SMALL) add(small);
  while (large.next < LARGE) add(large);
  const stats = new Map<Node, { steps: Map<string, number[]>; total: number[] }>();
  for (const n of nodes) stats.set(n, { steps: new Map(), total: [] });
  for (let k = 0; k < SAMPLES; k++) {
    for (const n of k % 2 ? [large, small] : [small, large]) {
      const s = stats.get(n)!;
      const { plan, name } = add(n, s.steps, s.total);
      removeEndpoint(plan, { hostNetns: n.ns, hostHandle: n.host });
      netnsDelete(name);
      made.splice(made.indexOf(name), 1);
      n.next--;
    }
  }
  const line = (n: Node, pods: number) => {
    const s = stats.get(n)!;
    const by = [...s.steps].filter(([, v]) => med(v) >= 0.005).map(([k, v]) => `${k} ${med(v).toFixed(3)}`);
    console.log(`${pods} pods: endpoint p50 ${med(s.total).toFixed(3)} ms; ${by.join(', ')}`);
    return med(s.total);
  };
  const a = line(small, SMALL);
  const b = line(large, LARGE);
  console.log(`ratio ${(b / a).toFixed(2)}x (load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)})`);
  if (process.env.PERF === '1') {
    console.log(`pid ${process.pid}: sampling the large node alone for 20 s`);
    const end = now() + 20_000;
    while (now() < end) {
      const { plan, name } = add(large);
      removeEndpoint(plan, { hostNetns: large.ns, hostHandle: large.host });
      netnsDelete(name);
      made.splice(made.indexOf(name), 1);
      large.next--;
    }
  }
} finally {
  for (const n of nodes) {
    n.host.close();
    n.ns.close();
  }
  for (const n of made) netnsDelete(n);
}
