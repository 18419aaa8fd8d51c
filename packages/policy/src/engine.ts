import { type IpAddress, prefixContains, tryParseIp } from '@datapath/ip';
import { PolicyError } from './errors.js';
import {
  type IdentityAllocator,
  type IdentityInfo,
  LocalIdentityAllocator,
  type NamedPort,
  RESERVED,
  type ReservedName,
} from './identity.js';
import {
  buildMapState,
  type Direction,
  type MapEntry,
  type MapState,
  type PolicyKey,
  type PolicyValue,
  portRangePrefixes,
  type RawEntry,
  sameValue,
} from './mapstate.js';
import { validatePolicies } from './parse.js';
import { type Prefix, tryParsePrefix } from './prefix.js';
import {
  CLUSTER_LABEL,
  type L34Rule,
  type NormalizedRule,
  NS_LABEL,
  NS_LABELS_PREFIX,
  normalizePolicy,
  type Peer,
  policyKey,
} from './rules.js';
import { selectorMatches } from './selector.js';
import type { PolicyKind, PolicyObject } from './types.js';

/** Policy enforcement mode, as Cilium's `--enable-policy`. */
export type EnforcementMode = 'default' | 'always' | 'never';

/** A container port of a pod. */
export interface PodPort {
  /** Port number. */
  port: number;
  /** `TCP` when omitted. */
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** Name that policies can use instead of the number. */
  name?: string;
}

/** A pod as the compiler sees it. */
export interface PodSpec {
  /** Namespace (must be known to the engine). */
  namespace: string;
  /** Pod name. */
  name: string;
  /** Pod labels. */
  labels?: Readonly<Record<string, string>>;
  /** The pod's IP (v4 or v6). */
  ip: string;
  /** Container ports (only named ones matter to policy). */
  ports?: readonly PodPort[];
}

/** The whole input of a compile: namespaces (with labels), pods and policy objects. */
export interface ClusterInput {
  /** Namespaces by name, with their labels (`kubernetes.io/metadata.name` is added automatically). */
  namespaces?: Readonly<Record<string, NamespaceSpec>>;
  /** Pods. */
  pods?: readonly PodSpec[];
  /** Policy objects, validated as by {@link validatePolicies}. */
  policies?: readonly unknown[];
}

/** A namespace as the compiler sees it. */
export interface NamespaceSpec {
  /** Namespace labels. */
  labels?: Readonly<Record<string, string>>;
}

/** Options of {@link PolicyEngine}. */
export interface EngineOptions {
  /** Enforcement mode; `default` when omitted. */
  enforcement?: EnforcementMode;
  /** Identity allocator; a fresh {@link LocalIdentityAllocator} when omitted. */
  allocator?: IdentityAllocator;
  /** Value of the `io.cilium.k8s.policy.cluster` label; `default` when omitted. */
  clusterName?: string;
  /** IPs of the local node, mapped to the host identity in the ipcache. */
  hostIPs?: readonly string[];
  /** When false every change recompiles everything (a baseline for benchmarks and tests). Default true. */
  incremental?: boolean;
}

/** Value of an ipcache entry: the identity of the prefix and flags (bit 0 local endpoint, bit 1 host). */
export interface IpcacheValue {
  /** Security identity of the prefix. */
  identity: number;
  /** `IPCACHE_FLAG_*` bits. */
  flags: number;
}

/** ipcache flag: the address is a pod (endpoint) on this node. */
export const IPCACHE_FLAG_LOCAL_ENDPOINT = 1;
/** ipcache flag: the address is the local node. */
export const IPCACHE_FLAG_HOST = 2;

/** The compiled state of one endpoint (pod). */
export interface EndpointState {
  /** `namespace/name`. */
  name: string;
  /** Endpoint id (policy map `cilium_policy_v2_<id>`), stable while the pod exists. */
  endpointId: number;
  /** The pod's security identity. */
  identity: number;
  /** The pod's IP. */
  ip: string;
  /** Its policy map. */
  policy: MapState;
}

/** The compiled state of a node: identities, ipcache, per-endpoint policy maps. A live, read-only view. */
export interface PolicyState {
  /** The enforcement mode compiled in. */
  enforcement: EnforcementMode;
  /** Every identity in use (reserved, pods, CIDR prefixes). */
  identities: ReadonlyMap<number, IdentityInfo>;
  /** Canonical prefix text (`10.244.1.5/32`) → value. */
  ipcache: ReadonlyMap<string, IpcacheValue>;
  /** By `namespace/name`. */
  endpoints: ReadonlyMap<string, EndpointState>;
}

/** One change to write to a BPF map, the output of every {@link PolicyEngine} mutation. */
export type MapChange = PolicyMapChange | IpcacheChange;

/** A change to one endpoint's policy map. */
export interface PolicyMapChange {
  /** Always `policy`. */
  map: 'policy';
  /** `update` inserts or overwrites; `delete` removes. */
  op: 'update' | 'delete';
  /** `namespace/name` of the endpoint. */
  endpoint: string;
  /** Its endpoint id (map `cilium_policy_v2_<id>`). */
  endpointId: number;
  /** The key. */
  key: PolicyKey;
  /** The new value (updates only). */
  value?: PolicyValue;
}

/** A change to the ipcache. */
export interface IpcacheChange {
  /** Always `ipcache`. */
  map: 'ipcache';
  /** `update` inserts or overwrites; `delete` removes. */
  op: 'update' | 'delete';
  /** Canonical prefix, e.g. `10.244.1.5/32`. */
  prefix: string;
  /** The new value (updates only). */
  value?: IpcacheValue;
}

/** Options of {@link PolicyEngine.load}. */
export interface LoadOptions {
  /**
   * When false, `load` returns no change list (an agent starting from empty maps writes each endpoint's map
   * whole, e.g. with `encodePolicyMap`); saves time and memory on large clusters. Default true.
   */
  changes?: boolean;
}

/** Where internal code records map changes (an array, or a sink that drops them). */
interface ChangeSink {
  push(change: MapChange): unknown;
}

