export type { Clock } from './clock.js';
export { ManualClock, systemClock } from './clock.js';
export type {
  ClusterIpcacheOptions,
  IpcacheChange,
  IpcacheEntry,
  IpcachePod,
} from './cluster-ipcache.js';
export { ClusterIpcache } from './cluster-ipcache.js';
export type {
  ClusterPoolFamily,
  ClusterPoolOptions,
  ClusterPoolSpec,
  FreeBlocks,
  NodeCidrAllocation,
  NodeCidrChange,
  NodeCidrs,
  ReapOptions,
} from './cluster-pool.js';
export { StoreClusterPool } from './cluster-pool.js';
export type { KvErrorCode, KvErrorOptions, KvReason } from './errors.js';
export { KvError } from './errors.js';
export type {
  AllocatedIdentity,
  IdentityAllocatorOptions,
  IdentityChange,
  IdentityGcOptions,
} from './identity.js';
export {
  canonicalLabels,
  MAX_CLUSTER_IDENTITY,
  MIN_CLUSTER_IDENTITY,
  StoreIdentityAllocator,
} from './identity.js';
export type { MemoryStoreOptions } from './memory.js';
export { MemoryStore } from './memory.js';
export type {
  ClusterNode,
  ClusterNodeChange,
  NodeRegistration,
  NodeRegistryOptions,
} from './node-registry.js';
export { NodeRegistry } from './node-registry.js';
export type { PolicyIdentityAllocatorOptions } from './policy-allocator.js';
export { PolicyIdentityAllocator } from './policy-allocator.js';
export type { NodeSessionOptions } from './session.js';
export { NODES_PREFIX, NodeSession } from './session.js';
export type { EtcdStoreOptions } from './sys/etcd.js';
export { EtcdStore } from './sys/etcd.js';
export type {
  KvCompare,
  KvCompareOp,
  KvEntry,
  KvLease,
  KvListResult,
  KvOp,
  KvPutOptions,
  KvStore,
  KvTxnResult,
  KvWatch,
  KvWatchEvent,
  KvWatchOptions,
} from './types.js';
