import { type Prefix, parsePrefix } from './prefix.js';
import { makeSelector, type Requirement, type Selector, selectorRequirements, splitKey } from './selector.js';
import type { CiliumRule, Entity, LabelSelector, PolicyObject } from './types.js';

/** Protocol numbers used in policy map keys. */
export const Proto = { ANY: 0, TCP: 6, UDP: 17, SCTP: 132 } as const;
const ALL_PROTOS = [Proto.TCP, Proto.UDP, Proto.SCTP];

/** Pod label key carrying the namespace name. */
export const NS_LABEL = 'io.kubernetes.pod.namespace';
/** Prefix of the pod labels that mirror the namespace's labels. */
export const NS_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** Pod label key carrying the cluster name. */
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';

/** An L3 peer of a normalized rule. */
export type Peer =
  | { kind: 'all' }
  | { kind: 'selector'; sel: Selector }
  | { kind: 'entity'; entity: Entity }
  | { kind: 'cidr'; prefix: Prefix; except: readonly Prefix[]; pods: boolean };

/** A port item of a normalized rule: protocols, and either a numeric range (0 = all ports) or a name. */
export interface PortSpec {
  protocols: readonly number[];
  port: number;
  endPort: number;
  name?: string;
}

/** One allow or deny rule after normalization: peers (ORed) × ports (ORed). */
export interface L34Rule {
  /** Where it came from, e.g. `NetworkPolicy x/allow-a ingress[0]`. */
  origin: string;
  deny: boolean;
  peers: readonly Peer[];
  ports: 'all' | readonly PortSpec[];
}

/** One direction of a normalized rule. */
export interface DirectionRules {
  /** True when this rule makes the direction enforced for its subjects. */
  enforces: boolean;
  /** True when it asks for default deny (false only for CNP `enableDefaultDeny: false`). */
  defaultDeny: boolean;
  rules: readonly L34Rule[];
}

/** A policy normalized into Cilium's rule model (one per KNP, one per CNP `spec`/`specs` item). */
export interface NormalizedRule {
  /** `kind/namespace/name` of the policy. */
  policy: string;
  /** Human label, e.g. `CiliumNetworkPolicy x/web`. */
  title: string;
  subject: Selector;
  ingress: DirectionRules;
  egress: DirectionRules;
  /** KNP ipBlock prefixes (cidrs and excepts), which also select pods. */
  ipblockPrefixes: readonly Prefix[];
  /** Every CIDR prefix the rule mentions (allocated CIDR identities). */
  cidrPrefixes: readonly Prefix[];
}

/** Stable key of a policy object: `kind/namespace/name` (namespace empty for clusterwide). */
export function policyKey(p: PolicyObject): string {
  return `${p.kind}/${policyNamespace(p) ?? ''}/${p.metadata.name}`;
}

/** The namespace a policy applies in (`default` when omitted), or undefined for clusterwide policies. */
export function policyNamespace(p: PolicyObject): string | undefined {
  if (p.kind === 'CiliumClusterwideNetworkPolicy') return undefined;
  return p.metadata.namespace ?? 'default';
}

const k8s = (raw: string) => {
  const s = splitKey(raw);
  return s.source === 'any' ? { source: 'k8s', key: s.key } : s;
};
const nsIs = (ns: string): Requirement => ({ source: 'k8s', key: NS_LABEL, op: 'In', values: [ns] });
const nsExists: Requirement = { source: 'k8s', key: NS_LABEL, op: 'Exists', values: [] };

function knpPorts(
  ports: NonNullable<
    NonNullable<Extract<PolicyObject, { kind: 'NetworkPolicy' }>['spec']['ingress']>[number]['ports']
  >,
): 'all' | PortSpec[] {
  if (ports.length === 0) return 'all';
  return ports.map((p) => {
    const protocols = [Proto[p.protocol ?? 'TCP']];
    if (p.port === undefined) return { protocols, port: 0, endPort: 0 };
    if (typeof p.port === 'string') return { protocols, port: 0, endPort: 0, name: p.port };
    return { protocols, port: p.port, endPort: p.endPort ?? p.port };
  });
}