const DISCARD: ChangeSink = { push: () => 0 };

interface PodRec {
  key: string;
  spec: PodSpec;
  ip: IpAddress;
  cidr: string;
  ports: NamedPortEntry[];
  portsSig: string;
  endpointId: number;
  baseKey: string;
  baseLabels: string[];
  k8s: Map<string, string>;
  identityKey?: string;
  identity: number;
  group?: Group | undefined;
}

interface NamedPortEntry extends NamedPort {
  name?: string | undefined;
}

interface Group {
  key: string;
  identity: number;
  ns: string;
  ports: NamedPortEntry[];
  pods: Set<PodRec>;
  rules: Set<NormalizedRule>;
  state: Map<string, MapEntry>;
}

interface IdentityRec {
  key: string;
  info: IdentityInfo;
  pods: Set<PodRec>;
  /** Base-label key of a pod identity. */
  base?: string;
}

const PROTO_NUM = { TCP: 6, UDP: 17, SCTP: 132 } as const;
const EMPTY_STATE: MapState = new Map();

function peerKey(p: Peer): string {
  switch (p.kind) {
    case 'all':
      return 'all';
    case 'selector':
      return `sel ${p.sel.text}`;
    case 'entity':
      return `entity ${p.entity}`;
    case 'cidr':
      return `cidr ${p.prefix.text} except ${p.except.map((e) => e.text).join(',')} pods=${p.pods}`;
  }
}

const CLUSTER_RESERVED: ReadonlySet<string> = new Set([
  'host',
  'remote-node',
  'init',
  'ingress',
  'health',
  'unmanaged',
  'kube-apiserver',
]);

/** True when identity `info` is one of the identities `peer` selects (never called for `all`). */
export function peerMatches(peer: Peer, info: IdentityInfo): boolean {
  switch (peer.kind) {
    case 'all':
      return true;
    case 'selector':
      return selectorMatches(peer.sel, info);
    case 'entity':
      switch (peer.entity) {
        case 'all':
          return true;
        case 'none':
          return false;
        case 'world':
          return info.kind === 'cidr' || info.reserved === 'world';
        case 'world-ipv4':
          return (info.kind === 'cidr' && info.prefix?.family === 4) || info.reserved === 'world';
        case 'world-ipv6':
          return (info.kind === 'cidr' && info.prefix?.family === 6) || info.reserved === 'world';
        case 'cluster':
          return info.kind === 'pod' || (info.reserved !== undefined && CLUSTER_RESERVED.has(info.reserved));
        case 'remote-node':
          return info.reserved === 'remote-node' || info.reserved === 'kube-apiserver';
        default:
          return info.reserved === peer.entity;
      }
    case 'cidr': {
      if (info.kind === 'cidr') {
        const p = info.prefix!;
        if (!prefixContains(peer.prefix, p)) return false;
        for (const e of peer.except) if (prefixContains(e, p)) return false;
        return true;
      }
      if (info.reserved === 'world') return peer.prefix.length === 0;
      if (info.kind === 'pod' && peer.pods && info.ipblocks !== undefined) {
        if (!info.ipblocks.has(peer.prefix.text)) return false;
        for (const e of peer.except) if (info.ipblocks.has(e.text)) return false;
        return true;
      }
      return false;
    }
  }
}

