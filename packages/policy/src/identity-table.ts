// The identity table: which identities are in use (reserved, pods, CIDR prefixes), by number and by label key.
import { prefixContains } from '@datapath/ip';
import { bucket, type PodRec } from './engine-records.js';
import {
  type IdentityAllocator,
  type IdentityInfo,
  type NamedPort,
  RESERVED,
  type ReservedName,
} from './identity.js';
import type { PodTable } from './pod-table.js';
import type { Prefix } from './prefix.js';
import type { RuleIndex } from './rule-index.js';
import { NS_LABEL } from './rules.js';

interface IdentityRec {
  key: string;
  info: IdentityInfo;
  pods: Set<PodRec>;
  /** Base-label key of a pod identity. */
  base?: string;
}

/**
 * Identities in use and the allocator behind them. Pod identities are derived from base labels refined by the
 * ipBlocks a pod falls in; CIDR identities from the prefixes the rules name.
 */
export class IdentityTable {
  readonly #identities = new Map<number, IdentityRec>();
  readonly #byKey = new Map<string, number>();
  /** Every identity in use, by number (the public `identities` view). */
  readonly infos = new Map<number, IdentityInfo>();
  /** Pod identities by namespace. */
  readonly #podIdsByNs = new Map<string, Set<number>>();
  readonly #idsByBase = new Map<string, Set<number>>();
  #ipblockSet: Prefix[] = [];
  #cidrSet: Prefix[] = [];
  /** CIDR identities by canonical prefix. */
  readonly cidrIds = new Map<string, number>();

  constructor(private readonly allocator: IdentityAllocator) {
    for (const [name, id] of Object.entries(RESERVED)) {
      this.infos.set(id, {
        id,
        kind: 'reserved',
        labels: [`reserved:${name}`],
        k8s: new Map(),
        reserved: name as ReservedName,
      });
    }
  }

  /** Pod identities of namespace `ns`. */
  podIdsIn(ns: string): Iterable<number> {
    return this.#podIdsByNs.get(ns) ?? [];
  }

