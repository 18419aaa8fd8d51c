/**
 * The fixtures the service tests share: the `shop/web` ClusterIP scenario, probes from a client pod to a
 * service address (the backend that answered each, or the failure), and bpftool's view of the socket-LB
 * hooks on a cgroup and of the links pinned for them.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterSpec } from '../../src/agent.js';
import { runProbes } from '../../src/sys/netns-exec.js';

/**
 * A cluster with namespace `shop` and, when `vip` is given, its ClusterIP service `shop/web`: `vip`:80/TCP
 * to port 8080 of the pods labelled `app: web`.
 */
export function shopScenario(vip?: string): ClusterSpec {
  return {
    namespaces: { shop: { labels: {} } },
    policies: [],
    enforcement: 'default',
    ...(vip === undefined
      ? {}
      : {
          services: [
            {
              namespace: 'shop',
              name: 'web',
              type: 'ClusterIP',
              clusterIPs: [vip],
              externalIPs: [],
              ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }],
              selector: { app: 'web' },
              sessionAffinity: 'None',
            },
          ],
        }),
  };
}

/** Where {@link probeService} sends its probes from and to. */
export interface ServiceProbe {
  /** The client pod's network namespace. */
  netns: string;
  /** Runs the probes inside the pod cgroup, where the socket-LB hooks are (`agent.inPodCgroup`, `inCgroup`). */
  inCgroup: <T>(fn: () => Promise<T>) => Promise<T>;
  host: string;
  /** Default 80. */
  port?: number;
  /** Default TCP. */
  protocol?: 'TCP' | 'UDP';
}

/** `n` probes at once to the service: for each, the backend that answered (its reply) or the failure. */
export async function probeService(to: ServiceProbe, n: number, timeoutMs = 2000): Promise<string[]> {
  const { netns, inCgroup, host, port = 80, protocol = 'TCP' } = to;
  const outcomes = await inCgroup(() =>
    runProbes(
      netns,
      Array.from({ length: n }, (_, id) => ({ id, host, port, protocol, timeoutMs })),
    ),
  );
  return outcomes.map((x) => (x.result === 'connected' ? x.reply! : x.result));
}

/** bpftool's names of the attach types of the socket-LB hooks (`SOCKET_LB_HOOKS`), sorted. */
export const SOCKET_LB_ATTACH_TYPES: readonly string[] = [
  'inet4_connect',
  'inet4_getpeername',
  'inet6_connect',
  'inet6_getpeername',
  'inet_sock_release',
  'udp4_recvmsg',
  'udp4_sendmsg',
  'udp6_recvmsg',
  'udp6_sendmsg',
].map((t) => `cgroup_${t}`);

/** `bpftool -j ARGS`, parsed. */
export function bpftool(args: readonly string[]): unknown {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return JSON.parse(r.stdout.trim() || '[]');
}

/** `bpftool cgroup show CGROUP`: the programs attached there (attach type, program id), by type. */
export function attachedPrograms(cgroupDir: string): { type: string; id: number }[] {
  return (bpftool(['cgroup', 'show', cgroupDir]) as { id: number; attach_type: string }[])
    .map((e) => ({ type: e.attach_type, id: e.id }))
    .sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** The link pinned under each name in `dir` (`bpftool link show pinned`): link id and program id. */
export function pinnedLinks(dir: string): Record<string, { id: number; prog: number }> {
  const out: Record<string, { id: number; prog: number }> = {};
  for (const name of readdirSync(dir)) {
    const l = bpftool(['link', 'show', 'pinned', join(dir, name)]) as { id: number; prog_id: number };
    out[name] = { id: l.id, prog: l.prog_id };
  }
  return out;
}
