/**
 * The node agent: pods as network namespaces wired Cilium-style to a private node namespace, an eBPF
 * datapath per endpoint, policy compiled into per-endpoint maps. Everything it creates is named with
 * its prefix and recorded in its state directory, pinned maps and IPAM store, so a new process can
 * pick up where the last one stopped (`Agent.restore`).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { applyEndpoint, linkGet, linkSetUp, planEndpoint, removeEndpoint } from '@datapath/netdev';
import { Handle, Netns, netnsAdd } from '@datapath/netlink';
import { type AttachKind, Datapath, type Delivery, type MapDiff } from './datapath.js';
import { AgentError } from './errors.js';
import { GATEWAY } from './gateway.js';
import { AddressPool } from './ipam.js';
import { FWD_MAX_ENDPOINTS } from './maps.js';
import {
  addWorldAddress,
  createNodeNetns,
  createWorldNetns,
  deleteNetnsIfPresent,
  sysctlIn,
} from './node.js';
import { type CompiledPolicy, compilePolicy, type PodInput, StickyIdentities } from './policy.js';
import type { Place } from './probes.js';
import { type AgentState, loadState, type PodRecord, saveState, statePath } from './state.js';

/** The gateway every pod routes through; the datapath answers ARP for it (defined in gateway.ts). */
export { GATEWAY };

/** Options of {@link Agent.start} and {@link Agent.restore}. */
export interface AgentOptions {
  /** Agent name: selects the state directory and pin directory; default `demo`. */
  name?: string;
  /** Prefix of every namespace, link and pin (≤ 13 characters); default `dpa-<name>`. */
  prefix?: string;
  /** Where the state file and the IPAM store live; default `/run/datapath-agent/<name>`. */
  stateDir?: string;
  /** bpffs mount; default `/sys/fs/bpf`. */
  bpffs?: string;
  /** Pod CIDR of this node; default `10.244.1.0/24`. */
  podCidr?: string;
  /** tcx (Linux ≥ 6.6), legacy tc, or whichever the kernel has (default). */
  attach?: 'auto' | AttachKind;
  /** Object cache directory of the loader. */
  cacheDir?: string;
  /**
   * Local delivery between pods ({@link Agent.start} only; a restored agent keeps its own):
   * `peer` = bpf_redirect_peer into the pod (default), `egress` = bpf_redirect out of the pod's
   * host-side veth, faster for multi-stream TCP on a node with few CPUs (BENCHMARKS.md).
   */
  delivery?: Delivery;
  /** Progress lines. */
  log?: (line: string) => void;
  /**
   * Called with the duration of each pod setup stage (`ipam`, `netns`, `endpoint`, `attach`,
   * `maps`, `state`, `policy`), for profiling.
   */
  trace?: (stage: SetupStage, ms: number) => void;
}

/** The stages {@link AgentOptions.trace} reports. */
export type SetupStage = 'ipam' | 'netns' | 'endpoint' | 'attach' | 'maps' | 'state' | 'policy';

/** What {@link Agent.syncPolicy} changed in the kernel. */
export interface PolicySync {
  /** Per-endpoint policy map diffs, by pod key. */
  endpoints: Record<string, MapDiff>;
  ipcache: MapDiff;
  /** Endpoint map entries rewritten because a pod's identity changed. */
  identitiesChanged: number;
  /** The policy revision after the sync (bumped when anything changed). */
  revision?: number;
}

/** The initial cluster description of an agent. */
export interface ClusterSpec {
  namespaces: Record<string, { labels: Record<string, string> }>;
  policies: unknown[];
  enforcement: string;
}

