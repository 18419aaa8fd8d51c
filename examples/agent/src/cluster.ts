/**
 * `agent cluster up|status|down`: a cluster on one machine. `up` starts a local etcd (one member, or
 * `--etcd-members N` on loopback) unless one is given,
 * creates the fabric namespace (a bridge every node's underlay veth joins), starts one `agent node up`
 * process per node (each with its own prefix, state directory, IPAM store and bpffs pin directory) and
 * waits until every node has its pods and sees every other node's pods. `down` stops the nodes (they
 * leave the cluster and remove what they made), then etcd and the fabric. The cluster's record lives in
 * `<state-dir>/cluster.json`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { Agent } from './agent.js';
import { type NodeStatus, nodeStatusPath, type RoutingMode } from './cluster-node.js';
import { placeScenario } from './cluster-scenario.js';
import { AgentError } from './errors.js';
import { type LbSettings, lbSettingsFlags, resolveLbSettings } from './lb-settings.js';
import { deleteNetnsIfPresent } from './node.js';
import { loadScenario } from './policy.js';
import {
  etcdHealthy,
  type LocalEtcd,
  pidAlive,
  signalPid,
  spawnNodeAgent,
  startLocalEtcdCluster,
  stopPid,
  waitExit,
} from './sys/processes.js';
import { createFabric, deleteFabric, underlayAddress } from './underlay.js';

/** Options of the cluster commands. */
export interface ClusterOptions {
  /** Cluster name; default `demo`. */
  name?: string;
  /** Prefix of every namespace, link and pin of the cluster (≤ 11 characters); default `dpc-<name>`. */
  prefix?: string;
  /** Where the cluster record and the nodes' state live; default `/run/datapath-agent/cluster-<name>`. */
  stateDir?: string;
  /** etcd client URLs; default: a local etcd started (and stopped) with the cluster. */
  etcd?: string[];
  /** Members of the local etcd (without {@link ClusterOptions.etcd}): 1–9, default 1. */
  etcdMembers?: number;
  /** Routing between nodes; default `native`. */
  mode?: RoutingMode;
  /** Spread a scenario without `nodes` over this many nodes, round-robin (default 1). */
  nodes?: number;
  /** Node lease TTL in seconds (how long a crashed node stays); default 5. */
  ttlSeconds?: number;
  /** How long a crashed node may stay away before its pod CIDR goes back to the pool, in seconds; default 60. */
  cidrGraceSeconds?: number;
  /** Service load balancing of every node (`--lb-selection`, `--lb-hash-seed`): one seed for the cluster. */
  lb?: Partial<LbSettings>;
  /** How long `up` waits for the nodes; default 60 s. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** One node as the cluster record keeps it. */
export interface ClusterNodeRecord {
  name: string;
  prefix: string;
  stateDir: string;
  address: string;
  pid: number;
  log: string;
}

/** The cluster record (`cluster.json`). */
export interface ClusterRecord {
  version: 1;
  name: string;
  prefix: string;
  stateDir: string;
  mode: RoutingMode;
  fabric: string;
  etcd: {
    endpoints: string[];
    /** The local etcd's first member (records written before `members` existed have only this). */
    local?: { pid: number; dataDir: string };
    /** Every member of the local etcd the cluster tool started, in `endpoints` order. */
    members?: LocalEtcd[];
  };
  etcdPrefix: string;
  /** The scenario with its nodes and placement written in. */
  scenario: string;
  ttlSeconds: number;
  /** Absent in records written before it existed (the nodes' default then). */
  cidrGraceSeconds?: number;
  /** Service load balancing given to every node (absent: the nodes' defaults, the same on each). */
  lb?: Partial<LbSettings>;
  nodes: ClusterNodeRecord[];
  createdAt: string;
}

function resolveOptions(o: ClusterOptions) {
  const name = o.name ?? 'demo';
  if (!/^[a-z0-9][a-z0-9-]{0,15}$/.test(name))
    throw new AgentError(
      'InvalidArgument',
      `cluster name ${JSON.stringify(name)}: 1–16 characters [a-z0-9-]`,
    );
  const prefix = o.prefix ?? `dpc-${name}`.slice(0, 11);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,10}$/.test(prefix))
    throw new AgentError(
      'InvalidArgument',
      `prefix ${JSON.stringify(prefix)}: 1–11 characters [A-Za-z0-9_.-]`,
    );
  return {
    name,
    prefix,
    stateDir: resolvePath(o.stateDir ?? `/run/datapath-agent/cluster-${name}`),
    mode: o.mode ?? 'native',
    ttlSeconds: o.ttlSeconds ?? 5,
    ...(o.cidrGraceSeconds === undefined ? {} : { cidrGraceSeconds: o.cidrGraceSeconds }),
    ...(o.lb === undefined ? {} : { lb: resolveLbSettings(o.lb) }),
    timeoutMs: o.timeoutMs ?? 60_000,
    log: o.log ?? (() => undefined),
    ...(o.etcd === undefined ? {} : { etcd: o.etcd }),
    ...(o.nodes === undefined ? {} : { nodes: o.nodes }),
    etcdMembers: etcdMembers(o),
  };
}