function normalizeKnp(p: Extract<PolicyObject, { kind: 'NetworkPolicy' }>): NormalizedRule {
  const ns = policyNamespace(p)!;
  const title = `NetworkPolicy ${ns}/${p.metadata.name}`;
  const spec = p.spec;
  const types = spec.policyTypes?.length
    ? spec.policyTypes
    : (['Ingress', ...((spec.egress?.length ?? 0) > 0 ? ['Egress'] : [])] as const);
  const ipblocks: Prefix[] = [];
  const peers = (list: NonNullable<NonNullable<typeof spec.ingress>[number]['from']> | undefined): Peer[] => {
    if (!list || list.length === 0) return [{ kind: 'all' }];
    return list.map((peer): Peer => {
      if (peer.ipBlock) {
        const prefix = parsePrefix(peer.ipBlock.cidr);
        const except = (peer.ipBlock.except ?? []).map(parsePrefix);
        ipblocks.push(prefix, ...except);
        return { kind: 'cidr', prefix, except, pods: true };
      }
      const reqs: Requirement[] = [];
      if (peer.podSelector) reqs.push(...selectorRequirements(peer.podSelector, k8s));
      if (peer.namespaceSelector) {
        reqs.push(
          ...selectorRequirements(peer.namespaceSelector, (raw) => ({
            source: 'k8s',
            key: NS_LABELS_PREFIX + raw,
          })),
        );
        reqs.push(nsExists);
      } else reqs.push(nsIs(ns));
      return { kind: 'selector', sel: makeSelector(reqs) };
    });
  };
  const dir = (name: 'Ingress' | 'Egress'): DirectionRules => {
    const enforces = (types as readonly string[]).includes(name);
    if (!enforces) return { enforces: false, defaultDeny: true, rules: [] };
    const rules =
      name === 'Ingress'
        ? (spec.ingress ?? []).map((r, i) => ({
            origin: `${title} ingress[${i}]`,
            deny: false,
            peers: peers(r.from),
            ports: knpPorts(r.ports ?? []),
          }))
        : (spec.egress ?? []).map((r, i) => ({
            origin: `${title} egress[${i}]`,
            deny: false,
            peers: peers(r.to),
            ports: knpPorts(r.ports ?? []),
          }));
    return { enforces: true, defaultDeny: true, rules };
  };
  const ingress = dir('Ingress');
  const egress = dir('Egress');
  return {
    policy: policyKey(p),
    title,
    subject: makeSelector([...selectorRequirements(spec.podSelector, k8s), nsIs(ns)]),
    ingress,
    egress,
    ipblockPrefixes: ipblocks,
    cidrPrefixes: ipblocks,
  };
}

type CnpL3 = {
  endpoints?: LabelSelector[] | undefined;
  cidr?: string[] | undefined;
  cidrSet?: { cidr: string; except?: string[] | undefined }[] | undefined;
  entities?: Entity[] | undefined;
  toPorts?:
    | {
        ports?:
          | {
              port: string | number;
              endPort?: number | undefined;
              protocol?: 'TCP' | 'UDP' | 'SCTP' | 'ANY' | undefined;
            }[]
          | undefined;
      }[]
    | undefined;
};

function cnpPorts(toPorts: CnpL3['toPorts']): 'all' | PortSpec[] {
  const out: PortSpec[] = [];
  for (const pr of toPorts ?? []) {
    if (!pr.ports || pr.ports.length === 0) return 'all';
    for (const p of pr.ports) {
      const protocols = p.protocol === undefined || p.protocol === 'ANY' ? ALL_PROTOS : [Proto[p.protocol]];
      const text = String(p.port);
      if (/^\d+$/.test(text)) {
        const n = Number(text);
        out.push(
          n === 0 ? { protocols, port: 0, endPort: 0 } : { protocols, port: n, endPort: p.endPort ?? n },
        );
      } else out.push({ protocols, port: 0, endPort: 0, name: text });
    }
  }
  return out;
}

function hasNamespaceScope(reqs: readonly Requirement[]): boolean {
  return reqs.some(
    (r) =>
      r.source === 'reserved' ||
      ((r.source === 'k8s' || r.source === 'any') &&
        (r.key === NS_LABEL || r.key.startsWith(NS_LABELS_PREFIX))),
  );
}

