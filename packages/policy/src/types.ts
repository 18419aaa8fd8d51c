// Hand-written, documented shapes of the policy objects this package accepts. The zod schemas in schema.ts
// validate exactly these shapes (plus semantic checks); parsePolicies returns values typed as these.

/** One requirement of a label selector. */
export interface LabelSelectorRequirement {
  /** Label key; Cilium selectors may prefix a source (`k8s:`, `any:`, `reserved:`). */
  key: string;
  /** `In` / `NotIn` need values; `Exists` / `DoesNotExist` must have none. Absent keys satisfy NotIn and DoesNotExist. */
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  /** Values for `In` / `NotIn`. */
  values?: string[] | undefined;
}

/** A Kubernetes `LabelSelector`: `matchLabels` AND `matchExpressions`; empty matches everything it applies to. */
export interface LabelSelector {
  /** Exact key=value pairs, all required. */
  matchLabels?: Record<string, string> | undefined;
  /** Set-based requirements, all required. */
  matchExpressions?: LabelSelectorRequirement[] | undefined;
}

/** Object metadata: only `name` and `namespace` matter here; other fields are kept and ignored. */
export interface ObjectMeta {
  /** Object name. */
  name: string;
  /** Namespace (`default` when omitted; ignored for clusterwide policies). */
  namespace?: string | undefined;
  /** Other metadata (labels, annotations, uid…), ignored. */
  [key: string]: unknown;
}

/** A `networking.k8s.io/v1` NetworkPolicy port: protocol (default TCP), port number or name, inclusive endPort. */
export interface NetworkPolicyPort {
  /** `TCP` when omitted. */
  protocol?: 'TCP' | 'UDP' | 'SCTP' | undefined;
  /** A number, or a container port name resolved on the destination pod; omitted = every port. */
  port?: number | string | undefined;
  /** Inclusive end of a range; only with a numeric `port`, and ≥ it. */
  endPort?: number | undefined;
}

/** A NetworkPolicy peer: pods (in the policy's namespace or in selected namespaces) or an IP block. */
export interface NetworkPolicyPeer {
  /** Pods; alone it means pods of the policy's namespace. */
  podSelector?: LabelSelector | undefined;
  /** Namespaces; with `podSelector` in the same peer the two are ANDed. */
  namespaceSelector?: LabelSelector | undefined;
  /** An IP range with holes; cannot be combined with the selectors. */
  ipBlock?:
    | {
        /** The range (matches pod IPs too, as the upstream e2e tests expect). */
        cidr: string;
        /** Strict sub-ranges excluded. */
        except?: string[] | undefined;
      }
    | undefined;
}

/** One ingress rule of a NetworkPolicy (`from` × `ports`; missing/empty = all). */
export interface NetworkPolicyIngressRule {
  /** Sources, ORed; missing or empty = every source, the world included. */
  from?: NetworkPolicyPeer[] | undefined;
  /** Ports, ORed; missing or empty = every port and protocol. */
  ports?: NetworkPolicyPort[] | undefined;
}

/** One egress rule of a NetworkPolicy (`to` × `ports`; missing/empty = all). */
export interface NetworkPolicyEgressRule {
  /** Destinations, ORed; missing or empty = every destination. */
  to?: NetworkPolicyPeer[] | undefined;
  /** Ports, ORed; missing or empty = every port and protocol. */
  ports?: NetworkPolicyPort[] | undefined;
}

/** A `networking.k8s.io/v1` NetworkPolicy. */
export interface NetworkPolicy {
  /** `networking.k8s.io/v1` (optional). */
  apiVersion?: 'networking.k8s.io/v1' | undefined;
  /** Always `NetworkPolicy`. */
  kind: 'NetworkPolicy';
  /** Name and namespace. */
  metadata: ObjectMeta;
  /** The policy. */
  spec: {
    /** Pods of the namespace the policy applies to. */
    podSelector: LabelSelector;
    /** Defaults to `[Ingress]`, plus `Egress` when `egress` is non-empty. */
    policyTypes?: ('Ingress' | 'Egress')[] | undefined;
    /** Allowed incoming connections. */
    ingress?: NetworkPolicyIngressRule[] | undefined;
    /** Allowed outgoing connections. */
    egress?: NetworkPolicyEgressRule[] | undefined;
  };
}

/** A Cilium entity name (`fromEntities` / `toEntities`). */
export type Entity =
  | 'all'
  | 'world'
  | 'world-ipv4'
  | 'world-ipv6'
  | 'host'
  | 'remote-node'
  | 'cluster'
  | 'kube-apiserver'
  | 'health'
  | 'init'
  | 'unmanaged'
  | 'ingress'
  | 'none';

