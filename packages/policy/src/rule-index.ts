// The loaded policies and their normalized rules, indexed by the namespace they select in.
import { bucket } from './engine-records.js';
import { type NormalizedRule, NS_LABEL, normalizePolicy, policyKey } from './rules.js';
import type { PolicyObject } from './types.js';

/** Policies by key, their rules by subject namespace (or cluster-wide), and a stable order of rules. */
export class RuleIndex {
  /** Policies by `kind/namespace/name`. */
  readonly policies = new Map<string, { obj: PolicyObject; rules: NormalizedRule[] }>();
  /** Rules whose subject is in one namespace, by that namespace. */
  readonly byNs = new Map<string, Set<NormalizedRule>>();
  /** Rules whose subject may be in any namespace. */
  readonly cluster = new Set<NormalizedRule>();
  readonly #ids = new WeakMap<NormalizedRule, number>();
  #nextId = 1;
  /** How many loaded rules name each ipBlock (`i:`) and CIDR (`c:`) prefix. */
  readonly #prefixUse = new Map<string, number>();
  /** Prefixes that appeared or vanished since {@link RuleIndex.markPrefixes}, with whether they were there then. */
  readonly #prefixFlips = new Map<string, boolean>();

  /** Load order of a rule (rules are applied in this order). */
  id(r: NormalizedRule): number {
    return this.#ids.get(r)!;
  }

  /** Every rule of every loaded policy. */
  all(): NormalizedRule[] {
    return [...this.policies.values()].flatMap((p) => p.rules);
  }

  /** Rules that may select a pod of namespace `ns`. */
  forNamespace(ns: string): NormalizedRule[] {
    return [...(this.byNs.get(ns) ?? []), ...this.cluster];
  }

  /** Adds (or replaces the entry of) a policy; returns its rules. The caller unsets the old rules first. */
  set(p: PolicyObject): NormalizedRule[] {
    const rules = normalizePolicy(p);
    for (const r of rules) this.#ids.set(r, this.#nextId++);
    const key = policyKey(p);
    const old = this.policies.get(key);
    if (old) this.#count(old.rules, -1);
    this.policies.set(key, { obj: p, rules });
    this.#count(rules, 1);
    for (const r of rules) {
      const ns = ruleNamespace(r);
      if (ns === undefined) this.cluster.add(r);
      else bucket(this.byNs, ns, () => new Set()).add(r);
    }
    return rules;
  }

  /** Removes rules from the namespace indexes (the policy entry stays until the caller deletes it). */
  unset(rules: readonly NormalizedRule[]): void {
    for (const r of rules) {
      this.cluster.delete(r);
      for (const set of this.byNs.values()) set.delete(r);
    }
  }

  /** Removes a policy's entry (the caller unsets its rules from the indexes). */
  delete(key: string): void {
    const old = this.policies.get(key);
    if (old === undefined) return;
    this.#count(old.rules, -1);
    this.policies.delete(key);
  }

  /**
   * Starts watching the set of ipBlock and CIDR prefixes the loaded rules name: {@link RuleIndex.prefixesChanged}
   * then tells whether that set differs from now (when it does, identities may change). O(1): the set is
   * kept by reference counts as policies come and go, not recomputed over every rule.
   */
  markPrefixes(): void {
    this.#prefixFlips.clear();
  }

  /** Whether the set of named prefixes differs from the one at the last {@link RuleIndex.markPrefixes}. */
  prefixesChanged(): boolean {
    for (const [k, was] of this.#prefixFlips) if (this.#prefixUse.has(k) !== was) return true;
    return false;
  }

  #count(rules: readonly NormalizedRule[], by: 1 | -1): void {
    for (const r of rules) {
      for (const p of r.ipblockPrefixes) this.#use(`i:${p.text}`, by);
      for (const p of r.cidrPrefixes) this.#use(`c:${p.text}`, by);
    }
  }

  #use(k: string, by: 1 | -1): void {
    const before = this.#prefixUse.get(k) ?? 0;
    const after = before + by;
    if ((before === 0) !== (after === 0) && !this.#prefixFlips.has(k)) this.#prefixFlips.set(k, before > 0);
    if (after === 0) this.#prefixUse.delete(k);
    else this.#prefixUse.set(k, after);
  }
}

/** The one namespace a rule's subject is confined to, if any. */
export function ruleNamespace(r: NormalizedRule): string | undefined {
  return r.subject.reqs.find((q) => q.key === NS_LABEL && q.op === 'In')?.values[0];
}
