import { formatPrefix, prefixOf, tryParseIp } from '@datapath/ip';
import type { PolicyEngine } from './engine.js';
import { type EnforcementMode, IPCACHE_FLAG_LOCAL_ENDPOINT, type PolicyState } from './engine-types.js';
import { PolicyError } from './errors.js';
import type { IdentityInfo } from './identity.js';
import { type Direction, type LookupResult, policyLookup } from './mapstate.js';
import { peerMatches } from './peers.js';
import { Proto } from './rules.js';

/** L4 protocol of a flow. */
export type FlowProtocol = 'TCP' | 'UDP' | 'SCTP';

/**
 * A new connection to decide on. Endpoints are `namespace/pod`, `host` (the node the pods run on) or
 * `world:<ip>` (an address outside the cluster).
 */
export interface Flow {
  /** Source: `namespace/pod`, `host` or `world:<ip>`. */
  from: string;
  /** Destination: `namespace/pod`, `host` or `world:<ip>`. */
  to: string;
  /** Destination port. */
  port: number;
  /** `TCP` when omitted. */
  protocol?: FlowProtocol;
}

/** One policy map lookup of a verdict: whose map, which peer identity, and what the lookup returned. */
export interface DirectionVerdict extends LookupResult {
  /** Egress (source's map) or ingress (destination's map). */
  direction: Direction;
  /** The endpoint whose map was consulted. */
  endpoint: string;
  /** The peer identity looked up. */
  peerIdentity: number;
}

/** The answer for a flow: `allow` iff every consulted map allows it (source egress and destination ingress). */
export interface VerdictResult {
  /** The answer. */
  verdict: 'allow' | 'deny';
  /** Identity of the source as the datapath resolves it. */
  fromIdentity: number;
  /** Identity of the destination as the datapath resolves it. */
  toIdentity: number;
  /** The lookups made: egress in the source's map (if a pod), then ingress in the destination's (if a pod). */
  lookups: DirectionVerdict[];
}

/**
 * Longest-prefix match of an address in the ipcache, as the datapath does; `world` (2) when nothing matches.
 *
 * @throws {@link PolicyError} `InvalidArgument` when `ip` is not an address.
 * @example Resolving an address
 * ```ts
 * import { PolicyEngine, ipcacheLookup } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * console.log(ipcacheLookup(engine.state(), '8.8.8.8').identity); // 2
 * ```
 */
export function ipcacheLookup(state: PolicyState, ip: string): IpcacheHit {
  // Fast path: a host entry under the exact canonical text (pod and node addresses).
  const exact = `${ip}/${ip.includes(':') ? 128 : 32}`;
  const hit = state.ipcache.get(exact);
  if (hit) return { identity: hit.identity, prefix: exact, flags: hit.flags };
  const a = tryParseIp(ip);
  if (a === undefined) throw new PolicyError('InvalidArgument', `not an IP address: ${JSON.stringify(ip)}`);
  const w = a.family === 4 ? 32 : 128;
  for (let len = w; len >= 0; len--) {
    const prefix = formatPrefix(prefixOf(a, len));
    const v = state.ipcache.get(prefix);
    if (v) return { identity: v.identity, prefix, flags: v.flags };
  }
  return { identity: 2, prefix: a.family === 4 ? '0.0.0.0/0' : '::/0', flags: 0 };
}

/** The result of an ipcache lookup: the matching prefix and its value. */
export interface IpcacheHit {
  /** Identity of the longest matching prefix (2 = world when none). */
  identity: number;
  /** The matching prefix. */
  prefix: string;
  /** Its flags. */
  flags: number;
}

interface Resolved {
  kind: 'pod' | 'host' | 'world';
  name: string;
  identity: number;
}

function resolve(state: PolicyState, ep: string): Resolved {
  if (ep === 'host') return { kind: 'host', name: 'host', identity: 1 };
  if (ep.startsWith('world:')) {
    const hit = ipcacheLookup(state, ep.slice(6));
    if (hit.flags & IPCACHE_FLAG_LOCAL_ENDPOINT)
      throw new PolicyError('InvalidArgument', `${ep} is a pod address; name the pod as namespace/name`);
    return { kind: 'world', name: ep, identity: hit.identity };
  }
  const e = state.endpoints.get(ep);
  if (!e)
    throw new PolicyError(
      'NotFound',
      `unknown endpoint ${JSON.stringify(ep)} (use namespace/pod, host or world:<ip>)`,
    );
  return { kind: 'pod', name: ep, identity: ipcacheLookup(state, e.ip).identity };
}

