import { z } from 'zod';
import { PolicyEngine } from './engine.js';
import type { EnforcementMode } from './engine-types.js';
import { formatPath, PolicyError, type PolicyProblem } from './errors.js';
import { checkPolicy, nestedDeeperThan, parseYamlDocuments } from './parse.js';
import { tryParsePrefix } from './prefix.js';
import type { PolicyObject } from './types.js';
import { type Explanation, explain, type FlowProtocol, verdict } from './verdict.js';

/** Deepest nesting accepted in a scenario document (its policies nest about 12 levels). */
const MAX_SCENARIO_DEPTH = 80;

const labels = z.record(z.string(), z.string());
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);
const endpoint = z
  .string()
  .regex(/^(host|world:.+|[^/\s]+\/[^/\s]+)$/, 'must be namespace/pod, host or world:<ip>');

const scenarioSchema = z.looseObject({
  description: z.string().optional(),
  enforcement: z.enum(['default', 'always', 'never']).optional(),
  hostIP: z.string().optional(),
  namespaces: z.record(z.string().min(1), z.looseObject({ labels: labels.optional() })),
  pods: z.array(
    z.looseObject({
      namespace: z.string().min(1).optional(),
      ns: z.string().min(1).optional(),
      name: z.string().min(1),
      labels: labels.optional(),
      ip: z
        .string()
        .refine((s) => tryParsePrefix(s) !== undefined && !s.includes('/'), 'must be an IP address'),
      ports: z
        .array(
          z.looseObject({
            port: z.number().int().min(1).max(65535),
            protocol: protocol.optional(),
            name: z.string().optional(),
          }),
        )
        .optional(),
    }),
  ),
  policies: z.array(z.unknown()).optional(),

  probes: z.array(
    z.looseObject({
      from: endpoint,
      to: endpoint,
      port: z.number().int().min(1).max(65535),
      protocol: protocol.optional(),
      expect: z.enum(['allow', 'deny']).optional(),
    }),
  ),
});

/** A pod of a {@link Scenario}, validated: `namespace` is always set. */
export interface ScenarioPod {
  /** Namespace (declared in `namespaces`), the name the engine's pods use too. */
  namespace: string;
  /**
   * The same as `namespace`.
   * @deprecated Use `namespace` (the name the engine's `PodSpec` uses); `ns` is still read and set.
   */
  ns?: string | undefined;
  /** Pod name. */
  name: string;
  /** Pod labels. */
  labels?: Record<string, string> | undefined;
  /** Pod IP. */
  ip: string;
  /** Container ports; names can be used by policies. */
  ports?:
    | {
        /** Port number. */
        port: number;
        /** `TCP` when omitted. */
        protocol?: FlowProtocol | undefined;
        /** Port name. */
        name?: string | undefined;
      }[]
    | undefined;
}

/** A probe of a {@link Scenario}: a new connection and, optionally, the expected verdict. */
export interface ScenarioProbe {
  /** `namespace/pod`, `host` or `world:<ip>`. */
  from: string;
  /** `namespace/pod`, `host` or `world:<ip>`. */
  to: string;
  /** Destination port. */
  port: number;
  /** `TCP` when omitted. */
  protocol?: FlowProtocol | undefined;
  /** Expected verdict. */
  expect?: 'allow' | 'deny' | undefined;
}

/** A whole-cluster test case: namespaces, pods, policies, an enforcement mode and probes with expected verdicts. */
export interface Scenario {
  /** Free text. */
  description?: string | undefined;
  /** `default` when omitted. */
  enforcement?: EnforcementMode | undefined;
  /** The node's IP, mapped to the host identity (optional). */
  hostIP?: string | undefined;
  /** Namespaces by name, with labels. */
  namespaces: Record<
    string,
    {
      /** Namespace labels (`kubernetes.io/metadata.name` is implied). */
      labels?: Record<string, string> | undefined;
    }
  >;
  /** Pods. */
  pods: ScenarioPod[];
  /** Policy objects (NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy). */
  policies?: PolicyObject[] | undefined;
  /** Connections to decide. */
  probes: ScenarioProbe[];
}

/** A pod as written in a scenario: `namespace` (or the deprecated `ns`). */
export type ScenarioPodInput = Omit<ScenarioPod, 'namespace'> & {
  /** Namespace (declared in `namespaces`); required unless the deprecated `ns` is given. */
  namespace?: string | undefined;
};

/** A scenario as written (what {@link compileScenario} and {@link evaluateScenario} take; validated at run time). */
export type ScenarioInput = Omit<Scenario, 'pods'> & {
  /** Pods. */
  pods: ScenarioPodInput[];
};

/** A validated scenario and the engine it compiled into. */
export interface CompiledScenario {
  /** The engine holding the compiled state (for {@link verdict} and {@link explain}). */
  engine: PolicyEngine;
  /** The validated scenario. */
  scenario: Scenario;
}