function etcdMembers(o: ClusterOptions): number {
  const n = o.etcdMembers ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 9)
    throw new AgentError('InvalidArgument', `etcd members: 1–9, got ${String(o.etcdMembers)}`);
  if (o.etcd !== undefined && o.etcdMembers !== undefined)
    throw new AgentError('InvalidArgument', 'etcd members are for the local etcd: not with an etcd given');
  return n;
}

/** The local etcd members a cluster record names (none when the etcd was given). */
export function localEtcdMembers(c: ClusterRecord): { pid: number; dataDir: string; endpoint?: string }[] {
  return c.etcd.members ?? (c.etcd.local === undefined ? [] : [c.etcd.local]);
}

const recordPath = (stateDir: string) => join(stateDir, 'cluster.json');

/**
 * Reads a cluster's record.
 * @throws AgentError `NotRunning` when there is no such cluster.
 */
export function readCluster(o: ClusterOptions = {}): ClusterRecord {
  const { stateDir } = resolveOptions(o);
  const path = recordPath(stateDir);
  if (!existsSync(path))
    throw new AgentError('NotRunning', `no cluster in ${stateDir} (start one with \`agent cluster up\`)`);
  return JSON.parse(readFileSync(path, 'utf8')) as ClusterRecord;
}

function saveCluster(c: ClusterRecord): void {
  writeFileSync(recordPath(c.stateDir), `${JSON.stringify(c, null, 2)}\n`);
}

/** A node's status file, if it wrote one. */
export function readNodeStatus(n: Pick<ClusterNodeRecord, 'stateDir'>): NodeStatus | undefined {
  try {
    return JSON.parse(readFileSync(nodeStatusPath(n.stateDir), 'utf8')) as NodeStatus;
  } catch {
    return undefined;
  }
}

function logTail(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines.slice(-4).join(' | ');
  } catch {
    return '';
  }
}

/** The arguments of one node's `agent node up`. */
export function nodeArgs(c: ClusterRecord, n: ClusterNodeRecord): string[] {
  return [
    '--name',
    n.name,
    '--prefix',
    n.prefix,
    '--state-dir',
    n.stateDir,
    '--etcd',
    c.etcd.endpoints.join(','),
    '--etcd-prefix',
    c.etcdPrefix,
    '--underlay',
    n.address,
    '--fabric',
    c.fabric,
    '--mode',
    c.mode,
    '--scenario',
    c.scenario,
    '--ttl',
    String(c.ttlSeconds),
    ...(c.cidrGraceSeconds === undefined ? [] : ['--cidr-grace', String(c.cidrGraceSeconds)]),
    ...lbSettingsFlags(c.lb ?? {}),
  ];
}

/**
 * Brings a cluster up for a scenario and waits until it has converged.
 * @throws AgentError `InvalidScenario` (unknown node, …; nothing is made), `AlreadyRunning`,
 * `StoreUnavailable` (the given etcd does not answer), `ClusterConflict` or `DatapathFailed` from a node
 * (everything made so far is removed again).
 */
