/**
 * `agent run`: a scenario end to end — pods up, listeners up, every probe sent as real packets from
 * inside its source namespace, results compared with the compiled verdict and with `expect`.
 */
import { formatPrefix, parsePrefix, prefixContains, prefixOf, tryParseIp } from '@datapath/ip';
import { Agent, type AgentOptions, SCENARIO_CONCURRENCY } from './agent.js';
import type { AgentScenario } from './policy.js';
import {
  declareBackendPorts,
  type Place,
  type ProbeResult,
  type ProbeSpec,
  planListeners,
  planProbes,
  probeResult,
  serviceVerdict,
  toFrontends,
} from './probes.js';
import type { ServiceProbePlan } from './services.js';
import { type Listener, type ProbeOutcome, runProbes, startListeners } from './sys/netns-exec.js';

/** Options of {@link runScenario}. */
export interface RunOptions extends AgentOptions {
  /** Leave the agent running afterwards (inspect it with the status commands, stop it with `agent down`). */
  keep?: boolean;
  /** Remove a leftover agent with the same name (from a run that was killed) before starting. */
  replace?: boolean;
  /** How long a probe waits for an answer before it counts as dropped; default 1500 ms. */
  timeoutMs?: number;
}

/** The outcome of a scenario run. */
export interface RunReport {
  results: ProbeResult[];
  /** Probes whose packets disagree with `expect` or with the compiled verdict. */
  mismatches: number;
  /** Probes that could not be sent (SCTP without kernel support). */
  skipped: number;
  /** Milliseconds: agent + pods + maps, and the probe round. */
  setupMs: number;
  probeMs: number;
  /** Pods and where they run. */
  pods: {
    key: string;
    ip: string;
    identity: number;
    lxcId: number;
    attach: string;
    hostIfname: string;
    /** The node the pod runs on (cluster runs). */
    node?: string;
  }[];
}

function labelOf(place: Place, endpoint: string): string {
  return place.kind === 'world' ? 'world' : place.kind === 'host' ? 'host' : endpoint;
}

const POD_RANGE = parsePrefix('10.244.0.0/16');

/**
 * The smallest CIDR (a /16 to a /24 inside 10.244.0.0/16) holding every scenario pod address, so
 * pods keep the addresses the scenario's ipBlock rules name; undefined when there is none (the
 * agent's default pod CIDR then applies and pods outside it get another address).
 */
export function scenarioPodCidr(ips: readonly string[]): string | undefined {
  const addrs = ips.map((ip) => tryParseIp(ip, 4));
  if (addrs.length === 0 || addrs.some((a) => a === undefined || !prefixContains(POD_RANGE, a)))
    return undefined;
  for (let len = 24; len >= 16; len--) {
    const p = prefixOf(addrs[0]!, len);
    if (addrs.every((a) => prefixContains(p, a!))) return formatPrefix(p);
  }
  return undefined;
}

/**
 * Runs a scenario on a fresh agent and returns every probe's result; cleans up everything unless
 * `keep` is set (also when it fails).
 * @throws AgentError `AlreadyRunning`, `InvalidScenario`, `ListenerFailed`, `ProbeFailed`, `DatapathFailed`.
 */
