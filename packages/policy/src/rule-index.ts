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
    this.policies.set(policyKey(p), { obj: p, rules });
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

  /** The ipBlock and CIDR prefixes the rules name: when it changes, identities may change. */
  prefixSignature(): string {
    const ipb = new Set<string>();
    const cidr = new Set<string>();
    for (const r of this.all()) {
      for (const p of r.ipblockPrefixes) ipb.add(p.text);
      for (const p of r.cidrPrefixes) cidr.add(p.text);
    }
    return `${[...ipb].sort().join(',')}|${[...cidr].sort().join(',')}`;
  }
}

/** The one namespace a rule's subject is confined to, if any. */
export function ruleNamespace(r: NormalizedRule): string | undefined {
  return r.subject.reqs.find((q) => q.key === NS_LABEL && q.op === 'In')?.values[0];
}
