export type { LbProblem, LbReason } from './errors.js';
export { LbError } from './errors.js';
export type { FlowTuple } from './flow-hash.js';
export { flowHash, maglevBackendFor } from './flow-hash.js';
export type {
  LayoutCodec,
  LbAffinityMatchKey,
  LbBackendValue,
  LbRevNatValue,
  LbServiceKey,
  LbServiceValue,
} from './layout.js';
export {
  affinityMatchKeyCodec,
  affinityMatchValueCodec,
  backendIdCodec,
  backendValueCodec,
  LB_MAP_NAMES,
  LB_STRUCT_SIZES,
  LbBackendState,
  LbProto,
  LbServiceFlag,
  revNatIdCodec,
  revNatValueCodec,
  serviceKeyCodec,
  serviceValueCodec,
} from './layout.js';
export type { MaglevBackend, MaglevOptions, MaglevPermutation, MaglevTableSize } from './maglev.js';
export {
  DEFAULT_MAGLEV_TABLE_SIZE,
  isMaglevTableSize,
  MAGLEV_TABLE_SIZES,
  maglevMoved,
  maglevPermutation,
  maglevTable,
  murmur3,
} from './maglev.js';
export type {
  AffinityInput,
  Backend,
  BackendInput,
  BackendState,
  Frontend,
  FrontendInput,
  FrontendKind,
  LbProtocol,
  Selection,
  Service,
  ServiceInput,
  ServiceLimits,
} from './model.js';
export {
  DEFAULT_AFFINITY_TIMEOUT,
  DEFAULT_MAX_BACKENDS,
  MAX_AFFINITY_TIMEOUT,
  mappedAddress,
  parseService,
  SLOT_LIMIT,
  unmappedAddress,
} from './model.js';
export type {
  AppliedFrontend,
  AppliedService,
  LbDelete,
  LbMapOp,
  LbPut,
  ServiceChange,
  ServiceTableOptions,
} from './plan.js';
export { ServiceTable } from './plan.js';
export { weightedSlotCounts } from './weights.js';
