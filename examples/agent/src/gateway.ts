import { parseIp } from '@datapath/ip';

/**
 * The gateway every pod routes through (Cilium-style: a link-local address nobody owns). This is its one
 * definition: the datapath receives it at load as the `gateway_ipv4` constant and answers ARP for it.
 */
export const GATEWAY = '169.254.1.1';

/** An IPv4 address as a host-order u32 (what `gateway_ipv4` holds). */
export function ipv4HostU32(ip: string): number {
  return Number(parseIp(ip, 4).value);
}

/**
 * The IPv6 gateway of dual-stack pods (a link-local address nobody owns, as Cilium's): the pod's default
 * IPv6 route points at it. The datapath has no IPv6 path (it drops IPv6 packets, see AttachedPodInput).
 */
export const GATEWAY6 = 'fe80::1';