export async function clusterUp(scenarioPath: string, options: ClusterOptions = {}): Promise<ClusterRecord> {
  const o = resolveOptions(options);
  const placed = placeScenario(loadScenario(scenarioPath), o.nodes);
  if (placed.nodes.length > 200)
    throw new AgentError('InvalidScenario', `${placed.nodes.length} nodes: at most 200 on this underlay`);
  if (existsSync(recordPath(o.stateDir)))
    throw new AgentError('AlreadyRunning', `a cluster named ${o.name} already exists in ${o.stateDir}`);
  if (o.etcd !== undefined) {
    const up = await Promise.all(o.etcd.map((e) => etcdHealthy(e, 2_000)));
    if (!up.some(Boolean))
      throw new AgentError('StoreUnavailable', `etcd at ${o.etcd.join(',')} does not answer (/health)`);
  }
  mkdirSync(o.stateDir, { recursive: true });
  const c: ClusterRecord = {
    version: 1,
    name: o.name,
    prefix: o.prefix,
    stateDir: o.stateDir,
    mode: o.mode,
    fabric: `${o.prefix}-fab`,
    etcd: { endpoints: o.etcd ?? [] },
    etcdPrefix: `datapath/${o.name}/`,
    scenario: join(o.stateDir, 'scenario.json'),
    ttlSeconds: o.ttlSeconds,
    ...(o.cidrGraceSeconds === undefined ? {} : { cidrGraceSeconds: o.cidrGraceSeconds }),
    ...(o.lb === undefined ? {} : { lb: o.lb }),
    nodes: [],
    createdAt: new Date().toISOString(),
  };
  try {
    saveCluster(c);
    const doc = {
      ...placed.scenario,
      nodes: placed.nodes,
      pods: placed.scenario.pods.map((p) => ({ ...p, node: placed.placement[`${p.namespace}/${p.name}`] })),
    };
    writeFileSync(c.scenario, `${JSON.stringify(doc, null, 2)}\n`);
    if (o.etcd === undefined) {
      const members = await startLocalEtcdCluster(o.etcdMembers, (m) =>
        join(o.stateDir, o.etcdMembers === 1 ? 'etcd.log' : `etcd-${m}.log`),
      );
      const first = members[0]!;
      c.etcd = {
        endpoints: members.map((m) => m.endpoint),
        local: { pid: first.pid, dataDir: first.dataDir },
        members,
      };
      saveCluster(c);
      for (const m of members) o.log(`etcd ${m.endpoint} (pid ${m.pid}, data ${m.dataDir})`);
    }
    createFabric(c.fabric);
    placed.nodes.forEach((name, i) => {
      const n: ClusterNodeRecord = {
        name,
        prefix: `${o.prefix}${i + 1}`,
        stateDir: join(o.stateDir, name),
        address: underlayAddress(i),
        pid: 0,
        log: join(o.stateDir, `${name}.log`),
      };
      n.pid = spawnNodeAgent(nodeArgs(c, n), n.log);
      c.nodes.push(n);
      saveCluster(c);
      o.log(`node ${name}: pid ${n.pid}, underlay ${n.address}`);
    });
    await waitConverged(c, o.timeoutMs);
    return c;
  } catch (err) {
    await teardown(c).catch(() => undefined);
    throw err;
  }
}

/**
 * Waits until every node is up with its pods and sees every other node's pods.
 * @throws AgentError `DatapathFailed` / the node's own error text when a node process died,
 * `ProbeFailed` on timeout.
 */
