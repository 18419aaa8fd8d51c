// The service model: what a service is (frontends, backends, selection, affinity), validated into a
// normalised, deterministic form. Pure: no kernel access.
import { formatIp, type IpFamily, ipToBytes, tryParseIp } from '@datapath/ip';
import { z } from 'zod';
import { LbError, type LbProblem, type LbReason } from './errors.js';

/** The transport protocols a service can balance. */
export type LbProtocol = 'TCP' | 'UDP';
/** How clients reach a frontend: the cluster address, a node's address (NodePort) or an external IP. */
export type FrontendKind = 'ClusterIP' | 'NodePort' | 'ExternalIP';
/** A backend's state: only `active` backends get new flows; the others keep the flows they have. */
export type BackendState = 'active' | 'terminating' | 'quarantined';
/** How a new flow picks a backend: uniformly at random, or through the service's Maglev table. */
export type Selection = 'random' | 'maglev';

/** A frontend as {@link parseService} takes it. */
export interface FrontendInput {
  /** Default `ClusterIP`. */
  kind?: FrontendKind | undefined;
  /** IPv4 or IPv6 address. */
  address: string;
  /** 1..65535. */
  port: number;
}

/** A backend as {@link parseService} takes it. */
export interface BackendInput {
  /** IPv4 or IPv6 address (the service's family). */
  address: string;
  /** 1..65535. */
  port: number;
  /** Relative share of new flows under Maglev selection, 0..65535 (default 1; 0 = none). */
  weight?: number | undefined;
  /** Default `active`. */
  state?: BackendState | undefined;
}

/** A service as {@link parseService} takes it: one protocol, its frontends, its backends. */
export interface ServiceInput {
  /** Unique name, e.g. `default/web:http`. */
  name: string;
  /** `TCP` or `UDP`. */
  protocol: LbProtocol;
  /** Where clients connect; at least one. All frontends and backends share one IP family. */
  frontends: readonly FrontendInput[];
  /** Where flows go; may be empty (the datapath then refuses connections: `ECONNREFUSED`). */
  backends: readonly BackendInput[];
  /** Default `random`. */
  selection?: Selection | undefined;
  /** Session affinity by client: the same backend for `timeoutSeconds` after the client's last flow. */
  affinity?: AffinityInput | undefined;
}

/** Session affinity as {@link ServiceInput} takes it. */
export interface AffinityInput {
  /** 1..86400 (default {@link DEFAULT_AFFINITY_TIMEOUT}). */
  timeoutSeconds?: number | undefined;
}

/** A validated frontend. */
export interface Frontend {
  /** Its kind. */
  readonly kind: FrontendKind;
  /** Canonical text form of the address. */
  readonly address: string;
  /** 1..65535. */
  readonly port: number;
}

/** A validated backend. */
export interface Backend {
  /** Canonical text form of the address. */
  readonly address: string;
  /** 1..65535. */
  readonly port: number;
  /** 0..65535. */
  readonly weight: number;
  /** Its state. */
  readonly state: BackendState;
}

/** A validated, normalised service ({@link parseService}). */
export interface Service {
  /** Unique name. */
  readonly name: string;
  /** `TCP` or `UDP`. */
  readonly protocol: LbProtocol;
  /** 4 or 6: the family of every frontend and backend. */
  readonly family: IpFamily;
  /** Frontends, in input order. */
  readonly frontends: readonly Frontend[];
  /** Backends, in input order. */
  readonly backends: readonly Backend[];
  /** How new flows pick a backend. */
  readonly selection: Selection;
  /** Session affinity timeout in seconds, or `undefined` without affinity. */
  readonly affinityTimeoutSeconds: number | undefined;
}

/** Limits a service must fit in. */
export interface ServiceLimits {
  /** Most backends one service may have (slots 1..n of its master entry); default {@link DEFAULT_MAX_BACKENDS}. */
  maxBackends?: number | undefined;
}

/** Default most backends per service. */
export const DEFAULT_MAX_BACKENDS = 4096;
/** The largest slot count the map layout can hold (a u16). */
export const SLOT_LIMIT = 0xffff;
/** Default affinity timeout (Kubernetes' `sessionAffinityConfig.clientIP.timeoutSeconds` default). */
export const DEFAULT_AFFINITY_TIMEOUT = 10800;
/** Longest affinity timeout (Kubernetes' maximum). */
export const MAX_AFFINITY_TIMEOUT = 86400;

const port = z.number().int().min(1).max(65535);
const schema = z.strictObject({
  name: z.string().min(1).max(253),
  protocol: z.enum(['TCP', 'UDP']),
  frontends: z
    .array(
      z.strictObject({
        kind: z.enum(['ClusterIP', 'NodePort', 'ExternalIP']).optional(),
        address: z.string(),
        port,
      }),
    )
    .min(1),
  backends: z.array(
    z.strictObject({
      address: z.string(),
      port,
      weight: z.number().int().min(0).max(65535).optional(),
      state: z.enum(['active', 'terminating', 'quarantined']).optional(),
    }),
  ),
  selection: z.enum(['random', 'maglev']).optional(),
  affinity: z
    .strictObject({ timeoutSeconds: z.number().int().min(1).max(MAX_AFFINITY_TIMEOUT).optional() })
    .optional(),
});