/** The verdict of one probe (the CLI prints one of these per line). */
export interface ProbeResult {
  /** Source endpoint as written in the probe. */
  from: string;
  /** Destination endpoint as written in the probe. */
  to: string;
  /** Destination port. */
  port: number;
  /** Protocol (`TCP` when the probe omitted it). */
  protocol: FlowProtocol;
  /** The compiled datapath's answer. */
  verdict: 'allow' | 'deny';
  /** The probe's expectation, when it has one. */
  expect?: 'allow' | 'deny';
}

/** What {@link evaluateScenario} returns: one result per probe and the number that differ from `expect`. */
export interface ScenarioResult {
  /** One result per probe, in order. */
  results: ProbeResult[];
  /** How many results differ from their `expect`. */
  mismatches: number;
}

/**
 * Validates a decoded scenario (from JSON or YAML) without compiling it; pods get `namespace` (from the deprecated
 * `ns` when that is what they say).
 *
 * @throws {@link PolicyError} `InvalidScenario` listing every problem with its path (policies included, e.g.
 * `policies[2].spec.ingress[0].ports[1].endPort: must be ≥ port`).
 * @example Validating a scenario
 * ```ts
 * import { validateScenario } from '@datapath/policy';
 * const s = validateScenario({ namespaces: { x: {} }, pods: [{ ns: 'x', name: 'a', ip: '10.244.0.10' }], probes: [] });
 * console.log(s.pods[0]?.namespace); // 'x'
 * ```
 */
export function validateScenario(input: unknown): Scenario {
  if (nestedDeeperThan(input, MAX_SCENARIO_DEPTH))
    throw new PolicyError('InvalidScenario', 'invalid scenario', [
      { path: '(root)', message: `nested more than ${MAX_SCENARIO_DEPTH} levels deep` },
    ]);
  const r = scenarioSchema.safeParse(input);
  const problems: PolicyProblem[] = [];
  if (!r.success) {
    for (const i of r.error.issues) problems.push({ path: formatPath(i.path), message: i.message });
    throw new PolicyError('InvalidScenario', 'invalid scenario', problems);
  }
  const raw = r.data;
  const pods = raw.pods.map((p, i): ScenarioPod => {
    const namespace = p.namespace ?? p.ns;
    if (namespace === undefined) problems.push({ path: `pods[${i}].namespace`, message: 'required' });
    else if (p.ns !== undefined && p.namespace !== undefined && p.ns !== p.namespace)
      problems.push({ path: `pods[${i}].ns`, message: `differs from namespace ${p.namespace}` });
    return { ...p, namespace: namespace ?? '', ns: namespace ?? '' } as ScenarioPod;
  });
  const s = { ...raw, pods } as unknown as Scenario;
  const policies: PolicyObject[] = [];
  (raw.policies ?? []).forEach((p, i) => {
    const c = checkPolicy(p, `policies[${i}]`);
    problems.push(...c.problems);
    if (c.policy) policies.push(c.policy);
  });
  const podNames = new Set<string>();
  const ips = new Map<string, string>();
  s.pods.forEach((p, i) => {
    const key = `${p.namespace}/${p.name}`;
    const nsKey = raw.pods[i]?.namespace === undefined ? 'ns' : 'namespace';
    if (p.namespace !== '' && !(p.namespace in s.namespaces))
      problems.push({ path: `pods[${i}].${nsKey}`, message: `namespace ${p.namespace} is not declared` });
    if (podNames.has(key))
      problems.push({ path: `pods[${i}].name`, message: `pod ${key} is declared twice` });
    const ip = tryParsePrefix(p.ip)?.text;
    if (ip !== undefined && ips.has(ip))
      problems.push({ path: `pods[${i}].ip`, message: `IP is also used by ${ips.get(ip)}` });
    if (ip !== undefined) ips.set(ip, key);
    podNames.add(key);
  });
  s.probes.forEach((p, i) => {
    for (const end of ['from', 'to'] as const) {
      const e = p[end];
      if (e.startsWith('world:')) {
        const ip = tryParsePrefix(e.slice(6));
        if (ip === undefined || e.includes('/', 6))
          problems.push({ path: `probes[${i}].${end}`, message: 'world:<ip> needs an IP address' });
        else if (ips.has(ip.text))
          problems.push({
            path: `probes[${i}].${end}`,
            message: `${e} is the address of pod ${ips.get(ip.text)}`,
          });
      } else if (e !== 'host' && !podNames.has(e))
        problems.push({ path: `probes[${i}].${end}`, message: `unknown pod ${e}` });
    }
  });
  if (s.hostIP !== undefined && tryParsePrefix(s.hostIP) === undefined)
    problems.push({ path: 'hostIP', message: 'must be an IP address' });
  if (problems.length > 0) throw new PolicyError('InvalidScenario', 'invalid scenario', problems);
  if (raw.policies !== undefined) s.policies = policies;
  return s;
}