function sortedLabels(rec: Record<string, string>): [string, string][] {
  return Object.entries(rec).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Compiles policies, namespaces and pods into identities, an ipcache and per-endpoint policy maps, and keeps them
 * current: every mutation returns the minimal list of map changes that takes the previous state to the new one.
 *
 * @example Compiling a deny-all policy and checking a flow
 * ```ts
 * import { PolicyEngine, verdict } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * engine.load({
 *   namespaces: { x: {} },
 *   pods: [
 *     { namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { pod: 'a' } },
 *     { namespace: 'x', name: 'b', ip: '10.244.0.11', labels: { pod: 'b' } },
 *   ],
 *   policies: [{ kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'x' }, spec: { podSelector: {} } }],
 * });
 * console.log(verdict(engine.state(), { from: 'x/b', to: 'x/a', protocol: 'TCP', port: 80 }).verdict); // 'deny'
 * ```
 */
export class PolicyEngine {
  private enforcement: EnforcementMode;
  private readonly allocator: IdentityAllocator;
  private readonly clusterName: string;
  private readonly incremental: boolean;
  private readonly hostIPs: string[];

  private readonly namespaces = new Map<string, Record<string, string>>();
  private readonly pods = new Map<string, PodRec>();
  private readonly podsByIp = new Map<string, PodRec>();
  private readonly podsByBase = new Map<string, Set<PodRec>>();
  private readonly idsByBase = new Map<string, Set<number>>();
  private readonly policies = new Map<string, { obj: PolicyObject; rules: NormalizedRule[] }>();
  private readonly rulesByNs = new Map<string, Set<NormalizedRule>>();
  private readonly clusterRules = new Set<NormalizedRule>();

  private readonly identities = new Map<number, IdentityRec>();
  private readonly identityByKey = new Map<string, number>();
  private readonly infos = new Map<number, IdentityInfo>();
  private readonly podIdsByNs = new Map<string, Set<number>>();
  private ipblockSet: Prefix[] = [];
  private cidrSet: Prefix[] = [];

  private readonly peerCache = new Map<
    string,
    { peer: Peer; ids: Set<number>; rules: Set<NormalizedRule> }
  >();
  private readonly groups = new Map<string, Group>();
  private readonly groupsByNs = new Map<string, Set<Group>>();
  private readonly ruleGroups = new Map<NormalizedRule, Set<Group>>();
  private readonly ruleIds = new WeakMap<NormalizedRule, number>();
  private nextRuleId = 1;

  private readonly ipcache = new Map<string, IpcacheValue>();
  private readonly cidrIds = new Map<string, number>();
  private readonly endpoints = new Map<string, EndpointState>();
  private nextEndpointId = 1;
  private readonly stateView: PolicyState;

  constructor(options: EngineOptions = {}) {
    this.enforcement = options.enforcement ?? 'default';
    this.allocator = options.allocator ?? new LocalIdentityAllocator();
    this.clusterName = options.clusterName ?? 'default';
    this.incremental = options.incremental ?? true;
    this.hostIPs = [];
    for (const ip of options.hostIPs ?? []) {
      const p = tryParsePrefix(ip);
      if (p === undefined || p.length !== (p.family === 4 ? 32 : 128))
        throw new PolicyError('InvalidArgument', `hostIPs: not an IP address: ${JSON.stringify(ip)}`);
      this.hostIPs.push(p.text);
    }
    for (const [name, id] of Object.entries(RESERVED)) {
      this.infos.set(id, {
        id,
        kind: 'reserved',
        labels: [`reserved:${name}`],
        k8s: new Map(),
        reserved: name as ReservedName,
      });
    }
    const self = this;
    this.stateView = {
      get enforcement() {
        return self.enforcement;
      },
      identities: this.infos,
      ipcache: this.ipcache,
      endpoints: this.endpoints,
    };
    this.setWorldIpcache();
  }

  private setWorldIpcache(): void {
    this.ipcache.set('0.0.0.0/0', { identity: RESERVED.world, flags: 0 });
    this.ipcache.set('::/0', { identity: RESERVED.world, flags: 0 });
    for (const h of this.hostIPs) this.ipcache.set(h, { identity: RESERVED.host, flags: IPCACHE_FLAG_HOST });
  }

  /**
   * The compiled state (a live read-only view; it changes with the engine).
   *
   * @example Reading an endpoint's map
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * console.log(engine.state().endpoints.get('x/a')?.policy.size); // 2
   * ```
   */
  state(): PolicyState {
    return this.stateView;
  }

  /**
   * The rules selecting an endpoint and its named ports (what `explain` reports on).
   *
   * @internal
   * @throws {@link PolicyError} `NotFound` when the endpoint is unknown.
   */
  endpointRules(endpoint: string): { rules: NormalizedRule[]; ports: readonly PodPort[] } {
    const p = this.pods.get(endpoint);
    if (!p?.group) throw new PolicyError('NotFound', `no endpoint ${endpoint}`);
    return { rules: [...p.group.rules], ports: p.spec.ports ?? [] };
  }

  /**
   * The normalized rules of every loaded policy.
   * @internal
   */
  rules(): NormalizedRule[] {
    return [...this.policies.values()].flatMap((p) => p.rules);
  }

  /**
   * Loads a whole cluster at once (validating every policy first) and compiles it; returns the map changes.
   *
   * @throws {@link PolicyError} `InvalidPolicy` listing every problem (nothing is loaded), `InvalidArgument` for a
   * bad pod (IP, duplicate) or unknown namespace, `Exhausted` when identities run out.
   * @example Loading a cluster
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * console.log(engine.state().endpoints.size); // 1
   * ```
   */
  load(input: ClusterInput, options: LoadOptions = {}): MapChange[] {
    const policies = validatePolicies(input.policies ?? []);
    const seen = new Set<string>();
    for (const p of policies) {
      const k = policyKey(p);
      if (seen.has(k)) throw new PolicyError('InvalidPolicy', `duplicate policy ${k}`);
      seen.add(k);
    }
    const nsNames = new Set([...this.namespaces.keys(), ...Object.keys(input.namespaces ?? {})]);
    const recs = (input.pods ?? []).map((p) => this.makePod(p, nsNames));
    const ips = new Set<string>();
    for (const r of recs) {
      if (ips.has(r.cidr) || (this.podsByIp.has(r.cidr) && !this.pods.has(r.key)))
        throw new PolicyError('InvalidArgument', `pod ${r.key}: IP ${r.spec.ip} is used twice`);
      ips.add(r.cidr);
    }
    for (const [name, ns] of Object.entries(input.namespaces ?? {}))
      this.namespaces.set(name, { ...(ns.labels ?? {}) });
    for (const p of policies) this.setPolicy(p);
    for (const r of recs) {
      const old = this.pods.get(r.key);
      if (old) this.dropPod(old);
      this.addPod(r);
    }
    for (const r of this.pods.values()) this.computeBase(r);
    if (options.changes === false) {
      this.rebuildInto(DISCARD);
      return [];
    }
    return this.rebuild();
  }

  /**
   * Adds or replaces one policy and returns the map changes it causes.
   *
   * Equivalent to: `kubectl apply -f policy.yaml`.
   *
   * @throws {@link PolicyError} `InvalidPolicy` listing every problem (nothing changes).
   * @example Isolating a namespace
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * const changes = engine.upsertPolicy({ kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'x' }, spec: { podSelector: {} } });
   * console.log(changes.length); // 2: the ingress allow-all goes, the host allow comes
   * ```
   */
  upsertPolicy(policy: unknown): MapChange[] {
    const [p] = validatePolicies(policy);
    if (p === undefined) throw new PolicyError('InvalidPolicy', 'no policy given');
    const old = this.policies.get(policyKey(p));
    const dirty = new Set<Group>(old ? old.rules.flatMap((r) => [...(this.ruleGroups.get(r) ?? [])]) : []);
    const prefixesBefore = this.prefixSignature();
    if (old) this.unsetPolicy(old.rules);
    const rules = this.setPolicy(p);
    return this.afterPolicyChange(dirty, rules, prefixesBefore);
  }

  /**
   * Removes a policy and returns the map changes.
   *
   * Equivalent to: `kubectl delete networkpolicy NAME -n NS`.
   *
   * @throws {@link PolicyError} `NotFound` when no such policy is loaded.
   * @example Removing a policy
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * engine.upsertPolicy({ kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'x' }, spec: { podSelector: {} } });
   * engine.deletePolicy('NetworkPolicy', 'x', 'deny');
   * ```
   */
  deletePolicy(kind: PolicyKind, namespace: string | undefined, name: string): MapChange[] {
    const key = `${kind}/${kind === 'CiliumClusterwideNetworkPolicy' ? '' : (namespace ?? 'default')}/${name}`;
    const old = this.policies.get(key);
    if (!old) throw new PolicyError('NotFound', `no policy ${key}`);
    const dirty = new Set<Group>(old.rules.flatMap((r) => [...(this.ruleGroups.get(r) ?? [])]));
    const prefixesBefore = this.prefixSignature();
    this.unsetPolicy(old.rules);
    this.policies.delete(key);
    return this.afterPolicyChange(dirty, [], prefixesBefore);
  }

  /**
   * Adds or replaces a pod (its labels, IP, ports) and returns the map changes.
   *
   * @throws {@link PolicyError} `InvalidArgument` for a bad IP, an IP used by another pod or an unknown namespace.
   * @example Adding a pod
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * const changes = engine.upsertPod({ namespace: 'x', name: 'b', ip: '10.244.0.11', labels: { app: 'web' } });
   * console.log(changes.filter((c) => c.map === 'ipcache').length); // 1
   * ```
   */
  upsertPod(pod: PodSpec): MapChange[] {
    const rec = this.makePod(pod, new Set(this.namespaces.keys()));
    const clash = this.podsByIp.get(rec.cidr);
    if (clash && clash.key !== rec.key)
      throw new PolicyError('InvalidArgument', `pod ${rec.key}: IP ${pod.ip} is used by ${clash.key}`);
    if (!this.incremental) {
      const old = this.pods.get(rec.key);
      if (old) this.dropPod(old);
      this.addPod(rec);
      this.computeBase(rec);
      return this.rebuild();
    }
    const old = this.pods.get(rec.key);
    const bases = new Set<string>();
    if (old) {
      bases.add(old.baseKey);
      this.dropPod(old);
    }
    this.addPod(rec);
    this.computeBase(rec);
    bases.add(rec.baseKey);
    return this.incrementalUpdate(bases, new Set(), old ? [old, rec] : [rec]);
  }

  /**
   * Removes a pod and returns the map changes (its ipcache entry, and entries of maps that referred to its identity).
   *
   * @throws {@link PolicyError} `NotFound` when the pod is unknown.
   * @example Removing a pod
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * engine.deletePod('x', 'a');
   * ```
   */
  deletePod(namespace: string, name: string): MapChange[] {
    const old = this.pods.get(`${namespace}/${name}`);
    if (!old) throw new PolicyError('NotFound', `no pod ${namespace}/${name}`);
    this.dropPod(old);
    if (!this.incremental) return this.rebuild();
    return this.incrementalUpdate(new Set([old.baseKey]), new Set(), [old]);
  }

  /**
   * Adds a namespace or changes its labels (which re-identifies its pods); returns the map changes.
   *
   * Equivalent to: `kubectl label namespace NS k=v`.
   * @example Relabelling a namespace
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * engine.upsertNamespace('x', { team: 'red' });
   * ```
   */
  upsertNamespace(name: string, labels: Readonly<Record<string, string>> = {}): MapChange[] {
    this.namespaces.set(name, { ...labels });
    const affected = [...this.pods.values()].filter((p) => p.spec.namespace === name);
    const bases = new Set(affected.map((p) => p.baseKey));
    for (const p of affected) this.computeBase(p);
    for (const p of affected) bases.add(p.baseKey);
    if (!this.incremental) return this.rebuild();
    return this.incrementalUpdate(bases, new Set(), affected);
  }

  /**
   * Removes an empty namespace.
   *
   * @throws {@link PolicyError} `InvalidArgument` while pods remain in it, `NotFound` when unknown.
   * @example Removing an empty namespace
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * engine.upsertNamespace('y');
   * engine.deleteNamespace('y');
   * ```
   */
  deleteNamespace(name: string): MapChange[] {
    if (!this.namespaces.has(name)) throw new PolicyError('NotFound', `no namespace ${name}`);
    if ([...this.pods.values()].some((p) => p.spec.namespace === name))
      throw new PolicyError('InvalidArgument', `namespace ${name} still has pods`);
    this.namespaces.delete(name);
    return [];
  }

  /**
   * Switches the enforcement mode and returns the map changes (every endpoint is recompiled).
   *
   * Equivalent to: `cilium config PolicyEnforcement=always`.
   *
   * @example Default deny everywhere
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * engine.setEnforcement('always');
   * ```
   */
  setEnforcement(mode: EnforcementMode): MapChange[] {
    this.enforcement = mode;
    return this.rebuild();
  }

  /**
   * Recomputes everything from the inputs (identities keep their numbers) and returns the changes against the
   * current state — empty when the incremental path is correct.
   *
   * @throws {@link PolicyError} `Exhausted` when identities run out.
   * @example Checking the incremental state
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
   * const engine = new PolicyEngine();
   * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10', labels: { app: 'web' } }] });
   * console.log(engine.rebuild().length); // 0
   * ```
   */
  rebuild(): MapChange[] {
    const changes: MapChange[] = [];
    this.rebuildInto(changes);
    return changes;
  }

  private rebuildInto(changes: ChangeSink): void {
    this.refreshIdentities(null, changes);
    this.peerCache.clear();
    for (const r of this.pods.values()) r.group = undefined;
    this.groups.clear();
    this.groupsByNs.clear();
    this.ruleGroups.clear();
    for (const rules of this.allRules()) this.ruleGroups.set(rules, new Set());
    for (const r of [...this.pods.values()].sort((a, b) => (a.key < b.key ? -1 : 1))) this.placePod(r);
    const cache = new Map<string, Map<string, MapEntry>>();
    for (const g of this.groups.values()) this.computeGroup(g, cache);
    this.syncEndpoints([...this.pods.values()], changes);
  }

  // ---------------------------------------------------------------- inputs

  private makePod(p: PodSpec, namespaces: ReadonlySet<string>): PodRec {
    const key = `${p.namespace}/${p.name}`;
    if (!namespaces.has(p.namespace))
      throw new PolicyError('InvalidArgument', `pod ${key}: namespace ${p.namespace} does not exist`);
    const ip = tryParseIp(p.ip);
    if (ip === undefined)
      throw new PolicyError('InvalidArgument', `pod ${key}: not an IP address: ${JSON.stringify(p.ip)}`);
    const cidr = tryParsePrefix(p.ip)!.text;
    const ports: NamedPortEntry[] = (p.ports ?? []).map((x) => ({
      port: x.port,
      protocol: PROTO_NUM[x.protocol ?? 'TCP'],
      name: x.name,
    }));
    for (const x of ports)
      if (!Number.isInteger(x.port) || x.port < 1 || x.port > 65535)
        throw new PolicyError('InvalidArgument', `pod ${key}: port ${x.port} must be between 1 and 65535`);
    const named = ports.filter((x) => x.name !== undefined).map((x) => `${x.name}=${x.protocol}/${x.port}`);
    const existing = this.pods.get(key);
    return {
      key,
      spec: p,
      ip,
      cidr,
      ports,
      portsSig: [...new Set(named)].sort().join(','),
      endpointId: existing?.endpointId ?? this.nextEndpointId++,
      baseKey: '',
      baseLabels: [],
      k8s: new Map(),
      identity: 0,
    };
  }

  private addPod(r: PodRec): void {
    this.pods.set(r.key, r);
    this.podsByIp.set(r.cidr, r);
  }

  private dropPod(r: PodRec): void {
    this.unindexBase(r);
    this.pods.delete(r.key);
    if (this.podsByIp.get(r.cidr) === r) this.podsByIp.delete(r.cidr);
    const g = r.group;
    if (g) g.pods.delete(r);
  }

  private unindexBase(r: PodRec): void {
    const set = this.podsByBase.get(r.baseKey);
    if (!set) return;
    set.delete(r);
    if (set.size === 0) this.podsByBase.delete(r.baseKey);
  }

  private computeBase(r: PodRec): void {
    this.unindexBase(r);
    const ns = r.spec.namespace;
    const k8s = new Map<string, string>();
    for (const [k, v] of sortedLabels({ ...(r.spec.labels ?? {}) })) k8s.set(k, v);
    k8s.set(NS_LABEL, ns);
    const nsLabels = { 'kubernetes.io/metadata.name': ns, ...(this.namespaces.get(ns) ?? {}) };
    for (const [k, v] of sortedLabels(nsLabels)) k8s.set(NS_LABELS_PREFIX + k, v);
    k8s.set(CLUSTER_LABEL, this.clusterName);
    r.k8s = k8s;
    r.baseLabels = [...k8s.entries()].map(([k, v]) => `k8s:${k}=${v}`).sort();
    r.baseKey = r.baseLabels.join('\u0000');
    bucket(this.podsByBase, r.baseKey, () => new Set()).add(r);
  }

  private ruleId(r: NormalizedRule): number {
    return this.ruleIds.get(r)!;
  }

  private allRules(): NormalizedRule[] {
    return [...this.policies.values()].flatMap((p) => p.rules);
  }

  private setPolicy(p: PolicyObject): NormalizedRule[] {
    const rules = normalizePolicy(p);
    for (const r of rules) this.ruleIds.set(r, this.nextRuleId++);
    this.policies.set(policyKey(p), { obj: p, rules });
    for (const r of rules) {
      const ns = r.subject.reqs.find((q) => q.key === NS_LABEL && q.op === 'In')?.values[0];
      if (ns === undefined) this.clusterRules.add(r);
      else {
        const set = bucket(this.rulesByNs, ns, () => new Set());
        set.add(r);
      }
    }
    return rules;
  }

  private unsetPolicy(rules: readonly NormalizedRule[]): void {
    for (const r of rules) {
      this.clusterRules.delete(r);
      for (const set of this.rulesByNs.values()) set.delete(r);
      for (const g of this.ruleGroups.get(r) ?? []) g.rules.delete(r);
      this.ruleGroups.delete(r);
      for (const [k, pc] of this.peerCache) {
        pc.rules.delete(r);
        if (pc.rules.size === 0) this.peerCache.delete(k);
      }
    }
  }

  private prefixSignature(): string {
    const ipb = new Set<string>();
    const cidr = new Set<string>();
    for (const r of this.allRules()) {
      for (const p of r.ipblockPrefixes) ipb.add(p.text);
      for (const p of r.cidrPrefixes) cidr.add(p.text);
    }
    return `${[...ipb].sort().join(',')}|${[...cidr].sort().join(',')}`;
  }

  private afterPolicyChange(dirty: Set<Group>, rules: NormalizedRule[], prefixesBefore: string): MapChange[] {
    if (!this.incremental) return this.rebuild();
    const identitiesMayChange = this.prefixSignature() !== prefixesBefore;
    for (const r of rules) this.indexRule(r);
    for (const r of rules) for (const g of this.ruleGroups.get(r) ?? []) dirty.add(g);
    if (identitiesMayChange) return this.incrementalUpdate(null, dirty, []);
    const changes: MapChange[] = [];
    this.recomputeGroups(dirty, changes);
    return changes;
  }

  // ---------------------------------------------------------------- identities

  /**
   * Recomputes pod identities of the given base-label groups (all when null) and the CIDR identities; allocates
   * and releases numbers; updates the ipcache. Returns the ids that appeared, vanished or changed descriptor,
   * with their previous descriptors.
   */
  private refreshIdentities(
    bases: ReadonlySet<string> | null,
    changes: ChangeSink,
  ): Map<number, IdentityInfo | undefined> {
    const changed = new Map<number, IdentityInfo | undefined>();
    const touched = new Set<string>();
    if (bases === null) {
      const ipb = new Map<string, Prefix>();
      const cidr = new Map<string, Prefix>();
      for (const r of this.allRules()) {
        for (const p of r.ipblockPrefixes) ipb.set(p.text, p);
        for (const p of r.cidrPrefixes) if (p.length > 0) cidr.set(p.text, p);
      }
      this.ipblockSet = [...ipb.values()].sort((a, b) => (a.text < b.text ? -1 : 1));
      this.cidrSet = [...cidr.values()].sort((a, b) => (a.text < b.text ? -1 : 1));
      for (const prefix of this.ipcache.keys()) touched.add(prefix);
    }
    // Pods grouped by base labels.
    const byBase = new Map<string, PodRec[]>();
    for (const b of bases ?? [...this.podsByBase.keys()]) {
      const set = this.podsByBase.get(b);
      if (set && set.size > 0) byBase.set(b, [...set]);
    }
    const wanted = new Map<string, { labels: string[]; pods: PodRec[]; info: Omit<IdentityInfo, 'id'> }>();
    for (const pods of byBase.values()) {
      const member = pods.map(
        (p) => new Set(this.ipblockSet.filter((b) => prefixContains(b, p.ip)).map((b) => b.text)),
      );
      const uniform = new Set(
        this.ipblockSet
          .map((b) => b.text)
          .filter((t) => member.every((m) => m.has(t)) || member.every((m) => !m.has(t))),
      );
      pods.forEach((p, i) => {
        const extra = [...member[i]!].filter((t) => !uniform.has(t)).map((t) => `ipblock:${t}`);
        const labels = extra.length === 0 ? p.baseLabels : [...p.baseLabels, ...extra].sort();
        const key = `pod\u0000${labels.join('\u0000')}`;
        let w = wanted.get(key);
        if (!w) {
          w = { labels, pods: [], info: { kind: 'pod', labels, k8s: p.k8s, ipblocks: member[i]! } };
          wanted.set(key, w);
        }
        w.pods.push(p);
      });
    }
    for (const w of wanted.values()) {
      const named = new Map<string, NamedPort[]>();
      for (const p of w.pods)
        for (const x of p.ports) {
          if (x.name === undefined) continue;
          const list = bucket(named, x.name, () => []);
          if (!list.some((y) => y.port === x.port && y.protocol === x.protocol))
            list.push({ port: x.port, protocol: x.protocol });
        }
      for (const list of named.values()) list.sort((a, b) => a.protocol - b.protocol || a.port - b.port);
      w.info = { ...w.info, namedPorts: named };
    }
    if (bases === null) {
      for (const p of this.cidrSet) {
        const labels = ['reserved:world', `cidr:${p.text}`];
        wanted.set(`cidr\u0000${p.text}`, {
          labels,
          pods: [],
          info: { kind: 'cidr', labels, k8s: new Map(), prefix: p },
        });
      }
    }
    // Release identities no longer wanted (within scope).
    const candidates =
      bases === null
        ? [...this.identities.keys()]
        : [...bases].flatMap((b) => [...(this.idsByBase.get(b) ?? [])]);
    for (const id of candidates) {
      const rec = this.identities.get(id);
      if (!rec || wanted.has(rec.key)) continue;
      if (rec.base !== undefined) this.idsByBase.get(rec.base)?.delete(id);
      this.identities.delete(id);
      this.identityByKey.delete(rec.key);
      this.infos.delete(id);
      this.indexPodId(rec.info, id, false);
      if (rec.info.kind === 'cidr') {
        this.cidrIds.delete(rec.info.prefix!.text);
        touched.add(rec.info.prefix!.text);
      }
      changed.set(id, rec.info);
      this.allocator.release(id);
    }
    // Allocate or update wanted identities, in sorted order for determinism.
    for (const key of [...wanted.keys()].sort()) {
      const w = wanted.get(key)!;
      let id = this.identityByKey.get(key);
      let rec = id === undefined ? undefined : this.identities.get(id);
      if (!rec) {
        id = this.allocator.allocate(w.labels, w.info.kind === 'cidr' ? 'local' : 'cluster');
        rec = { key, info: { id, ...w.info }, pods: new Set() };
        const base = w.pods[0]?.baseKey;
        if (base !== undefined) {
          rec.base = base;
          bucket(this.idsByBase, base, () => new Set()).add(id);
        }
        this.identities.set(id, rec);
        this.identityByKey.set(key, id);
        this.infos.set(id, rec.info);
        this.indexPodId(rec.info, id, true);
        changed.set(id, undefined);
      } else if (!sameDescriptor(rec.info, w.info)) {
        if (!changed.has(id!)) changed.set(id!, rec.info);
        rec.info = { id: id!, ...w.info };
        this.infos.set(id!, rec.info);
      }
      rec.pods = new Set(w.pods);
      for (const p of w.pods) {
        p.identityKey = key;
        p.identity = id!;
      }
      if (w.info.kind === 'cidr') {
        this.cidrIds.set(w.info.prefix!.text, id!);
        touched.add(w.info.prefix!.text);
      }
    }
    // Pod ipcache entries.
    for (const pods of byBase.values()) for (const p of pods) touched.add(p.cidr);
    for (const prefix of [...touched].sort()) this.syncPrefix(prefix, changes);
    return changed;
  }

  private indexPodId(info: IdentityInfo, id: number, add: boolean): void {
    if (info.kind !== 'pod') return;
    const ns = info.k8s.get(NS_LABEL)!;
    const set = bucket(this.podIdsByNs, ns, () => new Set());
    if (add) set.add(id);
    else set.delete(id);
  }

  /** Sets the ipcache entry of a prefix to what it should be: host, else pod, else CIDR identity, else none. */
  private syncPrefix(prefix: string, changes: ChangeSink): void {
    if (prefix === '0.0.0.0/0' || prefix === '::/0') return;
    let value: IpcacheValue | undefined;
    const pod = this.podsByIp.get(prefix);
    const cidrId = this.cidrIds.get(prefix);
    if (this.hostIPs.includes(prefix)) value = { identity: RESERVED.host, flags: IPCACHE_FLAG_HOST };
    else if (pod) value = { identity: pod.identity, flags: IPCACHE_FLAG_LOCAL_ENDPOINT };
    else if (cidrId !== undefined) value = { identity: cidrId, flags: 0 };
    this.setIpcache(prefix, value, changes);
  }

  private setIpcache(prefix: string, value: IpcacheValue | undefined, changes: ChangeSink): void {
    const cur = this.ipcache.get(prefix);
    if (value === undefined) {
      if (cur === undefined) return;
      this.ipcache.delete(prefix);
      changes.push({ map: 'ipcache', op: 'delete', prefix });
    } else if (cur === undefined || cur.identity !== value.identity || cur.flags !== value.flags) {
      this.ipcache.set(prefix, value);
      changes.push({ map: 'ipcache', op: 'update', prefix, value });
    }
  }

  // ---------------------------------------------------------------- peers and groups

  /** Identities a peer selects: `0` alone means the wildcard. Cached. */
  private peerIds(peer: Peer, rule: NormalizedRule): Set<number> {
    const k = peerKey(peer);
    let c = this.peerCache.get(k);
    if (!c) {
      const ids = new Set<number>();
      if (peer.kind === 'all' || (peer.kind === 'entity' && peer.entity === 'all')) ids.add(0);
      else for (const info of this.candidates(peer)) if (peerMatches(peer, info)) ids.add(info.id);
      c = { peer, ids, rules: new Set() };
      this.peerCache.set(k, c);
    }
    c.rules.add(rule);
    return c.ids;
  }

  private candidates(peer: Peer): Iterable<IdentityInfo> {
    if (peer.kind === 'selector') {
      const ns = peer.sel.reqs.find((q) => q.key === NS_LABEL && q.op === 'In' && q.source !== 'reserved');
      if (ns)
        return ns.values.flatMap((n) => [...(this.podIdsByNs.get(n) ?? [])].map((id) => this.infos.get(id)!));
    }
    return this.infos.values();
  }

  private indexRule(rule: NormalizedRule): void {
    const set = new Set<Group>();
    this.ruleGroups.set(rule, set);
    const ns = rule.subject.reqs.find((q) => q.key === NS_LABEL && q.op === 'In')?.values[0];
    const groups = ns === undefined ? this.groups.values() : (this.groupsByNs.get(ns) ?? []);
    for (const g of groups) {
      if (selectorMatches(rule.subject, this.infos.get(g.identity)!)) {
        set.add(g);
        g.rules.add(rule);
      }
    }
  }

  /** Puts a pod in its group (identity × named ports), creating the group and its rule index on first use. */
  private placePod(p: PodRec): Group | undefined {
    const key = `${p.identity}|${p.portsSig}`;
    let g = this.groups.get(key);
    let created = false;
    if (!g) {
      const ns = p.spec.namespace;
      g = {
        key,
        identity: p.identity,
        ns,
        ports: p.ports,
        pods: new Set(),
        rules: new Set(),
        state: new Map(),
      };
      this.groups.set(key, g);
      const byNs = bucket(this.groupsByNs, ns, () => new Set());
      byNs.add(g);
      const info = this.infos.get(p.identity)!;
      for (const r of [...(this.rulesByNs.get(ns) ?? []), ...this.clusterRules]) {
        if (!selectorMatches(r.subject, info)) continue;
        g.rules.add(r);
        const set = bucket(this.ruleGroups, r, () => new Set());
        set.add(g);
      }
      created = true;
    }
    g.pods.add(p);
    p.group = g;
    return created ? g : undefined;
  }

  private removeGroup(g: Group): void {
    this.groups.delete(g.key);
    this.groupsByNs.get(g.ns)?.delete(g);
    for (const r of g.rules) this.ruleGroups.get(r)?.delete(g);
  }

  private computeGroup(g: Group, cache?: Map<string, Map<string, MapEntry>>): void {
    const rules = [...g.rules].sort((a, b) => this.ruleId(a) - this.ruleId(b));
    // Groups selected by the same rules compute the same map, unless ingress named ports resolve differently.
    const named = rules.some((r) =>
      r.ingress.rules.some((l) => l.ports !== 'all' && l.ports.some((p) => p.name !== undefined)),
    );
    const sig = `${rules.map((r) => this.ruleId(r)).join(',')}|${named ? g.ports.map((x) => `${x.name}=${x.protocol}/${x.port}`).join(',') : ''}`;
    const hit = cache?.get(sig);
    if (hit) {
      g.state = hit;
      return;
    }
    const raw: RawEntry[] = [];
    for (const dir of ['ingress', 'egress'] as const) {
      const enforcing = rules.filter((r) => r[dir].enforces);
      const enforced =
        this.enforcement === 'always' || (this.enforcement === 'default' && enforcing.length > 0);
      const all = (origin: string) =>
        raw.push({
          key: { direction: dir, identity: 0, protocol: 0, port: 0, prefixLen: 0 },
          deny: false,
          origins: [origin],
        });
      if (!enforced) {
        all(
          this.enforcement === 'never'
            ? 'enforcement mode never'
            : `no policy selects this endpoint for ${dir}`,
        );
        continue;
      }
      if (this.enforcement === 'default' && enforcing.every((r) => !r[dir].defaultDeny))
        all(`enableDefaultDeny.${dir}=false in every selecting policy`);
      for (const r of enforcing) for (const l of r[dir].rules) this.emit(g, dir, r, l, raw);
      if (dir === 'ingress')
        raw.push({
          key: { direction: dir, identity: RESERVED.host, protocol: 0, port: 0, prefixLen: 0 },
          deny: false,
          origins: ['the local host is always allowed in'],
        });
    }
    g.state = buildMapState(raw);
    cache?.set(sig, g.state);
  }

  private emit(g: Group, dir: Direction, rule: NormalizedRule, l: L34Rule, raw: RawEntry[]): void {
    const ids = new Set<number>();
    for (const p of l.peers) for (const id of this.peerIds(p, rule)) ids.add(id);
    const targets = ids.has(0) ? [0] : [...ids].sort((a, b) => a - b);
    if (targets.length === 0) return;
    const origins = [l.origin];
    const push = (identity: number, protocol: number, port: number, prefixLen: number) =>
      raw.push({ key: { direction: dir, identity, protocol, port, prefixLen }, deny: l.deny, origins });
    if (l.ports === 'all') {
      for (const id of targets) push(id, 0, 0, 0);
      return;
    }
    for (const ps of l.ports) {
      if (ps.name !== undefined) {
        if (dir === 'ingress') {
          for (const x of g.ports)
            if (x.name === ps.name && ps.protocols.includes(x.protocol))
              for (const id of targets) push(id, x.protocol, x.port, 24);
        } else {
          const peers =
            targets[0] === 0
              ? [...this.infos.values()].filter((i) => i.kind === 'pod').map((i) => i.id)
              : targets;
          for (const id of peers) {
            for (const x of this.infos.get(id)?.namedPorts?.get(ps.name) ?? [])
              if (ps.protocols.includes(x.protocol)) push(id, x.protocol, x.port, 24);
          }
        }
        continue;
      }
      for (const proto of ps.protocols)
        for (const b of portRangePrefixes(ps.port, ps.endPort))
          for (const id of targets) push(id, proto, b.port, b.prefixLen);
    }
  }

  // ---------------------------------------------------------------- incremental driver

  private incrementalUpdate(
    bases: Set<string> | null,
    dirty: Set<Group>,
    touchedPods: PodRec[],
  ): MapChange[] {
    const changes: MapChange[] = [];
    const changed = this.refreshIdentities(bases, changes);
    // Peer sets touched by identity changes → their rules' groups are dirty.
    const namedEgressDirty = changed.size > 0;
    for (const id of changed.keys()) {
      const now = this.infos.get(id);
      for (const pc of this.peerCache.values()) {
        if (pc.ids.has(0)) continue;
        const had = pc.ids.has(id);
        const has = now !== undefined && peerMatches(pc.peer, now);
        if (had === has) continue;
        if (has) pc.ids.add(id);
        else pc.ids.delete(id);
        for (const r of pc.rules) for (const g of this.ruleGroups.get(r) ?? []) dirty.add(g);
      }
    }
    for (const p of touchedPods) this.syncPrefix(p.cidr, changes);
    if (namedEgressDirty)
      for (const [r, groups] of this.ruleGroups)
        if (r.egress.rules.some((l) => l.ports !== 'all' && l.ports.some((p) => p.name !== undefined)))
          for (const g of groups) dirty.add(g);
    // Re-place pods whose group key changed (or every pod of the refreshed scope).
    const moved = new Set<PodRec>(touchedPods);
    const scope =
      bases === null
        ? [...this.pods.values()]
        : [...bases].flatMap((b) => [...(this.podsByBase.get(b) ?? [])]);
    for (const p of touchedPods) if (this.pods.get(p.key) === p) scope.push(p);
    for (const p of scope) {
      const key = `${p.identity}|${p.portsSig}`;
      if (p.group?.key === key) continue;
      if (p.group) p.group.pods.delete(p);
      const created = this.placePod(p);
      if (created) dirty.add(created);
      moved.add(p);
    }
    for (const g of [...this.groups.values()])
      if (g.pods.size === 0) {
        this.removeGroup(g);
        dirty.delete(g);
      }
    this.recomputeGroups(dirty, changes, moved);
    return changes;
  }

  private recomputeGroups(dirty: Set<Group>, changes: ChangeSink, moved: Set<PodRec> = new Set()): void {
    const pods = new Set<PodRec>(moved);
    const cache = new Map<string, Map<string, MapEntry>>();
    for (const g of dirty) {
      if (!this.groups.has(g.key)) continue;
      this.computeGroup(g, cache);
      for (const p of g.pods) pods.add(p);
    }
    this.syncEndpoints(
      [...pods].filter((p) => this.pods.get(p.key) === p),
      changes,
    );
  }

  /** Diffs each given endpoint's emitted map against its group's map; removes endpoints whose pod is gone. */
  private syncEndpoints(pods: PodRec[], changes: ChangeSink): void {
    for (const [key, ep] of [...this.endpoints]) {
      if (this.pods.has(key)) continue;
      diffMaps(ep, ep.policy, EMPTY_STATE, changes);
      this.endpoints.delete(key);
    }
    for (const p of pods.sort((a, b) => (a.key < b.key ? -1 : 1))) {
      const g = p.group!;
      let ep = this.endpoints.get(p.key);
      if (!ep) {
        ep = {
          name: p.key,
          endpointId: p.endpointId,
          identity: p.identity,
          ip: p.spec.ip,
          policy: EMPTY_STATE,
        };
        this.endpoints.set(p.key, ep);
      }
      if (ep.policy !== g.state && changes !== DISCARD) diffMaps(ep, ep.policy, g.state, changes);
      ep.policy = g.state;
      ep.identity = p.identity;
      ep.ip = p.spec.ip;
    }
  }
}

/** The value under `key`, created with `make` on first use. */
function bucket<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

function diffMaps(ep: EndpointState, before: MapState, after: MapState, changes: ChangeSink): void {
  if (before === after) return;
  for (const [k, e] of before)
    if (!after.has(k))
      changes.push({ map: 'policy', op: 'delete', endpoint: ep.name, endpointId: ep.endpointId, key: e.key });
  for (const [k, e] of after) {
    const old = before.get(k);
    if (!old || !sameValue(old.value, e.value))
      changes.push({
        map: 'policy',
        op: 'update',
        endpoint: ep.name,
        endpointId: ep.endpointId,
        key: e.key,
        value: e.value,
      });
  }
}

function sameDescriptor(a: Omit<IdentityInfo, 'id'>, b: Omit<IdentityInfo, 'id'>): boolean {
  const setEq = (x?: ReadonlySet<string>, y?: ReadonlySet<string>) =>
    (x?.size ?? 0) === (y?.size ?? 0) && [...(x ?? [])].every((v) => y?.has(v));
  const portsText = (m?: ReadonlyMap<string, readonly NamedPort[]>) =>
    [...(m ?? new Map<string, NamedPort[]>())]
      .map(([n, l]) => `${n}:${l.map((x) => `${x.protocol}/${x.port}`).join(',')}`)
      .sort()
      .join(';');
  return setEq(a.ipblocks, b.ipblocks) && portsText(a.namedPorts) === portsText(b.namedPorts);
}
