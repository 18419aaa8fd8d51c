/**
 * Probes as real packets: which listeners each namespace needs, which probes each source sends, and
 * how outcomes become verdicts. Pure planning here; the sockets live in sys/netns-exec.ts.
 */
import { AgentError } from './errors.js';
import { classifyServiceProbe, type ServiceProbePlan } from './services.js';
import type { ProbeOutcome, ProbeRequest, SocketProtocol } from './sys/netns-exec.js';

/** A probe of the scenario, with the port already resolved to a number. */
export interface ProbeSpec {
  from: string;
  to: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  expect?: 'allow' | 'deny';
}

/** Where a probe endpoint lives: a pod, the node (`host`) or an emulated outside address. */
export type Place =
  | { kind: 'pod'; key: string; ip: string; netnsPath: string }
  | { kind: 'host'; ip: string; netnsPath: string }
  | { kind: 'world'; ip: string; netnsPath: string };

/** The verdict of one probe measured with packets (`skipped` when it could not be sent). */
export type Measured = 'allow' | 'deny' | 'skipped';

/** One probe's full result: packets vs compiled state vs expectation. */
export interface ProbeResult extends ProbeSpec {
  measured: Measured;
  /** What the policy compiler's evaluator says for the same flow. */
  compiled: 'allow' | 'deny';
  /** Why a probe is `skipped`, or what the packets showed (`connected`, `timeout`, …). */
  detail: string;
  /** Round-trip of the probe in ms. */
  ms: number;
  /** The probe disagrees with the compiled verdict or with `expect`. */
  mismatch: boolean;
}

/** A listener to start: inside which namespace, answering with which label, on which ports. */
export interface ListenerPlan {
  netnsPath: string;
  label: string;
  ports: { port: number; protocol: SocketProtocol }[];
}

/** Resolves a scenario endpoint name (`ns/pod`, `host`, `world:<ip>`) to where it lives. */
export type Resolver = (endpoint: string) => Place;

function protoKey(port: number, protocol: string): string {
  return `${protocol}/${port}`;
}

/**
 * The listeners needed for a set of probes: every destination answers on every port probed (and
 * every port it declares), one process per namespace; world addresses share the world namespace.
 */
export function planListeners(
  probes: readonly ProbeSpec[],
  resolve: Resolver,
  declared: ReadonlyMap<string, readonly { port: number; protocol: string }[]> = new Map(),
): ListenerPlan[] {
  const plans = new Map<
    string,
    { label: string; ports: Map<string, { port: number; protocol: SocketProtocol }> }
  >();
  const add = (netnsPath: string, label: string, port: number, protocol: string) => {
    if (protocol !== 'TCP' && protocol !== 'UDP') return;
    let plan = plans.get(netnsPath);
    if (!plan) {
      plan = { label, ports: new Map() };
      plans.set(netnsPath, plan);
    }
    plan.ports.set(protoKey(port, protocol), { port, protocol });
  };
  for (const [endpoint, ports] of declared) {
    const place = resolve(endpoint);
    for (const p of ports) add(place.netnsPath, endpoint, p.port, p.protocol);
  }
  for (const probe of probes) {
    const place = resolve(probe.to);
    add(place.netnsPath, place.kind === 'world' ? 'world' : probe.to, probe.port, probe.protocol);
  }
  return [...plans].map(([netnsPath, p]) => ({ netnsPath, label: p.label, ports: [...p.ports.values()] }));
}

/**
 * Points each service probe of `batches` at its own frontend (cluster IP, or node address and nodePort), the
 * host `frontends` holds for its id; the other probes keep the address planProbes resolved. Returns `batches`.
 */
export function toFrontends(
  batches: Map<string, ProbeRequest[]>,
  frontends: ReadonlyMap<number, { readonly host: string }>,
): Map<string, ProbeRequest[]> {
  for (const reqs of batches.values())
    for (const r of reqs) {
      const plan = frontends.get(r.id);
      if (plan !== undefined) r.host = plan.host;
    }
  return batches;
}