/**
 * Decides a flow from the compiled state exactly as the datapath would: resolve both ends through the ipcache,
 * look the peer up in the source's egress map and the destination's ingress map (peer id, then id 0; deny wins;
 * more specific L4 wins; tie → L3), allow iff both allow. Non-pod ends have no map of their own.
 *
 * @throws {@link PolicyError} `NotFound` for an unknown endpoint, `InvalidArgument` for a bad port or address.
 * @example Checking one flow
 * ```ts
 * import { PolicyEngine, verdict } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }] });
 * console.log(verdict(engine.state(), { from: 'world:8.8.8.8', to: 'x/a', port: 80 }).verdict); // 'allow'
 * ```
 */
export function verdict(state: PolicyState, flow: Flow): VerdictResult {
  if (!Number.isInteger(flow.port) || flow.port < 1 || flow.port > 65535)
    throw new PolicyError('InvalidArgument', `port ${flow.port} must be between 1 and 65535`);
  const protocol = Proto[flow.protocol ?? 'TCP'];
  if (protocol === undefined)
    throw new PolicyError('InvalidArgument', `unknown protocol ${String(flow.protocol)}`);
  const src = resolve(state, flow.from);
  const dst = resolve(state, flow.to);
  const lookups: DirectionVerdict[] = [];
  if (src.kind === 'pod') {
    const r = policyLookup(
      state.endpoints.get(src.name)!.policy,
      'egress',
      dst.identity,
      protocol,
      flow.port,
    );
    lookups.push({ direction: 'egress', endpoint: src.name, peerIdentity: dst.identity, ...r });
  }
  if (dst.kind === 'pod') {
    const r = policyLookup(
      state.endpoints.get(dst.name)!.policy,
      'ingress',
      src.identity,
      protocol,
      flow.port,
    );
    lookups.push({ direction: 'ingress', endpoint: dst.name, peerIdentity: src.identity, ...r });
  }
  return {
    verdict: lookups.every((l) => l.decision === 'allow') ? 'allow' : 'deny',
    fromIdentity: src.identity,
    toIdentity: dst.identity,
    lookups,
  };
}

/** How one rule item (`ingress[0]`, `egressDeny[1]`…) relates to the flow. */
export interface RuleTrace {
  /** The rule item, e.g. `CiliumNetworkPolicy x/web ingressDeny[0]`. */
  origin: string;
  /** True for a deny item. */
  deny: boolean;
  /** The flow's peer is one of the item's peers. */
  peerMatch: boolean;
  /** The flow's protocol and port are among the item's ports. */
  portMatch: boolean;
}

/** The explanation of one direction: the rules that select the endpoint and what each says about the flow. */
export interface DirectionExplanation extends DirectionVerdict {
  /** Labels of the peer identity. */
  peerLabels: readonly string[];
  /** Policies (and `specs[i]`) that select the endpoint and enforce this direction, even those without items. */
  selectedBy: string[];
  /** Every rule selecting the endpoint in this direction, item by item. */
  rules: RuleTrace[];
  /** Whether this direction is enforced for the endpoint. */
  enforced: boolean;
}

/** What {@link explain} returns: the verdict and, per consulted map, why. */
export interface Explanation {
  /** The flow explained. */
  flow: Flow;
  /** The verdict. */
  verdict: 'allow' | 'deny';
  /** The enforcement mode. */
  enforcement: EnforcementMode;
  /** One entry per map consulted (egress of the source pod, ingress of the destination pod). */
  directions: DirectionExplanation[];
}

function portCovers(
  ports: 'all' | readonly { protocols: readonly number[]; port: number; endPort: number; name?: string }[],
  protocol: number,
  port: number,
  named: readonly { port: number; protocol?: string; name?: string }[],
): boolean {
  if (ports === 'all') return true;
  return ports.some((p) => {
    if (!p.protocols.includes(protocol)) return false;
    if (p.name !== undefined)
      return named.some(
        (x) => x.name === p.name && x.port === port && Proto[(x.protocol ?? 'TCP') as 'TCP'] === protocol,
      );
    return p.port === 0 || (port >= p.port && port <= p.endPort);
  });
}

/**
 * Explains a flow: for each map consulted, the rules selecting the endpoint, whether each rule's peers and ports
 * match, and the map entries that decided — what `cilium policy trace` printed, for both directions.
 *
 * @throws {@link PolicyError} `NotFound` for an unknown endpoint, `InvalidArgument` for a bad port or address.
 * @example Explaining a denied flow
 * ```ts
 * import { PolicyEngine, explain, formatExplanation } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * engine.load({
 *   namespaces: { x: {} },
 *   pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }, { namespace: 'x', name: 'b', ip: '10.244.0.11' }],
 *   policies: [{ kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'x' }, spec: { podSelector: {} } }],
 * });
 * console.log(formatExplanation(explain(engine, { from: 'x/b', to: 'x/a', port: 80 })));
 * ```
 */