export async function runScenario(scenario: AgentScenario, options: RunOptions = {}): Promise<RunReport> {
  const t0 = performance.now();
  if (options.replace) await Agent.removeStale(options);
  const podCidr =
    options.podCidr ?? scenarioPodCidr(scenario.pods.flatMap((p) => (p.ip === undefined ? [] : [p.ip])));
  const agent = await Agent.start(
    { ...options, ...(podCidr === undefined ? {} : { podCidr }) },
    {
      namespaces: scenario.namespaces,
      policies: scenario.policies ?? [],
      enforcement: scenario.enforcement ?? 'default',
      ...(scenario.services === undefined ? {} : { services: scenario.services }),
    },
  );
  const listeners: Listener[] = [];
  let ok = false;
  try {
    await agent.addPodsAsync(scenario.pods, { concurrency: SCENARIO_CONCURRENCY });
    const probes: ProbeSpec[] = scenario.probes.map((p) => ({
      from: p.from,
      to: p.to,
      port: p.port,
      protocol: p.protocol ?? 'TCP',
      ...(p.expect === undefined ? {} : { expect: p.expect }),
    }));
    for (const p of probes) {
      for (const end of [p.from, p.to]) if (end.startsWith('world:')) agent.addWorldIp(end.slice(6));
    }
    // Probes to a service: sent to its cluster IP; every live backend listens on its target port.
    const svc = new Map<number, ServiceProbePlan>();
    probes.forEach((p, id) => {
      if (!p.to.startsWith('svc/')) return;
      const plan = agent.serviceProbe(p.to, p.port, p.protocol, p.from);
      svc.set(id, plan);
      // From outside the node: to the node address at the nodePort (the per-packet NodePort path).
      if (plan.port !== p.port) probes[id] = { ...p, port: plan.port };
    });
    const resolve = (e: string): Place => {
      if (!e.startsWith('svc/')) return agent.resolve(e);
      const plan = [...svc].find(([id]) => probes[id]!.to === e)![1];
      return { kind: 'pod', key: e, ip: plan.host, netnsPath: `(service ${e})` };
    };
    const declared = new Map<string, { port: number; protocol: string }[]>(
      agent.pods().map((p) => [p.key, [...p.ports]]),
    );
    declareBackendPorts(declared, svc, probes);
    const verdictOf = (p: ProbeSpec, id: number, backend?: string): 'allow' | 'deny' => {
      const plan = svc.get(id);
      if (plan === undefined) return agent.verdict(p);
      return serviceVerdict(plan, backend, (b) =>
        agent.verdict({ from: p.from, to: b.pod, port: b.port, protocol: p.protocol }),
      );
    };
    const setupMs = performance.now() - t0;

    const t1 = performance.now();
    await startListeners(
      planListeners(
        probes.filter((_, id) => !svc.has(id)),
        resolve,
        declared,
      ),
      listeners,
    );
    const timeoutMs = options.timeoutMs ?? 1500;
    const outcomes = new Map<number, ProbeOutcome>();
    const batches = [...toFrontends(planProbes(probes, resolve, timeoutMs), svc)];
    // In the pod cgroup: the probes stand in for pod processes, whose sockets the socket LB translates. The
    // world's probes are an outside client's: sent outside it, so a NodePort probe takes the per-packet path.
    const worldNs = `/run/netns/${agent.state.worldNetns}`;
    const [done, fromWorld] = await Promise.all([
      agent.inPodCgroup(() =>
        Promise.all(
          batches.filter(([ns]) => ns !== worldNs).map(([netnsPath, reqs]) => runProbes(netnsPath, reqs)),
        ),
      ),
      Promise.all(
        batches.filter(([ns]) => ns === worldNs).map(([netnsPath, reqs]) => runProbes(netnsPath, reqs)),
      ),
    ]);
    done.push(...fromWorld);
    for (const list of done) for (const o of list) outcomes.set(o.id, o);

    // A timeout on a loaded machine can be the prober starving rather than a drop: probes that timed
    // out although the compiled verdict allows them are sent once more, one source at a time, with a
    // longer timeout. A real drop times out twice.
    const suspect = probes
      .map((p, id) => ({ p, id }))
      .filter(({ p, id }) => outcomes.get(id)?.result === 'timeout' && verdictOf(p, id) === 'allow')
      .map(({ id }) => id);
    const retried = new Set<number>();
    if (suspect.length > 0) {
      const again = toFrontends(planProbes(probes, resolve, timeoutMs * 2, new Set(suspect)), svc);
      for (const [netnsPath, reqs] of again) {
        const send = () => runProbes(netnsPath, reqs);
        for (const o of await (netnsPath === worldNs ? send() : agent.inPodCgroup(send))) {
          outcomes.set(o.id, o);
          retried.add(o.id);
        }
      }
    }
    const probeMs = performance.now() - t1;

    const results: ProbeResult[] = probes.map((p, id) =>
      probeResult(
        p,
        outcomes.get(id),
        svc.get(id),
        (backend) => verdictOf(p, id, backend),
        labelOf(resolve(p.to), p.to),
      ),
    );
    ok = true;
    return {
      results,
      mismatches: results.filter((r) => r.mismatch).length,
      skipped: results.filter((r) => r.measured === 'skipped').length,
      setupMs,
      probeMs,
      pods: agent.pods().map((p) => ({
        key: p.key,
        ip: p.ip,
        identity: p.identity,
        lxcId: p.lxcId,
        attach: p.attach,
        hostIfname: p.hostIfname,
      })),
    };
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
    if (options.keep && ok) agent.close();
    else agent.destroy();
  }
}
