/**
 * The node agent: pods as network namespaces wired Cilium-style to a private node namespace, an eBPF
 * datapath per endpoint, policy compiled into per-endpoint maps. Everything it creates is named with
 * its prefix and recorded in its state directory (address reservations included) and pinned maps, so a new process can
 * pick up where the last one stopped (`Agent.restore`).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isDatapathError } from '@datapath/errors';
import { parsePrefix } from '@datapath/ip';
import type { Selection } from '@datapath/lb';
import {
  applyEndpoint,
  applyEndpointAsync,
  type EndpointResult,
  linkGet,
  linkSetUp,
  planEndpoint,
  removeEndpoint,
  removeEndpointAsync,
} from '@datapath/netdev';
import { Handle, Netns, netnsAdd } from '@datapath/netlink';
import {
  type IdentityAllocator,
  type IpcacheValue,
  type MapChange,
  type PodSpec,
  type PolicyEngine,
  type PolicyObject,
  validatePolicies,
} from '@datapath/policy';
import { type AttachKind, Datapath, type Delivery, type MapWrites } from './datapath.js';
import { AgentError } from './errors.js';
import { GATEWAY, GATEWAY6 } from './gateway.js';
import { AddressPool, legacyAllocations } from './ipam.js';
import { recordLatency } from './latency.js';
import { DEFAULT_LB_SETTINGS, type LbSettings, resolveLbSettings } from './lb-settings.js';
import { Leases } from './leases.js';
import { FWD_MAX_ENDPOINTS } from './maps.js';
import {
  addWorldAddress,
  createNodeNetns,
  createWorldNetns,
  deleteNetnsIfPresent,
  sysctlIn,
  sysctlReadIn,
} from './node.js';
import { attachmentOwner, PodIndex } from './pod-index.js';
import {
  engineFromState,
  type FlowInput,
  flowExplanation,
  flowVerdict,
  type PodInput,
  podSpec,
  policyFailure,
  StickyIdentities,
} from './policy.js';
import type { Place } from './probes.js';
import { ServiceLb } from './service-lb.js';
import {
  type BackendPod,
  checkPlan,
  lbInputs,
  planServiceProbe,
  type ServiceProbePlan,
  type ServiceSpec,
  type ServiceView,
  serviceKey,
  serviceViews,
} from './services.js';
import {
  type AgentState,
  loadState,
  type PodAttachment,
  type PodRecord,
  podNetnsPath,
  type StateField,
  type StateRecord,
  StateStore,
  statePath,
} from './state.js';
import { removeCgroupIfPresent } from './sys/cgroup.js';

/**
 * Queues of each pod veth end. The datapath runs tc/tcx programs, no XDP on the veth, so more queues would
 * only cost: the kernel's default (one per possible CPU) makes each queue's sysfs objects with the device,
 * and the create took 2-3 times as long with two queues as with one (bench/profile-create.ts, 2 CPUs).
 */
export const VETH_QUEUES = 1;

/** Up to this many map changes of a pod setup are written inline by the async forms (see #addPodAsync). */
const INLINE_WRITES = 32;

/** The gateway every pod routes through; the datapath answers ARP for it (defined in gateway.ts). */
export { attachmentOwner, GATEWAY, GATEWAY6 };

/** Options of {@link Agent.start} and {@link Agent.restore}. */
export interface AgentOptions {
  /** Agent name: selects the state directory and pin directory; default `demo`. */
  name?: string;
  /** Prefix of every namespace, link and pin (≤ 13 characters); default `dpa-<name>`. */
  prefix?: string;
  /** Where the state file and its journal (address reservations included) live; default `/run/datapath-agent/<name>`. */
  stateDir?: string;
  /** bpffs mount; default `/sys/fs/bpf`. */
  bpffs?: string;
  /** Pod CIDR of this node; default `10.244.1.0/24`. */
  podCidr?: string;
  /**
   * IPv6 pod CIDR of this node (e.g. `fd00:10:244:1::/112`; {@link Agent.start} only, a restored agent keeps
   * its own): pods created with `families: [4, 6]` (API, CNI `ipFamilies`) also get an address from it.
   * Default: none (IPv4 only). The datapath forwards IPv4 only: see {@link AttachedPodInput.families}.
   */
  podCidr6?: string;
  /** tcx (Linux ≥ 6.6), legacy tc, or whichever the kernel has (default). */
  attach?: 'auto' | AttachKind;
  /**
   * MTU of every pod's interface (default 1500). In a cluster, `setupNodeDatapath(…).podMtu`: the underlay's
   * MTU less the VXLAN overhead in tunnel mode (node-datapath.ts).
   */
  podMtu?: number;
  /** Object cache directory of the loader. */
  cacheDir?: string;
  /**
   * Local delivery between pods ({@link Agent.start} only; a restored agent keeps its own):
   * `peer` = bpf_redirect_peer into the pod (default), `egress` = bpf_redirect out of the pod's
   * host-side veth, faster for multi-stream TCP on a node with few CPUs (BENCHMARKS.md).
   */
  delivery?: Delivery;
  /**
   * Emit drop, policy-verdict and trace events into the pinned `events` ring buffer ({@link Agent.start}
   * only; a restored agent keeps its own): default true; false compiles them out (benchmark baseline).
   */
  events?: boolean;
  /**
   * The identity allocator of the policy engine: a cluster-wide one (`PolicyIdentityAllocator` of
   * `@datapath/kvstore`) on a cluster node; default the agent's own table, persisted in its state.
   */
  identities?: IdentityAllocator;
  /**
   * How services pick backends ({@link Agent.start} only; a restored agent keeps its own, and a different value
   * given to it is refused): `random` (default) or `maglev`.
   */
  lbSelection?: Selection;
  /**
   * Seed of the Maglev tables and the programs' flow hash, an unsigned 32-bit integer, the same on every node
   * of a cluster so a flow picks the same backend on any of them ({@link Agent.start} only, as `lbSelection`).
   * Default {@link DEFAULT_LB_HASH_SEED} (fixed).
   */
  lbHashSeed?: number;
  /** Pods of other nodes known when the agent starts or restores (see {@link Agent.upsertRemotePod}). */
  remotePods?: readonly RemotePodInput[];
  /** Progress lines. */
  log?: (line: string) => void;
  /**
   * Called with the duration of each pod setup stage (`ipam`, `netns`, `endpoint`, `attach`,
   * `maps`, `state`, `policy`), for profiling.
   */
  trace?: (stage: SetupStage, ms: number) => void;
}

/** A pod a container runtime asks for (CNI ADD, API endpoint create): its namespace exists already. */
export interface AttachedPodInput extends PodInput {
  /** The runtime's container and namespace. */
  attachment: PodAttachment;
  /**
   * An address allocated before (IPAM allocate): the pod takes it and its expiration stops. Without it the
   * pod gets the next free address.
   */
  ip?: string | undefined;
  /** An IPv6 address allocated before (IPAM allocate, family 6); implies family 6. */
  ip6?: string | undefined;
  /**
   * The address families of the pod: `[4]` (default) or `[4, 6]` (dual stack: also an address from the
   * agent's IPv6 pod CIDR, `/128` on the pod's interface with a default route via {@link GATEWAY6}). The
   * agent's datapath has no IPv6 path: it drops the pod's IPv6 packets (reason `unsupported L3`, counted
   * and reported as drop events), and the policy engine and ipcache know the pod by its IPv4 address.
   * An IPv6-only pod is refused (`NotSupported`).
   */
  families?: readonly (4 | 6)[] | undefined;
  /**
   * Keep the address's expiration running (milliseconds): the caller confirms it later, or the agent removes
   * the pod when it passes (CNI ADD: the plugin confirms once it has printed the result).
   */
  pendingMs?: number | undefined;
}

/** A pod of another node, as the cluster's ipcache carries it: the engine selects it by its labels. */
export interface RemotePodInput {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  /** The namespace's labels, used when this node does not know the namespace yet. */
  namespaceLabels?: Record<string, string> | undefined;
  /** The node it runs on (shown for service backends). */
  node?: string | undefined;
}

/**
 * Engine endpoint ids of remote pods start here (local endpoint ids stay below FWD_MAX_ENDPOINTS): the
 * engine compiles policy for every pod it knows, and the agent writes only local endpoints' entries.
 */
export const REMOTE_ENDPOINT_BASE = 0x40000000;

/** Scenario pods set up at a time by the CLI (`agent up`, `agent run`, `agent serve --scenario`). */
export const SCENARIO_CONCURRENCY = 4;

/** The stages {@link AgentOptions.trace} reports. */
export type SetupStage = 'ipam' | 'netns' | 'endpoint' | 'attach' | 'maps' | 'state' | 'policy';

/** Writes of one map, by kind. */
export interface WriteCount {
  updated: number;
  deleted: number;
}

/** What a policy, pod or restart step changed in the kernel: every map write, by map. */
export interface PolicySync {
  /** Policy trie writes by pod key (only pods with writes). */
  endpoints: Record<string, WriteCount>;
  ipcache: WriteCount;
  /** Endpoint map entries rewritten because a pod's identity changed. */
  identitiesChanged: number;
  /** Every map write of the step: policy, ipcache and endpoint identities. */
  writes: number;
  /** The policy revision after the step (bumped when anything was written). */
  revision: number;
}