  /**
   * The cheap form of {@link IdentityTable.refresh} for pods added and dropped (`pods`: the dropped records, no
   * longer in the pod table, and the added ones): when no rule has an ipBlock (a pod's identity is its base
   * labels'), none of these pods has a named port (so no identity's named ports change), every added pod's
   * identity exists and every dropped pod leaves others in its base (no identity to release), the identities
   * of the other pods cannot change: only these pods are looked at. Returns false (nothing done) otherwise.
   */
  refreshPods(pods: readonly PodRec[], podTable: PodTable, touched: Set<string>): boolean {
    if (this.#ipblockSet.length > 0) return false;
    const ids: number[] = [];
    for (const p of pods) {
      if (p.portsSig !== '') return false;
      if (podTable.pods.get(p.key) === p) {
        const id = this.#byKey.get(`pod\u0000${p.baseKey}`);
        if (id === undefined || !this.#identities.has(id)) return false;
        ids.push(id);
      } else if ((podTable.byBase.get(p.baseKey)?.size ?? 0) === 0) return false;
    }
    let i = 0;
    for (const p of pods) {
      if (podTable.pods.get(p.key) !== p) {
        this.#identities.get(p.identity)?.pods.delete(p);
        continue;
      }
      const id = ids[i++]!;
      const rec = this.#identities.get(id)!;
      rec.pods.add(p);
      if (p.identity !== id) touched.add(p.cidr);
      p.identityKey = rec.key;
      p.identity = id;
    }
    return true;
  }

  /**
   * Recomputes pod identities of the given base-label groups (all when null) and, when null, the CIDR identities;
   * allocates and releases numbers. Adds every prefix whose ipcache entry may change to `touched`. Returns the ids
   * that appeared, vanished or changed descriptor, with their previous descriptors.
   */
  refresh(
    bases: ReadonlySet<string> | null,
    podTable: PodTable,
    rules: RuleIndex,
    touched: Set<string>,
  ): Map<number, IdentityInfo | undefined> {
    const changed = new Map<number, IdentityInfo | undefined>();
    if (bases === null) {
      const ipb = new Map<string, Prefix>();
      const cidr = new Map<string, Prefix>();
      for (const r of rules.all()) {
        for (const p of r.ipblockPrefixes) ipb.set(p.text, p);
        for (const p of r.cidrPrefixes) if (p.length > 0) cidr.set(p.text, p);
      }
      this.#ipblockSet = [...ipb.values()].sort((a, b) => (a.text < b.text ? -1 : 1));
      this.#cidrSet = [...cidr.values()].sort((a, b) => (a.text < b.text ? -1 : 1));
    }
    // Pods grouped by base labels.
    const byBase = new Map<string, PodRec[]>();
    for (const b of bases ?? [...podTable.byBase.keys()]) {
      const set = podTable.byBase.get(b);
      if (set && set.size > 0) byBase.set(b, [...set]);
    }
    const wanted = new Map<string, { labels: string[]; pods: PodRec[]; info: Omit<IdentityInfo, 'id'> }>();
    for (const pods of byBase.values()) {
      if (this.#ipblockSet.length === 0) {
        // No ipBlock in any rule: every pod of a base has the base's labels, one identity (no per-pod work).
        const p0 = pods[0]!;
        const key = `pod\u0000${p0.baseLabels.join('\u0000')}`;
        let w = wanted.get(key);
        if (!w) {
          const info = {
            kind: 'pod' as const,
            labels: p0.baseLabels,
            k8s: p0.k8s,
            ipblocks: new Set<string>(),
          };
          w = { labels: p0.baseLabels, pods: [], info };
          wanted.set(key, w);
        }
        for (const p of pods) w.pods.push(p);
        continue;
      }
      const member = pods.map(
        (p) => new Set(this.#ipblockSet.filter((b) => prefixContains(b, p.ip)).map((b) => b.text)),
      );
      const uniform = new Set(
        this.#ipblockSet
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
      for (const p of this.#cidrSet) {
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
        ? [...this.#identities.keys()]
        : [...bases].flatMap((b) => [...(this.#idsByBase.get(b) ?? [])]);
    for (const id of candidates) {
      const rec = this.#identities.get(id);
      if (!rec || wanted.has(rec.key)) continue;
      if (rec.base !== undefined) this.#idsByBase.get(rec.base)?.delete(id);
      this.#identities.delete(id);
      this.#byKey.delete(rec.key);
      this.infos.delete(id);
      this.#indexPodId(rec.info, id, false);
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
      let id = this.#byKey.get(key);
      let rec = id === undefined ? undefined : this.#identities.get(id);
      if (!rec) {
        id = this.allocator.allocate(w.labels, w.info.kind === 'cidr' ? 'local' : 'cluster');
        rec = { key, info: { id, ...w.info }, pods: new Set() };
        const base = w.pods[0]?.baseKey;
        if (base !== undefined) {
          rec.base = base;
          bucket(this.#idsByBase, base, () => new Set()).add(id);
        }
        this.#identities.set(id, rec);
        this.#byKey.set(key, id);
        this.infos.set(id, rec.info);
        this.#indexPodId(rec.info, id, true);
        changed.set(id, undefined);
      } else if (!sameDescriptor(rec.info, w.info)) {
        if (!changed.has(id!)) changed.set(id!, rec.info);
        rec.info = { id: id!, ...w.info };
        this.infos.set(id!, rec.info);
      }
      rec.pods = new Set(w.pods);
      for (const p of w.pods) {
        // A pod whose identity stays keeps its ipcache entry (a full refresh syncs every entry anyway).
        if (p.identity !== id || bases === null) touched.add(p.cidr);
        p.identityKey = key;
        p.identity = id!;
      }
      if (w.info.kind === 'cidr') {
        this.cidrIds.set(w.info.prefix!.text, id!);
        touched.add(w.info.prefix!.text);
      }
    }
    return changed;
  }

  #indexPodId(info: IdentityInfo, id: number, add: boolean): void {
    if (info.kind !== 'pod') return;
    const ns = info.k8s.get(NS_LABEL)!;
    const set = bucket(this.#podIdsByNs, ns, () => new Set());
    if (add) set.add(id);
    else set.delete(id);
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
