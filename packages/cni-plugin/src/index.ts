export type { DelegatedIpamConf, HostLocalIpamConf, HostLocalRangeConf, PluginConfig } from './config.js';
export { DEFAULT_AGENT_SOCKET, DEFAULT_PIN_DIR, parsePluginConfig } from './config.js';
export { pluginInfo } from './info.js';
export type { BundleOptions, Installation, InstallErrorCode, InstallOptions } from './install.js';
export { bundlePlugin, InstallError, installPlugin, MIN_NODE_MAJOR } from './install.js';
export { DEFAULT_DATA_DIR } from './ipam.js';
export { datapathCni, HOST_NETNS_ENV } from './plugin.js';
export { datapathCniJsonSchema } from './schema.js';
