// Layouts of `union bpf_attr` and the info structs, as offsets into little-endian byte buffers.
// Checked against linux/bpf.h (UAPI 6.x); the constants Debian's 6.1 headers and libbpf 1.1 lack
// (tcx attach types, the tcx link type) are defined here.

/**
 * `enum bpf_cmd` values, for {@link bpfSyscall}.
 *
 * @example Naming a command
 * ```ts
 * import { BpfCmd } from '@datapath/libbpf';
 * console.log(BpfCmd.ProgQuery); // 16
 * ```
 */
export const Cmd = {
  /** `BPF_MAP_CREATE` */
  MapCreate: 0,
  /** `BPF_MAP_LOOKUP_ELEM` */
  MapLookupElem: 1,
  /** `BPF_MAP_UPDATE_ELEM` */
  MapUpdateElem: 2,
  /** `BPF_MAP_DELETE_ELEM` */
  MapDeleteElem: 3,
  /** `BPF_MAP_GET_NEXT_KEY` */
  MapGetNextKey: 4,
  /** `BPF_PROG_LOAD` */
  ProgLoad: 5,
  /** `BPF_OBJ_PIN` */
  ObjPin: 6,
  /** `BPF_OBJ_GET` */
  ObjGet: 7,
  /** `BPF_PROG_TEST_RUN` */
  ProgTestRun: 10,
  /** `BPF_PROG_QUERY` */
  ProgQuery: 16,
  /** `BPF_OBJ_GET_INFO_BY_FD` */
  ObjGetInfoByFd: 15,
  /** `BPF_MAP_GET_FD_BY_ID` */
  MapGetFdById: 14,
  /** `BPF_PROG_GET_FD_BY_ID` */
  ProgGetFdById: 13,
  /** `BPF_MAP_LOOKUP_AND_DELETE_ELEM` */
  MapLookupAndDeleteElem: 21,
  /** `BPF_MAP_FREEZE` */
  MapFreeze: 22,
  /** `BPF_MAP_LOOKUP_BATCH` */
  MapLookupBatch: 24,
  /** `BPF_MAP_LOOKUP_AND_DELETE_BATCH` */
  MapLookupAndDeleteBatch: 25,
  /** `BPF_MAP_UPDATE_BATCH` */
  MapUpdateBatch: 26,
  /** `BPF_MAP_DELETE_BATCH` */
  MapDeleteBatch: 27,
  /** `BPF_LINK_CREATE` */
  LinkCreate: 28,
  /** `BPF_LINK_UPDATE` */
  LinkUpdate: 29,
  /** `BPF_LINK_GET_FD_BY_ID` */
  LinkGetFdById: 30,
  /** `BPF_LINK_DETACH` */
  LinkDetach: 34,
} as const;

/** Human-readable syscall names for error messages, indexed by command. */
export const CMD_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(Cmd).map(([k, v]) => [v, `bpf(BPF_${k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()})`]),
);

/** BPF_MAP_CREATE attr: fields up to and including `map_extra`. */
export const MapCreateAttr = {
  size: 72,
  mapType: 0,
  keySize: 4,
  valueSize: 8,
  maxEntries: 12,
  mapFlags: 16,
  innerMapFd: 20,
  numaNode: 24,
  mapName: 28,
  mapIfindex: 44,
  btfFd: 48,
  btfKeyTypeId: 52,
  btfValueTypeId: 56,
  btfVmlinuxValueTypeId: 60,
  mapExtra: 64,
} as const;

/** *_ELEM and GET_NEXT_KEY attr: `map_fd`, `key`, `value`/`next_key`, `flags`. */
export const ElemAttr = { size: 32, mapFd: 0, key: 8, value: 16, flags: 24 } as const;

/** *_BATCH attr. */
export const BatchAttr = {
  size: 56,
  inBatch: 0,
  outBatch: 8,
  keys: 16,
  values: 24,
  count: 32,
  mapFd: 36,
  elemFlags: 40,
  flags: 48,
} as const;

/** BPF_OBJ_PIN / BPF_OBJ_GET attr. */
export const ObjAttr = { size: 16, pathname: 0, bpfFd: 8, fileFlags: 12 } as const;

/** BPF_OBJ_GET_INFO_BY_FD attr. */
export const InfoAttr = { size: 16, bpfFd: 0, infoLen: 4, info: 8 } as const;

/** BPF_*_GET_FD_BY_ID attr: the id, then `next_id`, then `open_flags`. */
export const GetFdByIdAttr = { size: 12, id: 0, openFlags: 8 } as const;

/** `struct bpf_map_info`. */
export const MapInfoLayout = {
  size: 88,
  type: 0,
  id: 4,
  keySize: 8,
  valueSize: 12,
  maxEntries: 16,
  mapFlags: 20,
  name: 24,
  ifindex: 40,
  btfId: 64,
  btfKeyTypeId: 68,
  btfValueTypeId: 72,
  mapExtra: 80,
} as const;

/** `struct bpf_prog_info` (pointer fields stay zero, so the kernel copies no arrays). */
export const ProgInfoLayout = {
  size: 232,
  type: 0,
  id: 4,
  tag: 8,
  jitedProgLen: 16,
  xlatedProgLen: 20,
  loadTime: 40,
  createdByUid: 48,
  nrMapIds: 52,
  name: 64,
  ifindex: 80,
  gplCompatible: 84,
  btfId: 128,
  runTimeNs: 192,
  runCnt: 200,
  verifiedInsns: 216,
} as const;

/** `struct bpf_link_info`: header, then a per-type union at offset 16. */
export const LinkInfoLayout = { size: 64, type: 0, id: 4, progId: 8, union: 16 } as const;

/** BPF_PROG_LOAD attr (the fields a probe needs). */
export const ProgLoadAttr = {
  size: 128,
  progType: 0,
  insnCnt: 4,
  insns: 8,
  license: 16,
  expectedAttachType: 68,
} as const;

/** BPF_PROG_TEST_RUN attr (the `test` member of `union bpf_attr`). */
export const TestRunAttr = {
  size: 80,
  progFd: 0,
  retval: 4,
  dataSizeIn: 8,
  dataSizeOut: 12,
  dataIn: 16,
  dataOut: 24,
  repeat: 32,
  duration: 36,
  ctxSizeIn: 40,
  ctxSizeOut: 44,
  ctxIn: 48,
  ctxOut: 56,
  flags: 64,
  cpu: 68,
  batchSize: 72,
} as const;

/** BPF_LINK_CREATE attr (generic head). */
export const LinkCreateAttr = {
  size: 64,
  progFd: 0,
  targetFd: 4,
  attachType: 8,
  flags: 12,
} as const;

/** `BPF_OBJ_NAME_LEN`. */
export const OBJ_NAME_LEN = 16;

/** `enum bpf_attach_type` values libbpf 1.1 / Debian 6.1 headers lack. */
export const AttachTypeTcx = { ingress: 46, egress: 47 } as const;
/** `BPF_LINK_TYPE_TCX`, missing from libbpf 1.1. */
export const LINK_TYPE_TCX = 11;

export { Cmd as BpfCmd };