function normalizeCnpRule(
  p: Extract<PolicyObject, { kind: 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy' }>,
  rule: CiliumRule,
  where: string,
): NormalizedRule {
  const ns = policyNamespace(p);
  const title = `${p.kind} ${ns === undefined ? '' : `${ns}/`}${p.metadata.name}${where}`;
  const cidrs: Prefix[] = [];
  const scope = (sel: LabelSelector): Selector => {
    const reqs = selectorRequirements(sel);
    if (!hasNamespaceScope(reqs)) reqs.push(ns === undefined ? nsExists : nsIs(ns));
    return makeSelector(reqs);
  };
  const l3 = (r: CnpL3, deny: boolean, origin: string): L34Rule => {
    const peers: Peer[] = [];
    for (const s of r.endpoints ?? []) peers.push({ kind: 'selector', sel: scope(s) });
    for (const c of r.cidr ?? []) {
      const prefix = parsePrefix(c);
      cidrs.push(prefix);
      peers.push({ kind: 'cidr', prefix, except: [], pods: false });
    }
    for (const c of r.cidrSet ?? []) {
      const prefix = parsePrefix(c.cidr);
      const except = (c.except ?? []).map(parsePrefix);
      cidrs.push(prefix, ...except);
      peers.push({ kind: 'cidr', prefix, except, pods: false });
    }
    for (const e of r.entities ?? []) peers.push({ kind: 'entity', entity: e });
    const hasPorts = (r.toPorts?.length ?? 0) > 0;
    if (peers.length === 0 && hasPorts) peers.push({ kind: 'all' });
    return { origin, deny, peers, ports: hasPorts ? cnpPorts(r.toPorts) : 'all' };
  };
  type IngressRule = NonNullable<typeof rule.ingress>[number];
  type EgressRule = NonNullable<typeof rule.egress>[number];
  const fromRule = (r: IngressRule, deny: boolean, where: string) =>
    l3(
      {
        endpoints: r.fromEndpoints,
        cidr: r.fromCIDR,
        cidrSet: r.fromCIDRSet,
        entities: r.fromEntities,
        toPorts: r.toPorts,
      },
      deny,
      `${title} ${where}`,
    );
  const toRule = (r: EgressRule, deny: boolean, where: string) =>
    l3(
      {
        endpoints: r.toEndpoints,
        cidr: r.toCIDR,
        cidrSet: r.toCIDRSet,
        entities: r.toEntities,
        toPorts: r.toPorts,
      },
      deny,
      `${title} ${where}`,
    );
  const ingress = [
    ...(rule.ingress ?? []).map((r, i) => fromRule(r, false, `ingress[${i}]`)),
    ...(rule.ingressDeny ?? []).map((r, i) => fromRule(r, true, `ingressDeny[${i}]`)),
  ];
  const egress = [
    ...(rule.egress ?? []).map((r, i) => toRule(r, false, `egress[${i}]`)),
    ...(rule.egressDeny ?? []).map((r, i) => toRule(r, true, `egressDeny[${i}]`)),
  ];
  const subjectReqs = selectorRequirements(rule.endpointSelector ?? {}).filter(
    (r) => ns === undefined || !((r.source === 'k8s' || r.source === 'any') && r.key === NS_LABEL),
  );
  if (ns !== undefined) subjectReqs.push(nsIs(ns));
  else subjectReqs.push(nsExists);
  return {
    policy: policyKey(p),
    title,
    subject: makeSelector(subjectReqs),
    ingress: {
      enforces: ingress.length > 0,
      defaultDeny: rule.enableDefaultDeny?.ingress ?? true,
      rules: ingress,
    },
    egress: {
      enforces: egress.length > 0,
      defaultDeny: rule.enableDefaultDeny?.egress ?? true,
      rules: egress,
    },
    ipblockPrefixes: [],
    cidrPrefixes: cidrs,
  };
}

/**
 * Normalizes one validated policy object into Cilium's rule model (KNP import rules, CNP namespace scoping,
 * policyTypes defaulting, protocol defaults).
 */
export function normalizePolicy(p: PolicyObject): NormalizedRule[] {
  if (p.kind === 'NetworkPolicy') return [normalizeKnp(p)];
  const out: NormalizedRule[] = [];
  if (p.spec) out.push(normalizeCnpRule(p, p.spec, ''));
  (p.specs ?? []).forEach((r, i) => {
    out.push(normalizeCnpRule(p, r, ` specs[${i}]`));
  });
  return out;
}