/**
 * Parses a scenario from YAML or JSON text and validates it (as {@link validateScenario}).
 *
 * @throws {@link PolicyError} `InvalidScenario` for YAML syntax errors (unresolved aliases, alias bombs and too
 * deep nesting included) and every validation problem.
 * @example Parsing a YAML scenario
 * ```ts
 * import { parseScenario } from '@datapath/policy';
 * const s = parseScenario('namespaces: { x: {} }\npods: [{ namespace: x, name: a, ip: 10.244.0.10 }]\nprobes: []\n');
 * console.log(s.pods.length); // 1
 * ```
 */
export function parseScenario(text: string): Scenario {
  const values = parseYamlDocuments(text, 'InvalidScenario');
  if (values.length !== 1)
    throw new PolicyError('InvalidScenario', `a scenario is one document, got ${values.length}`);
  return validateScenario(values[0]);
}

/**
 * Validates a scenario and compiles it; returns the engine (for explanations) and the typed scenario.
 *
 * @throws {@link PolicyError} `InvalidScenario` listing every problem with its path (policies included, e.g.
 * `policies[2].spec.ingress[0].ports[1].endPort: must be ≥ port`).
 * @example Compiling a scenario
 * ```ts
 * import { compileScenario } from '@datapath/policy';
 * const { engine } = compileScenario({ namespaces: { x: {} }, pods: [], probes: [] });
 * console.log(engine.state().endpoints.size); // 0
 * ```
 */
export function compileScenario(input: ScenarioInput): CompiledScenario {
  const s = validateScenario(input);
  const engine = new PolicyEngine({
    enforcement: (s.enforcement ?? 'default') as EnforcementMode,
    ...(s.hostIP !== undefined ? { hostIPs: [s.hostIP] } : {}),
  });
  engine.load({
    namespaces: Object.fromEntries(
      Object.entries(s.namespaces).map(([n, v]) => [n, { labels: v.labels ?? {} }]),
    ),
    pods: s.pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      ip: p.ip,
      ...(p.labels ? { labels: p.labels } : {}),
      ...(p.ports
        ? {
            ports: p.ports.map((x) => ({
              port: x.port,
              ...(x.protocol ? { protocol: x.protocol } : {}),
              ...(x.name !== undefined ? { name: x.name } : {}),
            })),
          }
        : {}),
    })),
    policies: s.policies ?? [],
  });
  return { engine, scenario: s };
}

/**
 * Evaluates every probe of a scenario against the compiled datapath state.
 *
 * Equivalent to: `datapath-policy verdicts scenario.json`.
 *
 * @throws {@link PolicyError} `InvalidScenario` listing every problem with its path.
 * @example Evaluating a scenario
 * ```ts
 * import { evaluateScenario } from '@datapath/policy';
 * const { results } = evaluateScenario({
 *   namespaces: { x: {} },
 *   pods: [{ ns: 'x', name: 'a', ip: '10.244.0.10' }, { ns: 'x', name: 'b', ip: '10.244.0.11' }],
 *   policies: [{ kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'x' }, spec: { podSelector: {} } }],
 *   probes: [{ from: 'x/b', to: 'x/a', port: 80, expect: 'deny' }],
 * });
 * console.log(results[0]?.verdict); // 'deny'
 * ```
 */
export function evaluateScenario(input: ScenarioInput): ScenarioResult {
  const { engine, scenario } = compileScenario(input);
  const state = engine.state();
  let mismatches = 0;
  const results = scenario.probes.map((p): ProbeResult => {
    const protocol = p.protocol ?? 'TCP';
    const v = verdict(state, { from: p.from, to: p.to, port: p.port, protocol }).verdict;
    if (p.expect !== undefined && p.expect !== v) mismatches++;
    return {
      from: p.from,
      to: p.to,
      port: p.port,
      protocol,
      verdict: v,
      ...(p.expect ? { expect: p.expect } : {}),
    };
  });
  return { results, mismatches };
}

/**
 * Explains one probe of a scenario (by index).
 *
 * Equivalent to: `datapath-policy explain scenario.json 3`.
 *
 * @throws {@link PolicyError} `InvalidScenario` for a bad scenario, `NotFound` for a probe index out of range.
 * @example Explaining the first probe
 * ```ts
 * import { explainScenarioProbe, formatExplanation } from '@datapath/policy';
 * const e = explainScenarioProbe(
 *   { namespaces: { x: {} }, pods: [{ ns: 'x', name: 'a', ip: '10.244.0.10' }], probes: [{ from: 'host', to: 'x/a', port: 80 }] },
 *   0,
 * );
 * console.log(formatExplanation(e));
 * ```
 */
export function explainScenarioProbe(input: ScenarioInput, index: number): Explanation {
  const { engine, scenario } = compileScenario(input);
  const p = scenario.probes[index];
  if (p === undefined)
    throw new PolicyError('NotFound', `no probe ${index} (the scenario has ${scenario.probes.length})`);
  return explain(engine, { from: p.from, to: p.to, port: p.port, protocol: p.protocol ?? 'TCP' });
}
