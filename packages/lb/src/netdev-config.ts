/**
 * The configuration of the programs on a node's outward device (bpf/netdev.c), validated and turned
 * into the object's load-time constants: plain data, no kernel access (spec first, then apply).
 */
import { ipToBytes, tryParseIpv4, tryParseIpv6, tryParsePrefix } from '@datapath/ip';
import { LbError, type LbProblem } from './errors.js';
import type { Constants } from './netdev.gen.js';

/** A range of ports, both ends included. */
export interface PortRange {
  /** First port (1..65535). */
  min: number;
  /** Last port (min..65535). */
  max: number;
}

/** Masquerade (SNAT) of pod traffic that leaves the node towards the world. */
export interface MasqueradeOptions {
  /** The pod CIDR whose traffic is masqueraded, e.g. `10.244.1.0/24` (IPv4). */
  podCidr: string;
  /**
   * Destinations never masqueraded: the cluster's pod CIDR (pod-to-pod traffic keeps its source),
   * e.g. `10.244.0.0/16`. Default: `podCidr`.
   */
  clusterCidr?: string;
  /** Node ports the masquerade hands out. Default 32768–65535 (above Kubernetes' NodePort range). */
  portRange?: PortRange;
  /** Port candidates tried for a new flow before its packet is dropped and counted (1..64, default 32). */
  retries?: number;
  /** The IPv6 pod CIDR to masquerade behind `nodeAddress6`, e.g. `fd00:1::/64` (needs `nodeAddress6`). */
  podCidr6?: string;
  /** IPv6 destinations never masqueraded, e.g. `fd00:1::/48`. Default: `podCidr6`. */
  clusterCidr6?: string;
}

/** Flow lifetimes in seconds (defaults: Cilium's). */
export interface FlowTimeouts {
  /** TCP flow before its first reply (default 60). */
  tcpSyn?: number;
  /** Established TCP flow (default 21 600). */
  tcpEstablished?: number;
  /** TCP flow after a reset or a FIN from both sides (default 10). */
  tcpClose?: number;
  /** UDP flow (default 60). */
  udp?: number;
  /** ICMP echo flow (default 60). */
  icmp?: number;
}

/** What the programs on the node's outward device do. */
export interface NetdevConfig {
  /** The node's IPv4 address on that device: the masquerade's source and the NodePort frontend. */
  nodeAddress: string;
  /** The node's IPv6 address on that device: the source of masqueraded IPv6 pod traffic and the IPv6 NodePort frontend. */
  nodeAddress6?: string;
  /** Masquerade pod traffic to the world (omit to turn it off). */
  masquerade?: MasqueradeOptions;
  /**
   * Per-packet load balancing of flows that arrive at `nodeAddress` (or `nodeAddress6`) for a service frontend there
   * (NodePort), and of flows to an address that is a frontend of kind `ExternalIP` (the world routes
   * it to this node; the node need not own it): the services are those a writer keeps in the pinned
   * service maps (needs `pinDir`). Backends must be this node's pods (the client's address is kept).
   * Default false.
   */
  nodePort?: boolean;
  /** Flow lifetimes. */
  timeouts?: FlowTimeouts;
  /**
   * Seed of the Maglev flow hash (`flowHash` of `@datapath/lb`), an unsigned 32-bit integer: give
   * every node of a cluster the same one, so each node sends a flow to the same backend. Default 0.
   */
  hashSeed?: number;
}

/** The default masquerade port range. */
export const DEFAULT_NAT_PORT_RANGE: Readonly<PortRange> = Object.freeze({ min: 32768, max: 65535 });

/** The u32 whose little-endian bytes are the IPv4 address in network order (a `__be32` constant). */
export function be32Of(hostOrder: number): number {
  return (
    (((hostOrder & 0xff) << 24) |
      (((hostOrder >>> 8) & 0xff) << 16) |
      (((hostOrder >>> 16) & 0xff) << 8) |
      ((hostOrder >>> 24) & 0xff)) >>>
    0
  );
}

