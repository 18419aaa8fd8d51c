export type { IpFamily } from '@datapath/ip';
export type { AllocatorOptions, Strategy } from './bitmap.js';
export { Bitmap } from './bitmap.js';
export type { CidrSetSnapshot } from './cidrset.js';
export { CidrSet } from './cidrset.js';
export type { Clock } from './clock.js';
export { ManualClock, systemClock } from './clock.js';
export type {
  ClusterFamilyConfig,
  ClusterPoolConfig,
  ClusterPoolSnapshot,
  NodeCidrs,
} from './cluster-pool.js';
export { ClusterPool } from './cluster-pool.js';
export type { FileStoreOptions } from './deprecated.js';
export { FileStore } from './deprecated.js';
export type { IpamErrorCode, IpamErrorOptions, IpamReason } from './errors.js';
export { IpamError } from './errors.js';
export { hostLocalOwner } from './host-local.js';
export type {
  DualAllocation,
  ExpiringAllocation,
  HostScopeDump,
  HostScopeOptions,
  Lease,
} from './host-scope.js';
export { HostScope } from './host-scope.js';
export type { PodCidrSnapshot, PodCidrStats, PodPoolStats } from './pod-pool.js';
export { PodCidrPool } from './pod-pool.js';
export type { RangeOptions, RangeSnapshot } from './range.js';
export { IPV6_RANGE_CAP, RangeAllocator } from './range.js';
export type { Store, StoreProblem, StoreTxn, TransactHint } from './store.js';
export { MemoryIpamStore, MemoryStore } from './store.js';
