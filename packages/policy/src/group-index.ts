// The group index: endpoints grouped by (identity, named ports), the rules selecting each group, the identities
// each rule peer selects, and each group's compiled policy map.
import { bucket, type Group, type PodRec } from './engine-records.js';
import type { EnforcementMode } from './engine-types.js';
import { type IdentityInfo, RESERVED } from './identity.js';
import type { IdentityTable } from './identity-table.js';
import {
  buildMapState,
  type Direction,
  type MapEntry,
  portRangePrefixes,
  type RawEntry,
} from './mapstate.js';
import { peerKey, peerMatches } from './peers.js';
import { type RuleIndex, ruleNamespace } from './rule-index.js';
import { type L34Rule, type NormalizedRule, NS_LABEL, type Peer } from './rules.js';
import { selectorMatches } from './selector.js';

/** Groups of endpoints that share a policy map, and what each map is compiled from. */
export class GroupIndex {
  readonly #peerCache = new Map<string, { peer: Peer; ids: Set<number>; rules: Set<NormalizedRule> }>();
  /** Groups by `identity|named ports`. */
  readonly groups = new Map<string, Group>();
  readonly #byNs = new Map<string, Set<Group>>();
  readonly #ruleGroups = new Map<NormalizedRule, Set<Group>>();

  constructor(
    private readonly identities: IdentityTable,
    private readonly rules: RuleIndex,
    private readonly enforcement: () => EnforcementMode,
  ) {}

  /** Forgets every group and peer set (a rebuild); every loaded rule starts with no group. */
  reset(): void {
    this.#peerCache.clear();
    this.groups.clear();
    this.#byNs.clear();
    this.#ruleGroups.clear();
    for (const r of this.rules.all()) this.#ruleGroups.set(r, new Set());
  }

  /** Groups a rule selects. */
  groupsOf(rule: NormalizedRule): Iterable<Group> {
    return this.#ruleGroups.get(rule) ?? [];
  }