export async function waitConverged(c: ClusterRecord, timeoutMs = 60_000): Promise<void> {
  const scenario = JSON.parse(readFileSync(c.scenario, 'utf8')) as {
    pods: { namespace?: string; ns?: string; name: string }[];
  };
  const total = scenario.pods.length;
  const end = Date.now() + timeoutMs;
  for (;;) {
    let done = true;
    for (const n of c.nodes) {
      const s = readNodeStatus(n);
      const fresh = s !== undefined && s.pid === n.pid && s.ready;
      if (!fresh && !pidAlive(n.pid)) {
        const tail = logTail(n.log);
        const code = /\[(\w+)\]/.exec(tail)?.[1];
        throw new AgentError(
          code === 'AlreadyExists'
            ? 'ClusterConflict'
            : code === 'Unavailable'
              ? 'StoreUnavailable'
              : 'DatapathFailed',
          `node ${n.name} exited: ${tail}`,
        );
      }
      if (
        !fresh ||
        s.localPods.length + (s.remotePodCount ?? s.remotePods.length) < total ||
        Object.keys(s.routes).length < c.nodes.length - 1
      )
        done = false;
    }
    if (done) return;
    if (Date.now() > end)
      throw new AgentError('ProbeFailed', `cluster ${c.name} did not converge in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every node's status and whether its process lives. */
export function clusterStatus(o: ClusterOptions = {}): {
  cluster: ClusterRecord;
  /** Whether the local etcd has a quorum of its members running (true for an etcd that was given). */
  etcdAlive: boolean;
  /** The local etcd's members running, of how many (0 of 0 for an etcd that was given). */
  etcdMembers: { alive: number; total: number };
  nodes: { record: ClusterNodeRecord; alive: boolean; status: NodeStatus | undefined }[];
} {
  const cluster = readCluster(o);
  const members = localEtcdMembers(cluster);
  const alive = members.filter((m) => pidAlive(m.pid)).length;
  return {
    cluster,
    etcdAlive: members.length === 0 || alive > members.length / 2,
    etcdMembers: { alive, total: members.length },
    nodes: cluster.nodes.map((record) => ({
      record,
      alive: pidAlive(record.pid),
      status: readNodeStatus(record),
    })),
  };
}

/** SIGKILLs one node's agent (a crash: its kernel state stays, its lease expires after the TTL). */
export async function killNode(o: ClusterOptions, node: string): Promise<void> {
  const c = readCluster(o);
  const n = c.nodes.find((x) => x.name === node);
  if (n === undefined) throw new AgentError('NotFound', `cluster ${c.name} has no node ${node}`);
  stopPid(n.pid);
  await waitExit(n.pid, 5_000);
}

/** Starts a node's agent again (after a crash it restores its pods) and waits for convergence. */
export async function restartNode(o: ClusterOptions, node: string): Promise<void> {
  const c = readCluster(o);
  const n = c.nodes.find((x) => x.name === node);
  if (n === undefined) throw new AgentError('NotFound', `cluster ${c.name} has no node ${node}`);
  if (pidAlive(n.pid)) throw new AgentError('AlreadyRunning', `node ${node} runs (pid ${n.pid})`);
  n.pid = spawnNodeAgent(nodeArgs(c, n), n.log);
  saveCluster(c);
  await waitConverged(c, resolveOptions(o).timeoutMs);
}

async function teardown(c: ClusterRecord): Promise<void> {
  // Nodes leave and remove what they made (SIGTERM); stragglers are killed and their leftovers removed.
  for (const n of c.nodes) signalPid(n.pid, 'SIGTERM');
  for (const n of c.nodes) {
    if (!(await waitExit(n.pid, 10_000))) {
      stopPid(n.pid);
      await waitExit(n.pid, 2_000);
    }
    await Agent.removeStale({ name: n.name, prefix: n.prefix, stateDir: n.stateDir }).catch(() => false);
    rmSync(n.stateDir, { recursive: true, force: true });
  }
  const members = localEtcdMembers(c);
  for (const m of members) stopPid(m.pid);
  for (const m of members) {
    await waitExit(m.pid, 5_000);
    rmSync(m.dataDir, { recursive: true, force: true });
  }
  deleteFabric(c.fabric);
  deleteNetnsIfPresent(c.fabric);
  rmSync(c.stateDir, { recursive: true, force: true });
}

/**
 * Removes a cluster: nodes, etcd (when the cluster started it), fabric, state.
 * @throws AgentError `NotRunning` when there is no such cluster.
 */
export async function clusterDown(o: ClusterOptions = {}): Promise<void> {
  await teardown(readCluster(o));
}
