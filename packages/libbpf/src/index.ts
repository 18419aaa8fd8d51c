export type { CgroupHook } from './cgroup.js';
export { cgroupAttach, cgroupAttachAsync, cgroupQuery } from './cgroup.js';
export type { BpfErrnoOptions, BpfErrorCode, BpfErrorOptions } from './errors.js';
export { BpfError, errnoError } from './errors.js';
export type {
  FdWatcher,
  FdWatchMode,
  Mapping,
  MmapOptions,
  PerfOutputOptions,
  WatchFdOptions,
} from './events.js';
export { fdDup, mmapFd, pageSize, perfEventOpenBpfOutput, watchFd } from './events.js';
export type {
  FeatureProbeResult,
  ProbeInconclusive,
  ProbeResult,
  ProbeSupported,
  ProbeUnsupported,
} from './features.js';
export { probeBatchOps, probeMapType, probeProgType, probeReset, probeTcx } from './features.js';
export type { BpfLinkInfo, LinkInfo } from './link.js';
export {
  AttachType,
  ifIndexToName,
  ifNameToIndex,
  LinkType,
  linkClose,
  linkCloseAsync,
  linkCreate,
  linkCreateAsync,
  linkDetach,
  linkDetachAsync,
  linkFdById,
  linkInfo,
  linkOpenPinned,
  linkPin,
  linkUpdate,
} from './link.js';
export { possibleCpus } from './map/cpus.js';
export type { MapIoOptions } from './map/io.js';
export { MapIo } from './map/io.js';
export type { MapCreateSpec, MapTypeId } from './map.js';
export { MapFlags, MapType, mapCreate, mapLookup, mapUpdate } from './map.js';
export type {
  AttrPointer,
  BpfSyscallOptions,
  MapInfo,
  ObjGetOptions,
  ObjInfo,
  ObjLinkInfo,
  ObjProgInfo,
} from './obj.js';
export { bpfSyscall, fdClose, mapFdById, mapInfo, objGet, objInfo, objPin } from './obj.js';
export type {
  ConstantKind,
  LoadedMap,
  LoadedProgram,
  ObjectConstantDecl,
  ObjectDescription,
  ObjectLoadAsyncOptions,
  ObjectLoadOptions,
  ObjectMapDecl,
  ObjectProgramDecl,
  PinnedMapInfo,
} from './object.js';
export {
  LoadedObject,
  objectDescribe,
  objectLoad,
  objectLoadAsync,
  pinnedMapInfo,
  VerifierError,
} from './object.js';
export type { ProgInfo } from './prog.js';
export { progInfo, progInfoById, progProbeIsa, progTypeName } from './prog.js';
export type { ProgTestRunOptions, ProgTestRunResult } from './prog-run.js';
export { progTestRun, TestRunCtxSize, TestRunFlags } from './prog-run.js';
export { BpfCmd } from './sys/bpf-attr.js';
export type { BpfBackend } from './sys/libc.js';
export { bpfBackend } from './sys/libc.js';
export type { TcFilter, TcFilterId } from './tc.js';
export { tcAttach, tcDetach, tcHookCreate, tcHookDestroy, tcList, tcQuery } from './tc.js';
export type {
  AsyncAttachOptions,
  TcDirection,
  TcxAnchor,
  TcxAttachOptions,
  TcxChain,
  TcxEntry,
} from './tcx.js';
export { tcxAttach, tcxAttachAsync, tcxQuery } from './tcx.js';
export type { XdpMode, XdpState } from './xdp.js';
export { xdpAttach, xdpAttachAsync, xdpQuery } from './xdp.js';
