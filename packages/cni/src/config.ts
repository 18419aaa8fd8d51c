import * as z from 'zod/mini';
import { CniError, CniErrorCode } from './errors.js';
import { cidrFamily, ipFamily } from './ip.js';
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
  const ip = z.string().check(z.refine((s) => ipFamily(s) !== 0, 'not an IP address'));
  const cidr = z.string().check(z.refine((s) => cidrFamily(s) !== 0, 'not an address/prefix'));
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
 * Validates a decoded config against `schema` (by default the base {@link NetConf} rules) and returns the
 * parsed value; unknown keys are kept.
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
export function parseConfig<T = {}>(json: unknown, schema?: z.core.$ZodType<T>): NetConf & T {
  netConfSchema ??= buildNetConfSchema();
  const base = z.safeParse(netConfSchema, json);
  if (!base.success) throw invalid(base.error);
  if (schema === undefined) return base.data as unknown as NetConf & T;
  const own = z.safeParse(schema, base.data);
  if (!own.success) throw invalid(own.error);
  return { ...base.data, ...(own.data as object) } as unknown as NetConf & T;
}

function invalid(error: z.core.$ZodError): CniError {
  return new CniError(
    CniErrorCode.InvalidNetworkConfig,
    'invalid network configuration',
    z.prettifyError(error).replaceAll('\n', '; '),
  );
}
