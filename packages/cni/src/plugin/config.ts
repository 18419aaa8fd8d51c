// The datapath-cni configuration: the plugin's own keys on top of the base NetConf. The JSON Schema in
// ../../datapath-cni.schema.json is generated from this (scripts/gen-schema.ts) and a unit test keeps
// the two in step.
import * as z from 'zod/mini';
import { cidrFamily, ipFamily } from '../ip.js';

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
