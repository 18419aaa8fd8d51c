/**
 * The cluster commands: `agent node up` (one node, in the foreground) and `agent cluster
 * up|status|down|run`.
 */
import { type ClusterOptions, clusterDown, clusterStatus, clusterUp, readCluster } from './cluster.js';
import { ClusterNodeAgent, type RoutingMode } from './cluster-node.js';
import { runClusterProbes } from './cluster-run.js';
import { AgentError } from './errors.js';
import { table } from './format.js';
import { lbSettingsFromFlags } from './lb-settings.js';
import { renderReport } from './report.js';

/** The flags these commands read. */
export interface ClusterValues {
  name?: string;
  json?: boolean;
  keep?: boolean;
  prefix?: string;
  'state-dir'?: string;
  'pod-cidr'?: string;
  etcd?: string;
  'etcd-members'?: string;
  'etcd-prefix'?: string;
  underlay?: string;
  fabric?: string;
  mode?: string;
  scenario?: string;
  ttl?: string;
  'cidr-grace'?: string;
  nodes?: string;
  'lb-selection'?: string;
  'lb-hash-seed'?: string;
  timeout?: string;
  replace?: boolean;
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

function mode(v: ClusterValues): RoutingMode {
  const m = v.mode ?? 'native';
  if (m !== 'native' && m !== 'tunnel')
    throw new AgentError('InvalidArgument', `--mode must be native or tunnel, got ${m}`);
  return m;
}

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new AgentError('InvalidArgument', `--${flag} must be a positive integer`);
  return n;
}

function clusterOptions(v: ClusterValues, io: Io): ClusterOptions {
  const nodes = int(v.nodes, 'nodes');
  const ttl = int(v.ttl, 'ttl');
  const grace = int(v['cidr-grace'], 'cidr-grace');
  const members = int(v['etcd-members'], 'etcd-members');
  const lb = lbSettingsFromFlags(v);
  return {
    ...(Object.keys(lb).length === 0 ? {} : { lb }),
    ...(v.name === undefined ? {} : { name: v.name }),
    ...(v.prefix === undefined ? {} : { prefix: v.prefix }),
    ...(v['state-dir'] === undefined ? {} : { stateDir: v['state-dir'] }),
    ...(v.etcd === undefined ? {} : { etcd: v.etcd.split(',') }),
    ...(nodes === undefined ? {} : { nodes }),
    ...(members === undefined ? {} : { etcdMembers: members }),
    ...(ttl === undefined ? {} : { ttlSeconds: ttl }),
    ...(grace === undefined ? {} : { cidrGraceSeconds: grace }),
    mode: mode(v),
    log: v.json ? () => undefined : (l) => io.err(`cluster: ${l}`),
  };
}

function required(v: string | undefined, flag: string): string {
  if (v === undefined) throw new AgentError('InvalidArgument', `node up needs --${flag}`);
  return v;
}

/** `agent node up`: runs until SIGTERM/SIGINT (leave and remove everything). */
export async function cmdNodeUp(v: ClusterValues, io: Io): Promise<number> {
  const name = required(v.name, 'name');
  const node = await ClusterNodeAgent.start({
    name,
    prefix: v.prefix ?? `dpn-${name}`.slice(0, 12),
    stateDir: v['state-dir'] ?? `/run/datapath-agent/node-${name}`,
    etcd: required(v.etcd, 'etcd').split(','),
    etcdPrefix: v['etcd-prefix'] ?? 'datapath/default/',
    underlay: required(v.underlay, 'underlay'),
    fabric: required(v.fabric, 'fabric'),
    mode: mode(v),
    scenario: v.scenario,
    podCidr: v['pod-cidr'],
    lb: lbSettingsFromFlags(v),
    ...(v.ttl === undefined ? {} : { ttlSeconds: int(v.ttl, 'ttl')! }),
    ...(v['cidr-grace'] === undefined ? {} : { cidrGraceSeconds: int(v['cidr-grace'], 'cidr-grace')! }),
    log: (l) => io.err(`node ${name}: ${l}`),
  });
  io.out(
    `node ${name} up: pod CIDR ${node.self.podCidrs.ipv4}, underlay ${node.self.address}, pid ${process.pid}`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await node.down();
  io.out(`node ${name} down`);
  return 0;
}

/** A cluster of the same name left by a killed run goes first (`--replace`). */
async function removeStaleCluster(o: ClusterOptions, io: Io): Promise<void> {
  try {
    readCluster(o);
  } catch {
    return;
  }
  await clusterDown(o);
  io.err(`cluster: removed the leftovers of an earlier cluster named ${o.name ?? 'demo'}`);
}

/** `agent cluster up|status|down|run`. */
export async function cmdCluster(
  sub: string | undefined,
  file: string | undefined,
  v: ClusterValues,
  io: Io,
): Promise<number | undefined> {
  switch (sub) {
    case 'up': {
      if (file === undefined) return undefined;
      if (v.replace) await removeStaleCluster(clusterOptions(v, io), io);
      const c = await clusterUp(file, clusterOptions(v, io));
      io.out(
        v.json
          ? JSON.stringify(c, null, 2)
          : `cluster ${c.name} up: ${c.nodes.length} nodes (${c.mode}), etcd ${c.etcd.endpoints.join(',')}; ` +
              '`agent cluster status`, `agent cluster down`',
      );
      return 0;
    }
    case 'run': {
      if (file === undefined) return undefined;
      const o = clusterOptions(v, io);
      if (v.replace) await removeStaleCluster(o, io);
      const c = await clusterUp(file, o);
      try {
        const report = await runClusterProbes(c, v.timeout === undefined ? 1500 : Number(v.timeout));
        io.out(v.json ? JSON.stringify(report, null, 2) : renderReport(report));
        return report.mismatches === 0 ? 0 : 1;
      } finally {
        if (!v.keep) await clusterDown(o);
      }
    }
    case 'status': {
      const s = clusterStatus(clusterOptions(v, io));
      if (v.json) io.out(JSON.stringify(s, null, 2));
      else {
        io.out(
          `cluster ${s.cluster.name} (${s.cluster.mode}); etcd ${s.cluster.etcd.endpoints.join(',')} ${s.etcdAlive ? 'up' : 'DOWN'}` +
            (s.etcdMembers.total > 1 ? ` (${s.etcdMembers.alive}/${s.etcdMembers.total} members)` : ''),
        );
        io.out(
          table(
            ['NODE', 'PID', 'STATE', 'UNDERLAY', 'POD CIDR', 'PODS', 'REMOTE PODS', 'ROUTES'],
            s.nodes.map((n) => [
              n.record.name,
              String(n.record.pid),
              n.alive ? (n.status?.ready ? 'ready' : 'starting') : 'DEAD',
              n.record.address,
              n.status?.podCidr ?? '',
              String(n.status?.localPods.length ?? 0),
              String(n.status?.remotePodCount ?? n.status?.remotePods.length ?? 0),
              Object.entries(n.status?.routes ?? {})
                .map(([k, r]) => `${r} via ${k}`)
                .join(', '),
            ]),
          ),
        );
      }
      return s.nodes.every((n) => n.alive) && s.etcdAlive ? 0 : 1;
    }
    case 'down': {
      const c = readCluster(clusterOptions(v, io));
      await clusterDown(clusterOptions(v, io));
      io.out(v.json ? JSON.stringify({ removed: c.name }) : `cluster ${c.name} removed`);
      return 0;
    }
  }
  return undefined;
}