/** Probes grouped by the namespace they are sent from, with ids that index `probes` (all, or those in `only`). */
export function planProbes(
  probes: readonly ProbeSpec[],
  resolve: Resolver,
  timeoutMs: number,
  only?: ReadonlySet<number>,
): Map<string, ProbeRequest[]> {
  const out = new Map<string, ProbeRequest[]>();
  probes.forEach((probe, id) => {
    if (probe.protocol === 'SCTP' || (only !== undefined && !only.has(id))) return;
    const from = resolve(probe.from);
    const to = resolve(probe.to);
    if (from.netnsPath === to.netnsPath && from.kind !== 'world') {
      throw new AgentError(
        'InvalidScenario',
        `probe ${id}: ${probe.from} → ${probe.to} stays inside one namespace`,
      );
    }
    const req: ProbeRequest = { id, host: to.ip, port: probe.port, protocol: probe.protocol, timeoutMs };
    if (from.kind === 'world') req.localAddress = from.ip;
    const list = out.get(from.netnsPath) ?? [];
    list.push(req);
    out.set(from.netnsPath, list);
  });
  return out;
}

/**
 * Turns what the packets did into a verdict: a reply from the right listener (or a TCP reset,
 * which only the destination's stack sends) means the datapath delivered it; silence means a drop.
 */
export function classify(
  outcome: ProbeOutcome,
  expectedLabel: string,
): { measured: Measured; detail: string } {
  switch (outcome.result) {
    case 'connected':
      if (outcome.reply !== undefined && outcome.reply !== expectedLabel) {
        return { measured: 'allow', detail: `answered by ${outcome.reply}, not ${expectedLabel}` };
      }
      return { measured: 'allow', detail: 'connected' };
    case 'refused':
      return { measured: 'allow', detail: 'refused (delivered, nothing listening)' };
    case 'timeout':
      return { measured: 'deny', detail: 'timeout (dropped)' };
    default:
      return { measured: 'deny', detail: `error: ${outcome.message ?? 'unknown'}` };
  }
}

/**
 * The compiled verdict of a probe to a service: that of the flow to the backend that answered, else `allow`
 * only when the service has live backends and every one allows the flow.
 */
export function serviceVerdict(
  plan: ServiceProbePlan,
  answered: string | undefined,
  flow: (backend: { pod: string; port: number }) => 'allow' | 'deny',
): 'allow' | 'deny' {
  const hit = plan.backends.find((b) => b.pod === answered);
  if (hit !== undefined) return flow(hit);
  return plan.backends.length > 0 && plan.backends.every((b) => flow(b) === 'allow') ? 'allow' : 'deny';
}

/** Adds the backend ports of the service probes to the ports their pods declare (their listeners answer there). */
export function declareBackendPorts(
  declared: Map<string, { port: number; protocol: string }[]>,
  services: ReadonlyMap<number, ServiceProbePlan>,
  probes: readonly ProbeSpec[],
): void {
  for (const [id, plan] of services)
    for (const b of plan.backends)
      declared.get(b.pod)?.push({ port: b.port, protocol: probes[id]!.protocol });
}

/**
 * One probe's result: what its packets did (`skipped` when it was not sent) against the compiled verdict
 * (`compiled(backend)`, given the service backend that answered) and the expectation. `label` is the reply
 * a probe to a pod, the host or the world expects; a probe to a service (`plan`) expects a live backend.
 */
export function probeResult(
  p: ProbeSpec,
  outcome: ProbeOutcome | undefined,
  plan: ServiceProbePlan | undefined,
  compiled: (backend?: string) => 'allow' | 'deny',
  label: string,
): ProbeResult {
  if (plan !== undefined && outcome !== undefined) {
    const m = classifyServiceProbe(outcome, plan);
    const v = compiled(m.backend);
    const mismatch =
      m.measured !== v || (p.expect !== undefined && p.expect !== m.measured) || m.wrong === true;
    return { ...p, measured: m.measured, compiled: v, detail: m.detail, ms: outcome.ms, mismatch };
  }
  const v = compiled();
  const m =
    outcome === undefined
      ? { measured: 'skipped' as const, detail: `${p.protocol} not supported by this kernel` }
      : classify(outcome, label);
  const mismatch =
    m.measured !== 'skipped' &&
    (m.measured !== v ||
      (p.expect !== undefined && p.expect !== m.measured) ||
      m.detail.startsWith('answered by'));
  return { ...p, measured: m.measured, compiled: v, detail: m.detail, ms: outcome?.ms ?? 0, mismatch };
}
