// The cheap part of the datapath-cni plugin definition: everything runPlugin needs before a handler runs.
import type { CniPlugin } from '@datapath/cni';
import { ALL_VERSIONS } from '@datapath/cni';
import { type PluginConfig, parsePluginConfig } from './config.js';

/** Versions, about text, config schema and CNI_ARGS keys of datapath-cni. */
export function pluginInfo(): Omit<CniPlugin<PluginConfig>, 'add' | 'del' | 'check' | 'gc' | 'status'> {
  return {
    about: 'CNI plugin datapath-cni (@datapath/cni reference plugin)',
    versions: ALL_VERSIONS,
    config: parsePluginConfig,
    // IP: a requested address, as host-local reads it.
    cniArgs: ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID', 'IP'],
  };
}
