import type { IdentityAllocator, IdentityInfo } from './identity.js';
import type { MapState, PolicyKey, PolicyValue } from './mapstate.js';
import type { PolicyObject } from './types.js';

/** Policy enforcement mode, as Cilium's `--enable-policy`. */
export type EnforcementMode = 'default' | 'always' | 'never';

/** A container port of a pod. */
export interface PodPort {
  /** Port number. */
  port: number;
  /** `TCP` when omitted. */
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** Name that policies can use instead of the number. */
  name?: string;
}

/** A pod as the compiler sees it. */
export interface PodSpec {
  /** Namespace (must be known to the engine). */
  namespace: string;
  /** Pod name. */
  name: string;
  /** Pod labels. */
  labels?: Readonly<Record<string, string>>;
  /** The pod's IP (v4 or v6). */
  ip: string;
  /** Container ports (only named ones matter to policy). */
  ports?: readonly PodPort[];
  /**
   * Endpoint id of the pod (1 to 2^32 − 1, unique among pods), e.g. the number a datapath already gives the
   * endpoint, so the engine's `endpointId` and the datapath's are one numbering; allocated when omitted. It cannot
   * change while the pod exists.
   */
  endpointId?: number;
}

/** The whole input of a compile: namespaces (with labels), pods and policy objects. */
export interface ClusterInput {
  /** Namespaces by name, with their labels (`kubernetes.io/metadata.name` is added automatically). */
  namespaces?: Readonly<Record<string, NamespaceSpec>>;
  /** Pods. */
  pods?: readonly PodSpec[];
  /** Policy objects (validated at run time as by {@link validatePolicies}; decoded YAML or JSON is accepted as is). */
  policies?: readonly PolicyObject[];
}

/** A namespace as the compiler sees it. */
export interface NamespaceSpec {
  /** Namespace labels. */
  labels?: Readonly<Record<string, string>>;
}

/** Options of {@link PolicyEngine}. */
export interface EngineOptions {
  /** Enforcement mode; `default` when omitted. */
  enforcement?: EnforcementMode;
  /** Identity allocator; a fresh {@link LocalIdentityAllocator} when omitted. */
  allocator?: IdentityAllocator;
  /** Value of the `io.cilium.k8s.policy.cluster` label; `default` when omitted. */
  clusterName?: string;
  /** IPs of the local node, mapped to the host identity in the ipcache. */
  hostIPs?: readonly string[];
  /** When false every change recompiles everything (a baseline for benchmarks and tests). Default true. */
  incremental?: boolean;
}

/** Value of an ipcache entry: the identity of the prefix and flags (bit 0 local endpoint, bit 1 host). */
export interface IpcacheValue {
  /** Security identity of the prefix. */
  identity: number;
  /** `IPCACHE_FLAG_*` bits. */
  flags: number;
}

/** ipcache flag: the address is a pod (endpoint) on this node. */
export const IPCACHE_FLAG_LOCAL_ENDPOINT = 1;
/** ipcache flag: the address is the local node. */
export const IPCACHE_FLAG_HOST = 2;

/** The compiled state of one endpoint (pod). */
export interface EndpointState {
  /** `namespace/name`. */
  name: string;
  /** Endpoint id (policy map `cilium_policy_v2_<id>`), stable while the pod exists. */
  endpointId: number;
  /** The pod's security identity. */
  identity: number;
  /** The pod's IP. */
  ip: string;
  /** Its policy map. */
  policy: MapState;
}

/** The compiled state of a node: identities, ipcache, per-endpoint policy maps. A live, read-only view. */
export interface PolicyState {
  /** The enforcement mode compiled in. */
  enforcement: EnforcementMode;
  /** Every identity in use (reserved, pods, CIDR prefixes). */
  identities: ReadonlyMap<number, IdentityInfo>;
  /** Canonical prefix text (`10.244.1.5/32`) → value. */
  ipcache: ReadonlyMap<string, IpcacheValue>;
  /** By `namespace/name`. */
  endpoints: ReadonlyMap<string, EndpointState>;
}

/** One change to write to a BPF map, the output of every {@link PolicyEngine} mutation. */
export type MapChange = PolicyMapChange | IpcacheChange;

/** A change to one endpoint's policy map. */
export interface PolicyMapChange {
  /** Always `policy`. */
  map: 'policy';
  /** `update` inserts or overwrites; `delete` removes. */
  op: 'update' | 'delete';
  /** `namespace/name` of the endpoint. */
  endpoint: string;
  /** Its endpoint id (map `cilium_policy_v2_<id>`). */
  endpointId: number;
  /** The key. */
  key: PolicyKey;
  /** The new value (updates only). */
  value?: PolicyValue;
}

/** A change to the ipcache. */
export interface IpcacheChange {
  /** Always `ipcache`. */
  map: 'ipcache';
  /** `update` inserts or overwrites; `delete` removes. */
  op: 'update' | 'delete';
  /** Canonical prefix, e.g. `10.244.1.5/32`. */
  prefix: string;
  /** The new value (updates only). */
  value?: IpcacheValue;
}

/** Options of {@link PolicyEngine.load}. */
export interface LoadOptions {
  /**
   * When false, `load` returns no change list (an agent starting from empty maps writes each endpoint's map
   * whole, e.g. with `encodePolicyMap`); saves time and memory on large clusters. Default true.
   */
  changes?: boolean;
}
