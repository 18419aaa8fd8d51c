export type {
  BandwidthLimits,
  ConfigRules,
  IpamConf,
  NetConf,
  PortMapping,
  RuntimeConfig,
} from './config.js';
export { parseConfig, parseWithSchema } from './config.js';
export type { DelegateContext } from './delegate.js';
export { delegate } from './delegate.js';
export type { CniCommand, CniEnv } from './env.js';
export { parseCniArgs, readCniEnv, validateContainerId, validateIfname, validateNetworkName } from './env.js';
export type { CniErrorCodeValue, CniErrorJson, CniErrorOptions } from './errors.js';
export { CniError, CniErrorCode, toCniError } from './errors.js';
export type { CheckNetnsOptions, NetnsCheck, NetnsFound, NetnsMissing } from './netns.js';
export { checkNetnsPath, NSFS_MAGIC, OWN_NETNS } from './netns.js';
export type {
  CniDns,
  CniInterface,
  CniIpConfig,
  CniResult,
  CniRoute,
  InterfaceV04,
  IpConfigV02,
  IpConfigV04,
  ResultV02,
  ResultV04,
  ResultV10,
  ResultV11,
  RouteV04,
  VersionedResult,
} from './result.js';
export { convertResult, formatResult, parseResult, validateResultShape } from './result.js';
export type {
  AddArgs,
  Attachment,
  BaseArgs,
  CheckArgs,
  CniPlugin,
  DelArgs,
  GcArgs,
  PluginIo,
} from './skel.js';
export { processIo, runPlugin } from './skel.js';
export type { CniVersion, VersionInfo } from './version.js';
export {
  ALL_VERSIONS,
  CURRENT_VERSION,
  compareVersions,
  isCniVersion,
  negotiateVersion,
  versionInfo,
} from './version.js';
