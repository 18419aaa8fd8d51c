/**
 * Probes across a running cluster: every probe of the scenario sent as real packets from its source's
 * namespace on its node to its destination on (possibly) another node, compared with the verdict of the
 * scenario compiled once for the whole cluster (the same policies, namespaces and identities every node
 * has) and with `expect`. Endpoints are shown with their node: `web/frontend@n1`; `host` and `world:<ip>`
 * are those of the node of the probe's other end (a probe may name another node with `fromNode`/`toNode`).
 *
 * A probe to a service (`svc/<ns>/<name>`) from a pod goes through its node's socket LB to the cluster IP; from
 * `world:<ip>` it goes per packet to that node's address at the nodePort (not in the pod cgroup), and the node
 * forwards it to the backend, on any node. Its compiled verdict is the backend's ingress policy for the identity
 * the backend sees: the client's (`world:<ip>`) when the backend is on the probe's node; with the backend on
 * another node, the flow arrives SNATed to the node's address: `world` in tunnel mode (the VNI the node sets),
 * `remote-node` in native mode (the backend's node resolves the node's address).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns } from '@datapath/netlink';
import {
  compileScenario,
  type Flow,
  type PolicyEngine,
  policyLookup,
  ReservedIdentity,
  verdict,
} from '@datapath/policy';
import { Agent } from './agent.js';
import type { ClusterRecord } from './cluster.js';
import { AgentError } from './errors.js';
import { addWorldAddress } from './node.js';
import type { Scenario } from './policy.js';
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
import type { RunReport } from './run.js';
import { parseServiceTarget, type ServiceProbePlan } from './services.js';
import type { AgentState } from './state.js';
import { cgroup2Root, inCgroup } from './sys/cgroup.js';
import { type Listener, type ProbeOutcome, runProbes, startListeners } from './sys/netns-exec.js';

type ClusterScenarioDoc = Omit<Scenario, 'pods' | 'probes'> & {
  nodes: string[];
  pods: (Scenario['pods'][number] & { node: string })[];
  probes: (Scenario['probes'][number] & { fromNode?: string; toNode?: string })[];
};

/** Where each end of every probe lives, node by node. */
interface NodeView {
  name: string;
  state: AgentState;
}

function at(endpoint: string, node: string): string {
  return `${endpoint}@${node}`;
}

/**
 * Sends every probe of the cluster's scenario and returns the report (pods with their node).
 * @throws AgentError `ListenerFailed`, `ProbeFailed`, `InvalidScenario` (a probe names an unknown node).
 */
