/**
 * Services of a scenario, pure: the `services` section validated (Kubernetes-shaped: type, cluster IPs,
 * ports, selector, session affinity, external IPs), selectors resolved to backend pods, and the
 * `@datapath/lb` service inputs the socket LB is written from. No kernel access here (services-lb.ts
 * writes the maps).
 */
import { formatIp, tryParseIp } from '@datapath/ip';
import { LbError, ServiceTable } from '@datapath/lb';
import { z } from 'zod';
import { AgentError } from './errors.js';

/** One port of a service. */
export interface ServicePort {
  /** Port name (optional). */
  name?: string | undefined;
  /** The port clients connect to on the frontend addresses. */
  port: number;
  /** TCP or UDP. */
  protocol: 'TCP' | 'UDP';
  /** The backend pods' port: a number or the name of a pod port; default `port`. */
  targetPort?: number | string | undefined;
  /** NodePort services: the port on the node's address (30000–32767). */
  nodePort?: number | undefined;
}

/** A service of a scenario, validated. */
export interface ServiceSpec {
  /** Namespace (declared in the scenario): the selector picks pods of this namespace. */
  namespace: string;
  name: string;
  type: 'ClusterIP' | 'NodePort';
  /** Frontend addresses, IPv4 and/or IPv6 (one per family at most, as Kubernetes' `clusterIPs`). */
  clusterIPs: string[];
  /** Extra frontend addresses (`externalIPs`). */
  externalIPs: string[];
  ports: ServicePort[];
  /** Pod labels a backend must carry (every key/value); empty = no pod is selected. */
  selector: Record<string, string>;
  /**
   * Backends given by address (a service without a selector, as Kubernetes' manual Endpoints), besides
   * the selected pods: `port` is the backend port for every service port (default: a numeric
   * `targetPort`, else the service port).
   */
  backends?: { address: string; port?: number | undefined }[] | undefined;
  /** `ClientIP` gives session affinity (`sessionAffinityTimeoutSeconds`, default 10800). */
  sessionAffinity: 'None' | 'ClientIP';
  sessionAffinityTimeoutSeconds?: number | undefined;
}

/** A pod as a selector sees it (local or on another node). */
export interface BackendPod {
  key: string;
  namespace: string;
  labels: Record<string, string>;
  ip: string;
  ports?: readonly { port: number; protocol?: string | undefined; name?: string | undefined }[] | undefined;
  /** The node the pod runs on, when it is not this one. */
  node?: string | undefined;
}

/** What the `lb` maps get for one port and family of a service. */
export interface LbServiceInput {
  name: string;
  protocol: 'TCP' | 'UDP';
  frontends: { kind: 'ClusterIP' | 'NodePort' | 'ExternalIP'; address: string; port: number }[];
  backends: { address: string; port: number; state: 'active' | 'terminating' }[];
  affinity?: { timeoutSeconds: number };
}

/** One backend of a service as the agent reports it. */
export interface ServiceBackendView {
  pod: string;
  address: string;
  port: number;
  state: 'active' | 'terminating';
  node?: string | undefined;
}

/** A service as `agent service list` shows it. */
export interface ServiceView {
  service: string;
  type: 'ClusterIP' | 'NodePort';
  frontends: string[];
  ports: { port: number; protocol: string; targetPort: number | string; nodePort?: number | undefined }[];
  backends: (ServiceBackendView & { protocol: string; servicePort: number })[];
}

const port = z.number().int().min(1).max(65535);
/** One service as a scenario or the agent API (`POST /v1/services`) gives it (strict: unknown fields are errors). */
export const serviceSchema = z.strictObject({
  namespace: z.string().min(1),
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label'),
  type: z.enum(['ClusterIP', 'NodePort']).optional(),
  clusterIP: z.string().optional(),
  clusterIPs: z.array(z.string()).min(1).max(2).optional(),
  externalIPs: z.array(z.string()).optional(),
  ports: z
    .array(
      z.strictObject({
        name: z.string().min(1).optional(),
        port,
        protocol: z.enum(['TCP', 'UDP']).optional(),
        targetPort: z.union([port, z.string().min(1)]).optional(),
        nodePort: z.number().int().min(30000).max(32767).optional(),
      }),
    )
    .min(1),
  selector: z.record(z.string(), z.string()).optional(),
  backends: z
    .array(z.strictObject({ address: z.string(), port: port.optional() }))
    .max(4096)
    .optional(),
  sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  sessionAffinityTimeoutSeconds: z.number().int().min(1).max(86400).optional(),
});

