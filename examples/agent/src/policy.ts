/**
 * The agent's view of @datapath/policy: scenario files in, a compiled state out (identities,
 * per-endpoint policy map entries and ipcache entries as raw bytes in Cilium's layouts, verdicts and
 * explanations for flows).
 */
import { readFileSync } from 'node:fs';
import {
  type EnforcementMode,
  encodeIpcache,
  encodePolicyMap,
  explain,
  formatExplanation,
  type IdentityAllocator,
  type IdentityScope,
  type IpcacheValue,
  type MapChange,
  PolicyEngine,
  type PolicyKey,
  type PolicyValue,
  verdict,
} from '@datapath/policy';
import type { RawEntry } from './datapath.js';
import { AgentError } from './errors.js';

/** A pod as the agent creates it. */
export interface PodInput {
  ns: string;
  name: string;
  labels?: Record<string, string>;
  /** Wanted address; the agent takes it when it lies in its pod CIDR. */
  ip?: string;
  ports?: { port: number; protocol: string; name?: string }[];
}

/** A probe as written in a scenario. */
export interface ScenarioProbe {
  from: string;
  to: string;
  port: number | string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  expect?: 'allow' | 'deny';
}

/** A scenario in @datapath/policy's scenario format (unknown extra fields are ignored). */
export interface Scenario {
  namespaces: Record<string, { labels: Record<string, string> }>;
  pods: PodInput[];
  policies: unknown[];
  enforcement: string;
  probes: ScenarioProbe[];
}

