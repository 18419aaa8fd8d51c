import type { IdentityInfo } from './identity.js';
import type { LabelSelector } from './types.js';

/** One requirement of a compiled selector. `source` is the label source (`k8s`, `reserved`, `any`). */
export interface Requirement {
  source: string;
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: readonly string[];
}

/** A compiled label selector: requirements ANDed, and a canonical text for caching and explanations. */
export interface Selector {
  reqs: readonly Requirement[];
  text: string;
}

const SOURCES = new Set(['k8s', 'reserved', 'any', 'unspec', 'cidr', 'container', 'fqdn']);

/** Splits `k8s:app` into source and key; keys without a known source prefix get `any`. */
export function splitKey(raw: string): { source: string; key: string } {
  const i = raw.indexOf(':');
  if (i > 0) {
    const src = raw.slice(0, i);
    if (SOURCES.has(src)) return { source: src === 'unspec' ? 'any' : src, key: raw.slice(i + 1) };
  }
  return { source: 'any', key: raw };
}

/** Builds a selector from requirements (sorted, deduplicated). */
export function makeSelector(reqs: Requirement[]): Selector {
  const texts = reqs.map((r) => `${r.source}:${r.key} ${r.op} ${[...r.values].sort().join(',')}`);
  const order = texts.map((t, i) => [t, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const seen = new Set<string>();
  const out: Requirement[] = [];
  const outText: string[] = [];
  for (const [t, i] of order) {
    if (seen.has(t)) continue;
    seen.add(t);
    out.push(reqs[i]!);
    outText.push(t);
  }
  return { reqs: out, text: `{${outText.join('; ')}}` };
}

/** Converts a Kubernetes LabelSelector into requirements, mapping each key through `mapKey`. */
export function selectorRequirements(
  sel: LabelSelector,
  mapKey: (raw: string) => { source: string; key: string } = splitKey,
): Requirement[] {
  const reqs: Requirement[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {}))
    reqs.push({ ...mapKey(k), op: 'In', values: [v] });
  for (const e of sel.matchExpressions ?? [])
    reqs.push({ ...mapKey(e.key), op: e.operator, values: e.values ?? [] });
  return reqs;
}

function labelValue(id: IdentityInfo, source: string, key: string): string | undefined {
  if (source === 'reserved' || source === 'any') {
    if (id.kind === 'reserved' && id.reserved === key) return '';
    if (id.kind === 'cidr' && key === 'world') return '';
    if (id.kind === 'reserved' && id.reserved === 'kube-apiserver' && key === 'remote-node') return '';
    if (source === 'reserved') return undefined;
  }
  if (source === 'k8s' || source === 'any') return id.k8s.get(key);
  return undefined;
}

/** True when the identity's labels satisfy every requirement (standard LabelSelector semantics). */
export function selectorMatches(sel: Selector, id: IdentityInfo): boolean {
  for (const r of sel.reqs) {
    const v = labelValue(id, r.source, r.key);
    switch (r.op) {
      case 'In':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}
