/**
 * Scenarios on several nodes: a scenario may name its `nodes` and give each pod a `node`; a scenario
 * without them runs on one node, or is spread over N nodes round-robin (`agent cluster up --nodes N`).
 * Pure: validation and placement only.
 */
import { AgentError } from './errors.js';
import type { Scenario } from './policy.js';

/** A scenario placed on nodes: every pod has a node, every node is named once. */
export interface ClusterScenario {
  scenario: Scenario;
  /** Node names, in order (the first is `n1`-style unless the scenario names them). */
  nodes: string[];
  /** Pod key (`ns/name`) → node. */
  placement: Record<string, string>;
}

const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,15}$/;

/**
 * Places a scenario's pods on nodes: the scenario's own `nodes` and pod `node` fields when present
 * (pods without `node` go round-robin), otherwise `spread` nodes named `n1`…`nN` round-robin in pod order.
 * @throws AgentError `InvalidScenario`: unknown node, bad or duplicate node names, `spread` out of 1–16,
 * pods but no node.
 */
export function placeScenario(scenario: Scenario, spread?: number): ClusterScenario {
  const raw = scenario as Scenario & { nodes?: unknown };
  let nodes: string[];
  if (raw.nodes !== undefined) {
    if (!Array.isArray(raw.nodes) || raw.nodes.length === 0)
      throw new AgentError('InvalidScenario', 'nodes: must be a non-empty list of node names');
    nodes = raw.nodes.map((n, i) => {
      const name = typeof n === 'object' && n !== null ? (n as { name?: unknown }).name : n;
      if (typeof name !== 'string' || !NODE_NAME.test(name))
        throw new AgentError(
          'InvalidScenario',
          `nodes[${i}]: a node name is 1–16 characters [a-z0-9-], got ${JSON.stringify(name)}`,
        );
      return name;
    });
    if (spread !== undefined && spread !== nodes.length)
      throw new AgentError(
        'InvalidScenario',
        `the scenario names ${nodes.length} nodes; --nodes ${spread} differs`,
      );
  } else {
    const n = spread ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 16)
      throw new AgentError('InvalidScenario', `--nodes must be 1–16, got ${n}`);
    nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  }
  const dup = nodes.find((n, i) => nodes.indexOf(n) !== i);
  if (dup !== undefined) throw new AgentError('InvalidScenario', `nodes: ${dup} is named twice`);
  const placement: Record<string, string> = {};
  let next = 0;
  scenario.pods.forEach((p, i) => {
    const want = (p as { node?: unknown }).node;
    let node: string;
    if (want === undefined) node = nodes[next++ % nodes.length]!;
    else if (typeof want === 'string' && nodes.includes(want)) node = want;
    else
      throw new AgentError(
        'InvalidScenario',
        `pods[${i}].node: ${JSON.stringify(want)} is not one of the scenario's nodes (${nodes.join(', ')})`,
      );
    placement[`${p.namespace}/${p.name}`] = node;
  });
  return { scenario, nodes, placement };
}

/** The part of a scenario one node builds: its own pods; namespaces and policies are everyone's. */
export function nodeShare(c: ClusterScenario, node: string): Scenario {
  return {
    ...c.scenario,
    pods: c.scenario.pods.filter((p) => c.placement[`${p.namespace}/${p.name}`] === node),
  };
}