function resolveOptions(o: AgentOptions) {
  const name = o.name ?? 'demo';
  const prefix = o.prefix ?? `dpa-${name}`;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,12}$/.test(prefix)) {
    throw new AgentError(
      'InvalidArgument',
      `prefix ${JSON.stringify(prefix)}: 1–13 characters [A-Za-z0-9_.-]`,
    );
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) {
    throw new AgentError('InvalidArgument', `name ${JSON.stringify(name)}: characters [A-Za-z0-9_.-] only`);
  }
  if (o.delivery !== undefined && o.delivery !== 'peer' && o.delivery !== 'egress') {
    throw new AgentError('InvalidArgument', `delivery ${JSON.stringify(o.delivery)}: 'peer' or 'egress'`);
  }
  return {
    name,
    prefix,
    stateDir: o.stateDir ?? `/run/datapath-agent/${name}`,
    pinDir: join(o.bpffs ?? '/sys/fs/bpf', prefix),
    podCidr: o.podCidr ?? '10.244.1.0/24',
    attach: o.attach ?? 'auto',
    log: o.log ?? (() => undefined),
    trace: o.trace,
    ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
  };
}

function podNetnsName(prefix: string, ns: string, name: string): string {
  return `${prefix}-${ns}-${name}`.replace(/[^a-zA-Z0-9_.-]/g, '_');
}

/** A running agent (in this process): namespaces, datapath, IPAM and policy held open. */
export class Agent {
  readonly options: ReturnType<typeof resolveOptions>;
  #state: AgentState;
  readonly node: Netns;
  readonly world: Netns;
  readonly datapath: Datapath;
  readonly pool: AddressPool;
  #compiled: CompiledPolicy | undefined;
  readonly #identities: StickyIdentities;
  #closed = false;

  private constructor(
    options: ReturnType<typeof resolveOptions>,
    state: AgentState,
    node: Netns,
    world: Netns,
    datapath: Datapath,
    pool: AddressPool,
  ) {
    this.options = options;
    this.#state = state;
    this.node = node;
    this.world = world;
    this.datapath = datapath;
    this.pool = pool;
    this.#identities = new StickyIdentities(state.identities ?? {});
  }

  /** The persisted state (read-only view). */
  get state(): Readonly<AgentState> {
    return this.#state;
  }