/** The initial cluster description of an agent. */
export interface ClusterSpec {
  namespaces: Record<string, { labels?: Record<string, string> | undefined }>;
  /** Policy objects (validated when the agent starts). */
  policies: readonly PolicyObject[];
  enforcement: string;
  /** Services (validated, services.ts): their backends are the pods their selectors pick. */
  services?: readonly ServiceSpec[] | undefined;
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
    identities: o.identities,
    remotePods: o.remotePods ?? [],
    stateDir: o.stateDir ?? `/run/datapath-agent/${name}`,
    pinDir: join(o.bpffs ?? '/sys/fs/bpf', prefix),
    podCidr: o.podCidr ?? '10.244.1.0/24',
    podCidr6: o.podCidr6,
    attach: o.attach ?? 'auto',
    log: o.log ?? (() => undefined),
    trace: o.trace,
    ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
    ...(o.podMtu === undefined ? {} : { podMtu: o.podMtu }),
    lb: {
      ...(o.lbSelection === undefined ? {} : { selection: o.lbSelection }),
      ...(o.lbHashSeed === undefined ? {} : { hashSeed: o.lbHashSeed }),
    } as Partial<LbSettings>,
  };
}

/** The key under which the engine keeps a policy: kind, namespace (none for clusterwide ones), name. */
function policyId(p: PolicyObject): string {
  const ns = p.kind === 'CiliumClusterwideNetworkPolicy' ? '' : (p.metadata.namespace ?? 'default');
  return `${p.kind}/${ns}/${p.metadata.name}`;
}

/** A pod setup between its first part (address, namespace, plan) and its last (record, policy, state). */
interface PodSetup {
  pod: PodInput;
  key: string;
  ip: string;
  ip6: string | undefined;
  netnsName: string;
  plan: ReturnType<typeof planEndpoint>;
  lxcId: number;
  attachment: PodAttachment | undefined;
  /** Rollback steps, run in reverse on failure (the async setup awaits them). */
  undo: (() => unknown)[];
  /** Reports the time since the previous lap as `stage`, or `ms` (a stage that ran alongside others). */
  lap: (stage: SetupStage, ms?: number) => void;
}

/** What removes a pod's endpoint: the runtime's namespace may be gone already (DEL after the pod died). */
function endpointRef(rec: PodRecord): Parameters<typeof removeEndpoint>[0] {
  if (rec.attachment === undefined)
    return { containerId: rec.netns, mode: 'cilium', netns: `/run/netns/${rec.netns}` };
  const { containerId, ifname, netnsPath } = rec.attachment;
  return existsSync(netnsPath)
    ? { containerId, ifname, mode: 'cilium', netns: netnsPath }
    : { containerId, ifname, mode: 'cilium' };
}

