/**
 * CNI invocations served by the agent (`POST /v1/cni`): `datapath-cni` in agent mode (its C shim or its Node
 * client) forwards the runtime's `CNI_*` variables and stdin untouched, and all of the plugin's logic runs
 * here, through @datapath/cni's `runPlugin` (the spec's rules, version negotiation, result conversion, error
 * JSON) with handlers that are agent operations:
 *
 *   ADD   = address with an expiration → endpoint wired into CNI_NETNS (veth into the node namespace, datapath,
 *           identity, policy); answered with `X-Cni-Confirm`, the request the plugin sends once it has
 *           printed the result. A plugin killed before that leaves a lease that expires: the agent removes
 *           the pod again.
 *   DEL   = endpoint removed → address released (idempotent; the netns may be gone, the agent may not know it)
 *   CHECK = the agent's endpoint for the attachment is there and matches prevResult
 *   GC    = every CNI attachment not in `cni.dev/valid-attachments` is removed
 *   STATUS= ready when the agent is (the plugin answers 50 itself when the agent does not answer)
 */
import { existsSync } from 'node:fs';
import {
  CniError,
  CniErrorCode,
  type CniInterface,
  type CniIpConfig,
  type CniPlugin,
  type CniResult,
  type NetConf,
  runPlugin,
} from '@datapath/cni';
import { linkGet } from '@datapath/netdev';
import { Handle, Netns } from '@datapath/netlink';
import { type Agent, attachmentOwner, GATEWAY, GATEWAY6 } from '../agent.js';
import type { PodRecord } from '../state.js';
import type { CniRequest } from './schema.js';

/** What the plugin prints and exits with, and the confirmation it sends after a successful ADD. */
export interface CniAnswer {
  exitCode: number;
  stdout: string;
  /** `POST` this path (no body) once the result is printed: it stops the address's expiration. */
  confirm?: string;
}

/** The config keys agent mode reads (the rest of datapath-cni's keys are ignored here). */
interface AgentModeConfig extends NetConf {
  mode: 'agent';
  agentSocket?: string;
  /** The pod's address families: `["IPv4"]` (default) or `["IPv4", "IPv6"]` (dual stack). */
  ipFamilies?: string[];
  args?: { cni?: { labels?: { key: string; value: string }[] } };
  runtimeConfig?: NetConf['runtimeConfig'] & { labels?: Record<string, string> };
}

/** CNI_ARGS keys a Kubernetes runtime passes. */
const K8S_ARGS = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'];

function validate(base: NetConf): AgentModeConfig {
  const c = base as AgentModeConfig;
  if (c.mode !== 'agent') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `the agent serves datapath-cni configs with "mode": "agent", not ${JSON.stringify(c.mode)}`,
    );
  }
  if (c.ipFamilies !== undefined) familiesOf(c);
  return c;
}

/** The families of `ipFamilies` (Kubernetes' spelling: `IPv4`, `IPv6`). */
function familiesOf(c: AgentModeConfig): (4 | 6)[] {
  const f = c.ipFamilies ?? ['IPv4'];
  if (
    !Array.isArray(f) ||
    f.length === 0 ||
    f.length > 2 ||
    f.some((x) => x !== 'IPv4' && x !== 'IPv6') ||
    new Set(f).size !== f.length
  )
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `ipFamilies: ["IPv4"] or ["IPv4", "IPv6"], got ${JSON.stringify(f)}`,
    );
  return f.map((x) => (x === 'IPv4' ? 4 : 6));
}

/** A pod name from a container id when the runtime passes no Kubernetes names (DNS-1123, ≤ 63). */
function nameFromContainer(id: string): string {
  const n = id
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return n === '' ? 'pod' : n;
}

/** Identity labels: runtimeConfig `labels` (object) and the conventional `args.cni.labels` list. */
function labelsOf(c: AgentModeConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of c.args?.cni?.labels ?? []) {
    if (typeof l?.key !== 'string' || typeof l.value !== 'string')
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        'args.cni.labels: a list of {key, value} strings',
      );
    out[l.key] = l.value;
  }
  const rc = c.runtimeConfig?.labels;
  if (rc !== undefined) {
    if (typeof rc !== 'object' || rc === null || Array.isArray(rc))
      throw new CniError(CniErrorCode.InvalidNetworkConfig, 'runtimeConfig.labels: an object of strings');
    for (const [k, v] of Object.entries(rc)) {
      if (typeof v !== 'string')
        throw new CniError(CniErrorCode.InvalidNetworkConfig, `runtimeConfig.labels.${k}: a string`);
      out[k] = v;
    }
  }
  return out;
}

