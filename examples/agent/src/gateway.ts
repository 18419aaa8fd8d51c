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
