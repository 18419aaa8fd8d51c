/**
 * The agent's durable state: one JSON file in the state directory, written atomically. Together
 * with the pinned maps and the IPAM store it is everything a restarted agent needs.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PolicyObject } from '@datapath/policy';
import { AgentError } from './errors.js';
import type { ServiceSpec, ServiceView } from './services.js';

/** A pod the agent runs: its namespace, endpoint, address and datapath ids. */
export interface PodRecord {
  /** `ns/name`. */
  key: string;
  ns: string;
  name: string;
  labels: Record<string, string>;
  ports: { port: number; protocol: string; name?: string }[];
  /** The scenario's address for this pod, when it differs from `ip` (remapped into the pod CIDR). */
  scenarioIp?: string;
  ip: string;
  /** The pod's IPv6 address (dual stack, attached pods only). */
  ip6?: string;
  /** Named network namespace of the pod (`/run/netns/<netns>`). */
  netns: string;
  /** Endpoint id: the key prefix of its policy entries, its counters' key. */
  lxcId: number;
  /** Host-side veth, in the node namespace. */
  hostIfname: string;
  hostIfindex: number;
  mac: string;
  nodeMac: string;
  /** Security identity the last policy compile gave the pod. */
  identity: number;
  /** How the programs are attached: tcx links (pinned) or legacy tc filters. */
  attach: 'tcx' | 'tc';
  /**
   * Set for a pod a container runtime created through the API (CNI ADD): the runtime owns its network
   * namespace (`netns` is then the namespace's path, never deleted by the agent).
   */
  attachment?: PodAttachment;
}

/** The container attachment of a CNI-created pod. */
export interface PodAttachment {
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_IFNAME`: the interface inside the pod. */
  ifname: string;
  /** `CNI_NETNS`: the path of the runtime's network namespace. */
  netnsPath: string;
}

/** An address handed out with an expiration that was not confirmed yet (IPAM allocate, CNI ADD). */
export interface PendingLease {
  /** The IPAM owner. */
  owner: string;
  /** Epoch milliseconds after which the agent releases it. */
  expiresAt: number;
  /** The attachment it was allocated for (a CNI ADD), whose half-made endpoint goes with it. */
  containerId?: string;
  ifname?: string;
}

/** Everything the agent persists besides maps and the IPAM store. */
export interface AgentState {
  version: 1;
  name: string;
  /** Prefix of every namespace, link and pin the agent creates. */
  prefix: string;
  podCidr: string;
  /** The IPv6 pod CIDR, when the agent has one. */
  podCidr6?: string;
  /** The node's address (`host` in scenarios), on the node namespace's loopback. */
  hostIp: string;
  nodeNetns: string;
  worldNetns: string;
  worldIps: string[];
  pinDir: string;
  enforcement: string;
  namespaces: Record<string, { labels: Record<string, string> }>;
  /** Security identities handed out so far (scope and labels → number), kept across compiles and restarts. */
  identities?: Record<string, number>;
  /** Policy objects as given (Kubernetes / Cilium objects, validated). */
  policies: PolicyObject[];
  pods: Record<string, PodRecord>;
  /** `false` when the datapath was built without events (AgentOptions.events). */
  events?: false;
  /** Services (scenario `services`, validated): the lb maps are written from them and the pods. */
  services?: ServiceSpec[];
  /** The services' frontends and backends as last written to the lb maps (`agent service list`). */
  serviceStatus?: ServiceView[];
  /** Pods marked terminating: as backends they keep their flows and get no new ones. */
  terminating?: string[];
  /** Addresses allocated with an expiration and not confirmed yet, by IP. */
  leases?: Record<string, PendingLease>;
  startedAt: string;
}

/** Path of the network namespace file of a pod (its own named one, or the runtime's). */
export function podNetnsPath(pod: Pick<PodRecord, 'netns' | 'attachment'>): string {
  return pod.attachment?.netnsPath ?? `/run/netns/${pod.netns}`;
}

/** Path of the state file inside a state directory. */
export function statePath(stateDir: string): string {
  return join(stateDir, 'state.json');
}

/** Writes the state atomically (temp file + rename). */
export function saveState(stateDir: string, state: AgentState): void {
  mkdirSync(stateDir, { recursive: true });
  const tmp = `${statePath(stateDir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state)}\n`);
  renameSync(tmp, statePath(stateDir));
}

/**
 * {@link saveState} through fs/promises (the write and the rename on libuv's threadpool). Its temp file is its
 * own, so it never mixes with a sync save's; callers order the saves (agent.ts keeps one in flight).
 */
export async function saveStateAsync(stateDir: string, text: string): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const tmp = `${statePath(stateDir)}.async.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, statePath(stateDir));
}

/**
 * Reads the state of the agent in `stateDir`.
 * @throws AgentError `NotRunning` when there is none, `InvalidArgument` when it is unreadable.
 */
export function loadState(stateDir: string): AgentState {
  const path = statePath(stateDir);
  if (!existsSync(path))
    throw new AgentError('NotRunning', `no agent state in ${stateDir} (start one with \`agent up\`)`);
  try {
    const state = JSON.parse(readFileSync(path, 'utf8')) as AgentState;
    if (state.version !== 1) throw new Error(`unknown state version ${String(state.version)}`);
    return state;
  } catch (err) {
    throw new AgentError('InvalidArgument', `unreadable agent state ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
