/**
 * `agent node up`: one node of a cluster, as a long-running process. It joins the cluster state on etcd
 * (`@datapath/kvstore`: a node session under a lease, the node registry, the cluster pool for its pod
 * CIDR, cluster-wide identities, the cluster ipcache), runs an {@link Agent} whose node namespace is this
 * node's root namespace, plugs it into the fabric, builds its share of the scenario's pods and publishes
 * them, and follows the other nodes: their pods go into the policy engine (so selectors match them and
 * their addresses get their identities in the ipcache map), their pod CIDRs get native routes via their
 * underlay addresses. SIGTERM leaves the cluster and removes everything; SIGKILL leaves the kernel state
 * for the next `node up` with the same name, which restores it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ClusterIpcache,
  type ClusterNode,
  EtcdStore,
  type IpcacheEntry,
  KvError,
  NodeRegistry,
  NodeSession,
  PolicyIdentityAllocator,
  StoreClusterPool,
  StoreIdentityAllocator,
} from '@datapath/kvstore';
import { linkGet } from '@datapath/netdev';
import { Handle } from '@datapath/netlink';
import { ReservedIdentity } from '@datapath/policy';
import { Agent, type RemotePodInput, sameLabels } from './agent.js';
import { CidrReaper } from './cluster-reaper.js';
import { nodeShare, placeScenario } from './cluster-scenario.js';
import { AgentError } from './errors.js';
import {
  ClusterIpcache as DatapathIpcache,
  REMOTE_NODE_IDENTITY,
  type RemoteIpcacheEntry,
} from './ipcache.js';
import type { LbSettings } from './lb-settings.js';
import { setupNodeDatapath, TUNNEL_DEV, VXLAN_OVERHEAD } from './node-datapath.js';
import type { PodInput } from './policy.js';
import { type AgentScenario, loadScenario } from './policy.js';
import type { PodRecord } from './state.js';
import { plugNode, routeToNode, UNDERLAY_DEV, unrouteNode } from './underlay.js';

/** Routing between nodes. */
export type RoutingMode = 'native' | 'tunnel';

/** The cluster pool every node shares (10.244.0.0/17, a /24 per node; world addresses stay above it). */
export const CLUSTER_POOL = { ipv4: { cidrs: ['10.244.0.0/17'], nodeMaskSize: 24 } } as const;

/** Options of {@link startNode}. */
export interface NodeOptions {
  /** Node name (cluster-wide). */
  name: string;
  /** Prefix of the node's namespaces, links and pins (≤ 12 characters). */
  prefix: string;
  /** The node's state directory (agent state, IPAM store, node status). */
  stateDir: string;
  /** etcd client URLs. */
  etcd: string[];
  /** Key prefix of the cluster in etcd (ends with `/`). */
  etcdPrefix: string;
  /** Underlay address (198.18.0.0/24). */
  underlay: string;
  /** Name of the fabric namespace to plug into. */
  fabric: string;
  mode: RoutingMode;
  /** Scenario placed on nodes (`nodes`, pods' `node`): this node builds its pods. */
  scenario?: string | undefined;
  /** Lease TTL: how long after a crash the others see this node as gone. Default 5 s. */
  ttlSeconds?: number;
  /** Fixed pod CIDR instead of one from the cluster pool. */
  podCidr?: string | undefined;
  /**
   * How long a node must have been gone (its lease expired, not back) before this node releases its pod
   * CIDR in the cluster pool. Default 60 s. A node that comes back later gets a fresh CIDR, and its old
   * state (pods in the old CIDR) is refused with `ClusterConflict`.
   */
  cidrGraceSeconds?: number;
  /** Service load balancing (`--lb-selection`, `--lb-hash-seed`): the cluster gives every node the same. */
  lb?: Partial<LbSettings> | undefined;
  log?: (line: string) => void;
  /**
   * Called after each remote ipcache change is applied (engine, policy maps, ipcache map) with the
   * milliseconds since the watch delivered it: what the scale benchmark reports.
   */
  onRemoteApplied?: (ip: string, ms: number) => void;
}

