/**
 * The agent's map layouts, enums and limits: all generated from bpf/datapath.c's BTF into
 * datapath.gen.ts (see layout.ts), flag bits included (`CtFlags`, `DpFlags`: C enums); this module only
 * names them for the rest of the agent and adds what C cannot carry (display names). The policy trie's
 * codecs are in policy-map.ts.
 */
import { ipv4 } from '@datapath/bpf-maps';
import { MetricDir, MetricReason, mapSpecs } from './datapath.gen.js';

export {
  CtFlags,
  ctEntry,
  ctKey,
  DpFlags,
  dpConfig,
  endpointInfo,
  fwdValue,
  IpcacheFlags,
  MetricDir,
  MetricReason,
  metricsKey,
  metricsValue,
} from './datapath.gen.js';

/** Key of the `endpoints` hash: the pod's IPv4 address. */
export const endpointKey = ipv4;

/** Slots of the `fwd` array (endpoint ids are below it): the C's `FWD_MAX_ENDPOINTS`, read from the object. */
export const FWD_MAX_ENDPOINTS = mapSpecs.fwd.maxEntries;

/** Display names of `enum metric_reason`, by code: the enumerator without `REASON_`, in kebab case; 0 and 1 are not drops. */
export const REASONS: readonly string[] = Object.entries(MetricReason)
  .filter(([name]) => name !== 'REASON_MAX')
  .sort(([, a], [, b]) => a - b)
  .map(([name]) =>
    name
      .replace(/^REASON_/, '')
      .toLowerCase()
      .replaceAll('_', '-'),
  );

/** Human name of a metric reason code. */
export function reasonName(code: number): string {
  return REASONS[code] ?? `reason-${code}`;
}

/** Human name of a metric direction (`enum metric_dir`). */
export function dirName(dir: number): 'ingress' | 'egress' | 'unknown' {
  return dir === MetricDir.DIR_INGRESS ? 'ingress' : dir === MetricDir.DIR_EGRESS ? 'egress' : 'unknown';
}

/** IP protocol numbers the datapath and the probes use. */
export const PROTO_NUMBERS = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 } as const;

/** IP protocol number → name, for map dumps. */
export function protoName(n: number): string {
  for (const [name, num] of Object.entries(PROTO_NUMBERS)) if (num === n) return name;
  return n === 0 ? 'ANY' : String(n);
}