export async function runClusterProbes(c: ClusterRecord, timeoutMs = 1500): Promise<RunReport> {
  const t0 = performance.now();
  const doc = JSON.parse(readFileSync(c.scenario, 'utf8')) as ClusterScenarioDoc;
  const views = new Map<string, NodeView>();
  for (const n of c.nodes)
    views.set(n.name, {
      name: n.name,
      state: Agent.readState({ name: n.name, prefix: n.prefix, stateDir: n.stateDir }),
    });
  const podNode = new Map(doc.pods.map((p) => [`${p.namespace ?? p.ns}/${p.name}`, p.node]));
  const nodeOf = (endpoint: string, other: string, explicit: string | undefined): string => {
    if (explicit !== undefined) {
      if (!views.has(explicit))
        throw new AgentError('InvalidScenario', `probe names unknown node ${explicit}`);
      return explicit;
    }
    const n = podNode.get(endpoint) ?? podNode.get(other) ?? c.nodes[0]!.name;
    return n;
  };
  // Probe endpoints renamed with their node; `flows` keep the scenario's names for the compiled verdict.
  const probes: ProbeSpec[] = [];
  const flows: Flow[] = [];
  // Probes to a service (`svc/<ns>/<name>`): sent from the source's node, through that node's socket LB.
  const svc = new Map<number, ServiceProbePlan & { node: string; to: string; world: boolean }>();
  for (const p of doc.probes) {
    if (p.to.startsWith('svc/')) {
      const fromNode = nodeOf(p.from, p.from, p.fromNode);
      const world = p.from.startsWith('world:');
      const plan = serviceProbePlan(views.get(fromNode)!, p.to, p.port, p.protocol ?? 'TCP', world);
      svc.set(probes.length, { ...plan, node: fromNode, world });
      probes.push({
        from: at(p.from, fromNode),
        to: p.to,
        // from the world: the nodePort (the per-packet NodePort path)
        port: plan.port,
        protocol: p.protocol ?? 'TCP',
        ...(p.expect === undefined ? {} : { expect: p.expect }),
      });
      flows.push({ from: p.from, to: p.from, port: p.port, protocol: p.protocol ?? 'TCP' }); // unused
      continue;
    }
    const fromNode = nodeOf(p.from, p.to, p.fromNode);
    const toNode = nodeOf(p.to, p.from, p.toNode);
    probes.push({
      from: at(p.from, fromNode),
      to: at(p.to, toNode),
      port: p.port,
      protocol: p.protocol ?? 'TCP',
      ...(p.expect === undefined ? {} : { expect: p.expect }),
    });
    flows.push({ from: p.from, to: p.to, port: p.port, protocol: p.protocol ?? 'TCP' });
  }
  // The compiled verdict: the scenario with the pods' real addresses, compiled once.
  const ipOf = new Map<string, string>();
  for (const v of views.values()) for (const pod of Object.values(v.state.pods)) ipOf.set(pod.key, pod.ip);
  const { services: _services, ...policyDoc } = doc as ClusterScenarioDoc & { services?: unknown };
  const engine: PolicyEngine = compileScenario({
    ...policyDoc,
    probes: doc.probes.filter((p) => !p.to.startsWith('svc/')),
    pods: doc.pods.map((p) => ({ ...p, ip: ipOf.get(`${p.namespace ?? p.ns}/${p.name}`) ?? p.ip })),
  }).engine;
  /** A service probe's compiled verdict: for the backend that answered, else for every live backend. */
  const svcVerdict = (id: number, backend?: string): 'allow' | 'deny' => {
    const plan = svc.get(id)!;
    const p = probes[id]!;
    const from = p.from.slice(0, p.from.lastIndexOf('@'));
    const one = (b: { pod: string; port: number }): 'allow' | 'deny' => {
      const to = b.pod.slice(0, b.pod.lastIndexOf('@'));
      if (plan.world && b.pod.slice(b.pod.lastIndexOf('@') + 1) !== plan.node) {
        // NodePort to another node's backend: SNAT to the node's address, seen as world (tunnel) or remote-node.
        const id = c.mode === 'tunnel' ? ReservedIdentity.World : ReservedIdentity.RemoteNode;
        const ep = engine.state().endpoints.get(to);
        if (ep === undefined) return 'deny';
        const proto = p.protocol === 'UDP' ? 17 : 6;
        return policyLookup(ep.policy, 'ingress', id, proto, b.port).decision === 'allow' ? 'allow' : 'deny';
      }
      return verdict(engine.state(), { from, to, port: b.port, protocol: p.protocol }).verdict;
    };
    return serviceVerdict(plan, backend, one);
  };

  const worlds = new Set<string>();
  const resolve = (endpoint: string): Place => {
    if (endpoint.startsWith('svc/')) {
      const plan = [...svc.values()].find(
        (x) => parseServiceTarget(endpoint) !== undefined && x.to === endpoint,
      )!;
      return { kind: 'pod', key: endpoint, ip: plan.host, netnsPath: `(service ${endpoint})` };
    }
    const i = endpoint.lastIndexOf('@');
    const name = endpoint.slice(0, i);
    const node = views.get(endpoint.slice(i + 1));
    if (node === undefined) throw new AgentError('NotFound', `no node for ${endpoint}`);
    const s = node.state;
    if (name === 'host') return { kind: 'host', ip: s.hostIp, netnsPath: `/run/netns/${s.nodeNetns}` };
    if (name.startsWith('world:')) {
      const ip = name.slice(6);
      if (!worlds.has(endpoint)) {
        worlds.add(endpoint);
        using world = Netns.open({ name: s.worldNetns });
        using nodeNs = Netns.open({ name: s.nodeNetns });
        addWorldAddress(world, nodeNs, `${s.prefix}w`, ip);
      }
      return { kind: 'world', ip, netnsPath: `/run/netns/${s.worldNetns}` };
    }
    const pod = s.pods[name];
    if (pod === undefined) throw new AgentError('NotFound', `no pod ${name} on node ${node.name}`);
    return { kind: 'pod', key: endpoint, ip: pod.ip, netnsPath: `/run/netns/${pod.netns}` };
  };
  const declared = new Map<string, { port: number; protocol: string }[]>();
  for (const v of views.values())
    for (const pod of Object.values(v.state.pods)) declared.set(at(pod.key, v.name), [...pod.ports]);
  declareBackendPorts(declared, svc, probes);
  for (const p of probes) {
    resolve(p.from);
    resolve(p.to);
  }
  const setupMs = performance.now() - t0;
  const t1 = performance.now();
  const listeners: Listener[] = [];
  try {
    await startListeners(
      planListeners(
        probes.filter((_, id) => !svc.has(id)),
        resolve,
        declared,
      ),
      listeners,
    );
    const outcomes = new Map<number, ProbeOutcome>();
    // Service probes from the world are sent per packet, as any outside client's (no socket LB).
    const perPacket = (id: number) => !svc.has(id) || svc.get(id)!.world;
    const plain = new Set(probes.map((_p, id) => id).filter(perPacket));
    const batches = [...toFrontends(planProbes(probes, resolve, timeoutMs, plain), svc)];
    // Service probes: this process joins the source node's pod cgroup while it sends them (the other
    // probes, sent meanwhile, go to pod addresses: the socket LB leaves them alone).
    const sendSvc = async (ids: number[], timeout: number) => {
      for (const node of new Set(ids.map((id) => svc.get(id)!.node))) {
        const mine = new Set(ids.filter((id) => svc.get(id)!.node === node));
        const cgroup = join(cgroup2Root(), c.nodes.find((n) => n.name === node)!.prefix);
        for (const [ns, reqs] of toFrontends(planProbes(probes, resolve, timeout, mine), svc))
          for (const o of await inCgroup(cgroup, () => runProbes(ns, reqs))) outcomes.set(o.id, o);
      }
    };
    const [done] = await Promise.all([
      Promise.all(batches.map(([ns, reqs]) => runProbes(ns, reqs))),
      sendSvc(
        [...svc.keys()].filter((id) => !perPacket(id)),
        timeoutMs,
      ),
    ]);
    for (const list of done) for (const o of list) outcomes.set(o.id, o);
    // Timeouts of allowed probes are sent once more, one source at a time (a starved prober is not a drop).
    const compiled = flows.map((f, id) =>
      svc.has(id) ? svcVerdict(id) : verdict(engine.state(), f).verdict,
    );
    const suspect = probes
      .map((_p, id) => id)
      .filter((id) => outcomes.get(id)?.result === 'timeout' && compiled[id] === 'allow');
    if (suspect.length > 0) {
      const again = new Set(suspect.filter(perPacket));
      for (const [ns, reqs] of toFrontends(planProbes(probes, resolve, timeoutMs * 2, again), svc))
        for (const o of await runProbes(ns, reqs)) outcomes.set(o.id, o);
      await sendSvc(
        suspect.filter((id) => !perPacket(id)),
        timeoutMs * 2,
      );
    }
    const probeMs = performance.now() - t1;
    const results: ProbeResult[] = probes.map((p, id) =>
      probeResult(
        p,
        outcomes.get(id),
        svc.get(id),
        (backend) => (svc.has(id) ? svcVerdict(id, backend) : compiled[id]!),
        resolve(p.to).kind === 'world' ? 'world' : p.to,
      ),
    );
    return {
      results,
      mismatches: results.filter((r) => r.mismatch).length,
      skipped: results.filter((r) => r.measured === 'skipped').length,
      setupMs,
      probeMs,
      pods: [...views.values()].flatMap((v) =>
        Object.values(v.state.pods).map((p) => ({
          key: p.key,
          ip: p.ip,
          identity: p.identity,
          lxcId: p.lxcId,
          attach: p.attach,
          hostIfname: p.hostIfname,
          node: v.name,
        })),
      ),
    };
  } finally {
    await Promise.all(listeners.map((l) => l.close()));
  }
}