/** What a node writes to `<stateDir>/node.json` after every change (what `agent cluster status` shows). */
export interface NodeStatus {
  name: string;
  pid: number;
  bootId: string;
  address: string;
  podCidr: string;
  mode: RoutingMode;
  ready: boolean;
  localPods: string[];
  /** Pods of other nodes this node knows: all of them up to {@link STATUS_MAX_REMOTE}, then the first ones. */
  remotePods: string[];
  /** How many pods of other nodes this node knows. */
  remotePodCount: number;
  /** Remote node → pod CIDR routed through it. */
  routes: Record<string, string>;
  updatedAt: string;
}

/** Path of a node's status file. */
export function nodeStatusPath(stateDir: string): string {
  return join(stateDir, 'node.json');
}

/** The labels the policy engine gives a pod's identity (absent `ipBlock` refinements): resolved ahead. */
export function podIdentityLabels(
  namespace: string,
  labels: Readonly<Record<string, string>>,
  namespaceLabels: Readonly<Record<string, string>>,
): string[] {
  const out = Object.entries(labels).map(([k, v]) => `k8s:${k}=${v}`);
  out.push(`k8s:io.kubernetes.pod.namespace=${namespace}`);
  for (const [k, v] of Object.entries({ 'kubernetes.io/metadata.name': namespace, ...namespaceLabels }))
    out.push(`k8s:io.cilium.k8s.namespace.labels.${k}=${v}`);
  out.push('k8s:io.cilium.k8s.policy.cluster=default');
  return out.sort();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The status file is rewritten at most this often (it lists the local and remote pods). */
const STATUS_EVERY_MS = 50;

/** At most this many remote pods are listed by name in the status file (a large cluster has tens of thousands). */
export const STATUS_MAX_REMOTE = 1000;

function storeError(err: unknown, what: string): unknown {
  if (err instanceof KvError && err.code === 'AlreadyExists')
    return new AgentError('ClusterConflict', `${what}: ${err.message}`, { cause: err });
  if (err instanceof KvError && (err.code === 'Unavailable' || err.code === 'TimedOut'))
    return new AgentError('StoreUnavailable', `${what}: etcd unreachable: ${err.message}`, { cause: err });
  return err;
}

/** A running cluster node (in this process). */
export class ClusterNodeAgent {
  readonly agent: Agent;
  readonly self: ClusterNode;
  readonly bootId: string;
  readonly #o: NodeOptions;
  readonly #store: EtcdStore;
  readonly #session: NodeSession;
  readonly #ids: StoreIdentityAllocator;
  readonly #allocator: PolicyIdentityAllocator;
  readonly #registry: NodeRegistry;
  readonly #ipcache: ClusterIpcache;
  readonly #pool: StoreClusterPool;
  readonly #reaper: CidrReaper;
  readonly #routes = new Map<string, string>();
  /** The writer of the cluster's entries in this node's ipcache map (remote pods and nodes). */
  readonly #writer: DatapathIpcache;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  /** A status write is due (coalesced: at most one write per {@link STATUS_EVERY_MS}). */
  #statusTimer: NodeJS.Timeout | undefined;

  private constructor(
    o: NodeOptions,
    parts: {
      agent: Agent;
      self: ClusterNode;
      bootId: string;
      store: EtcdStore;
      session: NodeSession;
      ids: StoreIdentityAllocator;
      allocator: PolicyIdentityAllocator;
      registry: NodeRegistry;
      ipcache: ClusterIpcache;
      pool: StoreClusterPool;
      reaper: CidrReaper;
    },
  ) {
    this.#o = o;
    this.agent = parts.agent;
    this.self = parts.self;
    this.bootId = parts.bootId;
    this.#store = parts.store;
    this.#session = parts.session;
    this.#ids = parts.ids;
    this.#allocator = parts.allocator;
    this.#registry = parts.registry;
    this.#ipcache = parts.ipcache;
    this.#pool = parts.pool;
    this.#reaper = parts.reaper;
    this.#writer = new DatapathIpcache(parts.agent.datapath, {
      engineOwns: (prefix) => parts.agent.ownsIpcachePrefix(prefix),
    });
  }

  /**
   * Joins the cluster and builds (or, after a crash, restores) the node.
   * @throws AgentError `ClusterConflict` (name, address or pod CIDR taken; nothing is left behind),
   * `StoreUnavailable` (etcd unreachable), `InvalidScenario`, `NotSupported` (tunnel mode), `DatapathFailed`.
   */
  static async start(o: NodeOptions): Promise<ClusterNodeAgent> {
    const log = o.log ?? (() => undefined);
    if (o.mode !== 'native' && o.mode !== 'tunnel')
      throw new AgentError('InvalidArgument', `--mode must be native or tunnel, got ${String(o.mode)}`);
    const share =
      o.scenario === undefined ? undefined : nodeShare(placeScenario(loadScenario(o.scenario)), o.name);
    const store = new EtcdStore({ endpoints: o.etcd, prefix: o.etcdPrefix, retryTimeoutMs: 5_000 });
    const undo: (() => Promise<void> | void)[] = [() => store.close()];
    try {
      try {
        await NodeRegistry.precheck(store, o.name, o.underlay);
      } catch (err) {
        throw storeError(err, `node ${o.name}`);
      }
      const restoring = existsSync(join(o.stateDir, 'state.json'));
      const bootId = randomBytes(8).toString('hex');
      let session: NodeSession;
      try {
        session = await NodeSession.open(store, { node: o.name, ttlSeconds: o.ttlSeconds ?? 5 });
      } catch (err) {
        throw storeError(err, `node ${o.name}`);
      }
      undo.push(() => session.close().catch(() => undefined));
      const pool = await StoreClusterPool.open(store, CLUSTER_POOL);
      undo.push(() => pool.close());
      const registry = await NodeRegistry.open(session, pool);
      undo.push(() => registry.close());
      let self: ClusterNode;
      try {
        self = await registry.register({
          address: o.underlay,
          bootId,
          ...(o.podCidr === undefined ? {} : { podCidrs: { ipv4: o.podCidr } }),
        });
      } catch (err) {
        throw storeError(err, `node ${o.name}`);
      }
      if (o.podCidr === undefined) undo.push(async () => void (await pool.release(o.name).catch(() => [])));
      const podCidr = self.podCidrs.ipv4!;
      // Dead nodes' CIDRs go back to the pool after the grace period (every node looks; the release is a CAS).
      const reaper = CidrReaper.start(pool, {
        graceMs: (o.cidrGraceSeconds ?? 60) * 1000,
        onReaped: (nodes) => log(`released the pod CIDRs of ${nodes.join(', ')} (gone for the grace period)`),
        onError: (err) => log(`cidr reaper: ${(err as Error).message}`),
      });
      undo.push(() => reaper.close());
      const ids = await StoreIdentityAllocator.open(session);
      undo.push(() => ids.close());
      const allocator = new PolicyIdentityAllocator(ids, {
        onError: (e) => log(`identity: ${e.message}`),
      });
      const ipcache = await ClusterIpcache.open(session);
      undo.push(() => ipcache.close());

      // Other nodes' pods, known before the engine is built (a restart keeps their flows' identities).
      const remote: RemotePodInput[] = [];
      const resolved = new Set<string>();
      for (const e of ipcache.entries().values()) {
        if (e.node === o.name || e.pod === undefined) continue;
        remote.push(remotePodNow(ids, e, resolved) ?? (await remotePod(ids, allocator, e)));
      }
      const scenarioNs = share?.namespaces ?? {};
      const nsLabels = (ns: string) => scenarioNs[ns]?.labels ?? {};
      let agent: Agent;
      const agentOptions = {
        name: o.name,
        prefix: o.prefix,
        stateDir: o.stateDir,
        podCidr,
        ...(o.mode === 'tunnel' ? { podMtu: 1500 - VXLAN_OVERHEAD } : {}),
        identities: allocator,
        remotePods: remote,
        ...(o.lb?.selection === undefined ? {} : { lbSelection: o.lb.selection }),
        ...(o.lb?.hashSeed === undefined ? {} : { lbHashSeed: o.lb.hashSeed }),
        log,
      };
      if (restoring) {
        const state = Agent.readState(agentOptions);
        if (state.podCidr !== podCidr)
          throw new AgentError(
            'ClusterConflict',
            `node ${o.name}: its state has pod CIDR ${state.podCidr} but the cluster gave ${podCidr}`,
          );
        for (const p of Object.values(state.pods))
          await ensureIdentity(
            ids,
            allocator,
            podIdentityLabels(p.ns, p.labels, state.namespaces[p.ns]?.labels ?? {}),
          );
        agent = await Agent.restore(agentOptions);
        log(`restored node ${o.name}: ${agent.pods().length} pods, pod CIDR ${podCidr}`);
      } else {
        agent = await Agent.start(agentOptions, {
          namespaces: scenarioNs,
          policies: share?.policies ?? [],
          enforcement: share?.enforcement ?? 'default',
          // Services are cluster-wide: every node has them all; backends are its pods and the mirrored ones.
          services: (share as AgentScenario | undefined)?.services ?? [],
        });
        undo.push(() => agent.destroy());
        log(`node ${o.name}: pod CIDR ${podCidr}, underlay ${o.underlay}`);
      }
      plugNode(agent.node, o.fabric, `ul-${o.name}`, o.underlay);
      // The node's side of the datapath: the VXLAN device and from_overlay in tunnel mode (a restored node
      // keeps its device and re-attaches), nothing to add in native mode.
      if (o.mode === 'tunnel' && restoring && tunnelIfindex(agent) !== undefined)
        agent.datapath.attachTunnel(agent.node, tunnelIfindex(agent)!);
      else
        setupNodeDatapath(agent.datapath, agent.node, {
          mode: o.mode,
          ...(o.mode === 'native' ? { underlayDev: UNDERLAY_DEV } : {}),
        });
      const node = new ClusterNodeAgent(o, {
        agent,
        self,
        bootId,
        store,
        session,
        ids,
        allocator,
        registry,
        ipcache,
        pool,
        reaper,
      });
      // This node's pods: the scenario's share (missing ones are made), published under the lease.
      for (const p of share?.pods ?? []) {
        if (agent.state.pods[`${p.namespace}/${p.name}`] !== undefined) continue;
        await ensureIdentity(
          ids,
          allocator,
          podIdentityLabels(p.namespace, p.labels ?? {}, nsLabels(p.namespace)),
        );
        await agent.addPodsAsync([{ ...p, ip: undefined }]);
      }
      await node.#publishAll();
      node.#follow();
      node.#writeStatus(true);
      return node;
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          await u();
        } catch {
          // best effort: the original error is the one to report
        }
      }
      throw err;
    }
  }

  /**
   * Adds a pod on this node (identity resolved cluster-wide first) and publishes it.
   * @throws AgentError as `Agent.addPods`; KvError `Unavailable` when etcd does not answer (the pod stays, and is
   * published by the next successful publish).
   */
  async addPod(p: PodInput): Promise<PodRecord> {
    const nsLabels = this.agent.state.namespaces[p.namespace]?.labels ?? {};
    await ensureIdentity(
      this.#ids,
      this.#allocator,
      podIdentityLabels(p.namespace, p.labels ?? {}, nsLabels),
    );
    const [rec] = await this.agent.addPodsAsync([p]);
    await this.#publishPod(rec!);
    this.#statusSoon();
    return rec!;
  }

  /**
   * Removes a pod of this node and withdraws it from the cluster.
   * @throws AgentError `NotFound` for an unknown pod.
   */
  async removePod(key: string): Promise<void> {
    const rec = this.agent.state.pods[key];
    if (rec === undefined) throw new AgentError('NotFound', `no pod ${key} on node ${this.#o.name}`);
    await this.agent.removePodAsync(key);
    await this.#ipcache.delete(rec.ip);
    this.#statusSoon();
  }

  async #publishPod(p: PodRecord): Promise<void> {
    await this.#ipcache.upsert({
      ip: p.ip,
      identity: p.identity,
      nodeAddress: this.self.address,
      pod: {
        namespace: p.ns,
        name: p.name,
        labels: p.labels,
        namespaceLabels: this.agent.state.namespaces[p.ns]?.labels ?? {},
      },
    });
  }

  /** Pods this node publishes: its own, then the router address (seen as `remote-node` elsewhere). */
  async #publishAll(): Promise<void> {
    const adopted = await this.#ipcache.adopt();
    const want = new Set<string>();
    const state = this.agent.state;
    await this.#ipcache.upsert({
      ip: state.hostIp,
      identity: ReservedIdentity.RemoteNode,
      nodeAddress: this.self.address,
    });
    want.add(state.hostIp);
    for (const p of this.agent.pods()) {
      await this.#publishPod(p);
      want.add(p.ip);
    }
    for (const e of adopted) if (!want.has(e.ip)) await this.#ipcache.delete(e.ip);
  }

  /** Follows the registry (routes, node addresses) and the ipcache (remote pods), one change at a time. */
  #follow(): void {
    const run = (fn: () => Promise<void> | void) => {
      this.#queue = this.#queue
        .then(fn)
        .catch((err) => this.#o.log?.(`cluster sync: ${(err as Error).message}`))
        .then(() => this.#statusSoon());
    };
    this.#registry.onChange((c) =>
      run(() => (c.type === 'upsert' ? this.#nodeUp(c.node) : this.#nodeGone(c.node))),
    );
    this.#ipcache.onChange((c) => {
      const delivered = performance.now();
      run(async () => {
        if (c.entry.node === this.#o.name) return;
        if (c.type === 'upsert') await this.#remoteUp(c.entry);
        else this.#remoteGone(c.entry);
        this.#o.onRemoteApplied?.(c.entry.ip, performance.now() - delivered);
      });
    });
    // The initial load: every node and every node address already there.
    run(() => this.#initialSync());
  }

  /**
   * The first sync after the start: routes to every node, then every other node's address and pod in one
   * ipcache batch that also drops what a previous process of this node wrote for pods or nodes that are gone
   * (the engine already holds the remote pods it was built with; only those that changed since are upserted).
   */
  async #initialSync(): Promise<void> {
    this.agent.setNodeIpcache(`${this.self.address}/32`, { identity: ReservedIdentity.Host, flags: 0 });
    for (const n of this.#registry.nodes().values()) this.#nodeUp(n);
    const entries = this.#ipcache.entries();
    const resolved = new Set<string>();
    const endpoints = this.agent.policy.state().endpoints;
    const batch: RemoteIpcacheEntry[] = [];
    for (const n of this.#registry.nodes().values())
      if (n.name !== this.#o.name) batch.push({ prefix: `${n.address}/32`, identity: REMOTE_NODE_IDENTITY });
    for (const e of entries.values()) {
      if (e.node === this.#o.name) continue;
      const prefix = `${e.ip}/32`;
      if (e.pod === undefined) {
        // A node's router address, behind its node as #remoteUp writes it (the same entry whether this node
        // learns it from the list or from the watch).
        batch.push({ prefix, identity: REMOTE_NODE_IDENTITY, node: e.nodeAddress });
        continue;
      }
      const key = `${e.pod.namespace}/${e.pod.name}`;
      const had = this.agent.remotePod(key);
      if (had === undefined || had.ip !== e.ip || !sameLabels(had.labels ?? {}, e.pod.labels)) {
        const pod = remotePodNow(this.#ids, e, resolved) ?? (await remotePod(this.#ids, this.#allocator, e));
        await this.#engineUpsert(pod);
      }
      batch.push({ prefix, identity: endpoints.get(key)?.identity ?? e.identity, node: e.nodeAddress });
    }
    // What a previous process of this node wrote for pods or nodes that are gone goes in the same pass.
    this.#writer.replace(batch);
    this.agent.syncServices();
  }

  #nodeUp(n: ClusterNode): void {
    if (n.name === this.#o.name) return;
    const cidr = n.podCidrs.ipv4;
    if (cidr === undefined) return;
    const old = this.#routes.get(n.name);
    if (old !== undefined && old !== cidr) unrouteNode(this.agent.node, old);
    // Both modes: native routing carries the pods' traffic; in tunnel mode the datapath encapsulates pod
    // traffic and the route carries what the node itself sends to remote pods.
    routeToNode(this.agent.node, cidr, n.address);
    this.#routes.set(n.name, cidr);
    this.#writer.upsert({ prefix: `${n.address}/32`, identity: REMOTE_NODE_IDENTITY });
    this.#o.log?.(`node ${n.name} up: ${cidr} via ${n.address}`);
  }

  #nodeGone(n: ClusterNode): void {
    if (n.name === this.#o.name) return;
    const cidr = this.#routes.get(n.name);
    if (cidr !== undefined) unrouteNode(this.agent.node, cidr);
    this.#routes.delete(n.name);
    this.#writer.delete(`${n.address}/32`);
    this.#o.log?.(`node ${n.name} gone: route ${cidr ?? '-'} removed`);
  }

  async #remoteUp(e: IpcacheEntry): Promise<void> {
    if (e.pod === undefined) {
      // A node's router address, behind that node (as Cilium's ipcache has it): in tunnel mode what a pod sends
      // there is encapsulated, so a remote NodePort backend's replies reach the node that translated the flow
      // through its from_overlay.
      this.#writer.upsert({ prefix: `${e.ip}/32`, identity: REMOTE_NODE_IDENTITY, node: e.nodeAddress });
      return;
    }
    const pod = remotePodNow(this.#ids, e) ?? (await remotePod(this.#ids, this.#allocator, e));
    // Services pick the pod as a backend only once its ipcache entry (identity, node) is in.
    await this.#engineUpsert(pod);
    const key = `${pod.namespace}/${pod.name}`;
    const identity = this.agent.policy.state().endpoints.get(key)?.identity ?? e.identity;
    this.#writer.upsert({ prefix: `${e.ip}/32`, identity, node: e.nodeAddress });
    this.agent.syncServices();
  }

  /** The engine learns (or relearns) a remote pod; its ipcache entry is the caller's to write. */
  async #engineUpsert(pod: RemotePodInput): Promise<void> {
    try {
      this.agent.upsertRemotePod(pod, { syncServices: false });
    } catch (err) {
      if (!(err instanceof KvError) || err.code !== 'NotFound') throw err;
      await this.#allocator.settled(); // an identity label set we did not predict: resolved now
      this.agent.upsertRemotePod(pod, { syncServices: false });
    }
  }

  #remoteGone(e: IpcacheEntry): void {
    if (e.pod !== undefined) this.agent.deleteRemotePod(e.pod.namespace, e.pod.name);
    this.#writer.delete(`${e.ip}/32`);
  }

  /** Resolves when every change seen so far is applied (tests). */
  async settled(): Promise<void> {
    let q: Promise<void>;
    do {
      q = this.#queue;
      await q;
    } while (q !== this.#queue);
  }

  /**
   * Writes the status file soon: changes that come in a burst (a node's initial sync, a node with thousands of
   * pods going away) share one write instead of rewriting the whole file for each.
   */
  #statusSoon(): void {
    if (this.#statusTimer !== undefined || this.#closed) return;
    this.#statusTimer = setTimeout(() => {
      this.#statusTimer = undefined;
      this.#writeStatus(true);
    }, STATUS_EVERY_MS);
  }

  #writeStatus(ready: boolean): void {
    if (this.#closed) return;
    const status: NodeStatus = {
      name: this.#o.name,
      pid: process.pid,
      bootId: this.bootId,
      address: this.self.address,
      podCidr: this.self.podCidrs.ipv4 ?? '',
      mode: this.#o.mode,
      ready,
      localPods: this.agent.pods().map((p) => p.key),
      remotePods: this.agent.remotePodKeys(STATUS_MAX_REMOTE).sort(),
      remotePodCount: this.agent.remotePodCount,
      routes: Object.fromEntries(this.#routes),
      updatedAt: new Date().toISOString(),
    };
    mkdirSync(this.#o.stateDir, { recursive: true });
    const path = nodeStatusPath(this.#o.stateDir);
    writeFileSync(`${path}.tmp`, `${JSON.stringify(status, null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
  }

  /** Leaves the cluster and removes everything this node made (pods, namespaces, pins, state). */
  async down(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#statusTimer);
    this.#reaper.close();
    await this.#queue.catch(() => undefined);
    await this.#ipcache.close();
    await this.#registry.deregister().catch(() => undefined);
    await this.#registry.close();
    await this.#pool.close();
    await this.#ids.close();
    this.agent.destroy();
    await this.#session.close().catch(() => undefined);
    await this.#store.close();
  }

  /** Stops following and closes handles; the kernel state stays (as a crash would leave it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#statusTimer);
    this.#reaper.close();
    await this.#queue.catch(() => undefined);
    await this.#ipcache.close();
    await this.#registry.close();
    await this.#pool.close();
    await this.#ids.close();
    this.agent.close();
    this.#session.abandon();
    await this.#store.close();
  }
}

/** The ifindex of a restored node's VXLAN device, if it has one. */
function tunnelIfindex(agent: Agent): number | undefined {
  using h = Handle.open(agent.node);
  try {
    return linkGet(TUNNEL_DEV, { handle: h }).index;
  } catch {
    return undefined;
  }
}

/** Makes sure a label set's identity is in the local copy (resolving it cluster-wide if needed). */
async function ensureIdentity(
  ids: StoreIdentityAllocator,
  allocator: PolicyIdentityAllocator,
  labels: string[],
): Promise<void> {
  if (ids.lookupByLabels(labels) === undefined) await allocator.prepare(labels);
}

function remotePodInput(e: IpcacheEntry): RemotePodInput {
  const pod = e.pod!;
  // The engine copies what it keeps (Agent.#remoteSpec); the mirror's parsed entry is nobody else's.
  return {
    namespace: pod.namespace,
    name: pod.name,
    labels: pod.labels,
    ip: e.ip,
    namespaceLabels: pod.namespaceLabels ?? {},
    node: e.node,
  };
}

/**
 * A remote pod whose identity the local copy already has (the common case), without waiting: undefined when
 * it has to be resolved ({@link remotePod}). `resolved` remembers label sets found during one bulk load
 * (a cluster has far fewer label sets than pods).
 */
function remotePodNow(
  ids: StoreIdentityAllocator,
  e: IpcacheEntry,
  resolved?: Set<string>,
): RemotePodInput | undefined {
  const pod = e.pod!;
  const sig =
    resolved === undefined ? undefined : JSON.stringify([pod.namespace, pod.labels, pod.namespaceLabels]);
  if (sig !== undefined && resolved!.has(sig)) return remotePodInput(e);
  if (
    ids.lookupByLabels(podIdentityLabels(pod.namespace, pod.labels, pod.namespaceLabels ?? {})) === undefined
  )
    return undefined;
  if (sig !== undefined) resolved!.add(sig);
  return remotePodInput(e);
}

async function remotePod(
  ids: StoreIdentityAllocator,
  allocator: PolicyIdentityAllocator,
  e: IpcacheEntry,
): Promise<RemotePodInput> {
  const pod = e.pod!;
  const labels = podIdentityLabels(pod.namespace, pod.labels, pod.namespaceLabels ?? {});
  // The publishing node created the identity before the entry; our identity watch may lag the ipcache's.
  for (let i = 0; i < 20 && ids.lookupByLabels(labels) === undefined; i++) await sleep(50);
  await ensureIdentity(ids, allocator, labels);
  return remotePodInput(e);
}