  /** The pods, in endpoint id order. */
  pods(): PodRecord[] {
    return Object.values(this.#state.pods).sort((a, b) => a.lxcId - b.lxcId);
  }

  /**
   * Creates a fresh agent: node and world namespaces, the node address from the pod CIDR, the
   * datapath's shared maps. Fails if an agent with this name already exists.
   * @throws AgentError `AlreadyRunning`, `DatapathFailed`; SDK errors as cause.
   */
  static async start(options: AgentOptions, cluster: ClusterSpec): Promise<Agent> {
    const o = resolveOptions(options);
    if (existsSync(statePath(o.stateDir))) {
      throw new AgentError('AlreadyRunning', `an agent named ${o.name} already has state in ${o.stateDir}`);
    }
    const cleanup: (() => void)[] = [];
    try {
      mkdirSync(o.stateDir, { recursive: true });
      cleanup.push(() => rmSync(o.stateDir, { recursive: true, force: true }));
      const pool = new AddressPool(join(o.stateDir, 'ipam'), o.podCidr);
      cleanup.push(() => pool.close());
      const hostIp = pool.allocateNext('node:router');
      o.log(`node address ${hostIp} (pod CIDR ${o.podCidr})`);
      const nodeName = `${o.prefix}-node`;
      const node = createNodeNetns(nodeName, hostIp);
      cleanup.push(() => {
        node.close();
        deleteNetnsIfPresent(nodeName);
      });
      sysctlIn(node, 'net.ipv6.conf.all.disable_ipv6', '1');
      const worldName = `${o.prefix}-world`;
      const world = createWorldNetns(worldName, node, `${o.prefix}w`);
      cleanup.push(() => {
        world.close();
        deleteNetnsIfPresent(worldName);
      });
      cleanup.push(() => rmSync(o.pinDir, { recursive: true, force: true }));
      const datapath = await Datapath.open({
        pinDir: o.pinDir,
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
      });
      cleanup.push(() => datapath.close());
      datapath.delivery = options.delivery ?? 'peer';
      o.log(`datapath object ${datapath.objectPath}${datapath.objectCached ? ' (cached)' : ''}`);
      const state: AgentState = {
        version: 1,
        name: o.name,
        prefix: o.prefix,
        podCidr: o.podCidr,
        hostIp,
        nodeNetns: nodeName,
        worldNetns: worldName,
        worldIps: [],
        pinDir: o.pinDir,
        enforcement: cluster.enforcement,
        namespaces: cluster.namespaces,
        policies: cluster.policies,
        pods: {},
        startedAt: new Date().toISOString(),
      };
      saveState(o.stateDir, state);
      const agent = new Agent(o, state, node, world, datapath, pool);
      agent.syncPolicy();
      return agent;
    } catch (err) {
      for (const undo of cleanup.reverse()) {
        try {
          undo();
        } catch {
          // best effort: the original error is the one to report
        }
      }
      throw err;
    }
  }

  /**
   * Re-attaches to the agent named in `options` from its state file, pinned maps and IPAM store,
   * without touching the datapath of running pods; then reconciles maps with a fresh compile.
   * @throws AgentError `NotRunning` when there is no state; `DatapathFailed`.
   */
  static async restore(options: AgentOptions): Promise<Agent> {
    const o = resolveOptions(options);
    const state = loadState(o.stateDir);
    const opened: { close(): void }[] = [];
    try {
      const node = Netns.open({ name: state.nodeNetns });
      opened.push(node);
      const world = Netns.open({ name: state.worldNetns });
      opened.push(world);
      const pool = new AddressPool(join(o.stateDir, 'ipam'), state.podCidr);
      opened.push(pool);
      const datapath = await Datapath.open({
        pinDir: state.pinDir,
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
      });
      opened.push(datapath);
      const agent = new Agent(
        { ...o, prefix: state.prefix, pinDir: state.pinDir },
        state,
        node,
        world,
        datapath,
        pool,
      );
      agent.syncPolicy();
      return agent;
    } catch (err) {
      for (const h of opened.reverse()) {
        try {
          h.close();
        } catch {
          // best effort: the original error is the one to report
        }
      }
      throw err;
    }
  }

  /**
   * Removes what a previous agent with the same name left behind (a killed run), if anything.
   * Returns whether there was something to remove.
   */
  static async removeStale(options: AgentOptions): Promise<boolean> {
    const o = resolveOptions(options);
    if (!existsSync(statePath(o.stateDir))) return false;
    try {
      (await Agent.restore({ ...options, log: () => undefined })).destroy();
    } catch {
      // a half-made agent: remove by name whatever exists
      const state = loadState(o.stateDir);
      for (const pod of Object.values(state.pods)) deleteNetnsIfPresent(pod.netns);
      deleteNetnsIfPresent(state.worldNetns);
      deleteNetnsIfPresent(state.nodeNetns);
      rmSync(state.pinDir, { recursive: true, force: true });
      rmSync(o.stateDir, { recursive: true, force: true });
    }
    o.log(`removed the leftovers of an earlier agent named ${o.name}`);
    return true;
  }

  /** Opens the state of an agent read-only (for status commands): no kernel object is touched. */
  static readState(options: AgentOptions): AgentState {
    return loadState(resolveOptions(options).stateDir);
  }

  /**
   * Adds pods: an IP from the pool (the scenario's when it is inside the pod CIDR), a namespace, a
   * Cilium-style endpoint into the node namespace, the datapath loaded and attached; then one policy
   * sync for all of them.
   * @throws AgentError `InvalidArgument` for a duplicate pod; SDK errors as cause (the failing pod is rolled back).
   */
  addPods(pods: readonly PodInput[]): PodRecord[] {
    this.#check();
    const added: PodRecord[] = [];
    // What the incremental compile says the new pods change (when there is a compile to extend).
    const pending = { endpoints: new Set<string>(), ipcache: false };
    try {
      for (const pod of pods) added.push(this.#addPod(pod, pending));
    } finally {
      // Also after a failure: the pods added so far get their policy.
      const t = performance.now();
      const compiled = this.#compiled;
      if (compiled === undefined) this.syncPolicy();
      else if (added.length > 0) this.#apply(compiled, pending.endpoints, pending.ipcache);
      this.options.trace?.('policy', performance.now() - t);
    }
    return added;
  }

  #nextLxcId(): number {
    const used = new Set(Object.values(this.#state.pods).map((p) => p.lxcId));
    for (let id = 1; id < FWD_MAX_ENDPOINTS; id++) if (!used.has(id)) return id;
    throw new AgentError('InvalidArgument', `no endpoint id left (${FWD_MAX_ENDPOINTS - 1} endpoints)`);
  }

  #addPod(pod: PodInput, pending: { endpoints: Set<string>; ipcache: boolean }): PodRecord {
    const key = `${pod.ns}/${pod.name}`;
    if (this.#state.pods[key]) throw new AgentError('InvalidArgument', `pod ${key} already exists`);
    if (!this.#state.namespaces[pod.ns]) this.#state.namespaces[pod.ns] = { labels: {} };
    const o = this.options;
    const undo: (() => void)[] = [];
    let t0 = performance.now();
    const lap = (stage: SetupStage) => {
      if (o.trace === undefined) return;
      const t = performance.now();
      o.trace(stage, t - t0);
      t0 = t;
    };
    try {
      const wanted = pod.ip !== undefined && this.pool.contains(pod.ip) ? pod.ip : undefined;
      const ip = wanted === undefined ? this.pool.allocateNext(key) : this.pool.allocate(wanted, key);
      undo.push(() => this.pool.release(ip));
      if (pod.ip !== undefined && pod.ip !== ip)
        o.log(`pod ${key}: scenario IP ${pod.ip} → ${ip} (pod CIDR)`);
      lap('ipam');

      const netnsName = podNetnsName(o.prefix, pod.ns, pod.name);
      const podNs = netnsAdd(netnsName);
      undo.push(() => {
        podNs.close();
        deleteNetnsIfPresent(netnsName);
      });
      const h = Handle.open(podNs);
      try {
        linkSetUp(linkGet('lo', { handle: h }).index, { handle: h });
      } finally {
        h.close();
      }
      sysctlIn(podNs, 'net.ipv6.conf.all.disable_ipv6', '1');
      sysctlIn(podNs, 'net.ipv6.conf.default.disable_ipv6', '1');
      lap('netns');

      const plan = planEndpoint({
        containerId: netnsName,
        netns: `/run/netns/${netnsName}`,
        addresses: [ip],
        gateway: GATEWAY,
        mode: 'cilium',
      });
      const ep = applyEndpoint(plan, { hostNetns: this.node });
      undo.push(() => removeEndpoint(plan, { hostNetns: this.node }));
      podNs.close();
      lap('endpoint');

      const lxcId = this.#nextLxcId();
      const attach = this.datapath.attachEndpoint(this.node, { lxcId, hostIfindex: ep.host.index }, o.attach);
      undo.push(() => this.datapath.detachEndpoint(this.node, lxcId));
      lap('attach');

      const rec: PodRecord = {
        key,
        ns: pod.ns,
        name: pod.name,
        labels: { ...(pod.labels ?? {}) },
        ports: (pod.ports ?? []).map((p) => ({ ...p })),
        ...(pod.ip !== undefined && pod.ip !== ip ? { scenarioIp: pod.ip } : {}),
        ip,
        netns: netnsName,
        lxcId,
        hostIfname: ep.host.name,
        hostIfindex: ep.host.index,
        mac: ep.container.mac,
        nodeMac: ep.host.mac,
        identity: 0,
        attach,
      };
      // The identity from an incremental compile (0 when there is none yet: the policy sync after
      // this sets it); no policy entries until then, so everything is dropped meanwhile.
      const compiled = this.#compiled;
      if (compiled !== undefined) {
        const r = compiled.upsertPod({
          ns: rec.ns,
          name: rec.name,
          labels: rec.labels,
          ip,
          ports: rec.ports,
        });
        for (const e of r.endpoints) pending.endpoints.add(e);
        pending.ipcache ||= r.ipcache;
        rec.identity = compiled.identityOf(key);
        // rolled back: the next sync recompiles from the pods that exist
        undo.push(() => {
          this.#compiled = undefined;
        });
      }
      this.datapath.setEndpoint({
        ifindex: rec.hostIfindex,
        lxcId,
        flags: 0,
        secId: rec.identity,
        mac: rec.mac,
        nodeMac: rec.nodeMac,
        ip,
      });
      undo.push(() => this.datapath.deleteEndpoint(ip, rec.hostIfindex));
      lap('maps');
      this.#state.pods[key] = rec;
      this.#save();
      lap('state');
      o.log(`pod ${key}: ${ip} endpoint ${lxcId} ${rec.hostIfname} (${attach})`);
      return rec;
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          u();
        } catch {
          // best effort rollback
        }
      }
      throw err;
    }
  }

  /**
   * Removes a pod: endpoint map entry, datapath, endpoint, namespace, IP; then a policy sync.
   * @throws AgentError `NotFound` for an unknown pod.
   */
  removePod(key: string): void {
    this.#check();
    const rec = this.#state.pods[key];
    if (!rec) throw new AgentError('NotFound', `no pod ${key}`);
    this.#teardownPod(rec);
    delete this.#state.pods[key];
    this.#save();
    this.syncPolicy();
  }

  #teardownPod(rec: PodRecord): void {
    this.datapath.deleteEndpoint(rec.ip, rec.hostIfindex);
    this.datapath.detachEndpoint(this.node, rec.lxcId);
    removeEndpoint(
      { containerId: rec.netns, mode: 'cilium', netns: `/run/netns/${rec.netns}` },
      { hostNetns: this.node },
    );
    deleteNetnsIfPresent(rec.netns);
    this.pool.release(rec.ip);
    for (const [k] of this.datapath.ct.dump()) {
      if (k.saddr === rec.ip || k.daddr === rec.ip) this.datapath.ct.delete(k);
    }
  }

  /**
   * Replaces the policy set (and optionally the enforcement mode), then writes only the map entries
   * that differ. Programs stay attached.
   */
  setPolicies(policies: unknown[], enforcement?: string): PolicySync {
    this.#check();
    this.#state.policies = policies;
    if (enforcement !== undefined) this.#state.enforcement = enforcement;
    this.#save();
    return this.syncPolicy();
  }

  /** Makes `ip` an outside address owned by the world namespace. */
  addWorldIp(ip: string): void {
    this.#check();
    if (this.#state.worldIps.includes(ip)) return;
    addWorldAddress(this.world, this.node, `${this.#state.prefix}w`, ip);
    this.#state.worldIps.push(ip);
    this.#save();
  }

  /** The last compile (the verdicts and explanations of the current policy). */
  compiled(): CompiledPolicy {
    this.#compiled ??= this.#compile();
    return this.#compiled;
  }

  #compile(): CompiledPolicy {
    return compilePolicy({
      namespaces: this.#state.namespaces,
      pods: this.pods().map((p) => ({ ns: p.ns, name: p.name, labels: p.labels, ip: p.ip, ports: p.ports })),
      policies: this.#state.policies,
      enforcement: this.#state.enforcement,
      hostIp: this.#state.hostIp,
      identities: this.#identities,
    });
  }

  /**
   * Compiles the current pods and policies and brings every map to the result: endpoint identities,
   * each endpoint's policy map, the ipcache. Only differing entries are written.
   */
  syncPolicy(): PolicySync {
    this.#check();
    const compiled = this.#compile();
    this.#compiled = compiled;
    return this.#apply(compiled, undefined, true);
  }

  /**
   * Writes a compile's identities and policy entries: of every pod, or (incremental) only of the
   * endpoints in `only`, checking identities against the pod records instead of the kernel; the
   * ipcache when `ipcache` is set. Bumps the policy revision when anything changed.
   */
  #apply(compiled: CompiledPolicy, only: ReadonlySet<string> | undefined, ipcache: boolean): PolicySync {
    const none = { added: 0, removed: 0, changed: 0, unchanged: 0 };
    const out: PolicySync = {
      endpoints: {},
      ipcache: ipcache ? this.datapath.syncIpcache(compiled.ipcache) : none,
      identitiesChanged: 0,
    };
    let dirty = false;
    for (const pod of this.pods()) {
      const identity = compiled.identityOf(pod.key);
      const stale =
        identity !== pod.identity ||
        (only === undefined && this.datapath.endpoints.get(pod.ip)?.secId !== identity);
      if (stale) {
        this.datapath.setEndpoint({
          ifindex: pod.hostIfindex,
          lxcId: pod.lxcId,
          flags: 0,
          secId: identity,
          mac: pod.mac,
          nodeMac: pod.nodeMac,
          ip: pod.ip,
        });
        pod.identity = identity;
        out.identitiesChanged++;
        dirty = true;
      }
      if (only === undefined || only.has(pod.key)) {
        out.endpoints[pod.key] = this.datapath.syncPolicy(pod.lxcId, compiled.policyEntries(pod.key));
      }
    }
    if (dirty || this.#identities.changed) this.#save();
    // Established flows are checked once more against what changed (conntrack revision).
    const changed = (d: MapDiff) => d.added + d.removed + d.changed > 0;
    if (dirty || changed(out.ipcache) || Object.values(out.endpoints).some(changed)) {
      out.revision = this.datapath.bumpPolicyRevision();
    } else {
      out.revision = this.datapath.policyRevision();
    }
    return out;
  }

  /**
   * Where a scenario endpoint lives: `ns/pod`, `host` (the node namespace) or `world:<ip>` (the
   * world namespace, which gets the address on first use).
   * @throws AgentError `NotFound` for an unknown pod, `InvalidArgument` for bad syntax.
   */
  resolve(endpoint: string): Place {
    if (endpoint === 'host') {
      return { kind: 'host', ip: this.#state.hostIp, netnsPath: `/run/netns/${this.#state.nodeNetns}` };
    }
    if (endpoint.startsWith('world:')) {
      const ip = endpoint.slice('world:'.length);
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
        throw new AgentError('InvalidArgument', `${endpoint}: only IPv4 world addresses are supported`);
      }
      return { kind: 'world', ip, netnsPath: `/run/netns/${this.#state.worldNetns}` };
    }
    const pod = this.#state.pods[endpoint];
    if (!pod) throw new AgentError('NotFound', `no pod ${endpoint}`);
    return { kind: 'pod', key: pod.key, ip: pod.ip, netnsPath: `/run/netns/${pod.netns}` };
  }

  /** Releases this process's handles; namespaces, programs, maps and state stay for the next one. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.datapath.close();
    this.pool.close();
    this.node.close();
    this.world.close();
  }

  /** Removes everything the agent created: pods, namespaces, pins, IPAM store, state. */
  destroy(): void {
    const errors: unknown[] = [];
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    };
    if (!this.#closed) {
      for (const pod of this.pods()) attempt(() => this.#teardownPod(pod));
      attempt(() => this.close());
    }
    for (const pod of Object.values(this.#state.pods)) attempt(() => deleteNetnsIfPresent(pod.netns));
    attempt(() => deleteNetnsIfPresent(this.#state.worldNetns));
    attempt(() => deleteNetnsIfPresent(this.#state.nodeNetns));
    attempt(() => rmSync(this.#state.pinDir, { recursive: true, force: true }));
    attempt(() => rmSync(this.options.stateDir, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, 'agent: could not remove everything');
  }

  /** Writes the state file, with the identity table. */
  #save(): void {
    this.#state.identities = this.#identities.toJSON();
    this.#identities.changed = false;
    saveState(this.options.stateDir, this.#state);
  }

  #check(): void {
    if (this.#closed) throw new AgentError('NotRunning', 'the agent is closed');
  }
}