function ipv4Prefix(
  text: unknown,
  path: string,
  problems: LbProblem[],
): { net: number; mask: number } | undefined {
  const p = typeof text === 'string' ? tryParsePrefix(text, { strict: false }) : undefined;
  if (p === undefined || p.family !== 4) {
    problems.push({
      path,
      message: `must be an IPv4 prefix such as 10.244.0.0/16, got ${String(text)}`,
      reason: 'InvalidCidr',
    });
    return undefined;
  }
  const mask = p.length === 0 ? 0 : (0xffffffff << (32 - p.length)) >>> 0;
  return { net: be32Of(Number(p.value)), mask: be32Of(mask) };
}

function ipv6Prefix(
  text: unknown,
  path: string,
  problems: LbProblem[],
): { net: Uint8Array; mask: Uint8Array } | undefined {
  const p = typeof text === 'string' ? tryParsePrefix(text, { strict: false }) : undefined;
  if (p === undefined || p.family !== 6) {
    problems.push({
      path,
      message: `must be an IPv6 prefix such as fd00:1::/64, got ${String(text)}`,
      reason: 'InvalidCidr',
    });
    return undefined;
  }
  const net = new Uint8Array(16);
  const mask = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    net[i] = Number((p.value >> BigInt(8 * (15 - i))) & 0xffn);
    const bits = Math.max(0, Math.min(8, p.length - 8 * i));
    mask[i] = (0xff00 >> bits) & 0xff;
  }
  return { net, mask };
}

function integerIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/**
 * Validates a {@link NetdevConfig} and returns the load-time constants of bpf/netdev.c it stands for.
 * Pure: no kernel access.
 *
 * @throws `LbError` (of `@datapath/lb`) `InvalidArgument` with every problem found (`InvalidAddress` for a missing or
 * non-IPv4 node address, `InvalidCidr`, `InvalidPortRange`, `InvalidNatConfig` for retries, timeouts or the hash seed).
 * @example Masquerading a node's pods
 * ```ts
 * import { netdevConstants } from '@datapath/lb/datapath';
 * const c = netdevConstants({ nodeAddress: '198.18.0.1', masquerade: { podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16' } });
 * console.log(c.nat_port_min, c.nat_port_max); // 32768 65535
 * ```
 */
