import { PolicyError } from './errors.js';
import type { Prefix } from './prefix.js';

/**
 * Reserved numeric security identities, numbered as Cilium numbers them (`pkg/identity/numericidentity.go`).
 * 0 is never a peer: in a policy map it means "any identity".
 */
export const ReservedIdentity = {
  /** Any identity (policy map wildcard). */
  Unknown: 0,
  /** The local node, including host-network pods. */
  Host: 1,
  /** Everything outside the cluster (single-stack and dual-stack alike in this package). */
  World: 2,
  /** Endpoints not managed by the agent. */
  Unmanaged: 3,
  /** Health-check endpoints. */
  Health: 4,
  /** Endpoints whose identity is not resolved yet. */
  Init: 5,
  /** Other nodes of the cluster. */
  RemoteNode: 6,
  /** The Kubernetes API server (also carries the remote-node label). */
  KubeApiserver: 7,
  /** The ingress proxy. */
  Ingress: 8,
} as const;

/** Name of a reserved identity (lower-case, as in `reserved:host`). */
export type ReservedName =
  | 'host'
  | 'world'
  | 'unmanaged'
  | 'health'
  | 'init'
  | 'remote-node'
  | 'kube-apiserver'
  | 'ingress';

/** Reserved identity numbers by name. */
export const RESERVED: Readonly<Record<ReservedName, number>> = {
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
  ingress: 8,
};

/** First cluster-scoped identity handed out by an allocator (`MinimalNumericIdentity`). */
export const MIN_CLUSTER_IDENTITY = 256;
/** Last cluster-scoped identity (16 bits; ClusterMesh would put the cluster id in bits 16–23). */
export const MAX_CLUSTER_IDENTITY = 65535;
/** Bit 24: node-local identities (CIDR identities), as Cilium's `LocalIdentityFlag`. */
export const LOCAL_IDENTITY_FLAG = 1 << 24;

/** Scope of an identity: `cluster` (pods, same number on every node) or `local` (CIDR prefixes, this node only). */
export type IdentityScope = 'cluster' | 'local';

/**
 * Hands out numeric security identities for label sets. The engine calls `allocate` once per label set it starts
 * using and `release` once when it stops; an implementation refcounts. Implementations must be synchronous
 * (an etcd-backed one keeps a local cache and syncs in the background).
 */
export interface IdentityAllocator {
  /** Returns the identity for the sorted label list (`source:key=value`), allocating one on first use. */
  allocate(labels: readonly string[], scope: IdentityScope): number;
  /** Drops one reference; the identity is freed when none remain. */
  release(id: number): void;
}

/**
 * The default, in-process {@link IdentityAllocator}: cluster identities from 256 to 65535, local ones from
 * 2^24, same labels → same number while referenced, numbers not reused until the range wraps.
 *
 * @example Allocating and releasing
 * ```ts
 * import { LocalIdentityAllocator } from '@datapath/policy';
 * const a = new LocalIdentityAllocator();
 * const id = a.allocate(['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=x'], 'cluster');
 * console.log(id); // 256
 * a.release(id);
 * ```
 */
export class LocalIdentityAllocator implements IdentityAllocator {
  private readonly byKey = new Map<string, { id: number; refs: number }>();
  private readonly byId = new Map<number, string>();
  private readonly next: Record<IdentityScope, number> = {
    cluster: MIN_CLUSTER_IDENTITY,
    local: LOCAL_IDENTITY_FLAG,
  };
  private static readonly RANGE: Record<IdentityScope, [number, number]> = {
    cluster: [MIN_CLUSTER_IDENTITY, MAX_CLUSTER_IDENTITY],
    local: [LOCAL_IDENTITY_FLAG, LOCAL_IDENTITY_FLAG + 0xffffff],
  };

  /**
   * Returns the identity of a label set, allocating the next free number of the scope on first use.
   *
   * @throws {@link PolicyError} `Exhausted` when every number of the scope is taken.
   * @example Same labels, same number
   * ```ts
   * import { LocalIdentityAllocator } from '@datapath/policy';
   * const a = new LocalIdentityAllocator();
   * console.log(a.allocate(['k8s:app=web'], 'cluster') === a.allocate(['k8s:app=web'], 'cluster')); // true
   * ```
   */
  allocate(labels: readonly string[], scope: IdentityScope): number {
    const key = `${scope}\u0000${labels.join('\u0000')}`;
    const hit = this.byKey.get(key);
    if (hit) {
      hit.refs++;
      return hit.id;
    }
    const [lo, hi] = LocalIdentityAllocator.RANGE[scope];
    let id = this.next[scope];
    for (let tries = 0; this.byId.has(id); tries++) {
      if (tries > hi - lo) throw new PolicyError('Exhausted', `no free ${scope} identity in ${lo}..${hi}`);
      id = id >= hi ? lo : id + 1;
    }
    this.next[scope] = id >= hi ? lo : id + 1;
    this.byKey.set(key, { id, refs: 1 });
    this.byId.set(id, key);
    return id;
  }

  /**
   * Drops one reference to an identity; frees it when the last one goes.
   *
   * @throws {@link PolicyError} `NotFound` for an identity this allocator did not hand out.
   * @example Releasing
   * ```ts
   * import { LocalIdentityAllocator } from '@datapath/policy';
   * const a = new LocalIdentityAllocator();
   * a.release(a.allocate(['k8s:app=web'], 'cluster'));
   * console.log(a.size); // 0
   * ```
   */
  release(id: number): void {
    const key = this.byId.get(id);
    if (key === undefined) throw new PolicyError('NotFound', `identity ${id} is not allocated`);
    const e = this.byKey.get(key)!;
    if (--e.refs === 0) {
      this.byKey.delete(key);
      this.byId.delete(id);
    }
  }

  /** Number of identities currently allocated. */
  get size(): number {
    return this.byId.size;
  }
}

/** A named port of a pod (container port). */
export interface NamedPort {
  /** Port number. */
  port: number;
  /** IANA protocol number (6 TCP, 17 UDP, 132 SCTP). */
  protocol: number;
}

/** What the compiler knows about one identity: its labels and, for matching, their parsed form. */
export interface IdentityInfo {
  /** The numeric identity. */
  id: number;
  /** `reserved` (1–8), `pod` (cluster scope) or `cidr` (local scope, one per policy prefix). */
  kind: 'reserved' | 'pod' | 'cidr';
  /** Sorted security-relevant labels, `source:key=value`. */
  labels: readonly string[];
  /** Kubernetes labels of a pod identity (own labels plus the namespace-derived ones), by key. */
  k8s: ReadonlyMap<string, string>;
  /** Reserved name for reserved identities. */
  reserved?: ReservedName;
  /**
   * The prefix of a CIDR identity.
   * @internal
   */
  prefix?: Prefix;
  /** KNP ipBlock prefixes containing every pod of this identity (canonical text). */
  ipblocks?: ReadonlySet<string>;
  /** Union of the named ports of the pods of this identity. */
  namedPorts?: ReadonlyMap<string, readonly NamedPort[]>;
}