function reasonOfPath(path: readonly PropertyKey[]): LbReason {
  const last = path[path.length - 1];
  const first = path[0];
  if (last === 'port') return 'InvalidPort';
  if (last === 'protocol') return 'InvalidProtocol';
  if (last === 'address') return 'InvalidAddress';
  if (last === 'weight') return 'InvalidWeight';
  if (first === 'affinity') return 'InvalidAffinity';
  return 'InvalidService';
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(service)';
}

/** A frontend's identity in the maps: family-free canonical address, port, protocol. */
export function frontendKey(protocol: LbProtocol, address: string, port: number): string {
  return `${address}|${port}|${protocol}`;
}

/**
 * Validates a service and returns it normalised (canonical addresses, defaults filled in). Zero
 * backends is valid: the datapath refuses connections to it cleanly.
 *
 * @throws {@link LbError} with every problem found; its reason is the first problem's: `InvalidPort`,
 * `InvalidProtocol`, `InvalidAddress`, `FamilyMismatch`, `InvalidWeight`, `InvalidAffinity`,
 * `DuplicateFrontend`, `DuplicateBackend` (code `AlreadyExists`), `TooManyBackends` (code `TooBig`) or
 * `InvalidService`.
 * @example A ClusterIP with two backends and Maglev
 * ```ts
 * import { parseService } from '@datapath/lb';
 * const svc = parseService({
 *   name: 'default/web:http',
 *   protocol: 'TCP',
 *   frontends: [{ address: '10.96.0.10', port: 80 }],
 *   backends: [{ address: '10.244.1.5', port: 8080 }, { address: '10.244.2.7', port: 8080, weight: 2 }],
 *   selection: 'maglev',
 * });
 * console.log(svc.family, svc.backends.length); // 4 2
 * ```
 */
export function parseService(input: unknown, limits: ServiceLimits = {}): Service {
  const op = 'parseService';
  const maxBackends = limits.maxBackends ?? DEFAULT_MAX_BACKENDS;
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems: LbProblem[] = parsed.error.issues.map((i) => ({
      path: pathText(i.path),
      message: i.message,
      reason: reasonOfPath(i.path),
    }));
    throw new LbError(problems[0]?.reason ?? 'InvalidService', 'invalid service', { op, problems });
  }
  const s = parsed.data;
  const problems: LbProblem[] = [];
  let family: IpFamily | undefined;
  const addr = (text: string, path: string): string => {
    const ip = tryParseIp(text);
    if (ip === undefined) {
      problems.push({
        path,
        message: `not an IP address: ${JSON.stringify(text)}`,
        reason: 'InvalidAddress',
      });
      return text;
    }
    if (family === undefined) family = ip.family;
    else if (ip.family !== family)
      problems.push({
        path,
        message: `IPv${ip.family} in an IPv${family} service (one family per service; dual stack is two services)`,
        reason: 'FamilyMismatch',
      });
    return formatIp(ip);
  };
  const frontends: Frontend[] = [];
  const seenFe = new Map<string, number>();
  s.frontends.forEach((f, i) => {
    const address = addr(f.address, `frontends[${i}].address`);
    const k = frontendKey(s.protocol, address, f.port);
    const prev = seenFe.get(k);
    if (prev !== undefined)
      problems.push({
        path: `frontends[${i}]`,
        message: `${address}:${f.port}/${s.protocol} repeats frontends[${prev}]`,
        reason: 'DuplicateFrontend',
      });
    seenFe.set(k, i);
    frontends.push({ kind: f.kind ?? 'ClusterIP', address, port: f.port });
  });
  const backends: Backend[] = [];
  const seenBe = new Map<string, number>();
  s.backends.forEach((b, i) => {
    const address = addr(b.address, `backends[${i}].address`);
    const k = `${address}|${b.port}`;
    const prev = seenBe.get(k);
    if (prev !== undefined)
      problems.push({
        path: `backends[${i}]`,
        message: `${address}:${b.port} repeats backends[${prev}]`,
        reason: 'DuplicateBackend',
      });
    seenBe.set(k, i);
    backends.push({ address, port: b.port, weight: b.weight ?? 1, state: b.state ?? 'active' });
  });
  const limit = Math.min(maxBackends, SLOT_LIMIT);
  if (backends.length > limit)
    problems.push({
      path: 'backends',
      message: `${backends.length} backends, more than the limit of ${limit} per service`,
      reason: 'TooManyBackends',
    });
  if (problems.length > 0) {
    // Put the most specific reason first: the order the checks found them in is the input order.
    throw new LbError(problems[0]!.reason, `invalid service ${JSON.stringify(s.name)}`, {
      op,
      target: s.name,
      problems,
    });
  }
  return {
    name: s.name,
    protocol: s.protocol,
    family: family ?? 4,
    frontends,
    backends,
    selection: s.selection ?? 'random',
    affinityTimeoutSeconds:
      s.affinity === undefined ? undefined : (s.affinity.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT),
  };
}

/** The 16 bytes of an address as the maps store it: IPv6 as is, IPv4 as `::ffff:a.b.c.d`. */
export function mappedAddress(address: string): Uint8Array {
  const raw = ipToBytes(address);
  if (raw.length === 16) return raw;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(raw, 12);
  return out;
}

/** The text form of 16 stored address bytes (IPv4-mapped ones as dotted quads). */
export function unmappedAddress(bytes: Uint8Array): string {
  let v4 = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; i < 10 && v4; i++) if (bytes[i] !== 0) v4 = false;
  return formatIp(v4 ? bytes.subarray(12, 16) : bytes);
}
