// An obviously-correct, rule-by-rule evaluator of Kubernetes and Cilium network policy, written straight from
// the upstream Kubernetes NetworkPolicy semantics without identities, map states or any code of src/ except the parser's types.
// It is slow on purpose: every flow walks every policy. Tests and the benchmark compare the compiler against it.
import type { CiliumRule, LabelSelector, NetworkPolicy, PolicyObject } from '../src/index.js';

export interface OraclePod {
  ns: string;
  name: string;
  labels: Record<string, string>;
  ip: string;
  ports: { port: number; protocol: 'TCP' | 'UDP' | 'SCTP'; name?: string }[];
}

export interface OracleCluster {
  namespaces: Record<string, Record<string, string>>;
  pods: OraclePod[];
  policies: PolicyObject[];
  enforcement: 'default' | 'always' | 'never';
}

export interface OracleFlow {
  from: string;
  to: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

type End = { kind: 'pod'; pod: OraclePod } | { kind: 'host' } | { kind: 'world'; ip: string };

// ---- tiny IPv4/IPv6 helpers (independent of src/cidr.ts) ----
function ipToBig(ip: string): { v6: boolean; n: bigint } {
  if (!ip.includes(':')) return { v6: false, n: ip.split('.').reduce((a, b) => (a << 8n) + BigInt(b), 0n) };
  const [h, t] = ip.split('::') as [string, string | undefined];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
  return { v6: true, n: groups.reduce((a, g) => (a << 16n) + BigInt(Number.parseInt(g, 16)), 0n) };
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, lenText] = cidr.split('/') as [string, string];
  const a = ipToBig(ip);
  const b = ipToBig(base);
  if (a.v6 !== b.v6) return false;
  const w = a.v6 ? 128n : 32n;
  const shift = w - BigInt(lenText);
  return a.n >> shift === b.n >> shift;
}

// ---- label views ----
function podView(c: OracleCluster, p: OraclePod): Map<string, string> {
  const m = new Map(Object.entries(p.labels));
  m.set('io.kubernetes.pod.namespace', p.ns);
  const nsLabels = { 'kubernetes.io/metadata.name': p.ns, ...(c.namespaces[p.ns] ?? {}) };
  for (const [k, v] of Object.entries(nsLabels)) m.set(`io.cilium.k8s.namespace.labels.${k}`, v);
  m.set('io.cilium.k8s.policy.cluster', 'default');
  return m;
}

function stripSource(key: string): { source: string; key: string } {
  const m = /^(k8s|any|reserved):(.*)$/.exec(key);
  return m ? { source: m[1]!, key: m[2]! } : { source: 'any', key };
}

/** Matches a LabelSelector against a label map; `get` resolves a (possibly prefixed) key. */
function matchSelector(sel: LabelSelector, get: (key: string) => string | undefined): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (get(k) !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const v = get(e.key);
    const vals = e.values ?? [];
    if (e.operator === 'In' && (v === undefined || !vals.includes(v))) return false;
    if (e.operator === 'NotIn' && v !== undefined && vals.includes(v)) return false;
    if (e.operator === 'Exists' && v === undefined) return false;
    if (e.operator === 'DoesNotExist' && v !== undefined) return false;
  }
  return true;
}

function selectorKeys(sel: LabelSelector): string[] {
  return [...Object.keys(sel.matchLabels ?? {}), ...(sel.matchExpressions ?? []).map((e) => e.key)];
}

/** The value an endpoint has for a Cilium selector key (pods: k8s labels; host: reserved:host; world: reserved:world). */
function endValue(c: OracleCluster, end: End, rawKey: string): string | undefined {
  const { source, key } = stripSource(rawKey);
  if (end.kind === 'host')
    return (source === 'reserved' || source === 'any') && key === 'host' ? '' : undefined;
  if (end.kind === 'world')
    return (source === 'reserved' || source === 'any') && key === 'world' ? '' : undefined;
  if (source === 'reserved') return undefined;
  return podView(c, end.pod).get(key);
}

// ---- ports ----
function protoOk(ruleProto: string | undefined, flowProto: string, knp: boolean): boolean {
  if (ruleProto === undefined) return knp ? flowProto === 'TCP' : true;
  if (ruleProto === 'ANY') return true;
  return ruleProto === flowProto;
}

function namedPortOk(
  dest: End,
  name: string,
  ruleProto: string | undefined,
  flow: OracleFlow,
  knp: boolean,
): boolean {
  if (dest.kind !== 'pod') return false;
  return dest.pod.ports.some(
    (p) =>
      p.name === name &&
      p.port === flow.port &&
      p.protocol === flow.protocol &&
      protoOk(ruleProto, p.protocol, knp),
  );
}

// ---- KNP ----
function knpSelects(p: NetworkPolicy, pod: OraclePod): boolean {
  const ns = p.metadata.namespace ?? 'default';
  return ns === pod.ns && matchSelector(p.spec.podSelector, (k) => pod.labels[stripSource(k).key]);
}

