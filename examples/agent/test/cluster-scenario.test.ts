// Placing a scenario on nodes: the scenario's own nodes and pod `node` fields, round-robin spreading of a
// single-node scenario, and the errors for an unknown node, duplicate names and a bad --nodes.
import { describe, expect, it } from 'vitest';
import { nodeShare, placeScenario } from '../src/cluster-scenario.js';
import type { Scenario } from '../src/policy.js';

const pod = (name: string, node?: string) => ({
  namespace: 'x',
  name,
  ip: '10.244.1.10',
  ...(node === undefined ? {} : { node }),
});
const scenario = (pods: object[], nodes?: unknown): Scenario =>
  ({
    namespaces: { x: {} },
    pods,
    probes: [],
    ...(nodes === undefined ? {} : { nodes }),
  }) as unknown as Scenario;

describe('placeScenario', () => {
  it('runs a scenario without nodes on one node, or round-robin over N', () => {
    const s = scenario([pod('a'), pod('b'), pod('c')]);
    expect(placeScenario(s).placement).toEqual({ 'x/a': 'n1', 'x/b': 'n1', 'x/c': 'n1' });
    const spread = placeScenario(s, 2);
    expect(spread.nodes).toEqual(['n1', 'n2']);
    expect(spread.placement).toEqual({ 'x/a': 'n1', 'x/b': 'n2', 'x/c': 'n1' });
    expect(nodeShare(spread, 'n2').pods.map((p) => p.name)).toEqual(['b']);
    expect(nodeShare(spread, 'n1').namespaces).toEqual({ x: {} });
  });

  it("keeps the scenario's nodes and pod nodes; pods without one go round-robin", () => {
    const p = placeScenario(scenario([pod('a', 'w2'), pod('b'), pod('c', 'w1')], ['w1', { name: 'w2' }]));
    expect(p.nodes).toEqual(['w1', 'w2']);
    expect(p.placement).toEqual({ 'x/a': 'w2', 'x/b': 'w1', 'x/c': 'w1' });
  });

  it('refuses an unknown node, duplicate or bad names and a bad --nodes, as InvalidScenario', () => {
    const bad = (s: Scenario, n?: number) => () => placeScenario(s, n);
    const invalid = expect.objectContaining({ name: 'AgentError', reason: 'InvalidScenario' });
    expect(bad(scenario([pod('a', 'n9')], ['n1']))).toThrow(invalid);
    expect(bad(scenario([pod('a', 'n9')], ['n1']))).toThrow(/n9/);
    expect(bad(scenario([pod('a')], ['n1', 'n1']))).toThrow(invalid);
    expect(bad(scenario([pod('a')], ['N/1']))).toThrow(invalid);
    expect(bad(scenario([pod('a')], []))).toThrow(invalid);
    expect(bad(scenario([pod('a')]), 0)).toThrow(invalid);
    expect(bad(scenario([pod('a')]), 17)).toThrow(invalid);
    expect(bad(scenario([pod('a')], ['n1', 'n2']), 3)).toThrow(invalid);
  });
});