/**
 * A service probe's frontend and live backends as the source's node wrote them (its state's
 * `serviceStatus`): backends named `pod@node`. From the world (`viaNodePort`), the frontend is the node's
 * address at the port's nodePort.
 * @throws AgentError `InvalidScenario` when the node has no such service port (or, from the world, no nodePort).
 */
function serviceProbePlan(
  view: NodeView,
  to: string,
  port: number,
  protocol: string,
  viaNodePort = false,
): ServiceProbePlan & { to: string } {
  const target = parseServiceTarget(to);
  const spec = view.state.services?.find((s) => `${s.namespace}/${s.name}` === target?.service);
  const status = view.state.serviceStatus?.find((s) => s.service === target?.service);
  const host = spec?.clusterIPs.find((a) => !a.includes(':'));
  if (spec === undefined || status === undefined || host === undefined)
    throw new AgentError('InvalidScenario', `probe to ${to}: node ${view.name} has no such IPv4 service`);
  const nodePort = spec.ports.find((x) => x.port === port && x.protocol === protocol)?.nodePort;
  if (viaNodePort && nodePort === undefined)
    throw new AgentError('InvalidScenario', `probe to ${to}:${port}/${protocol} from the world: no nodePort`);
  return {
    to,
    host: viaNodePort ? view.state.hostIp : host,
    port: viaNodePort ? nodePort! : port,
    protocol: protocol as 'TCP' | 'UDP',
    backends: status.backends
      .filter((b) => b.servicePort === port && b.protocol === protocol && b.state === 'active')
      .map((b) => ({ pod: at(b.pod, b.node ?? view.name), port: b.port })),
  };
}