/** A validation problem: where and what. */
interface Problem {
  path: string;
  message: string;
}

function fail(problems: readonly Problem[]): never {
  throw new AgentError(
    'InvalidScenario',
    `invalid services: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
  );
}

/**
 * Validates a scenario's `services` section: the schema, declared namespaces, addresses, duplicate
 * service names, duplicate ports, and (through `@datapath/lb`'s planner) frontends that two services
 * or ports share. Nothing is written anywhere. Without `namespaces` (the agent API), any namespace goes.
 * @throws AgentError `InvalidScenario` naming every problem with its path.
 */
export function parseServices(
  raw: unknown,
  namespaces: Readonly<Record<string, unknown>> | undefined,
): ServiceSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) fail([{ path: 'services', message: 'must be a list' }]);
  const problems: Problem[] = [];
  const out: ServiceSpec[] = [];
  const names = new Set<string>();
  raw.forEach((item, i) => {
    const at = `services[${i}]`;
    const r = serviceSchema.safeParse(item);
    if (!r.success) {
      for (const issue of r.error.issues)
        problems.push({ path: `${at}.${issue.path.join('.')}`.replace(/\.$/, ''), message: issue.message });
      return;
    }
    const s = r.data;
    if (namespaces !== undefined && !(s.namespace in namespaces))
      problems.push({ path: `${at}.namespace`, message: `namespace ${s.namespace} is not declared` });
    const key = `${s.namespace}/${s.name}`;
    if (names.has(key)) problems.push({ path: `${at}.name`, message: `service ${key} is declared twice` });
    names.add(key);
    const ips = s.clusterIPs ?? (s.clusterIP === undefined ? [] : [s.clusterIP]);
    if (ips.length === 0) problems.push({ path: `${at}.clusterIP`, message: 'a cluster IP is required' });
    const canon = (list: readonly string[], path: string): string[] =>
      list.map((a, j) => {
        const ip = tryParseIp(a);
        if (ip === undefined || a.includes('/')) {
          problems.push({ path: `${path}[${j}]`, message: `not an IP address: ${JSON.stringify(a)}` });
          return a;
        }
        return formatIp(ip);
      });
    const clusterIPs = canon(ips, `${at}.clusterIPs`);
    const explicit = canon(
      (s.backends ?? []).map((b) => b.address),
      `${at}.backends`,
    ).map((address, j) => ({
      address,
      ...(s.backends![j]!.port === undefined ? {} : { port: s.backends![j]!.port }),
    }));
    const seenBackends = new Set<string>();
    explicit.forEach((b, j) => {
      const k = `${b.address}|${b.port ?? ''}`;
      if (seenBackends.has(k))
        problems.push({ path: `${at}.backends[${j}]`, message: `backend ${b.address} is given twice` });
      seenBackends.add(k);
    });
    const fams = clusterIPs.map((a) => (a.includes(':') ? 6 : 4));
    if (new Set(fams).size !== fams.length)
      problems.push({ path: `${at}.clusterIPs`, message: 'at most one address per family' });
    const seenPorts = new Set<string>();
    s.ports.forEach((p, j) => {
      const pk = `${p.port}/${p.protocol ?? 'TCP'}`;
      if (seenPorts.has(pk))
        problems.push({ path: `${at}.ports[${j}]`, message: `port ${pk} is given twice` });
      seenPorts.add(pk);
      if (p.nodePort !== undefined && s.type !== 'NodePort')
        problems.push({ path: `${at}.ports[${j}].nodePort`, message: 'only for type NodePort' });
    });
    out.push({
      namespace: s.namespace,
      name: s.name,
      type: s.type ?? 'ClusterIP',
      clusterIPs,
      externalIPs: canon(s.externalIPs ?? [], `${at}.externalIPs`),
      ports: s.ports.map((p) => ({
        port: p.port,
        protocol: p.protocol ?? 'TCP',
        ...(p.name === undefined ? {} : { name: p.name }),
        ...(p.targetPort === undefined ? {} : { targetPort: p.targetPort }),
        ...(p.nodePort === undefined ? {} : { nodePort: p.nodePort }),
      })),
      selector: { ...(s.selector ?? {}) },
      ...(s.backends === undefined ? {} : { backends: explicit }),
      sessionAffinity: s.sessionAffinity ?? 'None',
      ...(s.sessionAffinityTimeoutSeconds === undefined
        ? {}
        : { sessionAffinityTimeoutSeconds: s.sessionAffinityTimeoutSeconds }),
    });
  });
  if (problems.length > 0) fail(problems);
  // Frontends shared between services (or a NodePort used twice): plan them all on a scratch table.
  checkPlan(out.flatMap((s) => lbInputs(s, [], new Set(), '198.18.0.1')));
  return out;
}

/**
 * Plans `inputs` on a scratch `ServiceTable` (pure): the planner's checks (addresses, ports, a frontend
 * of two services, too many backends) run before any map is written.
 * @throws AgentError `InvalidScenario` with the `LbError` as cause.
 */
export function checkPlan(inputs: readonly LbServiceInput[]): void {
  const scratch = new ServiceTable();
  for (const input of inputs) {
    try {
      scratch.upsert(input).commit();
    } catch (err) {
      if (!(err instanceof LbError)) throw err;
      throw new AgentError('InvalidScenario', `service ${input.name}: ${err.message} [${err.reason}]`, {
        cause: err,
      });
    }
  }
}

/** `ns/name` of a service. */
export function serviceKey(s: Pick<ServiceSpec, 'namespace' | 'name'>): string {
  return `${s.namespace}/${s.name}`;
}

/** Whether a pod is selected by a service (same namespace, every selector label; an empty selector picks none). */
export function selects(s: ServiceSpec, pod: Pick<BackendPod, 'namespace' | 'labels'>): boolean {
  const sel = Object.entries(s.selector);
  return sel.length > 0 && pod.namespace === s.namespace && sel.every(([k, v]) => pod.labels[k] === v);
}

/** The backend port of a pod for a service port; undefined when a named target port is not on the pod. */
export function targetPortOf(p: ServicePort, pod: BackendPod): number | undefined {
  const t = p.targetPort ?? p.port;
  if (typeof t === 'number') return t;
  return pod.ports?.find((x) => x.name === t && (x.protocol ?? 'TCP') === p.protocol)?.port;
}

/** The backends of one port of a service, sorted by pod key (IPv4 pods only for an IPv4 frontend and so on). */
export function backendsOf(
  s: ServiceSpec,
  p: ServicePort,
  pods: readonly BackendPod[],
  terminating: ReadonlySet<string>,
  family?: 4 | 6,
): ServiceBackendView[] {
  const out: ServiceBackendView[] = [];
  for (const pod of [...pods].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    if (!selects(s, pod)) continue;
    if (family !== undefined && (pod.ip.includes(':') ? 6 : 4) !== family) continue;
    const port = targetPortOf(p, pod);
    if (port === undefined) continue;
    out.push({
      pod: pod.key,
      address: pod.ip,
      port,
      state: terminating.has(pod.key) ? 'terminating' : 'active',
      ...(pod.node === undefined ? {} : { node: pod.node }),
    });
  }
  for (const b of s.backends ?? []) {
    if (family !== undefined && (b.address.includes(':') ? 6 : 4) !== family) continue;
    const port =
      b.port ??
      (typeof p.targetPort === 'number' ? p.targetPort : p.targetPort === undefined ? p.port : undefined);
    if (port === undefined) continue;
    out.push({ pod: '', address: b.address, port, state: 'active' });
  }
  return out;
}

/**
 * The `@datapath/lb` services of one scenario service: one per port and address family (the maps hold
 * one protocol and family per service), named `ns/name:port/PROTO` (`…/v6` for IPv6). Frontends: the
 * cluster IP, the external IPs and, for NodePort, `nodeAddress:nodePort`.
 */
export function lbInputs(
  s: ServiceSpec,
  pods: readonly BackendPod[],
  terminating: ReadonlySet<string>,
  nodeAddress: string | undefined,
): LbServiceInput[] {
  const out: LbServiceInput[] = [];
  for (const fam of [4, 6] as const) {
    const ofFam = (a: string) => (a.includes(':') ? 6 : 4) === fam;
    const cluster = s.clusterIPs.filter(ofFam);
    if (cluster.length === 0) continue;
    for (const p of s.ports) {
      const frontends: LbServiceInput['frontends'] = [
        ...cluster.map((address) => ({ kind: 'ClusterIP' as const, address, port: p.port })),
        ...s.externalIPs
          .filter(ofFam)
          .map((address) => ({ kind: 'ExternalIP' as const, address, port: p.port })),
      ];
      if (p.nodePort !== undefined && nodeAddress !== undefined && ofFam(nodeAddress))
        frontends.push({ kind: 'NodePort', address: nodeAddress, port: p.nodePort });
      out.push({
        name: `${serviceKey(s)}:${p.port}/${p.protocol}${fam === 6 ? '/v6' : ''}`,
        protocol: p.protocol,
        frontends,
        backends: backendsOf(s, p, pods, terminating, fam).map((b) => ({
          address: b.address,
          port: b.port,
          state: b.state,
        })),
        ...(s.sessionAffinity === 'ClientIP'
          ? { affinity: { timeoutSeconds: s.sessionAffinityTimeoutSeconds ?? 10800 } }
          : {}),
      });
    }
  }
  return out;
}

/** Every service as `agent service list` shows it. */
export function serviceViews(
  services: readonly ServiceSpec[],
  pods: readonly BackendPod[],
  terminating: ReadonlySet<string>,
  nodeAddress: string | undefined,
): ServiceView[] {
  return services.map((s) => ({
    service: serviceKey(s),
    type: s.type,
    frontends: [
      ...s.clusterIPs,
      ...s.externalIPs,
      ...(s.type === 'NodePort' && nodeAddress !== undefined ? [`${nodeAddress} (NodePort)`] : []),
    ],
    ports: s.ports.map((p) => ({
      port: p.port,
      protocol: p.protocol,
      targetPort: p.targetPort ?? p.port,
      ...(p.nodePort === undefined ? {} : { nodePort: p.nodePort }),
    })),
    backends: s.ports.flatMap((p) =>
      backendsOf(s, p, pods, terminating).map((b) => ({ ...b, protocol: p.protocol, servicePort: p.port })),
    ),
  }));
}

/** A probe target naming a service: `svc/<ns>/<name>` or `svc/<ns>/<name>:<port>`. */
export interface ServiceTarget {
  service: string;
  port: number | undefined;
}

/** Parses `svc/<ns>/<name>[:<port>]`; undefined for any other endpoint. */
export function parseServiceTarget(to: string): ServiceTarget | undefined {
  const m = /^svc\/([^/\s]+\/[^/\s:]+)(?::(\d{1,5}))?$/.exec(to);
  if (!m) return undefined;
  return { service: m[1]!, port: m[2] === undefined ? undefined : Number(m[2]) };
}

/** A scenario with services (the agent's reading of a scenario document). */
export type ServiceScenario<S extends { probes: { from: string; to: string; port: number }[] }> = S & {
  /** Validated services; probes may target `svc/<ns>/<name>[:<port>]`. */
  services?: ServiceSpec[];
};

/**
 * Validates a scenario document that may have `services` and service probes: the rest goes through
 * `validate` (the policy package's scenario validator), the services through {@link parseServices}, and
 * every service probe is checked (known service, a port it has, its protocol); probes keep their order.
 * @throws AgentError `InvalidScenario`; whatever `validate` throws.
 */
export function validateServiceScenario<
  S extends { namespaces: Record<string, unknown>; probes: { from: string; to: string; port: number }[] },
>(doc: unknown, validate: (rest: unknown) => S): ServiceScenario<S> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return validate(doc);
  const raw = doc as Record<string, unknown> & { probes?: unknown };
  const probes = Array.isArray(raw.probes) ? (raw.probes as unknown[]) : undefined;
  const isSvc = (p: unknown) =>
    typeof p === 'object' && p !== null && typeof (p as { to?: unknown }).to === 'string'
      ? (p as { to: string }).to.startsWith('svc/')
      : false;
  if (raw.services === undefined && !probes?.some(isSvc)) return validate(doc);
  const { services: rawServices, ...rest } = raw;
  // Service probes are validated here; the others (and a placeholder-free list) by `validate`.
  const plain = probes?.filter((p) => !isSvc(p));
  const s = validate(plain === undefined ? rest : { ...rest, probes: plain });
  const services = parseServices(rawServices, s.namespaces);
  const byKey = new Map(services.map((x) => [serviceKey(x), x]));
  const problems: Problem[] = [];
  const merged: S['probes'] = [];
  let next = 0;
  probes?.forEach((p, i) => {
    if (!isSvc(p)) {
      merged.push(s.probes[next++]!);
      return;
    }
    const probe = p as { from: unknown; to: string; port?: unknown; protocol?: unknown; expect?: unknown };
    const at = `probes[${i}]`;
    const target = parseServiceTarget(probe.to);
    const svc = target === undefined ? undefined : byKey.get(target.service);
    if (target === undefined || svc === undefined) {
      problems.push({
        path: `${at}.to`,
        message: `unknown service ${probe.to} (svc/<namespace>/<name>[:<port>])`,
      });
      return;
    }
    const port = target.port ?? probe.port;
    const protocol = probe.protocol ?? 'TCP';
    if (typeof port !== 'number' || !svc.ports.some((x) => x.port === port && x.protocol === protocol)) {
      problems.push({
        path: `${at}.port`,
        message: `${probe.to} has no port ${String(port)}/${String(protocol)}`,
      });
      return;
    }
    const world = typeof probe.from === 'string' && probe.from.startsWith('world:');
    if (
      typeof probe.from !== 'string' ||
      (probe.from !== 'host' && !world && !/^[^/\s]+\/[^/\s]+$/.test(probe.from))
    ) {
      problems.push({
        path: `${at}.from`,
        message: 'a service probe is sent from a pod, host or world:<ip>',
      });
      return;
    }
    if (
      world &&
      !svc.ports.some((x) => x.port === port && x.protocol === protocol && x.nodePort !== undefined)
    ) {
      problems.push({ path: `${at}.from`, message: `from outside the node, ${probe.to} needs a nodePort` });
      return;
    }
    if (probe.expect !== undefined && probe.expect !== 'allow' && probe.expect !== 'deny') {
      problems.push({ path: `${at}.expect`, message: 'allow or deny' });
      return;
    }
    merged.push({
      ...(p as object),
      from: probe.from,
      to: `svc/${target.service}`,
      port,
      protocol,
    } as S['probes'][number]);
  });
  if (problems.length > 0) fail(problems);
  s.probes = merged;
  return { ...s, services };
}

/** Where a service probe goes: the frontend to connect to and the backends that may answer. */
export interface ServiceProbePlan {
  /** The cluster IP (IPv4 first) and the service port. */
  host: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  /** Backends that take new flows (pod key and target port). */
  backends: { pod: string; port: number }[];
}

/**
 * The frontend and live backends of a probe to `svc/<ns>/<name>` on `port`/`protocol`.
 * @throws AgentError `NotFound` for an unknown service or port.
 */
export function planServiceProbe(
  services: readonly ServiceSpec[],
  to: string,
  port: number,
  protocol: string,
  pods: readonly BackendPod[],
  terminating: ReadonlySet<string>,
  viaNodePort?: string,
): ServiceProbePlan {
  const target = parseServiceTarget(to);
  const s = services.find((x) => target !== undefined && serviceKey(x) === target.service);
  const p = s?.ports.find((x) => x.port === port && x.protocol === protocol);
  if (s === undefined || p === undefined)
    throw new AgentError('NotFound', `no service port ${to}:${port}/${protocol}`);
  if (viaNodePort !== undefined && p.nodePort === undefined)
    throw new AgentError('NotFound', `${to}:${port}/${protocol} has no nodePort (from outside the node)`);
  const host = viaNodePort ?? s.clusterIPs.find((a) => !a.includes(':')) ?? s.clusterIPs[0]!;
  const fam = host.includes(':') ? 6 : 4;
  return {
    host,
    port: viaNodePort === undefined ? port : p.nodePort!,
    protocol: p.protocol,
    backends: backendsOf(s, p, pods, terminating, fam)
      .filter((b) => b.state === 'active')
      .map((b) => ({ pod: b.pod, port: b.port })),
  };
}

/**
 * The verdict of a service probe: answered by a live backend → allow; refused (no backend: the socket LB
 * refuses the connect) or silence → deny. A reply from anything but a backend is reported.
 */
export function classifyServiceProbe(
  outcome: { result: string; reply?: string | undefined; message?: string | undefined },
  plan: ServiceProbePlan,
): { measured: 'allow' | 'deny'; detail: string; backend?: string; wrong?: boolean } {
  switch (outcome.result) {
    case 'connected': {
      const b = plan.backends.find((x) => x.pod === outcome.reply);
      if (b === undefined)
        return {
          measured: 'allow',
          detail: `answered by ${outcome.reply ?? '?'}, not a backend`,
          wrong: true,
        };
      return { measured: 'allow', detail: `backend ${b.pod}`, backend: b.pod };
    }
    case 'refused':
      return { measured: 'deny', detail: 'refused (no backend)' };
    case 'timeout':
      return { measured: 'deny', detail: 'timeout (dropped)' };
    default:
      return { measured: 'deny', detail: `error: ${outcome.message ?? 'unknown'}` };
  }
}
