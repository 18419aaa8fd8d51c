import { tryParseCidr, tryParseIp } from '@datapath/ip';
import * as z from 'zod/mini';
import { CniError, CniErrorCode } from './errors.js';
import type { CniDns } from './result.js';

/** A port mapping from the `portMappings` capability. */
export interface PortMapping {
  /** Port on the host. */
  hostPort: number;
  /** Port in the container. */
  containerPort: number;
  /** `tcp`, `udp` or `sctp`. */
  protocol: string;
  /** Host address to bind, when restricted. */
  hostIP?: string;
}

/** Traffic shaping from the `bandwidth` capability (bits per second and bits). */
export interface BandwidthLimits {
  /** Ingress rate, bits/s. */
  ingressRate?: number;
  /** Ingress burst, bits. */
  ingressBurst?: number;
  /** Egress rate, bits/s. */
  egressRate?: number;
  /** Egress burst, bits. */
  egressBurst?: number;
}

/**
 * `runtimeConfig`: what the runtime passes for the capabilities the plugin declared (CONVENTIONS.md).
 * Unknown capabilities are kept as they came.
 */
export interface RuntimeConfig {
  /** `ips` capability: requested addresses, `address/prefix`. */
  ips?: string[];
  /** `mac` capability: requested container MAC. */
  mac?: string;
  /** `portMappings` capability. */
  portMappings?: PortMapping[];
  /** `bandwidth` capability. */
  bandwidth?: BandwidthLimits;
  /** Any other capability. */
  [capability: string]: unknown;
}

/** The `ipam` section of a config; `type` names the IPAM plugin, the rest belongs to it. */
export interface IpamConf {
  /** The IPAM plugin type (a binary name in `CNI_PATH`). */
  type: string;
  /** Plugin-specific keys. */
  [key: string]: unknown;
}

/** A network configuration as a plugin receives it on stdin; unknown keys are kept untouched. */
export interface NetConf {
  /** The spec version the result must be written in (`0.1.0` when absent). */
  cniVersion: string;
  /** Network name. */
  name: string;
  /** Plugin type (the binary name). */
  type: string;
  /** Capabilities the plugin declared (not passed by runtimes, but allowed). */
  capabilities?: Record<string, boolean>;
  /** IPAM section. */
  ipam?: IpamConf;
  /** DNS settings. */
  dns?: CniDns;
  /** Runtime-provided capability values. */
  runtimeConfig?: RuntimeConfig;
  /** Conventional `args` (e.g. `args.cni.ips`). */
  args?: Record<string, unknown>;
  /** The previous plugin's result, raw (parsed into `prevResult` of the handler arguments). */
  prevResult?: unknown;
  /** Any other key. */
  [key: string]: unknown;
}

// The zod schema of NetConf (loose: unknown keys kept), built on first use to keep start-up short.
function buildNetConfSchema() {
  const ip = z.string().check(z.refine((s) => tryParseIp(s) !== undefined, 'not an IP address'));
  const cidr = z.string().check(z.refine((s) => tryParseCidr(s) !== undefined, 'not an address/prefix'));
  const port = z.int().check(z.minimum(0), z.maximum(65535));
  const rate = z.number().check(z.minimum(0));

  // runtimeConfig: the well-known capabilities typed, any other kept.
  const runtimeConfigSchema = z.looseObject({
    ips: z.optional(z.array(cidr)),
    mac: z.optional(
      z.string().check(z.regex(/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/, 'not a MAC address')),
    ),
    portMappings: z.optional(
      z.array(
        z.looseObject({
          hostPort: port,
          containerPort: port,
          protocol: z._default(z.enum(['tcp', 'udp', 'sctp']), 'tcp'),
          hostIP: z.optional(ip),
        }),
      ),
    ),
    bandwidth: z.optional(
      z.looseObject({
        ingressRate: z.optional(rate),
        ingressBurst: z.optional(rate),
        egressRate: z.optional(rate),
        egressBurst: z.optional(rate),
      }),
    ),
  });

  return z.looseObject({
    cniVersion: z._default(z.string(), '0.1.0'),
    name: z.string(),
    type: z.string().check(z.minLength(1)),
    capabilities: z.optional(z.record(z.string(), z.boolean())),
    ipam: z.optional(z.looseObject({ type: z.string().check(z.minLength(1)) })),
    dns: z.optional(
      z.looseObject({
        nameservers: z.optional(z.array(z.string())),
        domain: z.optional(z.string()),
        search: z.optional(z.array(z.string())),
        options: z.optional(z.array(z.string())),
      }),
    ),
    runtimeConfig: z.optional(runtimeConfigSchema),
    args: z.optional(z.record(z.string(), z.unknown())),
    prevResult: z.optional(z.unknown()),
  });
}
let netConfSchema: ReturnType<typeof buildNetConfSchema> | undefined;

