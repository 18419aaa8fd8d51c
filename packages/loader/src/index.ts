export type { BpfErrorCode, CgroupHook, ProgInfo, TcDirection, TcxAnchor, XdpMode } from '@datapath/libbpf';
export { BpfError, VerifierError } from '@datapath/libbpf';
export type {
  AttachAsyncOptions,
  AttachCgroupOptions,
  AttachOptions,
  AttachTcOptions,
  AttachTcxOptions,
  AttachXdpOptions,
  DeviceRef,
} from './attach.js';
export {
  attach,
  attachAsync,
  attachCgroup,
  attachTc,
  attachTcx,
  attachXdp,
  cgroupAttach,
  cgroupAttachAsync,
  tcAttach,
  tcxAttach,
  tcxAttachAsync,
  xdpAttach,
  xdpAttachAsync,
} from './attach.js';
export type {
  CollectionMap,
  GlobalSection,
  LoadAsyncOptions,
  LoadOptions,
  MapOfMapsCodecs,
} from './collection.js';
export { Collection, load, loadAsync } from './collection.js';
export type { CompiledObject, CompileInput, CompileOptions, ConfigValue } from './compile.js';
export { compile, configHeader, defaultCacheDir } from './compile.js';
export type { ConstantValue } from './constants.js';
export type { CompileErrorCode, CompileErrorReason, Diagnostic } from './errors.js';
export { CompileError } from './errors.js';
export type { FieldCodecName, GenerateOptions } from './gen/generate.js';
export { generate } from './gen/generate.js';
export type { Link, LinkDetails, LinkKind } from './link.js';
export { FdLink, openPinnedLink, TcLink } from './link.js';
export { buildPacket, EtherType, IpProto } from './packet/build.js';
export { internetChecksum } from './packet/checksum.js';
export type {
  ArpLayer,
  ChecksumVerdict,
  EthLayer,
  IcmpLayer,
  Ipv4Layer,
  Ipv6Layer,
  Layer,
  ParsedLayer,
  ParsedTcpLayer,
  PayloadLayer,
  TcpFlags,
  TcpLayer,
  UdpLayer,
  VxlanLayer,
} from './packet/layers.js';
export { parsePacket, VXLAN_PORT } from './packet/parse.js';
export { Program } from './program.js';
export type {
  AttachedProgram,
  DeviceAttachments,
  TcAttachment,
  TcxAttachment,
  TcxChainState,
  XdpAttachment,
} from './query.js';
export { query } from './query.js';
export type { RunOptions, RunResult, SkbContextFields, TcVerdict, XdpVerdict } from './run.js';
export { skbContext, skbMark, TcAct, XdpAct } from './run.js';
export type { ConstantSpec, MapSpec, ProgramSpec } from './spec.js';
export { ObjectSpec, openObject } from './spec.js';
export type { CompilerRun, CompilerRunner } from './sys/clang.js';
export { clangRunner } from './sys/clang.js';
