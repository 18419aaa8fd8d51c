/**
 * The agent's view of @datapath/policy: scenario and policy files in (YAML or JSON, through the policy package's
 * own loader), one long-lived `PolicyEngine` per agent built from the agent's state, verdicts and explanations for
 * flows. The engine's `MapChange` lists are written to the maps by `Datapath.writeChanges`.
 */
import { readFileSync } from 'node:fs';
import {
  type EnforcementMode,
  explain,
  type Flow,
  formatExplanation,
  type IdentityAllocator,
  type IdentityScope,
  type PodSpec,
  PolicyEngine,
  PolicyError,
  type PolicyObject,
  parsePolicies,
  parseScenario,
  type Scenario,
  validateScenario,
  verdict,
} from '@datapath/policy';
import { parse as parseYaml } from 'yaml';
import { AgentError } from './errors.js';
import { type ServiceScenario, validateServiceScenario } from './services.js';
import type { AgentState, PodRecord } from './state.js';

export type { Scenario } from '@datapath/policy';

/** A container port of a pod. */
export interface PodPortInput {
  port: number;
  /** `TCP` when omitted. */
  protocol?: 'TCP' | 'UDP' | 'SCTP' | undefined;
  name?: string | undefined;
}

/** A pod as the agent creates it (the fields of a scenario pod; `ns` is the deprecated spelling of `namespace`). */
export interface PodInput {
  namespace: string;
  name: string;
  labels?: Record<string, string> | undefined;
  /** Wanted address; the agent takes it when it lies in its pod CIDR. */
  ip?: string | undefined;
  ports?: PodPortInput[] | undefined;
}

/** The flow of one probe. */
export type FlowInput = Flow;

const SCOPE_RANGE: Record<IdentityScope, [number, number]> = {
  cluster: [256, 65535],
  local: [1 << 24, (1 << 24) + 0xffffff],
};

/**
 * An identity allocator whose numbers stick to their label sets for the agent's lifetime and across
 * restarts (the table is persisted in the state file): a rebuilt engine, whatever the order of pods, and
 * an incremental update give the same identities. Numbers are never released (an example agent's
 * churn is small; Cilium garbage-collects identities through its kvstore or CRDs).
 */
export class StickyIdentities implements IdentityAllocator {
  readonly #known: Map<string, number>;
  readonly #used: Set<number>;
  /** Whether a number was handed out that is not in the persisted table yet. */
  changed = false;

  constructor(known: Readonly<Record<string, number>> = {}) {
    this.#known = new Map(Object.entries(known));
    this.#used = new Set(this.#known.values());
  }

  /** The identity of a label set, the same number every time. */
  allocate(labels: readonly string[], scope: IdentityScope): number {
    const key = `${scope}:${labels.join(',')}`;
    const hit = this.#known.get(key);
    if (hit !== undefined) return hit;
    const [lo, hi] = SCOPE_RANGE[scope];
    let id = lo;
    while (this.#used.has(id) && id <= hi) id++;
    if (id > hi) throw new AgentError('InvalidScenario', `no ${scope} identity left`);
    this.#known.set(key, id);
    this.#used.add(id);
    this.changed = true;
    return id;
  }

  /** Numbers stay with their labels. */
  release(_id: number): void {}

  /** The table to persist. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#known);
  }
}

/** A policy error as the agent reports it (the compiler's problems in the message, the error as cause). */
export function policyFailure(err: unknown, what = 'policy'): unknown {
  if (err instanceof PolicyError)
    return new AgentError('InvalidScenario', `${what}: ${err.message}`, { cause: err });
  return err;
}

/** The engine's pod for a pod record: the agent's endpoint id is the engine's. */
export function podSpec(p: Pick<PodRecord, 'ns' | 'name' | 'labels' | 'ip' | 'ports' | 'lxcId'>): PodSpec {
  return {
    namespace: p.ns,
    name: p.name,
    labels: p.labels,
    ip: p.ip,
    endpointId: p.lxcId,
    ports: p.ports.map((x) => ({
      port: x.port,
      protocol: (x.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP',
      ...(x.name === undefined ? {} : { name: x.name }),
    })),
  };
}

/**
 * The policy engine of an agent's state: its namespaces, policies, enforcement mode and pods (endpoint id =
 * lxc id) and the pods of other nodes (`remotePods`, with engine endpoint ids the agent keeps apart from its own),
 * identities from `identities` (the persisted table when omitted). What `Agent.restore` and the
 * read-only commands start from.
 * @throws AgentError `InvalidScenario` with the compiler's complaint.
 */
export function engineFromState(
  state: Pick<AgentState, 'namespaces' | 'policies' | 'enforcement' | 'hostIp' | 'pods' | 'identities'>,
  identities: IdentityAllocator = new StickyIdentities(state.identities ?? {}),
  remotePods: readonly PodSpec[] = [],
): PolicyEngine {
  try {
    const engine = new PolicyEngine({
      enforcement: state.enforcement as EnforcementMode,
      hostIPs: [state.hostIp],
      allocator: identities,
    });
    const pods = Object.values(state.pods).sort((a, b) => a.lxcId - b.lxcId);
    const namespaces: Record<string, { labels: Record<string, string> }> = { ...state.namespaces };
    for (const p of pods) namespaces[p.ns] ??= { labels: {} };
    engine.load(
      { namespaces, pods: [...pods.map(podSpec), ...remotePods], policies: state.policies as PolicyObject[] },
      { changes: false },
    );
    return engine;
  } catch (err) {
    throw policyFailure(err);
  }
}

/** The compiled verdict of a flow, exactly as the datapath looks it up. */
export function flowVerdict(engine: PolicyEngine, flow: FlowInput): 'allow' | 'deny' {
  return verdict(engine.state(), flow).verdict;
}

/** Which rules decided a flow (what `cilium policy trace` printed). */
export function flowExplanation(engine: PolicyEngine, flow: FlowInput): string {
  return formatExplanation(explain(engine, flow));
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError('NotFound', `cannot read ${what} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads and validates a scenario file (YAML or JSON) with @datapath/policy's scenario loader.
 * @throws AgentError `InvalidScenario` (every problem with its path), `NotFound`.
 */
export function loadScenario(path: string): AgentScenario {
  const text = readText(path, 'scenario');
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch {
    doc = undefined; // the policy loader reports the syntax error with its position
  }
  try {
    if (doc === undefined) return parseScenario(text);
    return validateServiceScenario(doc, validateScenario);
  } catch (err) {
    throw policyFailure(err, path);
  }
}

/** A scenario as the agent reads it: the policy package's, plus `services` (services.ts). */
export type AgentScenario = ServiceScenario<Scenario>;

/**
 * Reads policies from a file: YAML or JSON policy documents (one, a list, `kind: List`, several YAML documents)
 * or a scenario (its `policies`).
 * @throws AgentError `InvalidScenario` (every problem with its path), `NotFound`.
 */
export function loadPolicies(path: string): PolicyObject[] {
  const text = readText(path, 'policy file');
  try {
    return parsePolicies(text);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    let scenario: Scenario;
    try {
      scenario = parseScenario(text);
    } catch {
      throw policyFailure(err, path);
    }
    return scenario.policies ?? [];
  }
}