function resultOf(pod: PodRecord, ifname: string, netns: string, prev: CniResult | undefined): CniResult {
  const ours: CniInterface[] = [
    { name: pod.hostIfname, mac: pod.nodeMac },
    { name: ifname, mac: pod.mac, sandbox: netns },
  ];
  const base = prev?.interfaces?.length ?? 0;
  const ips: CniIpConfig[] = [{ address: `${pod.ip}/32`, gateway: GATEWAY, interface: base + 1 }];
  const routes = [{ dst: '0.0.0.0/0', gw: GATEWAY }];
  if (pod.ip6 !== undefined) {
    ips.push({ address: `${pod.ip6}/128`, gateway: GATEWAY6, interface: base + 1 });
    routes.push({ dst: '::/0', gw: GATEWAY6 });
  }
  return {
    interfaces: [...(prev?.interfaces ?? []), ...ours],
    ips: [...(prev?.ips ?? []), ...ips],
    routes: [...(prev?.routes ?? []), ...routes],
    ...(prev?.dns === undefined ? {} : { dns: prev.dns }),
  };
}

function fail(msg: string): never {
  throw new CniError(CniErrorCode.Internal, `CHECK: ${msg}`);
}

function linkIn(netnsPath: string | Netns, name: string): ReturnType<typeof linkGet> | undefined {
  const ns = typeof netnsPath === 'string' ? Netns.open({ path: netnsPath }) : netnsPath;
  try {
    const h = Handle.open(ns);
    try {
      return linkGet(name, { handle: h });
    } catch (err) {
      if ((err as { code?: string }).code === 'NotFound') return undefined;
      throw err;
    } finally {
      h.close();
    }
  } finally {
    if (typeof netnsPath === 'string') ns.close();
  }
}

function plugin(agent: Agent, leaseMs: number, added: { pod?: PodRecord }): CniPlugin<AgentModeConfig> {
  return {
    config: validate,
    cniArgs: K8S_ARGS,
    about: 'datapath-cni (agent mode, served by the datapath agent)',
    add: async (a) => {
      const namespace = a.args.K8S_POD_NAMESPACE || 'default';
      const name = a.args.K8S_POD_NAME || nameFromContainer(a.containerId);
      const pod = await agent.addAttachedPodAsync({
        namespace,
        name,
        labels: labelsOf(a.config),
        families: familiesOf(a.config),
        attachment: { containerId: a.containerId, ifname: a.ifname, netnsPath: a.netns },
        pendingMs: leaseMs,
      });
      added.pod = pod;
      return resultOf(pod, a.ifname, a.netns, a.prevResult);
    },
    del: async (a) => {
      await agent.removeAttachmentAsync(a.containerId, a.ifname);
    },
    check: (a) => {
      const pod = agent.findAttachment(a.containerId, a.ifname);
      if (pod === undefined) fail(`the agent has no endpoint for ${a.containerId}/${a.ifname}`);
      if (!(a.prevResult.ips ?? []).some((i) => i.address.split('/')[0] === pod.ip))
        fail(`prevResult does not list the endpoint's address ${pod.ip}`);
      if (pod.attachment?.netnsPath !== a.netns)
        fail(`the endpoint is in ${pod.attachment?.netnsPath}, not ${a.netns}`);
      const host = linkIn(agent.node, pod.hostIfname);
      if (host === undefined) fail(`host interface ${pod.hostIfname} is missing`);
      if (!host.up) fail(`host interface ${pod.hostIfname} is down`);
      if (!existsSync(a.netns)) fail(`${a.netns} is gone`);
      const inner = linkIn(a.netns, a.ifname);
      if (inner === undefined) fail(`interface ${a.ifname} is missing in ${a.netns}`);
      if (inner.kind !== 'veth') fail(`${a.ifname} is a ${inner.kind ?? 'device'}, not a veth`);
      if (!inner.up) fail(`${a.ifname} is down`);
    },
    gc: async (a) => {
      await agent.gcAttachmentsAsync(
        a.validAttachments.map((v) => ({ containerId: v.containerID, ifname: v.ifname })),
      );
    },
    status: () => {
      try {
        agent.datapath.policyRevision();
      } catch (err) {
        throw new CniError(
          CniErrorCode.PluginNotAvailable,
          `the datapath agent is not ready: ${(err as Error).message}`,
        );
      }
    },
  };
}

/**
 * Runs one forwarded CNI invocation against the agent and returns what the plugin prints, its exit status
 * and, after a successful ADD, the confirmation path.
 */
export async function handleCni(agent: Agent, req: CniRequest, o: { leaseMs: number }): Promise<CniAnswer> {
  let stdout = '';
  let exitCode = 1;
  const added: { pod?: PodRecord } = {};
  await runPlugin(plugin(agent, o.leaseMs, added), {
    env: req.env,
    readStdin: () => req.stdin,
    writeStdout: (t) => {
      stdout += t;
    },
    writeStderr: (t) => agent.options.log(`cni: ${t.trimEnd()}`),
    exit: (s) => {
      exitCode = s;
    },
  });
  const pod = added.pod;
  if (exitCode === 0 && pod?.attachment !== undefined) {
    const owner = attachmentOwner(pod.attachment.containerId, pod.attachment.ifname);
    return {
      exitCode,
      stdout,
      confirm: `/v1/cni/confirm?ip=${pod.ip}&owner=${encodeURIComponent(owner)}`,
    };
  }
  return { exitCode, stdout };
}
