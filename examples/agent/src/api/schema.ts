/**
 * The agent API's request bodies (zod, strict: an unknown field is an error) and response shapes. Paths are
 * versioned (`/v1/...`); a body that does not parse is answered 400 with every problem listed.
 */
import * as z from 'zod';
import { type ServiceSpec, type ServiceView, serviceSchema } from '../services.js';

/** The API version prefix of every path. */
export const API_PREFIX = '/v1';

const name = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'a DNS-1123 name');
const labelKey = z.string().regex(/^([a-zA-Z0-9.:/_-]{1,253})$/, 'a label key');
const labels = z.record(labelKey, z.string().max(63)).refine((l) => Object.keys(l).length <= 64, {
  message: 'at most 64 labels',
});
const ipv4 = z.ipv4();
const ipv6 = z.ipv6();
const family = z.union([z.literal(4), z.literal(6)]);
const containerId = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,255}$/, 'a container id');
const ifname = z
  .string()
  .min(1)
  .max(15)
  .regex(/^[^/:\s]+$/, 'an interface name')
  .refine((s) => s !== '.' && s !== '..', 'an interface name');
const absPath = z
  .string()
  .regex(/^\/[^\0]*$/, 'an absolute path')
  .max(4096);

/** POST /v1/ipam/allocate */
export const AllocateRequest = z.strictObject({
  owner: z.string().min(1).max(512),
  family: family.optional(),
  /** Milliseconds until the agent releases the address unless it is confirmed (1 ms – 1 h). */
  expiresInMs: z.int().min(1).max(3_600_000).optional(),
});
export type AllocateRequest = z.infer<typeof AllocateRequest>;

/** POST /v1/ipam/release and /v1/ipam/confirm */
export const AddressRequest = z.strictObject({ ip: z.union([ipv4, ipv6]) });
export type AddressRequest = z.infer<typeof AddressRequest>;

/** POST /v1/endpoints */
export const EndpointCreateRequest = z.strictObject({
  containerId,
  netns: absPath,
  ifname: ifname.default('eth0'),
  podNamespace: name,
  podName: name,
  labels: labels.optional(),
  /** An address from POST /v1/ipam/allocate: taking it confirms it. Default: the next free one. */
  ip: ipv4.optional(),
  /** An IPv6 address from POST /v1/ipam/allocate (family 6); implies families [4, 6]. */
  ip6: ipv6.optional(),
  /** `[4]` (default) or `[4, 6]`: dual stack, also an address from the agent's IPv6 pod CIDR. */
  families: z.array(family).min(1).max(2).optional(),
});
export type EndpointCreateRequest = z.input<typeof EndpointCreateRequest>;

/** PUT /v1/policies with `Content-Type: application/json` (YAML bodies are policy documents as they are). */
export const PolicyApplyRequest = z.strictObject({
  policies: z.array(z.record(z.string(), z.unknown())).max(10_000),
  enforcement: z.enum(['default', 'always', 'never']).optional(),
});
export type PolicyApplyRequest = z.infer<typeof PolicyApplyRequest>;

/** POST /v1/cni: one CNI invocation as the plugin received it. */
export const CniRequest = z.strictObject({
  /** The `CNI_*` variables (others are refused). */
  env: z.strictObject({
    CNI_COMMAND: z.string().max(16),
    CNI_CONTAINERID: z.string().max(512).optional(),
    CNI_NETNS: z.string().max(4096).optional(),
    CNI_IFNAME: z.string().max(64).optional(),
    CNI_ARGS: z.string().max(65536).optional(),
    CNI_PATH: z.string().max(65536).optional(),
  }),
  /** The network configuration, as read from stdin. */
  stdin: z.string().max(1 << 20),
});
export type CniRequest = z.infer<typeof CniRequest>;

/**
 * POST /v1/services and PUT /v1/services/<ns>/<name>: one service, Kubernetes-shaped as in a scenario
 * (`namespace`, `name`, `type` ClusterIP|NodePort, `clusterIP(s)`, `externalIPs`, `ports`, `selector` over
 * pod labels and/or explicit `backends`, `sessionAffinity`).
 */
export const ServiceRequest = serviceSchema;
export type ServiceRequest = z.input<typeof ServiceRequest>;

/** A service as the API returns it: what was given, and what the maps hold for it (frontends, backends). */
export interface ServiceInfo extends ServiceView {
  spec: ServiceSpec;
}

/** An endpoint as the API returns it. */
export interface EndpointInfo {
  /** Endpoint id (the datapath's lxc id). */
  id: number;
  /** `namespace/name`. */
  pod: string;
  namespace: string;
  name: string;
  ip: string;
  /** The IPv6 address of a dual-stack endpoint. */
  ip6?: string;
  identity: number;
  labels: Record<string, string>;
  /** Host-side interface (in the agent's node namespace). */
  hostIfname: string;
  mac: string;
  attach: 'tcx' | 'tc';
  /** `cni` for pods made through the API, `scenario` for the agent's own. */
  source: 'cni' | 'scenario';
  containerId?: string;
  ifname?: string;
  netns: string;
}

/** GET /v1/status */
export interface StatusInfo {
  name: string;
  startedAt: string;
  podCidr: string;
  podCidr6?: string;
  hostIp: string;
  nodeNetns: string;
  enforcement: string;
  endpoints: number;
  policies: number;
  policyRevision: number;
  allocated: number;
  pendingLeases: number;
  ipam: string[];
}

/** The body of every error answer. */
export interface ApiErrorBody {
  error: {
    /** The SDK-wide code (`InvalidArgument`, `NotFound`, …). */
    code: string;
    /** The agent's own reason, when it has one (`InvalidScenario`, `AlreadyRunning`, …). */
    reason?: string;
    message: string;
    /** Validation problems (path and message). */
    issues?: { path: string; message: string }[];
  };
}
