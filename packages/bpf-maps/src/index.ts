export type { BpfErrorCode } from '@datapath/libbpf';
export { BpfError } from '@datapath/libbpf';
export type {
  Codec,
  CodecType,
  PadCodec,
  StructCodec,
  StructFields,
  StructOptions,
  StructType,
} from './codec.js';
export {
  align,
  array,
  be16,
  be32,
  bytes,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  ipv6,
  mac,
  pad,
  struct,
  u8,
  u16,
  u32,
  u64,
} from './codec.js';
export type { AnyMap, FromFdOptions, MapCodecs, OpenMapCodecs } from './kinds.js';
export {
  ArrayMap,
  HashMap,
  LpmTrieMap,
  LruHashMap,
  openMapFd,
  PerCpuArrayMap,
  PerCpuHashMap,
  ProgArrayMap,
} from './kinds.js';
export type { LpmKey, LpmKeyOptions } from './lpm.js';
export { lpmKey, lpmKeyCodec } from './lpm.js';
export type {
  BatchOptions,
  IterateOptions,
  IterationStats,
  MapKind,
  PlainMapKind,
  UpdateFlag,
} from './map.js';
export { BpfMap } from './map.js';
export type {
  ArrayOfMapsSpec,
  HashOfMapsSpec,
  InnerMapKind,
  InnerMapRef,
  InnerMapShape,
  InnerMapSpec,
} from './of-maps.js';
export { ArrayOfMaps, HashOfMaps, MapOfMaps } from './of-maps.js';
export type {
  BaseMapSpec,
  CreateMapSpec,
  IndexedMapKind,
  IndexedMapSpec,
  KeyedMapKind,
  KeyedMapSpec,
  MapOfKind,
  MapSpec,
  PinnedIndexedSpec,
  PinnedKeyedSpec,
  PinnedOptions,
  PinnedProgArraySpec,
  PinnedSpec,
  ProgArraySpec,
} from './open.js';
export { createMap, openPinned } from './open.js';
export type { PerfEventArrayOptions } from './perf.js';
export { PerfEventArray } from './perf.js';
export type { EventSubscription, EventsOptions, RecordHandler, SubscribeOptions } from './reader.js';
export { EventReader } from './reader.js';
export type { RingBufOptions } from './ringbuf.js';
export { RingBuf } from './ringbuf.js';
export type { UnionOptions, UnionType } from './union.js';
export { enumeration, union } from './union.js';
export type { RecordBatch, RecordView } from './views.js';
