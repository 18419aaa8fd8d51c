// The datapath-cni configuration: the plugin's own keys on top of the base NetConf. The JSON Schema in
// ../../datapath-cni.schema.json is generated from this (scripts/gen-schema.ts) and a unit test keeps
// the two in step.

import { type NetConf, parseWithSchema } from '@datapath/cni';
import * as z from 'zod/mini';
import { cidrFamily, ipFamily } from './ip.js';

/** Where datapath-cni pins the tcx links of its endpoints' BPF programs, by default. */
export const DEFAULT_PIN_DIR = '/sys/fs/bpf/datapath-cni';

/** Builds the zod schema of the plugin's own keys (not at module load: start-up time matters). */
export function pluginConfigSchema() {
  const ip = z.string().check(z.refine((s) => ipFamily(s) !== 0, 'not an IP address'));
  const cidr = z.string().check(z.refine((s) => cidrFamily(s) !== 0, 'not an address/prefix'));
  const range = z.object({
    subnet: z.string().check(z.refine((s) => cidrFamily(s) !== 0, 'not an address/prefix')),
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
    ipam: z.union([hostLocal, delegated]),
  });
}

/** The plugin's own config keys, validated. */
export type PluginConfig = z.infer<ReturnType<typeof pluginConfigSchema>>;

// A plain object; one with an own `__proto__` key (JSON.parse makes those) is left to zod, which drops it.
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.hasOwn(v, '__proto__');
const isIp = (v: unknown) => v === undefined || (typeof v === 'string' && ipFamily(v) !== 0);
const isCidr = (v: unknown) => typeof v === 'string' && cidrFamily(v) !== 0;
const onlyKeys = (o: Record<string, unknown>, keys: readonly string[]) =>
  Object.keys(o).every((k) => keys.includes(k));

/**
 * The plugin's own keys for the configs runtimes send most (no `bpf` section, host-local IPAM written as
 * the reference plugin documents it, or another IPAM type), without building the zod schema: the same
 * output as {@link pluginConfigSchema} when it returns a value, `undefined` for anything else, which the
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
 * Validates the plugin's own keys of a base-checked config: {@link quickPluginConfig} when it can tell,
 * the zod schema otherwise (built only then).
 *
 * @throws {@link CniError} code 7 (invalid network config) with the schema's problems in `details`.
 */
export function parsePluginConfig(base: NetConf): PluginConfig {
  return quickPluginConfig(base) ?? parseWithSchema(pluginConfigSchema(), base);
}