/** An IPv6 pod CIDR: a prefix of 64 to 120 bits (the IPAM store enumerates it). */
function checkCidr6(cidr: string): void {
  let p: ReturnType<typeof parsePrefix>;
  try {
    p = parsePrefix(cidr, { strict: false, family: 6 });
  } catch (err) {
    throw new AgentError('InvalidArgument', `podCidr6 ${JSON.stringify(cidr)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (p.length < 64 || p.length > 120)
    throw new AgentError('InvalidArgument', `podCidr6 ${cidr}: a /64 to /120 prefix`);
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
  /** The policy engine: built once from the state, then changed only incrementally. */
  readonly #engine: PolicyEngine;
  readonly #identities: StickyIdentities;
  readonly #leases: Leases;
  /** Pod keys and endpoint ids of setups in progress (async setups run side by side). */
  readonly #settling = new Set<string>();
  readonly #lxcReserved = new Set<number>();
  /** The local pods by endpoint id, address and attachment, in step with the state's pod records. */
  readonly #index: PodIndex;
  /** Remote pods the engine knows, by key, with the engine endpoint id each got. */
  readonly #remote = new Map<string, { spec: PodSpec; endpointId: number; node?: string | undefined }>();
  /** The ipcache prefixes of {@link Agent.#remote}'s pods, kept in step with it (one lookup per write). */
  readonly #remoteCidrs = new Set<string>();
  #nextRemoteId = REMOTE_ENDPOINT_BASE;
  /** ipcache entries beside the engine's (other nodes' addresses), by prefix. */
  readonly #extraIpcache = new Map<string, IpcacheValue>();
  /** The socket LB, once the agent has services (service-lb.ts). */
  #lb: ServiceLb | undefined;
  #closed = false;
  /** The async forms' netlink handle in the node namespace, opened once (a handle per call costs more). */
  #nodeHandle: Handle | undefined;
  /** The sync forms' own handle there (an async request in flight on the other must not make them wait). */
  #nodeSyncHandle: Handle | undefined;
  /**
   * Whether new devices in the node namespace start with reverse-path filtering off (`default` and `all`
   * `rp_filter` 0, as createNodeNetns sets them): the endpoint plans' per-veth `rp_filter=0` is then already
   * true at creation and not written again (a sysctl write costs a namespace switch, or a thread in the async
   * form). Read once.
   */
  #rpFilterOff: boolean | undefined;
  /** The state's writer (snapshot and journal), opened with the agent. */
  #store: StateStore | undefined;
  /** How many namespaces the state had at the last write (a new one goes with the next change's records). */
  #savedNamespaces = 0;

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
    // Each allocation and release is one journal record before it returns.
    pool.onChange = (ips) => this.#persist({ ipam: ips });
    this.#identities = new StickyIdentities(state.identities ?? {});
    this.#index = new PodIndex(Object.values(state.pods));
    const remote: PodSpec[] = [];
    for (const r of options.remotePods) {
      if (state.pods[`${r.namespace}/${r.name}`] !== undefined) continue;
      const spec = this.#remoteSpec(r);
      if (!state.namespaces[r.namespace])
        state.namespaces[r.namespace] = { labels: { ...(r.namespaceLabels ?? {}) } };
      remote.push(spec);
    }
    this.#engine = engineFromState(state, options.identities ?? this.#identities, remote);
    this.#leases = new Leases((ip) => this.#expire(ip));
  }

  /** The agent's policy engine (read it; change policy through the agent). */
  get policy(): PolicyEngine {
    return this.#engine;
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
    const lb = resolveLbSettings(o.lb);
    if (existsSync(statePath(o.stateDir))) {
      throw new AgentError('AlreadyRunning', `an agent named ${o.name} already has state in ${o.stateDir}`);
    }
    const cleanup: (() => void)[] = [];
    try {
      mkdirSync(o.stateDir, { recursive: true });
      cleanup.push(() => rmSync(o.stateDir, { recursive: true, force: true }));
      if (o.podCidr6 !== undefined) checkCidr6(o.podCidr6);
      const ipam: Record<string, string> = {};
      const pool = new AddressPool(ipam, o.podCidr, o.podCidr6);
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
        nodeAddress: hostIp,
        lbHashSeed: lb.hashSeed,
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
        ...(options.events === false ? { events: false } : {}),
      });
      cleanup.push(() => datapath.close());
      datapath.delivery = options.delivery ?? 'peer';
      o.log(`datapath object ${datapath.objectPath}${datapath.objectCached ? ' (cached)' : ''}`);
      let policies: PolicyObject[];
      try {
        policies = validatePolicies(cluster.policies);
      } catch (err) {
        throw policyFailure(err);
      }
      const namespaces: AgentState['namespaces'] = {};
      for (const [n, v] of Object.entries(cluster.namespaces))
        namespaces[n] = { labels: { ...(v.labels ?? {}) } };
      const state: AgentState = {
        version: 1,
        name: o.name,
        prefix: o.prefix,
        podCidr: o.podCidr,
        ...(o.podCidr6 === undefined ? {} : { podCidr6: o.podCidr6 }),
        hostIp,
        nodeNetns: nodeName,
        worldNetns: worldName,
        worldIps: [],
        pinDir: o.pinDir,
        enforcement: cluster.enforcement,
        namespaces,
        policies,
        pods: {},
        ipam,
        ...(options.events === false ? { events: false as const } : {}),
        lb,
        startedAt: new Date().toISOString(),
      };
      const agent = new Agent(o, state, node, world, datapath, pool);
      cleanup.push(() => agent.#store?.close());
      agent.#openStore();
      // Fresh maps: the reconcile writes the whole compiled state (the ipcache's world and host entries).
      agent.#reconcile();
      if (cluster.services !== undefined && cluster.services.length > 0) {
        cleanup.push(() => agent.#lb?.destroy());
        await agent.setServices(cluster.services);
      }
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
   * Re-attaches to the agent named in `options` from its state (address reservations included) and pinned maps,
   * without touching the datapath of running pods; rebuilds the policy engine from the state and reconciles the
   * maps with it (the one place the maps are compared with a dump).
   * @throws AgentError `NotRunning` when there is no state; `DatapathFailed`.
   */
  static async restore(options: AgentOptions): Promise<Agent> {
    const o = resolveOptions(options);
    const state = loadState(o.stateDir);
    const lb = resolveLbSettings(o.lb, state.lb ?? DEFAULT_LB_SETTINGS);
    const opened: { close(): void }[] = [];
    try {
      const node = Netns.open({ name: state.nodeNetns });
      opened.push(node);
      const world = Netns.open({ name: state.worldNetns });
      opened.push(world);
      // An agent before the `ipam` table kept its reservations in a FileStore directory: taken over once
      // (the first snapshot below holds them, then the directory goes).
      const legacy = state.ipam === undefined ? legacyAllocations(join(o.stateDir, 'ipam')) : undefined;
      state.ipam ??= legacy ?? {};
      const pool = new AddressPool(state.ipam, state.podCidr, state.podCidr6);
      const datapath = await Datapath.open({
        pinDir: state.pinDir,
        nodeAddress: state.hostIp,
        lbHashSeed: lb.hashSeed,
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
        ...(state.events === false ? { events: false } : {}),
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
      agent.#openStore();
      opened.push({ close: () => agent.#store?.close() });
      if (legacy !== undefined) rmSync(join(o.stateDir, 'ipam'), { recursive: true, force: true });
      agent.#reconcile();
      agent.#armLeases();
      if ((state.services ?? []).length > 0) {
        // The pinned lb maps are reused: the same services written again, then what nobody owns removed.
        agent.#lb = await ServiceLb.open(state.prefix, state.pinDir, lb);
        opened.push(agent.#lb);
        const reserved = agent.#lb.reserveIds();
        agent.#syncServices();
        agent.#lb.releaseReserved(reserved);
        const swept = agent.#lb.sweep();
        if (swept > 0) o.log(`services: removed ${swept} stale lb map entries`);
        await agent.#ensureNodePort();
      }
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
      for (const pod of Object.values(state.pods)) if (!pod.attachment) deleteNetnsIfPresent(pod.netns);
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

  /** The state directory of the agent named in `options`. */
  static stateDir(options: AgentOptions): string {
    return resolveOptions(options).stateDir;
  }

  /**
   * Adds pods: an IP from the pool (the scenario's when it is inside the pod CIDR), a namespace, a
   * Cilium-style endpoint into the node namespace, the datapath loaded and attached, the pod given to the
   * policy engine (its lxc id is its endpoint id) and the engine's map changes written.
   * @throws AgentError `InvalidArgument` for a duplicate pod; SDK errors as cause (the failing pod is rolled back).
   */
  addPods(pods: readonly PodInput[]): PodRecord[] {
    this.#check();
    return pods.map((pod) => {
      const t = performance.now();
      const rec = this.#addPod(pod);
      recordLatency(this.options.stateDir, 'pod_setup', (performance.now() - t) / 1000);
      return rec;
    });
  }

  /**
   * Adds a pod whose network namespace a container runtime made (CNI ADD, API endpoint create): the
   * endpoint is wired into that namespace with the attachment's interface name, then everything as
   * {@link addPods} (datapath, identity, policy). The pod key is `namespace/name`.
   * @throws AgentError `InvalidArgument` (duplicate pod or attachment, an address not allocated to the
   * caller), `NotFound` (no such namespace); SDK errors as cause (nothing is left behind).
   */
  addAttachedPod(pod: AttachedPodInput): PodRecord {
    this.#check();
    const { containerId, ifname } = pod.attachment;
    if (this.findAttachment(containerId, ifname) !== undefined)
      throw new AgentError('AlreadyRunning', `attachment ${containerId}/${ifname} already has an endpoint`);
    if (!existsSync(pod.attachment.netnsPath))
      throw new AgentError('NotFound', `network namespace ${pod.attachment.netnsPath} does not exist`);
    return this.#addPod(pod, pod.attachment, pod.pendingMs);
  }

  /**
   * The async form of {@link addPods}: the same setup and errors, with the kernel waits (veth, tcx attach)
   * off the event loop; up to `concurrency` pods are set up at a time (default 1: one after the other). Pods
   * already set up stay when one fails; the first failure is thrown after the others in flight settled.
   * @throws as {@link addPods}.
   */
  async addPodsAsync(
    pods: readonly PodInput[],
    options: { concurrency?: number } = {},
  ): Promise<PodRecord[]> {
    this.#check();
    const out: PodRecord[] = [];
    let next = 0;
    let failed: { err: unknown } | undefined;
    const worker = async () => {
      while (failed === undefined && next < pods.length) {
        const i = next++;
        const t = performance.now();
        try {
          out[i] = await this.#addPodAsync(pods[i]!);
        } catch (err) {
          failed ??= { err };
          return;
        }
        recordLatency(this.options.stateDir, 'pod_setup', (performance.now() - t) / 1000);
      }
    };
    const n = Math.max(1, Math.min(options.concurrency ?? 1, pods.length));
    await Promise.all(Array.from({ length: n }, worker));
    if (failed !== undefined) throw failed.err;
    return out;
  }

  /**
   * The async form of {@link addAttachedPod} (what the API and the CNI path use): the same checks, setup and
   * errors, with the kernel waits off the event loop.
   * @throws as {@link addAttachedPod}.
   */
  async addAttachedPodAsync(pod: AttachedPodInput): Promise<PodRecord> {
    this.#check();
    const { containerId, ifname } = pod.attachment;
    const owner = attachmentOwner(containerId, ifname);
    if (this.findAttachment(containerId, ifname) !== undefined || this.#settling.has(owner))
      throw new AgentError('AlreadyRunning', `attachment ${containerId}/${ifname} already has an endpoint`);
    if (!existsSync(pod.attachment.netnsPath))
      throw new AgentError('NotFound', `network namespace ${pod.attachment.netnsPath} does not exist`);
    this.#settling.add(owner);
    try {
      return await this.#addPodAsync(pod, pod.attachment, pod.pendingMs);
    } finally {
      this.#settling.delete(owner);
    }
  }

  /** The pod of a container attachment, if the agent has one. */
  findAttachment(containerId: string, ifname: string): PodRecord | undefined {
    return this.#index.byAttachment(containerId, ifname);
  }

  /**
   * Removes whatever the agent holds for a container attachment: its pod (as {@link removePod}), or, for an
   * attachment it does not know (forgotten, half made), the host veth by name and the addresses recorded for
   * it. Idempotent; returns whether anything was removed.
   */
  removeAttachment(containerId: string, ifname: string): boolean {
    this.#check();
    const pod = this.findAttachment(containerId, ifname);
    if (pod !== undefined) {
      this.removePod(pod.key);
      return true;
    }
    return this.#removeLoose(containerId, ifname);
  }

  /** The async form of {@link removeAttachment}: the veth delete and tcx detaches wait off the event loop. */
  async removeAttachmentAsync(containerId: string, ifname: string): Promise<boolean> {
    this.#check();
    const pod = this.findAttachment(containerId, ifname);
    if (pod !== undefined) {
      await this.removePodAsync(pod.key);
      return true;
    }
    return this.#removeLooseAsync(containerId, ifname);
  }

  /** The async form of {@link gcAttachments}. */
  async gcAttachmentsAsync(valid: readonly { containerId: string; ifname: string }[]): Promise<string[]> {
    this.#check();
    const keep = new Set(valid.map((v) => attachmentOwner(v.containerId, v.ifname)));
    const removed: string[] = [];
    for (const pod of this.pods()) {
      const a = pod.attachment;
      if (a === undefined || keep.has(attachmentOwner(a.containerId, a.ifname))) continue;
      await this.removePodAsync(pod.key);
      removed.push(`${a.containerId}/${a.ifname}`);
    }
    for (const [ip, owner] of Object.entries(this.pool.allocations())) {
      if (!owner.startsWith('cni:') || keep.has(owner) || this.#settling.has(owner)) continue;
      const [, containerId = '', ifname = ''] = /^cni:(.*):([^:]*)$/.exec(owner) ?? [];
      await this.#removeLooseAsync(containerId, ifname);
      this.pool.release(ip);
      removed.push(`${containerId}/${ifname}`);
    }
    return removed;
  }

  /**
   * Garbage collection for container attachments: every CNI-created pod and CNI address whose attachment is
   * not in `valid` is removed. Scenario pods and API allocations of other owners are kept.
   * @returns the attachments removed, as `containerId/ifname`.
   */
  gcAttachments(valid: readonly { containerId: string; ifname: string }[]): string[] {
    this.#check();
    const keep = new Set(valid.map((v) => attachmentOwner(v.containerId, v.ifname)));
    const removed: string[] = [];
    for (const pod of this.pods()) {
      const a = pod.attachment;
      if (a === undefined || keep.has(attachmentOwner(a.containerId, a.ifname))) continue;
      this.removePod(pod.key);
      removed.push(`${a.containerId}/${a.ifname}`);
    }
    for (const [ip, owner] of Object.entries(this.pool.allocations())) {
      if (!owner.startsWith('cni:') || keep.has(owner)) continue;
      const [, containerId = '', ifname = ''] = /^cni:(.*):([^:]*)$/.exec(owner) ?? [];
      this.#removeLoose(containerId, ifname);
      this.pool.release(ip);
      removed.push(`${containerId}/${ifname}`);
    }
    return removed;
  }

  /** A host veth left by an attachment the agent does not know, and its addresses. */
  #removeLoose(containerId: string, ifname: string): boolean {
    let removed = false;
    try {
      removed = removeEndpoint({ containerId, ifname, mode: 'cilium' }, this.#nodeSync());
    } catch {
      // an invalid id or name: nothing of ours can carry it
    }
    return this.#releaseLoose(containerId, ifname, removed);
  }

  async #removeLooseAsync(containerId: string, ifname: string): Promise<boolean> {
    let removed = false;
    try {
      removed = await removeEndpointAsync({ containerId, ifname, mode: 'cilium' }, this.#nodeAsync());
    } catch {
      // an invalid id or name: nothing of ours can carry it
    }
    return this.#releaseLoose(containerId, ifname, removed);
  }

  #releaseLoose(containerId: string, ifname: string, removed: boolean): boolean {
    const owner = attachmentOwner(containerId, ifname);
    const released: string[] = [];
    for (const [ip, o] of Object.entries(this.pool.allocations())) {
      if (o !== owner) continue;
      this.pool.release(ip);
      this.#leases.delete(ip);
      delete this.#state.leases?.[ip];
      released.push(ip);
      removed = true;
    }
    if (released.length > 0) this.#persist({ leases: released });
    return removed;
  }

  /**
   * Reserves an address (IPAM allocate): the next free one in the pod CIDR for `owner`. With `expiresInMs`
   * the address is released by the agent unless it is confirmed ({@link confirmIp}, or taken by an endpoint
   * create) before then, also across a restart.
   * @throws AgentError `NotSupported` (family 6 on an agent without an IPv6 pod CIDR), `InvalidArgument`;
   * IpamError `Exhausted` as cause.
   */
  allocateIp(
    owner: string,
    options: { family?: 4 | 6; expiresInMs?: number } = {},
  ): {
    ip: string;
    expiresAt: number | undefined;
  } {
    this.#check();
    const family = options.family ?? 4;
    if (family === 6 && this.pool.cidr6 === undefined)
      throw new AgentError(
        'NotSupported',
        'IPv6: this agent has no IPv6 pod CIDR (start it with podCidr6 / --pod-cidr6)',
      );
    let ip: string;
    try {
      ip = this.pool.allocateNext(owner, family);
    } catch (err) {
      throw new AgentError('DatapathFailed', `IPAM: ${(err as Error).message}`, { cause: err });
    }
    let expiresAt: number | undefined;
    if (options.expiresInMs !== undefined) {
      expiresAt = Date.now() + options.expiresInMs;
      const m = /^cni:(.*):([^:]*)$/.exec(owner);
      this.#state.leases ??= {};
      this.#state.leases[ip] = {
        owner,
        expiresAt,
        ...(m ? { containerId: m[1]!, ifname: m[2]! } : {}),
      };
      this.#leases.set(ip, expiresAt);
      this.#persist({ leases: [ip] });
    }
    return { ip, expiresAt };
  }

  /**
   * Stops the expiration of an address (IPAM confirm). Idempotent for a confirmed address. With
   * `expectedOwner`, only when the address is still that owner's (a late confirmation of an expired lease must
   * not confirm the next holder's).
   * @throws AgentError `NotFound` when the address is not allocated (it expired, or never was).
   */
  confirmIp(ip: string, expectedOwner?: string): { ip: string; owner: string } {
    this.#check();
    const owner = this.pool.ownerOf(ip);
    if (owner === undefined || (expectedOwner !== undefined && owner !== expectedOwner))
      throw new AgentError(
        'NotFound',
        `${ip} is not allocated${expectedOwner === undefined ? '' : ` to ${expectedOwner}`} (expired or released)`,
      );
    // With the owner named (a CNI ADD's confirmation), its other family's address is confirmed with it.
    const confirm = Object.entries(this.#state.leases ?? {})
      .filter(([i, l]) => i === ip || (expectedOwner !== undefined && l.owner === expectedOwner))
      .map(([i]) => i);
    for (const i of confirm) {
      delete this.#state.leases![i];
      this.#leases.delete(i);
    }
    if (confirm.length > 0) this.#persist({ leases: confirm });
    return { ip, owner };
  }

  /**
   * Frees an address (IPAM release); the pod holding it, if any, keeps running (remove the pod instead).
   * @returns whether it was allocated.
   * @throws AgentError `InvalidArgument` when a pod holds it.
   */
  releaseIp(ip: string): boolean {
    this.#check();
    const pod = this.#index.byIp(ip);
    if (pod !== undefined)
      throw new AgentError('InvalidArgument', `${ip} belongs to pod ${pod.key}: delete the endpoint instead`);
    const had = this.pool.ownerOf(ip) !== undefined;
    this.pool.release(ip);
    if (this.#state.leases?.[ip] !== undefined) {
      delete this.#state.leases[ip];
      this.#leases.delete(ip);
      this.#persist({ leases: [ip] });
    }
    return had;
  }

  /** Addresses allocated with an expiration that was not confirmed yet. */
  pendingLeases(): Record<string, { owner: string; expiresAt: number }> {
    return { ...(this.#state.leases ?? {}) };
  }

  /** Restore: expired leases go now, the others get their timers. */
  #armLeases(): void {
    for (const [ip, l] of Object.entries(this.#state.leases ?? {})) this.#leases.set(ip, l.expiresAt);
    this.#leases.fireExpired();
  }

  /** An address's expiration passed without a confirmation: its pod or half-made endpoint and the address go. */
  #expire(ip: string): void {
    if (this.#closed) return;
    const lease = this.#state.leases?.[ip];
    if (lease === undefined) return;
    if (this.#settling.has(lease.owner)) {
      // Its endpoint is being created right now: look again once that settled.
      this.#leases.set(ip, Date.now() + 1_000);
      return;
    }
    delete this.#state.leases![ip];
    const pod = this.#index.byIp(ip);
    // The veth delete and detaches wait in the kernel: off the event loop, as every removal of `agent serve`.
    const removal =
      pod !== undefined
        ? this.removePodAsync(pod.key)
        : lease.containerId !== undefined
          ? this.#removeLooseAsync(lease.containerId, lease.ifname ?? '')
          : Promise.resolve();
    void removal
      .then(
        () => {
          if (this.#closed) return;
          if (this.pool.ownerOf(ip) === lease.owner) this.pool.release(ip);
          this.options.log(`lease ${ip} (${lease.owner}) expired unconfirmed: released`);
        },
        (err: unknown) => {
          this.options.log(`lease ${ip} expired but could not be released: ${(err as Error).message}`);
        },
      )
      .finally(() => {
        if (!this.#closed) this.#persist({ leases: [ip] });
      });
  }

  #nextLxcId(): number {
    const id = this.#index.freeLxc(FWD_MAX_ENDPOINTS, this.#lxcReserved);
    if (id !== undefined) return id;
    throw new AgentError('InvalidArgument', `no endpoint id left (${FWD_MAX_ENDPOINTS - 1} endpoints)`);
  }

  #addPod(pod: PodInput, attachment?: PodAttachment, pendingMs?: number): PodRecord {
    const s = this.#beginPod(pod, attachment, pendingMs);
    try {
      const ep = applyEndpoint(s.plan, this.#nodeSync());
      s.undo.push(() => removeEndpoint(s.plan, this.#nodeSync()));
      s.lap('endpoint');
      const hostIfindex = ep.host.index;
      const attach = this.datapath.attachEndpoint(
        this.node,
        { lxcId: s.lxcId, hostIfindex, fresh: true },
        this.options.attach,
      );
      s.undo.push(() => this.datapath.detachEndpoint(this.node, s.lxcId));
      s.lap('attach');
      return this.#finishPod(s, ep, attach);
    } catch (err) {
      for (const u of s.undo.reverse()) {
        try {
          void u();
        } catch {
          // best effort rollback
        }
      }
      throw err;
    } finally {
      this.#settling.delete(s.key);
      this.#lxcReserved.delete(s.lxcId);
    }
  }

  /**
   * {@link Agent.#addPod} with the calls that wait in the kernel (veth create and delete, tcx attach and
   * detach) made through their async forms: the event loop keeps serving while a pod is set up, and several
   * setups can run at once (each reserves its pod key and endpoint id first). The steps that do not need each
   * other overlap: while the threadpool makes the veth, this thread computes and writes the pod's identity and
   * policy; once the veth exists, the datapath is attached to it alongside the pod's and the host's addresses
   * and routes (`alongside` of applyEndpointAsync). The endpoint map entry, which makes the pod live in the
   * datapath, comes last, as in the sync form.
   */
  async #addPodAsync(pod: PodInput, attachment?: PodAttachment, pendingMs?: number): Promise<PodRecord> {
    const s = this.#beginPod(pod, attachment, pendingMs);
    let attach: AttachKind = 'tcx';
    const endpoint = applyEndpointAsync(s.plan, {
      ...this.#nodeAsync(),
      alongside: async (host) => {
        const t = performance.now();
        attach = await this.datapath.attachEndpointAsync(
          this.node,
          { lxcId: s.lxcId, hostIfindex: host.index, fresh: true },
          this.options.attach,
        );
        s.lap('attach', performance.now() - t);
      },
    });
    // A failed apply deleted its veth (what the hook pinned is undone below); a made one is removed on a later failure.
    const settled = endpoint.then(
      () => true,
      () => false,
    );
    s.undo.push(async () => {
      if (await settled) await removeEndpointAsync(s.plan, this.#nodeAsync());
    });
    s.undo.push(async () => {
      await settled;
      await this.datapath.detachEndpointAsync(s.lxcId);
    });
    try {
      // The apply's first request reaches the threadpool once the microtasks queued so far ran.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.#check();
      const { rec, changes } = this.#podRecord(s);
      if (changes.length <= INLINE_WRITES) this.#write(changes);
      else await this.#writeAsync(changes);
      rec.identity = this.#identityOf(s.key);
      s.lap('policy');
      const ep = await endpoint;
      s.lap('endpoint');
      this.#check();
      rec.hostIfindex = ep.host.index;
      rec.attach = attach;
      this.#podWritten(s, rec);
      this.#persistPod(rec);
      return this.#podDone(s, rec);
    } catch (err) {
      for (const u of s.undo.reverse()) {
        try {
          await u();
        } catch {
          // best effort rollback
        }
      }
      throw err;
    } finally {
      this.#settling.delete(s.key);
      this.#lxcReserved.delete(s.lxcId);
    }
  }

  /**
   * The first part of a pod setup, before any call that waits in the kernel: the pod key and an endpoint id
   * reserved, the address, the namespace of a scenario pod, the endpoint plan.
   */
  #beginPod(pod: PodInput, attachment: PodAttachment | undefined, pendingMs: number | undefined): PodSetup {
    const ns = pod.namespace;
    const key = `${ns}/${pod.name}`;
    if (this.#state.pods[key] || this.#settling.has(key))
      throw new AgentError('InvalidArgument', `pod ${key} already exists`);
    const o = this.options;
    const undo: (() => unknown)[] = [];
    let t0 = performance.now();
    const lap = (stage: SetupStage, ms?: number) => {
      if (o.trace === undefined) return;
      if (ms !== undefined) return o.trace(stage, ms);
      const t = performance.now();
      o.trace(stage, t - t0);
      t0 = t;
    };
    try {
      const ip = this.#podAddress(pod, key, attachment, pendingMs, undo);
      const ip6 = this.#podAddress6(pod, attachment, pendingMs, undo);
      if (pod.ip !== undefined && pod.ip !== ip)
        o.log(`pod ${key}: scenario IP ${pod.ip} → ${ip} (pod CIDR)`);
      lap('ipam');

      let netnsName: string;
      let plan: ReturnType<typeof planEndpoint>;
      if (attachment === undefined) {
        netnsName = podNetnsName(o.prefix, ns, pod.name);
        const podNs = netnsAdd(netnsName);
        undo.push(() => {
          podNs.close();
          deleteNetnsIfPresent(netnsName);
        });
        try {
          const h = Handle.open(podNs);
          try {
            linkSetUp(linkGet('lo', { handle: h }).index, { handle: h });
          } finally {
            h.close();
          }
          sysctlIn(podNs, 'net.ipv6.conf.all.disable_ipv6', '1');
          sysctlIn(podNs, 'net.ipv6.conf.default.disable_ipv6', '1');
        } finally {
          podNs.close();
        }
        plan = planEndpoint({
          containerId: netnsName,
          netns: `/run/netns/${netnsName}`,
          addresses: [ip],
          gateway: GATEWAY,
          mode: 'cilium',
          queues: VETH_QUEUES,
          ...(o.podMtu === undefined ? {} : { mtu: o.podMtu }),
        });
      } else {
        netnsName = attachment.netnsPath;
        plan = planEndpoint({
          containerId: attachment.containerId,
          netns: attachment.netnsPath,
          ifname: attachment.ifname,
          addresses: ip6 === undefined ? [ip] : [ip, ip6],
          gateway: ip6 === undefined ? GATEWAY : [GATEWAY, GATEWAY6],
          mode: 'cilium',
          queues: VETH_QUEUES,
          // An IPv4-only pod's interface carries no IPv6 (the datapath drops it as unsupported L3): no
          // link-local address, so none of the DAD, MLD and router solicitation packets a new interface sends,
          // each of which was a drop event for the observer and kernel work alongside the create.
          ...(ip6 === undefined ? { ipv6LinkLocal: false } : {}),
          ...(o.podMtu === undefined ? {} : { mtu: o.podMtu }),
        });
        // The node namespace routes IPv4 only (IPv6 is disabled there): no host route for the IPv6 address.
        plan.host.routes = plan.host.routes.filter((r) => r.family === 4);
      }
      if (this.#nodeRpFilterOff())
        plan.host.sysctls = plan.host.sysctls.filter(
          (c) => !/^net[./]ipv4[./]conf[./].*[./]rp_filter$/.test(c.key) || c.value !== '0',
        );
      lap('netns');
      const lxcId = this.#nextLxcId();
      this.#settling.add(key);
      this.#lxcReserved.add(lxcId);
      return { pod, key, ip, ip6, netnsName, plan, lxcId, attachment, undo, lap };
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          void u();
        } catch {
          // best effort rollback
        }
      }
      throw err;
    }
  }

  /** The last part of a pod setup (no kernel waits): record, identity and policy, endpoint map, state. */
  #finishPod(s: PodSetup, ep: EndpointResult, attach: AttachKind): PodRecord {
    const { rec, changes } = this.#podRecord(s);
    rec.hostIfindex = ep.host.index;
    rec.attach = attach;
    this.#write(changes);
    rec.identity = this.#identityOf(s.key);
    s.lap('policy');
    this.#podWritten(s, rec);
    this.#persistPod(rec);
    return this.#podDone(s, rec);
  }

  /** The records of a pod just added: the pod, the leases its addresses no longer have, the identities. */
  #persistPod(rec: PodRecord): void {
    this.#persist({ pods: [rec.key], leases: rec.ip6 === undefined ? [rec.ip] : [rec.ip, rec.ip6] });
  }

  /**
   * The pod's record (names and MACs from the plan; the host ifindex and the attach kind filled in by the
   * caller once known) and the engine's changes for it (undone with the setup).
   */
  #podRecord(s: PodSetup): { rec: PodRecord; changes: MapChange[] } {
    const { pod, key, ip, ip6, lxcId, attachment, undo } = s;
    const ns = pod.namespace;
    const rec: PodRecord = {
      key,
      ns,
      name: pod.name,
      labels: { ...(pod.labels ?? {}) },
      ports: (pod.ports ?? []).map((p) => ({
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        ...(p.name === undefined ? {} : { name: p.name }),
      })),
      ...(pod.ip !== undefined && pod.ip !== ip ? { scenarioIp: pod.ip } : {}),
      ip,
      ...(ip6 === undefined ? {} : { ip6 }),
      netns: s.netnsName,
      lxcId,
      hostIfindex: 0,
      hostIfname: s.plan.host.name,
      mac: s.plan.container.mac,
      nodeMac: s.plan.host.mac,
      identity: 0,
      attach: 'tcx',
      ...(attachment === undefined ? {} : { attachment: { ...attachment } }),
    };
    // The engine compiles the pod into its own map and every map that selects it; one write per change.
    const changes: MapChange[] = [];
    try {
      if (!this.#state.namespaces[ns]) changes.push(...this.#engine.upsertNamespace(ns, {}));
      changes.push(...this.#engine.upsertPod(podSpec(rec)));
    } catch (err) {
      throw policyFailure(err);
    }
    undo.push(() => this.#write(this.#engine.deletePod(ns, pod.name)));
    return { rec, changes };
  }

  /** The identity the engine gave a local pod. */
  #identityOf(key: string): number {
    return this.#engine.state().endpoints.get(key)!.identity;
  }

  /** After the policy writes: the endpoint map entries and the pod in the state. */
  #podWritten(s: PodSetup, rec: PodRecord): void {
    const { pod, key, ip, lxcId, undo, lap } = s;
    const ns = pod.namespace;
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
    this.#state.namespaces[ns] ??= { labels: {} };
    this.#state.pods[key] = rec;
    this.#index.add(rec);
  }

  #podDone(s: PodSetup, rec: PodRecord): PodRecord {
    const { key, ip, lxcId, lap } = s;
    const attach = rec.attach;
    lap('state');
    this.#syncServicesLogged(`pod ${key} added`);
    this.options.log(`pod ${key}: ${ip} endpoint ${lxcId} ${rec.hostIfname} (${attach})`);
    return rec;
  }

  /**
   * Removes a pod: endpoint map entry, datapath, endpoint, namespace, IP; then a policy sync.
   * @throws AgentError `NotFound` for an unknown pod.
   */
  removePod(key: string): void {
    this.#check();
    const rec = this.#state.pods[key];
    if (!rec) throw new AgentError('NotFound', `no pod ${key}`);
    this.#drain(key);
    this.#teardownPod(rec);
    delete this.#state.pods[key];
    this.#index.delete(rec);
    this.#write(this.#engine.deletePod(rec.ns, rec.name));
    this.#forgetBackend(key);
    this.#persistRemoved(rec);
  }

  /**
   * The async form of {@link removePod}: the endpoint map entry and policy go at once, the tcx detaches and the
   * veth delete wait off the event loop.
   * @throws AgentError `NotFound` for an unknown pod.
   */
  async removePodAsync(key: string): Promise<void> {
    this.#check();
    const rec = this.#state.pods[key];
    if (!rec || this.#settling.has(key)) throw new AgentError('NotFound', `no pod ${key}`);
    this.#settling.add(key);
    try {
      this.#drain(key);
      await this.#teardownPodAsync(rec);
    } finally {
      this.#settling.delete(key);
    }
    delete this.#state.pods[key];
    this.#index.delete(rec);
    await this.#writeAsync(this.#engine.deletePod(rec.ns, rec.name));
    this.#forgetBackend(key);
    this.#persistRemoved(rec);
  }

  /** The records of a pod just removed: the pod and its addresses' leases gone, `terminating` without it. */
  #persistRemoved(rec: PodRecord): void {
    this.#persist({
      pods: [rec.key],
      leases: rec.ip6 === undefined ? [rec.ip] : [rec.ip, rec.ip6],
      fields: (this.#state.services ?? []).length > 0 ? ['terminating'] : [],
    });
  }

  /** The pod's address: a confirmed allocation of the caller, a new one (pending or not), or the scenario's. */
  #podAddress(
    pod: PodInput,
    key: string,
    attachment: PodAttachment | undefined,
    pendingMs: number | undefined,
    undo: (() => unknown)[],
  ): string {
    if (attachment === undefined) {
      const wanted = pod.ip !== undefined && this.pool.contains(pod.ip) ? pod.ip : undefined;
      const ip = wanted === undefined ? this.pool.allocateNext(key) : this.pool.allocate(wanted, key);
      undo.push(() => this.pool.release(ip));
      return ip;
    }
    return this.#attachedAddress(attachment, pod.ip, 4, pendingMs, undo);
  }

  /**
   * An attachment's address of one family: one the caller allocated before (taking it confirms it, the
   * Cilium endpoint create), or a new one (pending or not).
   */
  #attachedAddress(
    attachment: PodAttachment,
    given: string | undefined,
    family: 4 | 6,
    pendingMs: number | undefined,
    undo: (() => unknown)[],
  ): string {
    const owner = attachmentOwner(attachment.containerId, attachment.ifname);
    if (given !== undefined) {
      if (this.pool.ownerOf(given) === undefined)
        throw new AgentError('NotFound', `${given} is not allocated (expired or released): allocate again`);
      if (this.#index.byIp(given) !== undefined)
        throw new AgentError('InvalidArgument', `${given} is already an endpoint's address`);
      const lease = this.#state.leases?.[given];
      if (lease !== undefined) {
        delete this.#state.leases![given];
        this.#leases.delete(given);
        undo.push(() => {
          this.#state.leases![given] = lease;
          this.#leases.set(given, lease.expiresAt);
        });
      }
      return given;
    }
    const { ip } = this.allocateIp(owner, {
      family,
      ...(pendingMs === undefined ? {} : { expiresInMs: pendingMs }),
    });
    undo.push(() => {
      this.pool.release(ip);
      this.#leases.delete(ip);
      delete this.#state.leases?.[ip];
    });
    return ip;
  }

  /** The IPv6 address of an attached pod that asks for one (dual stack), else undefined. */
  #podAddress6(
    pod: PodInput,
    attachment: PodAttachment | undefined,
    pendingMs: number | undefined,
    undo: (() => unknown)[],
  ): string | undefined {
    const a = pod as AttachedPodInput;
    const families = a.families ?? (a.ip6 === undefined ? [4] : [4, 6]);
    if (!families.includes(6)) return undefined;
    if (!families.includes(4))
      throw new AgentError(
        'NotSupported',
        'IPv6-only pods: the datapath, the policy engine and the ipcache know pods by their IPv4 address; ask for families [4, 6]',
      );
    if (attachment === undefined)
      throw new AgentError('NotSupported', 'IPv6 addresses are for attached pods (API, CNI) only');
    return this.#attachedAddress(attachment, a.ip6, 6, pendingMs, undo);
  }

  #teardownPod(rec: PodRecord): void {
    this.datapath.deleteEndpoint(rec.ip, rec.hostIfindex);
    this.datapath.detachEndpoint(this.node, rec.lxcId);
    removeEndpoint(endpointRef(rec), this.#nodeSync());
    if (rec.attachment === undefined) deleteNetnsIfPresent(rec.netns);
    this.#releasePod(rec);
  }

  async #teardownPodAsync(rec: PodRecord): Promise<void> {
    this.datapath.deleteEndpoint(rec.ip, rec.hostIfindex);
    await this.datapath.detachEndpointAsync(rec.lxcId);
    await removeEndpointAsync(endpointRef(rec), this.#nodeAsync());
    if (rec.attachment === undefined) deleteNetnsIfPresent(rec.netns);
    this.#releaseAddress(rec);
    // The conntrack walk and deletes through the async map forms (batch calls on the threadpool).
    const gone: Parameters<Parameters<Datapath['ct']['forEachAsync']>[0]>[0][] = [];
    await this.datapath.ct.forEachAsync((k) => {
      if (k.saddr === rec.ip || k.daddr === rec.ip) gone.push(k);
    });
    await this.datapath.ct.deleteManyAsync(gone);
  }

  /** After the kernel side of a pod went: its address, lease and connections. */
  #releasePod(rec: PodRecord): void {
    this.#releaseAddress(rec);
    for (const [k] of this.datapath.ct.dump()) {
      if (k.saddr === rec.ip || k.daddr === rec.ip) this.datapath.ct.delete(k);
    }
  }

  #releaseAddress(rec: PodRecord): void {
    for (const ip of rec.ip6 === undefined ? [rec.ip] : [rec.ip, rec.ip6]) {
      this.pool.release(ip);
      this.#leases.delete(ip);
      if (this.#state.leases?.[ip] !== undefined) delete this.#state.leases[ip];
    }
  }

  /**
   * Replaces the policy set (and optionally the enforcement mode): the policies that went, came or changed go
   * through the engine's incremental calls and only the map entries they change are written. Programs stay
   * attached.
   * @throws AgentError `InvalidScenario` listing every problem of the new policies (nothing changes then).
   */
  setPolicies(policies: readonly PolicyObject[], enforcement?: string): PolicySync {
    this.#check();
    const t = performance.now();
    const sync = this.#setPolicies(policies, enforcement);
    recordLatency(this.options.stateDir, 'policy_apply', (performance.now() - t) / 1000);
    return sync;
  }

  #setPolicies(policies: readonly PolicyObject[], enforcement?: string): PolicySync {
    let next: PolicyObject[];
    const changes: MapChange[] = [];
    try {
      next = validatePolicies(policies);
      const wanted = new Map<string, PolicyObject>();
      for (const p of next) {
        const id = policyId(p);
        if (wanted.has(id)) throw new AgentError('InvalidScenario', `policy ${id} is given twice`);
        wanted.set(id, p);
      }
      const current = new Map((this.#state.policies as PolicyObject[]).map((p) => [policyId(p), p]));
      for (const [id, p] of current)
        if (!wanted.has(id))
          changes.push(...this.#engine.deletePolicy(p.kind, p.metadata.namespace, p.metadata.name));
      for (const [id, p] of wanted) {
        const old = current.get(id);
        if (old === undefined || JSON.stringify(old) !== JSON.stringify(p))
          changes.push(...this.#engine.upsertPolicy(p));
      }
      if (enforcement !== undefined && enforcement !== this.#state.enforcement) {
        if (enforcement !== 'default' && enforcement !== 'always' && enforcement !== 'never')
          throw new AgentError('InvalidArgument', `enforcement ${enforcement}: default, always or never`);
        changes.push(...this.#engine.setEnforcement(enforcement));
      }
    } catch (err) {
      throw policyFailure(err);
    }
    const sync = this.#write(changes);
    this.#state.policies = next;
    if (enforcement !== undefined) this.#state.enforcement = enforcement;
    this.#persist({ fields: ['policies', 'enforcement'] });
    return sync;
  }

  #remoteSpec(r: RemotePodInput): PodSpec {
    const key = `${r.namespace}/${r.name}`;
    const old = this.#remote.get(key);
    let endpointId = old?.endpointId;
    if (endpointId === undefined) endpointId = this.#nextRemoteId++;
    const spec: PodSpec = {
      namespace: r.namespace,
      name: r.name,
      labels: { ...r.labels },
      ip: r.ip,
      endpointId,
    };
    if (old !== undefined) this.#remoteCidrs.delete(hostPrefix(old.spec.ip));
    this.#remote.set(key, { spec, endpointId, node: r.node });
    this.#remoteCidrs.add(hostPrefix(spec.ip));
    return spec;
  }

  /** The pods of other nodes the engine knows, by key (a copy: O(n); see {@link Agent.hasRemotePod}). */
  remotePods(): Map<string, PodSpec> {
    return new Map([...this.#remote].map(([k, v]) => [k, v.spec]));
  }

  /** The pod of another node the engine knows under this key (`namespace/name`), if any (read it, do not change it). */
  remotePod(key: string): Readonly<PodSpec> | undefined {
    return this.#remote.get(key)?.spec;
  }

  /** Whether the engine knows a pod of another node under this key (`namespace/name`). */
  hasRemotePod(key: string): boolean {
    return this.#remote.has(key);
  }

  /** The keys of the first `max` pods of other nodes the engine knows (in the order it learnt them). */
  remotePodKeys(max = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    for (const k of this.#remote.keys()) {
      if (out.length >= max) break;
      out.push(k);
    }
    return out;
  }

  /** How many pods of other nodes the engine knows. */
  get remotePodCount(): number {
    return this.#remote.size;
  }

  /**
   * Adds or changes a pod of another node: the engine gives it its (cluster-wide) identity and selects it in
   * every policy. Its ipcache entry is the cluster writer's (ipcache.ts): the caller writes it with the
   * identity {@link Agent.policy} gives the pod and the node it lives on.
   * @throws AgentError `InvalidArgument` (a local pod has this key or address), `InvalidScenario`.
   */
  upsertRemotePod(pod: RemotePodInput, options: { syncServices?: boolean } = {}): PolicySync {
    this.#check();
    const key = `${pod.namespace}/${pod.name}`;
    if (this.#state.pods[key] !== undefined)
      throw new AgentError('InvalidArgument', `remote pod ${key}: a local pod has this name`);
    const old = this.#remote.get(key)?.spec;
    if (old !== undefined && old.ip === pod.ip && sameLabels(old.labels ?? {}, pod.labels ?? {}))
      return this.#write([]);
    const changes: MapChange[] = [];
    try {
      if (!this.#state.namespaces[pod.namespace]) {
        changes.push(...this.#engine.upsertNamespace(pod.namespace, pod.namespaceLabels ?? {}));
        this.#state.namespaces[pod.namespace] = { labels: { ...(pod.namespaceLabels ?? {}) } };
      }
      if (old !== undefined && old.ip !== pod.ip)
        changes.push(...this.#engine.deletePod(pod.namespace, pod.name));
      changes.push(...this.#engine.upsertPod(this.#remoteSpec(pod)));
    } catch (err) {
      throw policyFailure(err);
    }
    const sync = this.#write(changes);
    if (options.syncServices !== false) this.#syncServicesLogged(`remote pod ${key}`);
    return sync;
  }

  /** Removes a pod of another node (it went, or its node did); unknown keys are ignored. */
  deleteRemotePod(namespace: string, name: string): PolicySync {
    this.#check();
    const key = `${namespace}/${name}`;
    const r = this.#remote.get(key);
    if (r === undefined) return this.#write([]);
    this.#remote.delete(key);
    this.#remoteCidrs.delete(hostPrefix(r.spec.ip));
    const sync = this.#write(this.#engine.deletePod(namespace, name), hostPrefix(r.spec.ip));
    this.#syncServicesLogged(`remote pod ${key} gone`);
    return sync;
  }

  /**
   * Sets (or, with `undefined`, removes) an ipcache entry beside the engine's: other nodes' underlay and
   * router addresses as `remote-node`. Kept across the engine's writes and the restart reconcile.
   */
  setNodeIpcache(prefix: string, value: IpcacheValue | undefined): void {
    this.#check();
    const old = this.#extraIpcache.get(prefix);
    if (value === undefined) {
      if (old === undefined) return;
      this.#extraIpcache.delete(prefix);
      if (!this.#engine.state().ipcache.has(prefix)) this.datapath.ipcache.delete(prefix);
    } else {
      if (old !== undefined && old.identity === value.identity && old.flags === value.flags) return;
      this.#extraIpcache.set(prefix, value);
      if (!this.#engine.state().ipcache.has(prefix)) this.datapath.ipcache.set(prefix, value);
    }
    this.datapath.bumpPolicyRevision();
  }

  /** Makes `ip` an outside address owned by the world namespace. */
  addWorldIp(ip: string): void {
    this.#check();
    if (this.#state.worldIps.includes(ip)) return;
    addWorldAddress(this.world, this.node, `${this.#state.prefix}w`, ip);
    this.#state.worldIps.push(ip);
    this.#persist({ fields: ['worldIps'] });
  }

  /** The compiled verdict of a flow, exactly as the datapath looks it up. */
  verdict(flow: FlowInput): 'allow' | 'deny' {
    return flowVerdict(this.#engine, flow);
  }

  /** Which rules decide a flow (what `cilium policy trace` printed). */
  explain(flow: FlowInput): string {
    return flowExplanation(this.#engine, flow);
  }

  /**
   * Writes the engine's changes (one map write each); a pod whose ipcache entry changed identity gets its
   * endpoint entries rewritten. Bumps the policy revision when anything was written, so established flows are
   * checked once against the new state (conntrack revision).
   */
  #write(changes: readonly MapChange[], alsoRemote?: string): PolicySync {
    // Remote pods' own policy is their node's business, and their ipcache entries (identity and tunnel
    // endpoint) are written by the cluster writer (ipcache.ts, IPCACHE_F_REMOTE): the engine's are dropped.
    const remote = this.#remoteCidrs;
    const local = changes.filter((c) =>
      c.map === 'policy'
        ? c.endpointId < REMOTE_ENDPOINT_BASE
        : !remote.has(c.prefix) && c.prefix !== alsoRemote,
    );
    return this.#finish(this.datapath.writeChanges(local), this.#identityChanges(local));
  }

  /** {@link Agent.#write} through the datapath's async writes (in order with the sync ones). */
  async #writeAsync(changes: readonly MapChange[]): Promise<PolicySync> {
    const remote = this.#remoteCidrs;
    const local = changes.filter((c) =>
      c.map === 'policy' ? c.endpointId < REMOTE_ENDPOINT_BASE : !remote.has(c.prefix),
    );
    const writes = await this.datapath.writeChangesAsync(local);
    return this.#finish(writes, this.#identityChanges(local));
  }

  /**
   * Whether this node writes the ipcache entry of `prefix` itself (its engine's entries: world, host, local
   * pods, policy CIDRs; and {@link Agent.setNodeIpcache}'s), as opposed to the cluster writer (ipcache.ts).
   */
  ownsIpcachePrefix(prefix: string): boolean {
    if (this.#extraIpcache.has(prefix)) return true;
    return this.#engine.state().ipcache.has(prefix) && !this.#remoteCidrs.has(prefix);
  }

  /** Restart and start: the maps brought to the engine's state by comparing with a dump of them. */
  #reconcile(): PolicySync {
    const state = this.#engine.state();
    const ipcache = new Map(this.#extraIpcache);
    for (const [p, v] of state.ipcache) if (!this.#remoteCidrs.has(p)) ipcache.set(p, v);
    const writes = this.datapath.reconcilePolicy(
      [...state.endpoints.values()].filter((e) => e.endpointId < REMOTE_ENDPOINT_BASE),
      ipcache,
    );
    const stale: PodRecord[] = [];
    for (const pod of this.pods()) {
      const id = state.endpoints.get(pod.key)?.identity ?? 0;
      if (id !== pod.identity || this.datapath.endpoints.get(pod.ip)?.secId !== id) stale.push(pod);
    }
    return this.#finish(writes, stale);
  }

  /** Pods whose identity the changes' ipcache entries say is no longer the one in their endpoint entries. */
  #identityChanges(changes: readonly MapChange[]): PodRecord[] {
    const out: PodRecord[] = [];
    for (const c of changes) {
      if (c.map !== 'ipcache' || c.op !== 'update') continue;
      const ip = c.prefix.endsWith('/32') ? c.prefix.slice(0, -3) : undefined;
      const pod = ip === undefined ? undefined : this.#index.byIp(ip);
      if (pod !== undefined && pod.ip === ip && pod.identity !== c.value!.identity) out.push(pod);
    }
    return out;
  }

  #finish(writes: MapWrites, stale: readonly PodRecord[]): PolicySync {
    const endpoints: Record<string, WriteCount> = {};
    let total = writes.ipcache.updated + writes.ipcache.deleted;
    for (const [lxcId, n] of writes.policy) {
      endpoints[this.#index.byLxc(lxcId)?.key ?? `endpoint ${lxcId}`] = n;
      total += n.updated + n.deleted;
    }
    const state = this.#engine.state();
    for (const pod of stale) {
      const identity = state.endpoints.get(pod.key)?.identity ?? 0;
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
      total += 2;
    }
    if (stale.length > 0 || this.#identities.changed) this.#persist({ pods: stale.map((p) => p.key) });
    const revision = total > 0 ? this.datapath.bumpPolicyRevision() : this.datapath.policyRevision();
    return { endpoints, ipcache: writes.ipcache, identitiesChanged: stale.length, writes: total, revision };
  }

  /**
   * Replaces the services: every service is checked first (schema, selectors resolved, frontends
   * unique across services, through `@datapath/lb`'s planner) and nothing is written when one is
   * invalid; then the socket LB is loaded on first use and only the services whose frontends or backends
   * changed get map updates. Returns the map updates written per lb service (`ns/name:port/PROTO`).
   * @throws AgentError `InvalidScenario` (nothing changed), `DatapathFailed`.
   */
  async setServices(services: readonly ServiceSpec[]): Promise<Map<string, number>> {
    this.#check();
    checkPlan(
      services.flatMap((s) => lbInputs(s, this.#backendPods(), this.#terminating(), this.#state.hostIp)),
    );
    if (this.#lb === undefined) {
      if (services.length === 0) return new Map();
      this.#lb = await ServiceLb.open(
        this.#state.prefix,
        this.#state.pinDir,
        this.#state.lb ?? DEFAULT_LB_SETTINGS,
      );
    }
    this.#state.services = services.map((s) => structuredClone(s));
    const written = this.#syncServices();
    this.#persist({ fields: ['services'] });
    await this.#ensureNodePort();
    return written;
  }

  /** The services (as given). */
  services(): ServiceSpec[] {
    return [...(this.#state.services ?? [])];
  }

  /**
   * Creates or replaces one service (`ns/name`), the others unchanged: checked with all of them first
   * (nothing is written when it is invalid), then only its lb services get map updates, and the state
   * records it (a restarted agent restores it). With `mustBeNew`, an existing service is a conflict.
   * @throws AgentError `InvalidScenario` (bad service), `ServiceConflict` (exists with `mustBeNew`, or a
   * frontend of another service), `DatapathFailed`.
   */
  async upsertService(
    spec: ServiceSpec,
    options: { mustBeNew?: boolean } = {},
  ): Promise<{ created: boolean; written: Map<string, number> }> {
    this.#check();
    const key = serviceKey(spec);
    const list = this.services();
    const i = list.findIndex((s) => serviceKey(s) === key);
    if (i >= 0 && options.mustBeNew === true)
      throw new AgentError('ServiceConflict', `service ${key} exists (PUT replaces it)`);
    const next = i < 0 ? [...list, spec] : list.map((s, j) => (j === i ? spec : s));
    try {
      return { created: i < 0, written: await this.setServices(next) };
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (
        err instanceof AgentError &&
        err.reason === 'InvalidScenario' &&
        isDatapathError(cause) &&
        cause.code === 'AlreadyExists'
      )
        throw new AgentError('ServiceConflict', err.message, { cause });
      throw err;
    }
  }

  /**
   * Removes one service: its lb services' entries leave the maps (removals in reverse order), so new
   * connections to its frontends are refused by nothing any more and go where the address routes.
   * @throws AgentError `NotFound`, `DatapathFailed`.
   */
  async deleteService(key: string): Promise<Map<string, number>> {
    this.#check();
    const list = this.services();
    if (!list.some((s) => serviceKey(s) === key)) throw new AgentError('NotFound', `no service ${key}`);
    return this.setServices(list.filter((s) => serviceKey(s) !== key));
  }

  /** Every service with its frontends and backends (pod, address, state), as `agent service list` shows it. */
  serviceViews(): ServiceView[] {
    return serviceViews(
      this.#state.services ?? [],
      this.#backendPods(),
      this.#terminating(),
      this.#state.hostIp,
    );
  }

  /**
   * Graceful termination of a pod: it stays up and keeps its flows, but as a backend it is marked
   * `terminating` in every service that selects it, so it gets no new connection. {@link removePod} then
   * removes it (and its backends). Idempotent.
   * @throws AgentError `NotFound` for an unknown pod, `DatapathFailed`.
   */
  terminatePod(key: string): Map<string, number> {
    this.#check();
    if (!this.#state.pods[key]) throw new AgentError('NotFound', `no pod ${key}`);
    return this.#drain(key);
  }

  /**
   * The frontend and live backends a probe to `svc/<ns>/<name>` reaches.
   * @throws AgentError `NotFound` for an unknown service or port.
   */
  serviceProbe(to: string, port: number, protocol: string, from?: string): ServiceProbePlan {
    return planServiceProbe(
      this.#state.services ?? [],
      to,
      port,
      protocol,
      this.#backendPods(),
      this.#terminating(),
      from?.startsWith('world:') ? this.#state.hostIp : undefined,
    );
  }

  /**
   * Runs `fn` with this process in the pod cgroup the socket LB is attached to, so the sockets it creates
   * (probes standing in for pod processes) reach services; without services, just runs it.
   */
  inPodCgroup<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lb === undefined ? fn() : this.#lb.inPodCgroup(fn);
  }

  /**
   * NodePort services and services with external IPs: the per-packet service path on the node's
   * world-facing device (`<prefix>w`), which serves both: `@datapath/lb`'s programs (local backends, external
   * IPs), and ahead of them the datapath's from_world (NodePort to backends on other nodes: SNAT to this
   * node's address, then the tunnel or the underlay).
   */
  async #ensureNodePort(): Promise<void> {
    const lb = this.#lb;
    if (lb === undefined || lb.nodePort) return;
    const world = (s: { ports: { nodePort?: number | undefined }[]; externalIPs?: string[] | undefined }) =>
      (s.externalIPs?.length ?? 0) > 0 || s.ports.some((p) => p.nodePort !== undefined);
    if (!(this.#state.services ?? []).some(world)) return;
    const dev = `${this.#state.prefix}w`;
    await lb.attachNodePort(this.#state.hostIp, dev, this.node);
    using h = Handle.open(this.node);
    this.datapath.attachWorld(this.node, linkGet(dev, { handle: h }).index);
  }

  /** Marks a backend pod terminating and writes it (before its teardown: no new flows reach it). */
  #drain(key: string): Map<string, number> {
    const state = this.#state;
    if ((state.services ?? []).length === 0 || state.terminating?.includes(key)) return new Map();
    state.terminating = [...(state.terminating ?? []), key];
    const written = this.#syncServices();
    this.#persist({ fields: ['terminating'] });
    return written;
  }

  /** After a pod went: it is no backend any more, nor terminating. */
  #forgetBackend(key: string): void {
    if (this.#state.terminating?.includes(key))
      this.#state.terminating = this.#state.terminating.filter((k) => k !== key);
    this.#syncServicesLogged(`pod ${key} removed`);
  }

  #terminating(): Set<string> {
    return new Set(this.#state.terminating ?? []);
  }

  /** Every pod a selector may pick: this node's and (in a cluster) the other nodes'. */
  #backendPods(): BackendPod[] {
    const local: BackendPod[] = Object.values(this.#state.pods).map((p) => ({
      key: p.key,
      namespace: p.ns,
      labels: p.labels,
      ip: p.ip,
      ports: p.ports,
    }));
    const remote: BackendPod[] = [...this.#remote].map(([key, { spec, node }]) => ({
      key,
      namespace: spec.namespace,
      labels: spec.labels ?? {},
      ip: spec.ip,
      ports: spec.ports,
      node: node ?? 'remote',
    }));
    return [...local, ...remote];
  }

  /** Writes the services' current backends (only changed services produce map updates). */
  #syncServices(): Map<string, number> {
    if (this.#lb === undefined) return new Map();
    const pods = this.#backendPods();
    const inputs = (this.#state.services ?? []).flatMap((s) =>
      lbInputs(s, pods, this.#terminating(), this.#state.hostIp),
    );
    const written = this.#lb.sync(inputs);
    // What the maps now hold, by pod, for `agent service list` (remote pods live only in memory).
    const view = JSON.stringify(this.serviceViews());
    if (view !== JSON.stringify(this.#state.serviceStatus ?? null)) {
      this.#state.serviceStatus = JSON.parse(view) as ServiceView[];
      this.#persist({ fields: ['serviceStatus'] });
    }
    return written;
  }

  /**
   * Writes the services' backends again from the pods the agent knows now (after
   * `upsertRemotePod(pod, { syncServices: false })` once the pod's ipcache entry is in). Returns the map
   * updates per lb service.
   * @throws AgentError `DatapathFailed`.
   */
  syncServices(): Map<string, number> {
    this.#check();
    return this.#syncServices();
  }

  /** {@link Agent.#syncServices} after a pod change that already happened: a failure is logged, not thrown. */
  #syncServicesLogged(why: string): void {
    try {
      const written = this.#syncServices();
      if (written.size > 0)
        this.options.log(
          `services: ${why}: ${[...written].map(([n, k]) => `${n} (${k} updates)`).join(', ')}`,
        );
    } catch (err) {
      this.options.log(`services: ${why}: ${(err as Error).message}`);
    }
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
    return { kind: 'pod', key: pod.key, ip: pod.ip, netnsPath: podNetnsPath(pod) };
  }

  /** Releases this process's handles (as {@link close}), for `using`: the agent keeps running in the kernel. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Releases this process's handles (as {@link close}), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Releases this process's handles; namespaces, programs, maps and state stay for the next one. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#leases.close();
    this.#lb?.close();
    this.#nodeHandle?.close();
    this.#nodeSyncHandle?.close();
    this.#store?.close();
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
      attempt(() => this.#lb?.destroy());
      attempt(() => this.close());
    }
    for (const pod of Object.values(this.#state.pods))
      if (!pod.attachment) attempt(() => deleteNetnsIfPresent(pod.netns));
    attempt(() => deleteNetnsIfPresent(this.#state.worldNetns));
    attempt(() => deleteNetnsIfPresent(this.#state.nodeNetns));
    attempt(() => rmSync(this.#state.pinDir, { recursive: true, force: true }));
    // The socket LB's cgroup, also when this process never opened the LB: a closed agent, or one restored after
    // its last service was deleted (no service, so no LB opened, yet the cgroup of the earlier one is there).
    attempt(() => removeCgroupIfPresent(this.#state.prefix));
    attempt(() => rmSync(this.options.stateDir, { recursive: true, force: true }));
    if (errors.length > 0) throw new AggregateError(errors, 'agent: could not remove everything');
  }

  /** Where the sync endpoint calls act: the node namespace, through the agent's sync handle there. */
  #nodeSync(): { hostNetns: Netns; hostHandle: Handle } {
    this.#nodeSyncHandle ??= this.node.run(() => Handle.open());
    return { hostNetns: this.node, hostHandle: this.#nodeSyncHandle };
  }

  /** Where the async endpoint calls act: the node namespace, through the agent's handle there. */
  #nodeAsync(): { hostNetns: Netns; hostHandle: Handle } {
    this.#nodeHandle ??= this.node.run(() => Handle.open());
    return { hostNetns: this.node, hostHandle: this.#nodeHandle };
  }

  #nodeRpFilterOff(): boolean {
    this.#rpFilterOff ??= ['all', 'default'].every(
      (c) => sysctlReadIn(this.node, `net.ipv4.conf.${c}.rp_filter`) === '0',
    );
    return this.#rpFilterOff;
  }

  /** Opens the state's writer: the state as a new snapshot (what a previous journal held is in it). */
  #openStore(): void {
    this.#state.identities = this.#identities.toJSON();
    this.#identities.changed = false;
    this.#savedNamespaces = Object.keys(this.#state.namespaces).length;
    this.#store = StateStore.open(this.options.stateDir, this.#state);
  }

  /** Writes the whole state as a new snapshot (with the identity table), the journal emptied. */
  #save(): void {
    this.#state.identities = this.#identities.toJSON();
    this.#identities.changed = false;
    this.#savedNamespaces = Object.keys(this.#state.namespaces).length;
    this.#store?.snapshot(this.#state);
  }

  /**
   * Persists one change before it is reported: one journal record per named pod and lease (its value now, or
   * its removal), per named field, and for the identity table and the namespaces when they changed; all in one
   * write. A journal grown past the snapshot is folded into a new one.
   */
  #persist(c: {
    pods?: readonly string[];
    leases?: readonly string[];
    ipam?: readonly string[];
    fields?: readonly StateField[];
  }): void {
    const st = this.#state;
    const records: StateRecord[] = [];
    for (const ip of c.ipam ?? []) records.push({ ipam: ip, value: this.pool.ownerOf(ip) ?? null });
    for (const key of c.pods ?? []) records.push({ pod: key, value: st.pods[key] ?? null });
    for (const ip of c.leases ?? []) records.push({ lease: ip, value: st.leases?.[ip] ?? null });
    const fields = new Set(c.fields);
    if (this.#identities.changed) {
      st.identities = this.#identities.toJSON();
      this.#identities.changed = false;
      fields.add('identities');
    }
    const namespaces = Object.keys(st.namespaces).length;
    if (namespaces !== this.#savedNamespaces) {
      this.#savedNamespaces = namespaces;
      fields.add('namespaces');
    }
    for (const f of fields) records.push({ field: f, value: st[f] ?? null });
    const store = this.#store;
    if (store === undefined) return;
    store.append(records);
    if (store.compactionDue) this.#save();
  }

  #check(): void {
    if (this.#closed) throw new AgentError('NotRunning', 'the agent is closed');
  }
}

/** Whether two label sets are the same (same keys, same values; key order does not matter). */
export function sameLabels(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  let n = 0;
  for (const k in a) {
    if (a[k] !== b[k]) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
}

/** The ipcache prefix of one address (`/32` or `/128`). */
function hostPrefix(ip: string): string {
  return `${ip}/${ip.includes(':') ? 128 : 32}`;
}