/** The flow of one probe, with a numeric port. */
export interface FlowInput {
  from: string;
  to: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

/** What the agent needs from a compile. */
export interface CompiledPolicy {
  /** Security identity of a pod (`ns/name`). */
  identityOf(pod: string): number;
  /** The pod's policy map entries, encoded. */
  policyEntries(pod: string): RawEntry[];
  /** The pod's policy map entries, readable. */
  policyTable(pod: string): { key: PolicyKey; value: PolicyValue; origins: readonly string[] }[];
  /** The ipcache entries, encoded (IPv4 and IPv6). */
  ipcache: RawEntry[];
  /** The ipcache, readable: prefix → value. */
  ipcacheTable: ReadonlyMap<string, IpcacheValue>;
  /** The identities in use: id → labels. */
  identities: ReadonlyMap<number, readonly string[]>;
  /** The compiled verdict for a flow, exactly as the datapath looks it up. */
  verdict(flow: FlowInput): 'allow' | 'deny';
  /** Which rules decided a flow (what `cilium policy trace` printed). */
  explain(flow: FlowInput): string;
  /**
   * Adds (or updates) a pod in the compiled state incrementally, creating its namespace when new;
   * returns the endpoints whose policy changed and whether the ipcache changed.
   * @throws AgentError `InvalidScenario` with the compiler's complaint.
   */
  upsertPod(pod: CompileInput['pods'][number]): { endpoints: Set<string>; ipcache: boolean };
}

const SCOPE_RANGE: Record<IdentityScope, [number, number]> = {
  cluster: [256, 65535],
  local: [1 << 24, (1 << 24) + 0xffffff],
};

/**
 * An identity allocator whose numbers stick to their label sets for the agent's lifetime and across
 * restarts (the table is persisted in the state file): a recompile, whatever the order of pods, and
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

/** What {@link compilePolicy} takes. */
export interface CompileInput {
  namespaces: Record<string, { labels: Record<string, string> }>;
  pods: { ns: string; name: string; labels: Record<string, string>; ip: string; ports: PodInput['ports'] }[];
  policies: unknown[];
  enforcement: string;
  hostIp: string;
  /** Identity allocator shared by successive compiles (default: a fresh one). */
  identities?: IdentityAllocator;
}

function fail(path: string, message: string): never {
  throw new AgentError('InvalidScenario', `${path}: ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function labelsOf(v: unknown, path: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isRecord(v)) fail(path, 'expected an object of string labels');
  for (const [k, x] of Object.entries(v))
    if (typeof x !== 'string') fail(`${path}.${k}`, 'expected a string');
  return v as Record<string, string>;
}

/**
 * Validates a parsed scenario document.
 * @throws AgentError `InvalidScenario` naming the first bad field.
 */
export function parseScenario(doc: unknown): Scenario {
  if (!isRecord(doc)) fail('scenario', 'expected an object');
  const namespaces: Scenario['namespaces'] = {};
  if (doc.namespaces !== undefined) {
    if (!isRecord(doc.namespaces)) fail('namespaces', 'expected an object (name → { labels })');
    for (const [name, ns] of Object.entries(doc.namespaces)) {
      namespaces[name] = {
        labels: labelsOf(isRecord(ns) ? ns.labels : undefined, `namespaces.${name}.labels`),
      };
    }
  }
  if (!Array.isArray(doc.pods)) fail('pods', 'expected an array');
  const pods = doc.pods.map((p, i): PodInput => {
    const path = `pods[${i}]`;
    if (!isRecord(p)) fail(path, 'expected an object');
    if (typeof p.ns !== 'string' || p.ns === '') fail(`${path}.ns`, 'expected a namespace name');
    if (typeof p.name !== 'string' || p.name === '') fail(`${path}.name`, 'expected a pod name');
    if (p.ip !== undefined && typeof p.ip !== 'string') fail(`${path}.ip`, 'expected an IP address');
    const ports = (Array.isArray(p.ports) ? p.ports : []).map((x, j) => {
      if (!isRecord(x) || !Number.isInteger(x.port))
        fail(`${path}.ports[${j}]`, 'expected { port, protocol?, name? }');
      return {
        port: x.port as number,
        protocol: typeof x.protocol === 'string' ? x.protocol : 'TCP',
        ...(typeof x.name === 'string' ? { name: x.name } : {}),
      };
    });
    namespaces[p.ns] ??= { labels: {} };
    return {
      ns: p.ns,
      name: p.name,
      labels: labelsOf(p.labels, `${path}.labels`),
      ...(typeof p.ip === 'string' ? { ip: p.ip } : {}),
      ports,
    };
  });
  const policies = doc.policies === undefined ? [] : doc.policies;
  if (!Array.isArray(policies)) fail('policies', 'expected an array');
  const enforcement = doc.enforcement ?? 'default';
  if (enforcement !== 'default' && enforcement !== 'always' && enforcement !== 'never') {
    fail('enforcement', 'expected default, always or never');
  }
  const probes = (Array.isArray(doc.probes) ? doc.probes : []).map((p, i): ScenarioProbe => {
    const path = `probes[${i}]`;
    if (!isRecord(p)) fail(path, 'expected an object');
    if (typeof p.from !== 'string' || typeof p.to !== 'string') fail(path, 'expected from and to');
    if (typeof p.port !== 'number' && typeof p.port !== 'string') fail(`${path}.port`, 'expected a port');
    const protocol = (p.protocol ?? 'TCP') as string;
    if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP')
      fail(`${path}.protocol`, 'TCP, UDP or SCTP');
    const expect = p.expect === undefined ? undefined : normaliseExpect(p.expect, `${path}.expect`);
    return {
      from: p.from,
      to: p.to,
      port: p.port,
      protocol,
      ...(expect === undefined ? {} : { expect }),
    };
  });
  return { namespaces, pods, policies, enforcement, probes };
}

function normaliseExpect(v: unknown, path: string): 'allow' | 'deny' {
  if (v === 'allow' || v === 'allowed' || v === true) return 'allow';
  if (v === 'deny' || v === 'denied' || v === 'drop' || v === false) return 'deny';
  fail(path, 'expected allow or deny');
}

/**
 * Reads and validates a scenario file (JSON).
 * @throws AgentError `InvalidScenario`, `NotFound`.
 */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AgentError('NotFound', `cannot read scenario ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AgentError('InvalidScenario', `${path}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseScenario(doc);
}

/**
 * Compiles pods and policies into the agent's view of the state.
 * @throws AgentError `InvalidScenario` with the policy compiler's problems.
 */
export function compilePolicy(input: CompileInput): CompiledPolicy {
  const engine = new PolicyEngine({
    enforcement: input.enforcement as EnforcementMode,
    hostIPs: [input.hostIp],
    ...(input.identities === undefined ? {} : { allocator: input.identities }),
  });
  const podSpec = (p: CompileInput['pods'][number]) => ({
    namespace: p.ns,
    name: p.name,
    labels: p.labels,
    ip: p.ip,
    ports: (p.ports ?? []).map((x) => ({
      port: x.port,
      protocol: x.protocol as 'TCP' | 'UDP' | 'SCTP',
      ...(x.name === undefined ? {} : { name: x.name }),
    })),
  });
  try {
    engine.load(
      { namespaces: input.namespaces, pods: input.pods.map(podSpec), policies: input.policies },
      { changes: false },
    );
  } catch (err) {
    throw new AgentError('InvalidScenario', `policy: ${(err as Error).message}`, { cause: err });
  }
  const state = engine.state();
  const endpoint = (pod: string) => {
    const e = state.endpoints.get(pod);
    if (!e) throw new AgentError('NotFound', `policy state has no endpoint ${pod}`);
    return e;
  };
  const namespaces = new Set(Object.keys(input.namespaces));
  return {
    identityOf: (pod) => endpoint(pod).identity,
    policyEntries: (pod) => encodePolicyMap(endpoint(pod).policy),
    policyTable: (pod) => [...endpoint(pod).policy.values()],
    get ipcache() {
      return encodeIpcache(state);
    },
    get ipcacheTable() {
      return new Map(state.ipcache);
    },
    get identities() {
      const ids = new Map<number, readonly string[]>();
      for (const [id, info] of state.identities) ids.set(id, info.labels);
      return ids;
    },
    verdict: (flow) => verdict(state, flow).verdict,
    explain: (flow) => formatExplanation(explain(engine, flow)),
    upsertPod: (pod) => {
      const changes: MapChange[] = [];
      try {
        if (!namespaces.has(pod.ns)) {
          changes.push(...engine.upsertNamespace(pod.ns, {}));
          namespaces.add(pod.ns);
        }
        changes.push(...engine.upsertPod(podSpec(pod)));
      } catch (err) {
        throw new AgentError('InvalidScenario', `policy: ${(err as Error).message}`, { cause: err });
      }
      const endpoints = new Set<string>([`${pod.ns}/${pod.name}`]);
      let ipcache = false;
      for (const c of changes) {
        if (c.map === 'policy') endpoints.add(c.endpoint);
        else ipcache = true;
      }
      return { endpoints, ipcache };
    },
  };
}