function knpTypes(p: NetworkPolicy): string[] {
  if (p.spec.policyTypes && p.spec.policyTypes.length > 0) return p.spec.policyTypes;
  return (p.spec.egress?.length ?? 0) > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function knpPeerOk(
  c: OracleCluster,
  p: NetworkPolicy,
  peers: NonNullable<NonNullable<NetworkPolicy['spec']['ingress']>[number]['from']> | undefined,
  peer: End,
): boolean {
  if (!peers || peers.length === 0) return true;
  const ns = p.metadata.namespace ?? 'default';
  return peers.some((q) => {
    if (q.ipBlock) {
      const ip = peer.kind === 'pod' ? peer.pod.ip : peer.kind === 'world' ? peer.ip : undefined;
      if (ip === undefined) return false;
      return inCidr(ip, q.ipBlock.cidr) && !(q.ipBlock.except ?? []).some((e) => inCidr(ip, e));
    }
    if (peer.kind !== 'pod') return false;
    const pod = peer.pod;
    if (q.namespaceSelector) {
      const nsLabels: Record<string, string> = {
        'kubernetes.io/metadata.name': pod.ns,
        ...(c.namespaces[pod.ns] ?? {}),
      };
      if (!matchSelector(q.namespaceSelector, (k) => nsLabels[k])) return false;
    } else if (pod.ns !== ns) return false;
    if (q.podSelector && !matchSelector(q.podSelector, (k) => pod.labels[stripSource(k).key])) return false;
    return true;
  });
}

function knpPortsOk(
  ports: NonNullable<NonNullable<NetworkPolicy['spec']['ingress']>[number]['ports']> | undefined,
  flow: OracleFlow,
  dest: End,
): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((q) => {
    const proto = q.protocol ?? 'TCP';
    if (proto !== flow.protocol) return false;
    if (q.port === undefined) return true;
    if (typeof q.port === 'string') return namedPortOk(dest, q.port, proto, flow, true);
    return flow.port >= q.port && flow.port <= (q.endPort ?? q.port);
  });
}

// ---- CNP ----
interface Item {
  deny: boolean;
  endpoints?: LabelSelector[] | undefined;
  cidr?: string[] | undefined;
  cidrSet?: { cidr: string; except?: string[] | undefined }[] | undefined;
  entities?: string[] | undefined;
  toPorts?:
    | {
        ports?:
          | { port: string | number; endPort?: number | undefined; protocol?: string | undefined }[]
          | undefined;
      }[]
    | undefined;
}

function cnpItems(r: CiliumRule, dir: 'ingress' | 'egress'): Item[] {
  if (dir === 'ingress')
    return [
      ...(r.ingress ?? []).map((i) => ({
        deny: false,
        endpoints: i.fromEndpoints,
        cidr: i.fromCIDR,
        cidrSet: i.fromCIDRSet,
        entities: i.fromEntities,
        toPorts: i.toPorts,
      })),
      ...(r.ingressDeny ?? []).map((i) => ({
        deny: true,
        endpoints: i.fromEndpoints,
        cidr: i.fromCIDR,
        cidrSet: i.fromCIDRSet,
        entities: i.fromEntities,
        toPorts: i.toPorts,
      })),
    ];
  return [
    ...(r.egress ?? []).map((i) => ({
      deny: false,
      endpoints: i.toEndpoints,
      cidr: i.toCIDR,
      cidrSet: i.toCIDRSet,
      entities: i.toEntities,
      toPorts: i.toPorts,
    })),
    ...(r.egressDeny ?? []).map((i) => ({
      deny: true,
      endpoints: i.toEndpoints,
      cidr: i.toCIDR,
      cidrSet: i.toCIDRSet,
      entities: i.toEntities,
      toPorts: i.toPorts,
    })),
  ];
}

function entityOk(entity: string, peer: End): boolean {
  switch (entity) {
    case 'all':
      return true;
    case 'world':
    case 'world-ipv4':
      return peer.kind === 'world';
    case 'host':
      return peer.kind === 'host';
    case 'cluster':
      return peer.kind === 'pod' || peer.kind === 'host';
    default:
      return false;
  }
}

function cnpPeerOk(c: OracleCluster, policyNs: string | undefined, item: Item, peer: End): boolean {
  const l3 =
    (item.endpoints?.length ?? 0) +
    (item.cidr?.length ?? 0) +
    (item.cidrSet?.length ?? 0) +
    (item.entities?.length ?? 0);
  if (l3 === 0) return (item.toPorts?.length ?? 0) > 0;
  for (const sel of item.endpoints ?? []) {
    const keys = selectorKeys(sel).map(stripSource);
    const scoped = keys.some(
      (k) =>
        k.source === 'reserved' ||
        k.key === 'io.kubernetes.pod.namespace' ||
        k.key.startsWith('io.cilium.k8s.namespace.labels.'),
    );
    if (!scoped) {
      if (peer.kind !== 'pod') continue;
      if (policyNs !== undefined && peer.pod.ns !== policyNs) continue;
    }
    if (matchSelector(sel, (k) => endValue(c, peer, k))) return true;
  }
  if (peer.kind === 'world') {
    for (const cidr of item.cidr ?? []) if (inCidr(peer.ip, cidr)) return true;
    for (const s of item.cidrSet ?? [])
      if (inCidr(peer.ip, s.cidr) && !(s.except ?? []).some((e) => inCidr(peer.ip, e))) return true;
  }
  return (item.entities ?? []).some((e) => entityOk(e, peer));
}