  /** Forgets rules that are being removed: their group links and the peer sets only they used. */
  dropRules(rules: readonly NormalizedRule[]): void {
    for (const r of rules) {
      for (const g of this.#ruleGroups.get(r) ?? []) g.rules.delete(r);
      this.#ruleGroups.delete(r);
      for (const [k, pc] of this.#peerCache) {
        pc.rules.delete(r);
        if (pc.rules.size === 0) this.#peerCache.delete(k);
      }
    }
  }

  /**
   * Updates the cached peer sets for identities that appeared, vanished or changed; marks the groups of rules
   * whose peers changed dirty (and, when anything changed, groups with named egress ports).
   */
  identitiesChanged(changed: ReadonlyMap<number, unknown>, dirty: Set<Group>): void {
    for (const id of changed.keys()) {
      const now = this.identities.infos.get(id);
      for (const pc of this.#peerCache.values()) {
        if (pc.ids.has(0)) continue;
        const had = pc.ids.has(id);
        const has = now !== undefined && peerMatches(pc.peer, now);
        if (had === has) continue;
        if (has) pc.ids.add(id);
        else pc.ids.delete(id);
        for (const r of pc.rules) for (const g of this.#ruleGroups.get(r) ?? []) dirty.add(g);
      }
    }
    if (changed.size > 0)
      for (const [r, groups] of this.#ruleGroups)
        if (r.egress.rules.some((l) => l.ports !== 'all' && l.ports.some((p) => p.name !== undefined)))
          for (const g of groups) dirty.add(g);
  }

  /** Removes groups left without pods (and from `dirty`). */
  pruneEmpty(dirty: Set<Group>): void {
    for (const g of [...this.groups.values()])
      if (g.pods.size === 0) {
        this.#removeGroup(g);
        dirty.delete(g);
      }
  }

  /** Identities a peer selects: `0` alone means the wildcard. Cached. */
  #peerIds(peer: Peer, rule: NormalizedRule): Set<number> {
    const k = peerKey(peer);
    let c = this.#peerCache.get(k);
    if (!c) {
      const ids = new Set<number>();
      if (peer.kind === 'all' || (peer.kind === 'entity' && peer.entity === 'all')) ids.add(0);
      else for (const info of this.#candidates(peer)) if (peerMatches(peer, info)) ids.add(info.id);
      c = { peer, ids, rules: new Set() };
      this.#peerCache.set(k, c);
    }
    c.rules.add(rule);
    return c.ids;
  }

  #candidates(peer: Peer): Iterable<IdentityInfo> {
    const infos = this.identities.infos;
    if (peer.kind === 'selector') {
      const ns = peer.sel.reqs.find((q) => q.key === NS_LABEL && q.op === 'In' && q.source !== 'reserved');
      if (ns) return ns.values.flatMap((n) => [...this.identities.podIdsIn(n)].map((id) => infos.get(id)!));
    }
    return infos.values();
  }

  /** Links a new rule to the existing groups it selects. */
  indexRule(rule: NormalizedRule): void {
    const set = new Set<Group>();
    this.#ruleGroups.set(rule, set);
    const ns = ruleNamespace(rule);
    const groups = ns === undefined ? this.groups.values() : (this.#byNs.get(ns) ?? []);
    for (const g of groups) {
      if (selectorMatches(rule.subject, this.identities.infos.get(g.identity)!)) {
        set.add(g);
        g.rules.add(rule);
      }
    }
  }

  /** Puts a pod in its group (identity × named ports), creating the group and its rule index on first use. */
  placePod(p: PodRec): Group | undefined {
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
      const byNs = bucket(this.#byNs, ns, () => new Set());
      byNs.add(g);
      const info = this.identities.infos.get(p.identity)!;
      for (const r of this.rules.forNamespace(ns)) {
        if (!selectorMatches(r.subject, info)) continue;
        g.rules.add(r);
        const set = bucket(this.#ruleGroups, r, () => new Set());
        set.add(g);
      }
      created = true;
    }
    g.pods.add(p);
    p.group = g;
    return created ? g : undefined;
  }

  #removeGroup(g: Group): void {
    this.groups.delete(g.key);
    this.#byNs.get(g.ns)?.delete(g);
    for (const r of g.rules) this.#ruleGroups.get(r)?.delete(g);
  }

  computeGroup(g: Group, cache?: Map<string, Map<string, MapEntry>>): void {
    const rules = [...g.rules].sort((a, b) => this.rules.id(a) - this.rules.id(b));
    // Groups selected by the same rules compute the same map, unless ingress named ports resolve differently.
    const named = rules.some((r) =>
      r.ingress.rules.some((l) => l.ports !== 'all' && l.ports.some((p) => p.name !== undefined)),
    );
    const sig = `${rules.map((r) => this.rules.id(r)).join(',')}|${named ? g.ports.map((x) => `${x.name}=${x.protocol}/${x.port}`).join(',') : ''}`;
    const hit = cache?.get(sig);
    if (hit) {
      g.state = hit;
      return;
    }
    const raw: RawEntry[] = [];
    for (const dir of ['ingress', 'egress'] as const) {
      const enforcing = rules.filter((r) => r[dir].enforces);
      const enforced =
        this.enforcement() === 'always' || (this.enforcement() === 'default' && enforcing.length > 0);
      const all = (origin: string) =>
        raw.push({
          key: { direction: dir, identity: 0, protocol: 0, port: 0, prefixLen: 0 },
          deny: false,
          origins: [origin],
        });
      if (!enforced) {
        all(
          this.enforcement() === 'never'
            ? 'enforcement mode never'
            : `no policy selects this endpoint for ${dir}`,
        );
        continue;
      }
      if (this.enforcement() === 'default' && enforcing.every((r) => !r[dir].defaultDeny))
        all(`enableDefaultDeny.${dir}=false in every selecting policy`);
      for (const r of enforcing) for (const l of r[dir].rules) this.#emit(g, dir, r, l, raw);
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

  #emit(g: Group, dir: Direction, rule: NormalizedRule, l: L34Rule, raw: RawEntry[]): void {
    const ids = new Set<number>();
    for (const p of l.peers) for (const id of this.#peerIds(p, rule)) ids.add(id);
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
              ? [...this.identities.infos.values()].filter((i) => i.kind === 'pod').map((i) => i.id)
              : targets;
          for (const id of peers) {
            for (const x of this.identities.infos.get(id)?.namedPorts?.get(ps.name) ?? [])
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
}
