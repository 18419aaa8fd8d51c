export type { BpfErrorCode, BpfErrorOptions } from './errors.js';
export { BpfError, errnoError } from './errors.js';
export { possibleCpus } from './map/cpus.js';
export type { MapIoOptions } from './map/io.js';
export { MapIo } from './map/io.js';
export type {
  AttrPointer,
  BpfSyscallOptions,
  MapInfo,
  ObjGetOptions,
  ObjInfo,
  ObjLinkInfo,
  ObjProgInfo,
} from './map/obj.js';
export { bpfSyscall, fdClose, mapFdById, mapInfo, objGet, objInfo, objPin } from './map/obj.js';
export type { MapCreateSpec, MapTypeId } from './map.js';
export { MapFlags, MapType, mapCreate, mapLookup, mapUpdate } from './map.js';
export { BpfCmd } from './sys/bpf-attr.js';