function cnpPortsOk(item: Item, flow: OracleFlow, dest: End): boolean {
  if (!item.toPorts || item.toPorts.length === 0) return true;
  return item.toPorts.some((pr) => {
    if (!pr.ports || pr.ports.length === 0) return true;
    return pr.ports.some((q) => {
      if (!protoOk(q.protocol, flow.protocol, false)) return false;
      const text = String(q.port);
      if (!/^\d+$/.test(text)) return namedPortOk(dest, text, q.protocol, flow, false);
      const n = Number(text);
      if (n === 0) return true;
      return flow.port >= n && flow.port <= (q.endPort ?? n);
    });
  });
}

function cnpRules(p: PolicyObject): CiliumRule[] {
  if (p.kind === 'NetworkPolicy') return [];
  return [...(p.spec ? [p.spec] : []), ...(p.specs ?? [])];
}

function cnpSelects(c: OracleCluster, p: PolicyObject, r: CiliumRule, pod: OraclePod): boolean {
  const ns = p.kind === 'CiliumNetworkPolicy' ? (p.metadata.namespace ?? 'default') : undefined;
  if (ns !== undefined && pod.ns !== ns) return false;
  const view = podView(c, pod);
  const sel = r.endpointSelector ?? {};
  return matchSelector(sel, (k) => {
    const s = stripSource(k);
    if (s.source === 'reserved') return undefined;
    if (ns !== undefined && s.key === 'io.kubernetes.pod.namespace') return ns;
    return view.get(s.key);
  });
}

/** Does `subject` (a pod) let the flow through in `dir` (peer = the other end)? */
function directionAllows(
  c: OracleCluster,
  subject: OraclePod,
  dir: 'ingress' | 'egress',
  peer: End,
  flow: OracleFlow,
  dest: End,
): boolean {
  if (c.enforcement === 'never') return true;
  let enforced = c.enforcement === 'always';
  let wantsDefaultDeny = false;
  let allowed = false;
  let denied = false;
  for (const p of c.policies) {
    if (p.kind === 'NetworkPolicy') {
      if (!knpSelects(p, subject)) continue;
      if (!knpTypes(p).includes(dir === 'ingress' ? 'Ingress' : 'Egress')) continue;
      enforced = true;
      wantsDefaultDeny = true;
      const rules =
        dir === 'ingress'
          ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
          : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
      for (const r of rules)
        if (knpPeerOk(c, p, r.peers, peer) && knpPortsOk(r.ports, flow, dest)) allowed = true;
      continue;
    }
    const policyNs = p.kind === 'CiliumNetworkPolicy' ? (p.metadata.namespace ?? 'default') : undefined;
    for (const r of cnpRules(p)) {
      if (!cnpSelects(c, p, r, subject)) continue;
      const items = cnpItems(r, dir);
      if (items.length === 0) continue;
      enforced = true;
      if (r.enableDefaultDeny?.[dir] !== false) wantsDefaultDeny = true;
      for (const it of items) {
        if (!cnpPeerOk(c, policyNs, it, peer) || !cnpPortsOk(it, flow, dest)) continue;
        if (it.deny) denied = true;
        else allowed = true;
      }
    }
  }
  if (denied) return false;
  if (!enforced) return true;
  if (dir === 'ingress' && peer.kind === 'host') return true;
  if (c.enforcement === 'default' && !wantsDefaultDeny) return true;
  return allowed;
}

function end(c: OracleCluster, name: string): End {
  if (name === 'host') return { kind: 'host' };
  if (name.startsWith('world:')) return { kind: 'world', ip: name.slice(6) };
  const [ns, pod] = name.split('/');
  const p = c.pods.find((x) => x.ns === ns && x.name === pod);
  if (!p) throw new Error(`oracle: unknown pod ${name}`);
  return { kind: 'pod', pod: p };
}

/** Rule-by-rule verdict: source egress AND destination ingress, each from every policy, no precomputation. */
export function oracleVerdict(c: OracleCluster, flow: OracleFlow): 'allow' | 'deny' {
  const src = end(c, flow.from);
  const dst = end(c, flow.to);
  const egress = src.kind === 'pod' ? directionAllows(c, src.pod, 'egress', dst, flow, dst) : true;
  const ingress = dst.kind === 'pod' ? directionAllows(c, dst.pod, 'ingress', src, flow, dst) : true;
  return egress && ingress ? 'allow' : 'deny';
}