export function netdevConstants(config: NetdevConfig): Constants {
  const op = 'netdevConstants';
  const problems: LbProblem[] = [];
  const node = typeof config?.nodeAddress === 'string' ? tryParseIpv4(config.nodeAddress) : undefined;
  if (node === undefined || node === 0) {
    problems.push({
      path: 'nodeAddress',
      message:
        config?.nodeAddress === undefined
          ? 'is required (the node address on the outward device)'
          : `must be an IPv4 address, got ${String(config.nodeAddress)}`,
      reason: 'InvalidAddress',
    });
  }
  const m = config?.masquerade;
  let src: { net: number; mask: number } | undefined;
  let dst: { net: number; mask: number } | undefined;
  let range: PortRange = DEFAULT_NAT_PORT_RANGE;
  let retries = 32;
  if (m !== undefined) {
    src = ipv4Prefix(m.podCidr, 'masquerade.podCidr', problems);
    dst = ipv4Prefix(m.clusterCidr ?? m.podCidr, 'masquerade.clusterCidr', problems);
    if (m.portRange !== undefined) {
      const { min, max } = m.portRange;
      if (!integerIn(min, 1, 65535) || !integerIn(max, 1, 65535) || min > max) {
        problems.push({
          path: 'masquerade.portRange',
          message: `must be integers with 1 <= min <= max <= 65535, got ${String(min)}-${String(max)}`,
          reason: 'InvalidPortRange',
        });
      } else range = { min, max };
    }
    if (m.retries !== undefined) {
      if (!integerIn(m.retries, 1, 64))
        problems.push({
          path: 'masquerade.retries',
          message: 'must be an integer in 1..64',
          reason: 'InvalidNatConfig',
        });
      else retries = m.retries;
    }
  }
  if (config?.nodePort !== undefined && typeof config.nodePort !== 'boolean')
    problems.push({ path: 'nodePort', message: 'must be a boolean', reason: 'InvalidNatConfig' });
  let node6: Uint8Array | undefined;
  if (config?.nodeAddress6 !== undefined) {
    if (typeof config.nodeAddress6 !== 'string' || tryParseIpv6(config.nodeAddress6) === undefined) {
      problems.push({
        path: 'nodeAddress6',
        message: `must be an IPv6 address, got ${String(config.nodeAddress6)}`,
        reason: 'InvalidAddress',
      });
    } else node6 = ipToBytes(config.nodeAddress6, 6);
  }
  let src6: { net: Uint8Array; mask: Uint8Array } | undefined;
  let dst6: { net: Uint8Array; mask: Uint8Array } | undefined;
  if (m?.podCidr6 !== undefined || m?.clusterCidr6 !== undefined) {
    src6 = ipv6Prefix(m.podCidr6, 'masquerade.podCidr6', problems);
    dst6 = ipv6Prefix(m.clusterCidr6 ?? m.podCidr6, 'masquerade.clusterCidr6', problems);
    if (config.nodeAddress6 === undefined)
      problems.push({
        path: 'nodeAddress6',
        message: 'is required with masquerade.podCidr6',
        reason: 'InvalidAddress',
      });
  }
  const seed = config?.hashSeed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    problems.push({
      path: 'hashSeed',
      message: `must be an unsigned 32-bit integer, got ${String(seed)}`,
      reason: 'InvalidNatConfig',
    });
  const t = config?.timeouts ?? {};
  const timeouts = {
    tcpSyn: t.tcpSyn ?? 60,
    tcpEstablished: t.tcpEstablished ?? 21600,
    tcpClose: t.tcpClose ?? 10,
    udp: t.udp ?? 60,
    icmp: t.icmp ?? 60,
  };
  for (const [k, v] of Object.entries(timeouts)) {
    if (!integerIn(v, 1, 0x7fffffff))
      problems.push({
        path: `timeouts.${k}`,
        message: 'must be a whole number of seconds >= 1',
        reason: 'InvalidNatConfig',
      });
  }
  if (problems.length > 0) {
    throw new LbError(problems[0]!.reason, 'invalid outward-device configuration', { op, problems });
  }
  return {
    ct_timeout_syn: timeouts.tcpSyn,
    ct_timeout_tcp: timeouts.tcpEstablished,
    ct_timeout_close: timeouts.tcpClose,
    ct_timeout_udp: timeouts.udp,
    ct_timeout_icmp: timeouts.icmp,
    nat_ipv4: be32Of(node!),
    nat_port_min: range.min,
    nat_port_max: range.max,
    nat_retries: retries,
    masq_enabled: m === undefined ? 0 : 1,
    nodeport_enabled: config.nodePort === true ? 1 : 0,
    lb_hash_seed: seed,
    masq_src_net: src?.net ?? 0,
    masq_src_mask: src?.mask ?? 0xffffffff,
    nonmasq_net: dst?.net ?? 0,
    nonmasq_mask: dst?.mask ?? 0xffffffff,
    nat_ipv6: node6 ?? new Uint8Array(16),
    masq6_enabled: src6 === undefined ? 0 : 1,
    masq6_src_net: src6?.net ?? new Uint8Array(16),
    masq6_src_mask: src6?.mask ?? new Uint8Array(16),
    nonmasq6_net: dst6?.net ?? new Uint8Array(16),
    nonmasq6_mask: dst6?.mask ?? new Uint8Array(16),
  };
}