export function explain(engine: PolicyEngine, flow: Flow): Explanation {
  const state = engine.state();
  const v = verdict(state, flow);
  const protocol = Proto[flow.protocol ?? 'TCP'];
  const directions = v.lookups.map((l): DirectionExplanation => {
    const { rules, ports } = engine.endpointRules(l.endpoint);
    const peer: IdentityInfo | undefined = state.identities.get(l.peerIdentity);
    // For egress, named ports are resolved against the destination pod.
    const named =
      l.direction === 'ingress' ? ports : flow.to.includes('/') ? engine.endpointRules(flow.to).ports : [];
    const traces: RuleTrace[] = [];
    const selectedBy: string[] = [];
    let enforced = state.enforcement === 'always';
    for (const r of rules) {
      const d = r[l.direction];
      if (!d.enforces) continue;
      enforced = true;
      selectedBy.push(d.defaultDeny ? r.title : `${r.title} (enableDefaultDeny.${l.direction}=false)`);
      for (const item of d.rules)
        traces.push({
          origin: item.origin,
          deny: item.deny,
          peerMatch: peer !== undefined && item.peers.some((p) => peerMatches(p, peer)),
          portMatch: portCovers(item.ports, protocol, flow.port, named),
        });
    }
    if (state.enforcement === 'never') enforced = false;
    return { ...l, peerLabels: peer?.labels ?? [], selectedBy, rules: traces, enforced };
  });
  return { flow, verdict: v.verdict, enforcement: state.enforcement, directions };
}

/**
 * Renders an {@link Explanation} as text in the spirit of `cilium policy trace`.
 *
 * @example Printing an explanation
 * ```ts
 * import { PolicyEngine, explain, formatExplanation } from '@datapath/policy';
 * const engine = new PolicyEngine();
 * engine.load({ namespaces: { x: {} }, pods: [{ namespace: 'x', name: 'a', ip: '10.244.0.10' }] });
 * console.log(formatExplanation(explain(engine, { from: 'host', to: 'x/a', port: 80 })));
 * ```
 */
export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  out.push(
    `Tracing ${e.flow.from} => ${e.flow.to} ${e.flow.port}/${e.flow.protocol ?? 'TCP'} (enforcement ${e.enforcement})`,
  );
  if (e.directions.length === 0) out.push('No endpoint map is consulted (neither end is a pod)');
  for (const d of e.directions) {
    out.push(
      `Resolving ${d.direction} policy of ${d.endpoint} for peer identity ${d.peerIdentity} [${d.peerLabels.join(' ')}]`,
    );
    if (!d.enforced) out.push(`  ${d.direction} is not enforced: allow-all entry`);
    for (const t of d.selectedBy) out.push(`  Selected by ${t}`);
    if (d.enforced) out.push(`  ${d.selectedBy.length} rule(s) selected`);
    for (const t of d.rules) {
      const what = t.deny ? 'Denies' : 'Allows';
      out.push(
        `  * ${t.origin}: ${what} — peer ${t.peerMatch ? 'matched' : 'not matched'}, port ${t.portMatch ? 'matched' : 'not matched'}`,
      );
    }
    const matched = d.rules.filter((t) => t.peerMatch && t.portMatch);
    out.push(`  ${matched.some((t) => !t.deny) ? 'Found allow rule' : 'Found no allow rule'}`);
    out.push(`  ${matched.some((t) => t.deny) ? 'Found deny rule' : 'Found no deny rule'}`);
    const entry = d.entry;
    if (entry) {
      const k = entry.key;
      out.push(
        `  Map entry: ${k.direction} identity ${k.identity} proto ${k.protocol} port ${k.port}/${k.prefixLen} → ${entry.value.deny ? 'deny' : 'allow'} (from ${entry.origins.join(', ')})`,
      );
    } else out.push('  Map entry: none (default deny)');
    out.push(
      `  ${d.direction[0]!.toUpperCase()}${d.direction.slice(1)} verdict: ${d.decision === 'allow' ? 'allowed' : 'denied'}`,
    );
  }
  out.push(`Final verdict: ${e.verdict === 'allow' ? 'ALLOWED' : 'DENIED'}`);
  return out.join('\n');
}
