// The datapath-cni configuration: the plugin's own keys on top of the base NetConf. The JSON Schema in
// ../../datapath-cni.schema.json is generated from this (scripts/gen-schema.ts) and a unit test keeps
// the two in step.

import { CniError, CniErrorCode, type NetConf, parseWithSchema } from '@datapath/cni';
import { tryParseCidr, tryParseIp } from '@datapath/ip';
import * as z from 'zod/mini';

/**
 * Where datapath-cni in agent mode (`"mode": "agent"`) finds the datapath agent's API when the config names
 * no `agentSocket`: the socket of the agent named `demo` (`agent serve --name demo`).
 */
export const DEFAULT_AGENT_SOCKET = '/run/datapath-agent/demo/api.sock';

/** Where datapath-cni pins the tcx links of its endpoints' BPF programs, by default. */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/datapath-cni';

/**
 * Builds the zod schema of the plugin's own keys (not at module load: start-up time matters). `ipam`
 * picks the IPAM branch: `host-local` or `delegated` when the config's `ipam.type` is known (so an error
 * names the bad host-local key, not the union), both for the JSON Schema.
 */
export function pluginConfigSchema(ipam: 'any' | 'host-local' | 'delegated' = 'any') {
  const ip = z.string().check(z.refine((s) => tryParseIp(s) !== undefined, 'not an IP address'));
  const cidr = z.string().check(z.refine((s) => tryParseCidr(s) !== undefined, 'not an address/prefix'));
  const range = z.object({
    subnet: z.string().check(z.refine((s) => tryParseCidr(s) !== undefined, 'not an address/prefix')),
    rangeStart: z.optional(ip),
    rangeEnd: z.optional(ip),
    gateway: z.optional(ip),
  });
  const hostLocal = z
    .looseObject({
      type: z.literal('host-local'),
      ranges: z.optional(z.array(z.array(range).check(z.minLength(1))).check(z.minLength(1))),
      subnet: z.optional(cidr),
      rangeStart: z.optional(ip),
      rangeEnd: z.optional(ip),
      gateway: z.optional(ip),
      routes: z.optional(z.array(z.object({ dst: cidr, gw: z.optional(ip) }))),
      dataDir: z.optional(z.string().check(z.regex(/^\//, 'must be an absolute path'))),
    })
    .check(
      z.refine((o) => o.ranges !== undefined || o.subnet !== undefined, 'host-local needs ranges or subnet'),
    );
  const delegated = z.looseObject({
    type: z.string().check(z.refine((t) => t !== '' && t !== 'host-local', 'an IPAM plugin name')),
  });
  return z.looseObject({
    mode: z._default(z.enum(['ptp', 'cilium']), 'ptp'),
    mtu: z._default(z.int().check(z.minimum(68), z.maximum(65535)), 1500),
    hostNetns: z.optional(z.string().check(z.regex(/^\//, 'must be an absolute path'))),
    bpf: z.optional(
      z.object({
        object: z.string().check(z.regex(/^\//, 'must be an absolute path')),
        program: z.string().check(z.minLength(1)),
        direction: z._default(z.enum(['ingress', 'egress']), 'ingress'),
        pinDir: z._default(
          z.string().check(z.regex(/^\/sys\/fs\/bpf\//, 'must be under /sys/fs/bpf/')),
          DEFAULT_PIN_DIR,
        ),
      }),
    ),
    ipam:
      ipam === 'host-local' ? hostLocal : ipam === 'delegated' ? delegated : z.union([hostLocal, delegated]),
  });
}

/** One range of a host-local range set. */
export interface HostLocalRangeConf {
  /** The subnet addresses come from (`address/prefix`, the network address, at most /30 or /126). */
  subnet: string;
  /** First address to hand out (default: the subnet's first usable one). */
  rangeStart?: string | undefined;
  /** Last address to hand out (default: the subnet's last usable one). */
  rangeEnd?: string | undefined;
  /** Gateway (default: the subnet's first usable address); never handed out. */
  gateway?: string | undefined;
}

/** `ipam` of type `host-local`: run in-process over `@datapath/ipam`, the reference plugin's layout. */
export interface HostLocalIpamConf {
  /** Discriminant. */
  type: 'host-local';
  /** Range sets: one address per set. */
  ranges?: HostLocalRangeConf[][] | undefined;
  /** The legacy single range: its subnet (`ranges` or `subnet` is required). */
  subnet?: string | undefined;
  /** The legacy single range: its first address. */
  rangeStart?: string | undefined;
  /** The legacy single range: its last address. */
  rangeEnd?: string | undefined;
  /** The legacy single range: its gateway. */
  gateway?: string | undefined;
  /** Routes to add in the container. */
  routes?:
    | {
        /** Destination (`address/prefix`). */
        dst: string;
        /** Next hop (default: the range's gateway). */
        gw?: string | undefined;
      }[]
    | undefined;
  /** Store directory (default `/var/lib/cni/networks`); the network's name is appended. */
  dataDir?: string | undefined;
  /** Other keys, kept. */
  [key: string]: unknown;
}

/** `ipam` of any other type: executed from `CNI_PATH`. */
export interface DelegatedIpamConf {
  /** The IPAM plugin's name. */
  type: string;
  /** Its own keys. */
  [key: string]: unknown;
}

/** The plugin's own config keys, validated (the base NetConf keys come with them). */
export interface PluginConfig extends NetConf {
  /** Endpoint style: `ptp` (default) or `cilium`. */
  mode: 'ptp' | 'cilium';
  /** MTU of both veth ends (default 1500). */
  mtu: number;
  /** Path of the namespace that holds the host side of the veth (default: the plugin's own). */
  hostNetns?: string | undefined;
  /** A BPF program to attach to the host veth's tcx hook and pin. */
  bpf?:
    | {
        /** Absolute path of the compiled ELF object. */
        object: string;
        /** The program's name in it. */
        program: string;
        /** The tcx hook (default `ingress`: traffic from the pod). */
        direction: 'ingress' | 'egress';
        /** Where the link is pinned (default {@link DEFAULT_PIN_DIR}). */
        pinDir: string;
      }
    | undefined;
  /** Address management. */
  ipam: HostLocalIpamConf | DelegatedIpamConf;
}

// The interface and the schema agree (a compile-time check).
type SchemaOut = z.infer<ReturnType<typeof pluginConfigSchema>>;
const _sameShape: (x: SchemaOut) => Omit<PluginConfig, keyof NetConf> = (x) => x;
void _sameShape;

// A plain object; one with an own `__proto__` key (JSON.parse makes those) is left to zod, which drops it.
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.hasOwn(v, '__proto__');
const isIp = (v: unknown) => v === undefined || (typeof v === 'string' && tryParseIp(v) !== undefined);
const isCidr = (v: unknown) => typeof v === 'string' && tryParseCidr(v) !== undefined;
const onlyKeys = (o: Record<string, unknown>, keys: readonly string[]) =>
  Object.keys(o).every((k) => keys.includes(k));

/**
 * The plugin's own keys for the configs runtimes send most (no `bpf` section, host-local IPAM written as
 * the reference plugin documents it, or another IPAM type), without building the zod schema: the same
 * output as `pluginConfigSchema` when it returns a value, `undefined` for anything else, which the
 * schema then decides (and words the errors for). test/config.test.ts holds the two to the same answers.
 */
export function quickPluginConfig(base: Record<string, unknown>): PluginConfig | undefined {
  const { mode = 'ptp', mtu = 1500, hostNetns, bpf, ipam } = base;
  if (mode !== 'ptp' && mode !== 'cilium') return undefined;
  if (!Number.isSafeInteger(mtu) || (mtu as number) < 68 || (mtu as number) > 65535) return undefined;
  if (hostNetns !== undefined && !(typeof hostNetns === 'string' && hostNetns.startsWith('/')))
    return undefined;
  if (bpf !== undefined || !isObject(ipam) || typeof ipam.type !== 'string' || ipam.type === '')
    return undefined;
  if (ipam.type === 'host-local') {
    const { ranges, subnet, rangeStart, rangeEnd, gateway, routes, dataDir } = ipam;
    if (ranges === undefined && subnet === undefined) return undefined;
    if (subnet !== undefined && !isCidr(subnet)) return undefined;
    if (!isIp(rangeStart) || !isIp(rangeEnd) || !isIp(gateway)) return undefined;
    if (dataDir !== undefined && !(typeof dataDir === 'string' && dataDir.startsWith('/'))) return undefined;
    if (ranges !== undefined) {
      if (!Array.isArray(ranges) || ranges.length === 0) return undefined;
      for (const set of ranges) {
        if (!Array.isArray(set) || set.length === 0) return undefined;
        for (const r of set) {
          if (!isObject(r) || !onlyKeys(r, ['subnet', 'rangeStart', 'rangeEnd', 'gateway'])) return undefined;
          if (!isCidr(r.subnet) || !isIp(r.rangeStart) || !isIp(r.rangeEnd) || !isIp(r.gateway))
            return undefined;
        }
      }
    }
    if (routes !== undefined) {
      if (!Array.isArray(routes)) return undefined;
      for (const r of routes) {
        if (!isObject(r) || !onlyKeys(r, ['dst', 'gw']) || !isCidr(r.dst) || !isIp(r.gw)) return undefined;
      }
    }
  }
  return { ...base, mode, mtu, ipam } as PluginConfig;
}

/**
 * Validates the plugin's own keys of a base-checked config: `quickPluginConfig` when it can tell,
 * the zod schema otherwise (built only then).
 *
 * @throws `CniError` code 7 (invalid network config) with the schema's problems in `details`.
 */
export function parsePluginConfig(base: NetConf): PluginConfig {
  // host-local keeps the network's reservations in a directory named after it: a file name's limit.
  if (Buffer.byteLength(base.name, 'utf8') > 255) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `name: the network name is ${Buffer.byteLength(base.name, 'utf8')} bytes, at most 255 are allowed`,
    );
  }
  if ((base as { mode?: unknown }).mode === 'agent') {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      'mode "agent" is served by the datapath agent: the datapath-cni binary forwards such a config to it (an in-process datapathCni() cannot serve it)',
    );
  }
  const quick = quickPluginConfig(base);
  if (quick !== undefined) return quick;
  const type = isObject(base.ipam) ? base.ipam.type : undefined;
  const branch =
    type === 'host-local' ? 'host-local' : typeof type === 'string' && type !== '' ? 'delegated' : 'any';
  return parseWithSchema(pluginConfigSchema(branch), base) as PluginConfig;
}
