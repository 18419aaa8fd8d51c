/**
 * Byte layouts of the agent's own maps, mirroring bpf/datapath.h struct for struct. The policy and
 * ipcache layouts are Cilium's and come from @datapath/policy's codecs.
 */
import { be16, ipv4, mac, pad, struct, u8, u16, u32, u64 } from '@datapath/bpf-maps';

/** Key of the `endpoints` hash: the pod's IPv4 address. */
export const endpointKey = ipv4;

/** `struct endpoint_info` (28 bytes): the value of both `endpoints` (by pod IP) and `lxc` (by host ifindex). */
export const endpointInfo = struct(
  { ifindex: u32, lxcId: u16, flags: u16, secId: u32, mac, nodeMac: mac, ip: ipv4 },
  { size: 28 },
);

/** `struct ct_key` (16 bytes): the 5-tuple of the packet that opened the flow. */
export const ctKey = struct(
  { saddr: ipv4, daddr: ipv4, sport: be16, dport: be16, proto: u8, _pad: pad(3) },
  { size: 16 },
);

/** `struct ct_entry` (32 bytes). */
export const ctEntry = struct(
  {
    createdNs: u64,
    seenJiffies: u64,
    rev: u32,
    srcSecId: u32,
    dstSecId: u32,
    flags: u8,
    dropReason: u8,
    dropLxc: u16,
  },
  { size: 32 },
);

/** `CT_F_REPLY`: the entry is keyed by the reply direction's tuple. */
export const CT_F_REPLY = 1;

/** `CT_F_DENIED`: a policy change denied the flow; its packets are dropped in both directions. */
export const CT_F_DENIED = 2;

/** `struct dp_config` (8 bytes), the only value of the one-slot `config` array. */
export const dpConfig = struct({ policyRev: u32, flags: u32 }, { size: 8 });

/** `DP_F_DELIVER_EGRESS` of `dp_config.flags`: local delivery with bpf_redirect instead of bpf_redirect_peer. */
export const DP_F_DELIVER_EGRESS = 1;

/** `struct metrics_key` (8 bytes). */
export const metricsKey = struct({ lxcId: u32, reason: u8, dir: u8, _pad: pad(2) }, { size: 8 });

/** `struct metrics_value` (16 bytes, one per possible CPU). */
export const metricsValue = struct({ packets: u64, bytes: u64 }, { size: 16 });

/** `FWD_MAX_ENDPOINTS`: slots of the `fwd` array (endpoint ids are below it). */
export const FWD_MAX_ENDPOINTS = 4096;

/** `struct fwd_value` (32 bytes, one per possible CPU): an endpoint's forwarded counters, both directions. */
export const fwdValue = struct({ ingress: metricsValue, egress: metricsValue }, { size: 32 });

/** Reason codes of `enum metric_reason`; 0 and 1 are not drops. */
export const REASONS: readonly string[] = [
  'forwarded',
  'arp-reply',
  'policy-denied',
  'policy-deny',
  'invalid-source',
  'no-endpoint',
  'unsupported-l3',
  'ttl-exceeded',
  'invalid-packet',
];

/** Human name of a metric reason code. */
export function reasonName(code: number): string {
  return REASONS[code] ?? `reason-${code}`;
}

/** Human name of a metric direction (`enum metric_dir`). */
export function dirName(dir: number): 'ingress' | 'egress' | 'unknown' {
  return dir === 1 ? 'ingress' : dir === 2 ? 'egress' : 'unknown';
}

/** IP protocol numbers the datapath and the probes use. */
export const PROTO_NUMBERS = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 } as const;

/** IP protocol number → name, for map dumps. */
export function protoName(n: number): string {
  for (const [name, num] of Object.entries(PROTO_NUMBERS)) if (num === n) return name;
  return n === 0 ? 'ANY' : String(n);
}