/**
 * A plugin's own config rules: a zod schema (classic or mini), or a function that receives the config
 * already checked against the base {@link NetConf} rules and returns the plugin's fields, throwing a
 * {@link CniError} with code 7 when they are invalid. A function lets a plugin skip building zod schemas
 * in the common case, which costs a short-lived plugin process milliseconds (see {@link parseWithSchema}).
 */
export type ConfigRules<T> = z.core.$ZodType<T> | ((base: NetConf) => T);

/**
 * Validates a decoded config against the base {@link NetConf} rules and then `rules` (a zod schema or a
 * validator function), and returns the parsed value; unknown keys are kept.
 *
 * @throws {@link CniError} code 7 (invalid network config) with every problem listed in `details`.
 * @example Validating a plugin's own fields on top of the base ones
 * ```ts
 * import * as z from 'zod/mini';
 * import { parseConfig } from '@datapath/cni';
 * const conf = parseConfig({ cniVersion: '1.0.0', name: 'pods', type: 'x', mtu: 1400 },
 *   z.looseObject({ mtu: z.int() }));
 * ```
 */
export function parseConfig<T = {}>(json: unknown, rules?: ConfigRules<T>): NetConf & T {
  let base = quickNetConf(json);
  if (base === undefined) {
    netConfSchema ??= buildNetConfSchema();
    base = parseWithSchema(netConfSchema, json) as NetConf;
  }
  if (rules === undefined) return base as NetConf & T;
  const own = typeof rules === 'function' ? rules(base) : parseWithSchema(rules, base);
  return { ...base, ...(own as object) } as NetConf & T;
}

/**
 * Parses `value` with a zod schema and returns the output, or throws the CNI error every config failure
 * becomes (code 7, the problems in `details`, as {@link parseConfig} reports them).
 *
 * @throws {@link CniError} code 7 (invalid network config).
 * @example A validator function that falls back to a zod schema for the details
 * ```ts
 * import * as z from 'zod/mini';
 * import { parseWithSchema, runPlugin } from '@datapath/cni';
 * const own = z.looseObject({ mtu: z._default(z.int(), 1500) });
 * const config = (base: { mtu?: unknown }) =>
 *   base.mtu === undefined ? { mtu: 1500 } : parseWithSchema(own, base);
 * ```
 */
export function parseWithSchema<T>(schema: z.core.$ZodType<T>, value: unknown): T {
  const r = z.safeParse(schema, value);
  if (r.success) return r.data;
  // zod/mini words its issues only with a locale loaded ("Invalid input" otherwise): load English on the
  // first failure (not at start-up: the success path stays as cheap) and parse again for the reasons.
  if (!localeLoaded) {
    z.config(z.locales.en());
    localeLoaded = true;
    const again = z.safeParse(schema, value);
    if (!again.success) throw invalid(again.error);
  }
  throw invalid(r.error);
}
let localeLoaded = false;

// A plain object; one with an own `__proto__` key (JSON.parse makes those) is left to zod, which drops it.
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.hasOwn(v, '__proto__');
const nonEmpty = (v: unknown) => typeof v === 'string' && v !== '';

/**
 * The base NetConf rules for the configs runtimes send most (no `dns`, no `runtimeConfig`), without
 * building the zod schema: the same output as the schema when it returns a value, and `undefined` for
 * anything else, which the schema then decides (and words the errors for). test/config.test.ts holds the
 * two to the same answers.
 */
export function quickNetConf(json: unknown): NetConf | undefined {
  if (!isObject(json)) return undefined;
  const { cniVersion, name, type, capabilities, ipam, dns, runtimeConfig, args } = json;
  if (cniVersion !== undefined && typeof cniVersion !== 'string') return undefined;
  if (typeof name !== 'string' || !nonEmpty(type)) return undefined;
  if (dns !== undefined || runtimeConfig !== undefined) return undefined;
  if (capabilities !== undefined) {
    if (!isObject(capabilities)) return undefined;
    for (const k in capabilities) if (typeof capabilities[k] !== 'boolean') return undefined;
  }
  if (ipam !== undefined && !(isObject(ipam) && nonEmpty(ipam.type))) return undefined;
  if (args !== undefined && !isObject(args)) return undefined;
  return { ...json, cniVersion: cniVersion ?? '0.1.0' } as NetConf;
}

/** `ipam.ranges[0][1].subnet` for a zod issue path. */
function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : `${out === '' ? '' : '.'}${String(k)}`;
  return out === '' ? '(config)' : out;
}

function invalid(error: z.core.$ZodError): CniError {
  return new CniError(
    CniErrorCode.InvalidNetworkConfig,
    'invalid network configuration',
    error.issues.map((i) => `${keyPath(i.path)}: ${i.message}`).join('; '),
  );
}