/** A Cilium port: `port` is a number, `"0"` (all ports) or a name; protocol omitted or `ANY` = TCP, UDP and SCTP. */
export interface CiliumPort {
  /** Number (as number or string), `"0"` for all, or a container port name. */
  port: string | number;
  /** Inclusive end of a range (numeric port only). */
  endPort?: number | undefined;
  /** `ANY` when omitted. */
  protocol?: 'TCP' | 'UDP' | 'SCTP' | 'ANY' | undefined;
}

/** A Cilium `toPorts` item (L7 `rules` are not supported). */
export interface CiliumPortRule {
  /** Ports, ORed; empty = all ports. */
  ports?: CiliumPort[] | undefined;
}

/** A CIDR with holes (`fromCIDRSet` / `toCIDRSet`). */
export interface CiliumCidrSet {
  /** The range. */
  cidr: string;
  /** Sub-ranges excluded (from this rule only: an except in a deny is not an allow). */
  except?: string[] | undefined;
}

/** A Cilium ingress or ingressDeny item. Without L3 fields but with `toPorts` it applies to every peer. */
export interface CiliumIngressRule {
  /** Pods (namespace-scoped unless the selector names a namespace key). */
  fromEndpoints?: LabelSelector[] | undefined;
  /** CIDRs (never match cluster endpoints). */
  fromCIDR?: string[] | undefined;
  /** CIDRs with except. */
  fromCIDRSet?: CiliumCidrSet[] | undefined;
  /** Entities. */
  fromEntities?: Entity[] | undefined;
  /** Ports; missing = every port. */
  toPorts?: CiliumPortRule[] | undefined;
}

/** A Cilium egress or egressDeny item. */
export interface CiliumEgressRule {
  /** Pods (namespace-scoped unless the selector names a namespace key). */
  toEndpoints?: LabelSelector[] | undefined;
  /** CIDRs (never match cluster endpoints). */
  toCIDR?: string[] | undefined;
  /** CIDRs with except. */
  toCIDRSet?: CiliumCidrSet[] | undefined;
  /** Entities. */
  toEntities?: Entity[] | undefined;
  /** Ports; missing = every port. */
  toPorts?: CiliumPortRule[] | undefined;
}

/** One Cilium rule (`spec`, or an item of `specs`). */
export interface CiliumRule {
  /** The endpoints the rule applies to (required; `nodeSelector` is not supported). */
  endpointSelector?: LabelSelector | undefined;
  /** Allowed incoming. */
  ingress?: CiliumIngressRule[] | undefined;
  /** Denied incoming (beats every allow). */
  ingressDeny?: CiliumIngressRule[] | undefined;
  /** Allowed outgoing. */
  egress?: CiliumEgressRule[] | undefined;
  /** Denied outgoing (beats every allow). */
  egressDeny?: CiliumEgressRule[] | undefined;
  /** `false` for a direction = this rule does not make it default-deny. */
  enableDefaultDeny?:
    | {
        /** Default deny for ingress (true when omitted). */
        ingress?: boolean | undefined;
        /** Default deny for egress (true when omitted). */
        egress?: boolean | undefined;
      }
    | undefined;
  /** Rule labels (ignored). */
  labels?: unknown[] | undefined;
  /** Free text. */
  description?: string | undefined;
}

/** A `cilium.io/v2` CiliumNetworkPolicy (namespaced). */
export interface CiliumNetworkPolicy {
  /** `cilium.io/v2` (optional). */
  apiVersion?: 'cilium.io/v2' | undefined;
  /** Always `CiliumNetworkPolicy`. */
  kind: 'CiliumNetworkPolicy';
  /** Name and namespace. */
  metadata: ObjectMeta;
  /** One rule. */
  spec?: CiliumRule | undefined;
  /** More rules. */
  specs?: CiliumRule[] | undefined;
}

/** A `cilium.io/v2` CiliumClusterwideNetworkPolicy (selectors span every namespace). */
export interface CiliumClusterwideNetworkPolicy {
  /** `cilium.io/v2` (optional). */
  apiVersion?: 'cilium.io/v2' | undefined;
  /** Always `CiliumClusterwideNetworkPolicy`. */
  kind: 'CiliumClusterwideNetworkPolicy';
  /** Name. */
  metadata: ObjectMeta;
  /** One rule. */
  spec?: CiliumRule | undefined;
  /** More rules. */
  specs?: CiliumRule[] | undefined;
}

/** Any policy object this package understands, discriminated by `kind`. */
export type PolicyObject = NetworkPolicy | CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy;

/** The kinds of {@link PolicyObject}. */
export type PolicyKind = PolicyObject['kind'];
