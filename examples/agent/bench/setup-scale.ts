/**
 * Pod setup on a node with few vs many local pods (issue 22), shared by cluster-control.ts (the benchmark row)
 * and profile-podscale.ts (the same measure alone, for profiling). Environment: SETUP_SAMPLES (64),
 * SETUP_SMALL (16), SETUP_LARGE (1000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsAdd, netnsDelete } from '@datapath/netlink';
import { Agent } from '../src/agent.js';

export const SETUP_SAMPLES = Number(process.env.SETUP_SAMPLES ?? 64);
export const SETUP_SMALL = Number(process.env.SETUP_SMALL ?? 16);
export const SETUP_LARGE = Number(process.env.SETUP_LARGE ?? 1000);
const now = () => performance.now();
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};

/** The benchmark's policy: it selects every pod (servers: ingress from clients; clients by the label). */
const POLICIES = [
  {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'server-in', namespace: 'bench' },
    spec: {
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }] }],
    },
  },
];

interface BenchNode {
  agent: Agent;
  label: string;
  next: number;
  stages: Map<string, number[]>;
  times: number[];
}

/**
 * Pod setup on a node that already has many pods, next to one that has few: two agents in this process (the
 * same datapath, policy and options; pod CIDRs of their own), one filled to SETUP_SMALL (16) pods, the other
 * to SETUP_LARGE (1000). Then SETUP_SAMPLES timed `addAttachedPod` calls on each, alternating between the two
 * (the order swapped every round), so both see the same machine load; each timed pod is removed again
 * (untimed) so the nodes stay at 16 and 1000 pods. One call is what a CNI ADD or an API endpoint create makes:
 * the runtime's namespace exists (made before the timing: the kernel makes a namespace slower as more exist,
 * its bind mount under /run/netns, whatever the agent does); veth, endpoint, tcx attach, maps, state, policy.
 * A policy selects every pod (ingress from the other label). Returns the per-call times and the per-stage
 * medians of both nodes.
 */
export async function setupScale(hooks: { sampling?: (on: boolean) => Promise<void> } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), 'dp-bench-setup-'));
  const tag = `dpbsu${process.pid % 1000}`;
  let current: Record<string, number> = {};
  const made = new Set<string>();
  const nodes: BenchNode[] = [];
  const start = async (label: string, i: number, podCidr: string) => {
    const agent = await Agent.start(
      {
        name: `${tag}${label}`,
        prefix: `${tag}${label}`,
        stateDir: join(stateDir, label),
        podCidr,
        trace: (stage, ms) => {
          current[stage] = (current[stage] ?? 0) + ms;
        },
      },
      { namespaces: { bench: { labels: {} } }, policies: POLICIES, enforcement: 'default' },
    );
    const node: BenchNode = { agent, label, next: 0, stages: new Map(), times: [] };
    nodes[i] = node;
    return node;
  };
  /** Adds the node's next pod; returns how long the agent took (the call alone) and the pod's key. */
  const add = (n: BenchNode) => {
    const i = n.next++;
    const ns = `${tag}${n.label}c${i}`;
    netnsAdd(ns).close();
    made.add(ns);
    current = {};
    const t = now();
    const rec = n.agent.addAttachedPod({
      namespace: 'bench',
      name: `p${i}`,
      labels: { app: i % 2 ? 'client' : 'server' },
      attachment: { containerId: ns, ifname: 'eth0', netnsPath: `/run/netns/${ns}` },
    });
    return { ms: now() - t, key: rec.key, ns };
  };
  try {
    const small = await start('s', 0, '10.244.16.0/21');
    const large = await start('l', 1, '10.244.24.0/21');
    while (small.next < SETUP_SMALL) add(small);
    while (large.next < SETUP_LARGE) add(large);
    const load = [loadavg()[0]!];
    await hooks.sampling?.(true);
    for (let k = 0; k < SETUP_SAMPLES; k++) {
      for (const n of k % 2 === 0 ? [small, large] : [large, small]) {
        const { ms, key, ns } = add(n);
        n.times.push(ms);
        for (const [stage, v] of Object.entries(current)) {
          if (!n.stages.has(stage)) n.stages.set(stage, []);
          n.stages.get(stage)!.push(v);
        }
        n.agent.removePod(key);
        netnsDelete(ns);
        made.delete(ns);
        n.next--;
      }
    }
    await hooks.sampling?.(false);
    load.push(loadavg()[0]!);
    const stageMedians = nodes.flatMap((n) =>
      [...n.stages].map(([k, v]) => [`${n === small ? 'small' : 'large'} ${k}`, pct(v, 50)] as const),
    );
    return { small: small.times, large: large.times, stageMedians, load };
  } finally {
    for (const n of nodes) n?.agent.destroy();
    for (const ns of made) netnsDelete(ns);
    rmSync(stateDir, { recursive: true, force: true });
  }
}
