// The engine's inputs about pods and namespaces: pods by key, by IP and by base labels; endpoint ids.
import { tryParseIp } from '@datapath/ip';
import { bucket, type NamedPortEntry, type PodRec } from './engine-records.js';
import type { PodSpec } from './engine-types.js';
import { PolicyError } from './errors.js';
import { tryParsePrefix } from './prefix.js';
import { CLUSTER_LABEL, NS_LABEL, NS_LABELS_PREFIX } from './rules.js';

const PROTO_NUM = { TCP: 6, UDP: 17, SCTP: 132 } as const;

/** How many label sets {@link PodTable.computeBase} remembers before starting over. */
const MAX_BASES = 4096;

function sortedLabels(rec: Record<string, string>): [string, string][] {
  return Object.entries(rec).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Namespaces and pods as given, indexed the ways the engine looks them up. */
export class PodTable {
  /** Namespace labels by name. */
  readonly namespaces = new Map<string, Record<string, string>>();
  /** Pods by `namespace/name`. */
  readonly pods = new Map<string, PodRec>();
  /** Pods by canonical /32 or /128 prefix. */
  readonly byIp = new Map<string, PodRec>();
  /** Pods by base-label key (the labels that decide a pod identity before ipBlock refinement). */
  readonly byBase = new Map<string, Set<PodRec>>();
  /** Pod keys by endpoint id. */
  readonly #byEndpointId = new Map<number, string>();
  #nextEndpointId = 1;
  /** Base labels already made, by pod labels, namespace and namespace labels (see {@link PodTable.computeBase}). */
  readonly #bases = new Map<string, { k8s: Map<string, string>; labels: string[]; key: string }>();

  constructor(private readonly clusterName: string) {}

  /**
   * Validates a pod spec and makes its record (the endpoint id is kept when the pod exists); an allocated endpoint
   * id avoids the ids in `reserved` (those other pods of the same load ask for).
   */
  make(p: PodSpec, namespaces: ReadonlySet<string>, reserved: ReadonlySet<number> = new Set()): PodRec {
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
    let endpointId: number;
    if (p.endpointId !== undefined) {
      if (!Number.isInteger(p.endpointId) || p.endpointId < 1 || p.endpointId > 0xffff_ffff)
        throw new PolicyError(
          'InvalidArgument',
          `pod ${key}: endpoint id ${p.endpointId} is not in 1..2^32-1`,
        );
      if (existing !== undefined && existing.endpointId !== p.endpointId)
        throw new PolicyError(
          'InvalidArgument',
          `pod ${key}: endpoint id ${existing.endpointId} cannot change to ${p.endpointId}`,
        );
      const owner = this.#byEndpointId.get(p.endpointId);
      if (owner !== undefined && owner !== key)
        throw new PolicyError(
          'InvalidArgument',
          `pod ${key}: endpoint id ${p.endpointId} is used by ${owner}`,
        );
      endpointId = p.endpointId;
    } else if (existing !== undefined) endpointId = existing.endpointId;
    else {
      while (this.#byEndpointId.has(this.#nextEndpointId) || reserved.has(this.#nextEndpointId))
        this.#nextEndpointId++;
      endpointId = this.#nextEndpointId++;
    }
    return {
      key,
      spec: p,
      ip,
      cidr,
      ports,
      portsSig: [...new Set(named)].sort().join(','),
      endpointId,
      baseKey: '',
      baseLabels: [],
      k8s: new Map(),
      identity: 0,
    };
  }

  /** Indexes a pod record by key and IP. */
  add(r: PodRec): void {
    this.pods.set(r.key, r);
    this.byIp.set(r.cidr, r);
    this.#byEndpointId.set(r.endpointId, r.key);
  }

  /** Removes a pod record from every index and from its group. */
  drop(r: PodRec): void {
    this.#unindexBase(r);
    this.pods.delete(r.key);
    if (this.byIp.get(r.cidr) === r) this.byIp.delete(r.cidr);
    if (this.#byEndpointId.get(r.endpointId) === r.key) this.#byEndpointId.delete(r.endpointId);
    const g = r.group;
    if (g) g.pods.delete(r);
  }

  #unindexBase(r: PodRec): void {
    const set = this.byBase.get(r.baseKey);
    if (!set) return;
    set.delete(r);
    if (set.size === 0) this.byBase.delete(r.baseKey);
  }

  /** Recomputes a pod's base labels (its own, its namespace's, the cluster's) and re-indexes it. */
  computeBase(r: PodRec): void {
    this.#unindexBase(r);
    const ns = r.spec.namespace;
    const nsOwn = this.namespaces.get(ns) ?? {};
    // Pods of one label set share one (read-only) label map and list: a large cluster has far fewer label
    // sets than pods.
    const sig = JSON.stringify([ns, r.spec.labels ?? {}, nsOwn]);
    let base = this.#bases.get(sig);
    if (base === undefined) {
      const k8s = new Map<string, string>();
      for (const [k, v] of sortedLabels({ ...(r.spec.labels ?? {}) })) k8s.set(k, v);
      k8s.set(NS_LABEL, ns);
      const nsLabels = { 'kubernetes.io/metadata.name': ns, ...nsOwn };
      for (const [k, v] of sortedLabels(nsLabels)) k8s.set(NS_LABELS_PREFIX + k, v);
      k8s.set(CLUSTER_LABEL, this.clusterName);
      const labels = [...k8s.entries()].map(([k, v]) => `k8s:${k}=${v}`).sort();
      base = { k8s, labels, key: labels.join('\u0000') };
      if (this.#bases.size >= MAX_BASES) this.#bases.clear();
      this.#bases.set(sig, base);
    }
    r.k8s = base.k8s;
    r.baseLabels = base.labels;
    r.baseKey = base.key;
    bucket(this.byBase, r.baseKey, () => new Set()).add(r);
  }
}
