// The policy engine: a coordinator over the pod table, rule index, identity table, group index, ipcache and
// endpoint table. It validates inputs, decides which part of the state a change touches and collects the map
// changes the parts emit.

import { EndpointTable } from './endpoint-table.js';
import { type ChangeSink, DISCARD, type Group, type PodRec } from './engine-records.js';
import type {
  ClusterInput,
  EnforcementMode,
  EngineOptions,
  LoadOptions,
  MapChange,
  PodPort,
  PodSpec,
  PolicyState,
} from './engine-types.js';
import { PolicyError } from './errors.js';
import { GroupIndex } from './group-index.js';
import { type IdentityInfo, LocalIdentityAllocator } from './identity.js';
import { IdentityTable } from './identity-table.js';
import { IpcacheTable } from './ipcache-table.js';
import type { MapEntry } from './mapstate.js';
import { validatePolicies } from './parse.js';
import { PodTable } from './pod-table.js';
import { RuleIndex } from './rule-index.js';
import { type NormalizedRule, policyKey } from './rules.js';
import type { PolicyKind, PolicyObject } from './types.js';

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
  #enforcement: EnforcementMode;
  readonly #incremental: boolean;
  readonly #pods: PodTable;
  readonly #rules = new RuleIndex();
  readonly #identities: IdentityTable;
  readonly #ipcache: IpcacheTable;
  readonly #groups: GroupIndex;
  readonly #endpoints = new EndpointTable();
  readonly #stateView: PolicyState;

  constructor(options: EngineOptions = {}) {
    this.#enforcement = options.enforcement ?? 'default';
    this.#incremental = options.incremental ?? true;
    this.#pods = new PodTable(options.clusterName ?? 'default');
    this.#identities = new IdentityTable(options.allocator ?? new LocalIdentityAllocator());
    this.#ipcache = new IpcacheTable(options.hostIPs ?? [], {
      podIdentity: (prefix) => this.#pods.byIp.get(prefix)?.identity,
      cidrIdentity: (prefix) => this.#identities.cidrIds.get(prefix),
    });
    this.#groups = new GroupIndex(this.#identities, this.#rules, () => this.#enforcement);
    const self = this;
    this.#stateView = {
      get enforcement() {
        return self.#enforcement;
      },
      identities: this.#identities.infos,
      ipcache: this.#ipcache.entries,
      endpoints: this.#endpoints.entries,
    };
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
    return this.#stateView;
  }

  /**
   * The rules selecting an endpoint and its named ports (what `explain` reports on).
   *
   * @internal
   * @throws {@link PolicyError} `NotFound` when the endpoint is unknown.
   */
  endpointRules(endpoint: string): { rules: NormalizedRule[]; ports: readonly PodPort[] } {
    const p = this.#pods.pods.get(endpoint);
    if (!p?.group) throw new PolicyError('NotFound', `no endpoint ${endpoint}`);
    return { rules: [...p.group.rules], ports: p.spec.ports ?? [] };
  }

  /**
   * The normalized rules of every loaded policy.
   * @internal
   */
  rules(): NormalizedRule[] {
    return this.#rules.all();
  }

  /**
   * Loads a whole cluster at once (validating every policy first) and compiles it; returns the map changes.
   *
   * @throws {@link PolicyError} `InvalidPolicy` listing every problem (nothing is loaded), `InvalidArgument` for a
   * bad pod (IP, duplicate IP or endpoint id) or unknown namespace, `Exhausted` when identities run out.
   * @example Loading a cluster
   * ```ts
   * import { PolicyEngine } from '@datapath/policy';
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
    const nsNames = new Set([...this.#pods.namespaces.keys(), ...Object.keys(input.namespaces ?? {})]);
    const asked = new Set<number>();
    for (const p of input.pods ?? []) {
      if (p.endpointId === undefined) continue;
      if (asked.has(p.endpointId))
        throw new PolicyError(
          'InvalidArgument',
          `pod ${p.namespace}/${p.name}: endpoint id ${p.endpointId} is used twice`,
        );
      asked.add(p.endpointId);
    }
    const recs = (input.pods ?? []).map((p) => this.#pods.make(p, nsNames, asked));
    const ips = new Set<string>();
    for (const r of recs) {
      if (ips.has(r.cidr) || (this.#pods.byIp.has(r.cidr) && !this.#pods.pods.has(r.key)))
        throw new PolicyError('InvalidArgument', `pod ${r.key}: IP ${r.spec.ip} is used twice`);
      ips.add(r.cidr);
    }
    for (const [name, ns] of Object.entries(input.namespaces ?? {}))
      this.#pods.namespaces.set(name, { ...(ns.labels ?? {}) });
    for (const p of policies) this.#rules.set(p);
    for (const r of recs) {
      const old = this.#pods.pods.get(r.key);
      if (old) this.#pods.drop(old);
      this.#pods.add(r);
    }
    for (const r of this.#pods.pods.values()) this.#pods.computeBase(r);
    if (options.changes === false) {
      this.#rebuildInto(DISCARD);
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
  upsertPolicy(policy: PolicyObject): MapChange[] {
    const [p] = validatePolicies(policy);
    if (p === undefined) throw new PolicyError('InvalidPolicy', 'no policy given');
    const old = this.#rules.policies.get(policyKey(p));
    const dirty = old ? this.#dirtyOf(old.rules) : new Set<Group>();
    this.#rules.markPrefixes();
    if (old) this.#unsetPolicy(old.rules);
    const rules = this.#rules.set(p);
    return this.#afterPolicyChange(dirty, rules);
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
    const old = this.#rules.policies.get(key);
    if (!old) throw new PolicyError('NotFound', `no policy ${key}`);
    const dirty = this.#dirtyOf(old.rules);
    this.#rules.markPrefixes();
    this.#unsetPolicy(old.rules);
    this.#rules.delete(key);
    return this.#afterPolicyChange(dirty, []);
  }

  /**
   * Adds or replaces a pod (its labels, IP, ports) and returns the map changes.
   *
   * @throws {@link PolicyError} `InvalidArgument` for a bad IP, an IP or endpoint id used by another pod, a changed endpoint id or an unknown namespace.
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
    const rec = this.#pods.make(pod, new Set(this.#pods.namespaces.keys()));
    const clash = this.#pods.byIp.get(rec.cidr);
    if (clash && clash.key !== rec.key)
      throw new PolicyError('InvalidArgument', `pod ${rec.key}: IP ${pod.ip} is used by ${clash.key}`);
    if (!this.#incremental) {
      const old = this.#pods.pods.get(rec.key);
      if (old) this.#pods.drop(old);
      this.#pods.add(rec);
      this.#pods.computeBase(rec);
      return this.rebuild();
    }
    const old = this.#pods.pods.get(rec.key);
    const bases = new Set<string>();
    if (old) {
      bases.add(old.baseKey);
      this.#pods.drop(old);
    }
    this.#pods.add(rec);
    this.#pods.computeBase(rec);
    bases.add(rec.baseKey);
    return this.#incrementalUpdate(bases, new Set(), old ? [old, rec] : [rec], true);
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
    const old = this.#pods.pods.get(`${namespace}/${name}`);
    if (!old) throw new PolicyError('NotFound', `no pod ${namespace}/${name}`);
    this.#pods.drop(old);
    if (!this.#incremental) return this.rebuild();
    return this.#incrementalUpdate(new Set([old.baseKey]), new Set(), [old], true);
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
    this.#pods.namespaces.set(name, { ...labels });
    const affected = [...this.#pods.pods.values()].filter((p) => p.spec.namespace === name);
    const bases = new Set(affected.map((p) => p.baseKey));
    for (const p of affected) this.#pods.computeBase(p);
    for (const p of affected) bases.add(p.baseKey);
    if (!this.#incremental) return this.rebuild();
    return this.#incrementalUpdate(bases, new Set(), affected);
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
    if (!this.#pods.namespaces.has(name)) throw new PolicyError('NotFound', `no namespace ${name}`);
    if ([...this.#pods.pods.values()].some((p) => p.spec.namespace === name))
      throw new PolicyError('InvalidArgument', `namespace ${name} still has pods`);
    this.#pods.namespaces.delete(name);
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
    this.#enforcement = mode;
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
    this.#rebuildInto(changes);
    return changes;
  }

  #rebuildInto(changes: ChangeSink): void {
    this.#refreshIdentities(null, changes);
    for (const r of this.#pods.pods.values()) r.group = undefined;
    this.#groups.reset();
    for (const r of [...this.#pods.pods.values()].sort((a, b) => (a.key < b.key ? -1 : 1)))
      this.#groups.placePod(r);
    const cache = new Map<string, Map<string, MapEntry>>();
    for (const g of this.#groups.groups.values()) this.#groups.computeGroup(g, cache);
    this.#endpoints.sync([...this.#pods.pods.values()], this.#pods.pods, changes);
  }

  // ---------------------------------------------------------------- policies

  #unsetPolicy(rules: readonly NormalizedRule[]): void {
    this.#rules.unset(rules);
    this.#groups.dropRules(rules);
  }

  #dirtyOf(rules: readonly NormalizedRule[]): Set<Group> {
    return new Set<Group>(rules.flatMap((r) => [...this.#groups.groupsOf(r)]));
  }

  #afterPolicyChange(dirty: Set<Group>, rules: NormalizedRule[]): MapChange[] {
    if (!this.#incremental) return this.rebuild();
    const identitiesMayChange = this.#rules.prefixesChanged();
    for (const r of rules) this.#groups.indexRule(r);
    for (const r of rules) for (const g of this.#groups.groupsOf(r)) dirty.add(g);
    if (identitiesMayChange) return this.#incrementalUpdate(null, dirty, []);
    const changes: MapChange[] = [];
    this.#recomputeGroups(dirty, changes);
    return changes;
  }

  // ---------------------------------------------------------------- identities and ipcache

  /** Refreshes identities (of `bases`, all when null) and brings every touched ipcache entry up to date. */
  #refreshIdentities(bases: ReadonlySet<string> | null, changes: ChangeSink) {
    const touched = new Set<string>();
    if (bases === null) for (const prefix of this.#ipcache.entries.keys()) touched.add(prefix);
    const changed = this.#identities.refresh(bases, this.#pods, this.#rules, touched);
    for (const prefix of [...touched].sort()) this.#ipcache.sync(prefix, changes);
    return changed;
  }

  // ---------------------------------------------------------------- incremental driver

  /**
   * `podsOnly`: the change is pods added or dropped (old records dropped, new ones added): when their identities
   * exist already and no other pod's can change (IdentityTable.refreshPods), only they are re-placed, whatever
   * the size of their label sets.
   */
  #incrementalUpdate(
    bases: Set<string> | null,
    dirty: Set<Group>,
    touchedPods: PodRec[],
    podsOnly = false,
  ): MapChange[] {
    const changes: MapChange[] = [];
    let changed: Map<number, IdentityInfo | undefined>;
    let scoped = true;
    const touched = new Set<string>();
    if (podsOnly && bases !== null && this.#identities.refreshPods(touchedPods, this.#pods, touched)) {
      for (const prefix of [...touched].sort()) this.#ipcache.sync(prefix, changes);
      changed = new Map();
      scoped = false;
    } else changed = this.#refreshIdentities(bases, changes);
    // Peer sets touched by identity changes → their rules' groups are dirty.
    this.#groups.identitiesChanged(changed, dirty);
    for (const p of touchedPods) this.#ipcache.sync(p.cidr, changes);
    // Re-place pods whose group key changed (or every pod of the refreshed scope).
    const pods = this.#pods;
    const moved = new Set<PodRec>(touchedPods);
    const scope = !scoped
      ? []
      : bases === null
        ? [...pods.pods.values()]
        : [...bases].flatMap((b) => [...(pods.byBase.get(b) ?? [])]);
    for (const p of touchedPods) if (pods.pods.get(p.key) === p) scope.push(p);
    for (const p of scope) {
      const key = `${p.identity}|${p.portsSig}`;
      if (p.group?.key === key) continue;
      if (p.group) p.group.pods.delete(p);
      const created = this.#groups.placePod(p);
      if (created) dirty.add(created);
      moved.add(p);
    }
    this.#groups.pruneEmpty(dirty);
    this.#recomputeGroups(dirty, changes, moved);
    return changes;
  }

  #recomputeGroups(dirty: Set<Group>, changes: ChangeSink, moved: Set<PodRec> = new Set()): void {
    const pods = new Set<PodRec>(moved);
    const cache = new Map<string, Map<string, MapEntry>>();
    for (const g of dirty) {
      if (!this.#groups.groups.has(g.key)) continue;
      this.#groups.computeGroup(g, cache);
      for (const p of g.pods) pods.add(p);
    }
    const live = this.#pods.pods;
    // Endpoints go only with their pods, and a dropped pod is always among the moved ones.
    const gone = [...moved].filter((p) => !live.has(p.key)).map((p) => p.key);
    this.#endpoints.sync(
      [...pods].filter((p) => live.get(p.key) === p),
      live,
      changes,
      gone,
    );
  }
}
