// The owner format of the CNI host-local plugin's reservation files (pure: no file system here).

/**
 * The owner string host-local writes into an IP file: the container id, `\r\n`, the interface name.
 *
 * @example
 * ```ts
 * import { hostLocalOwner } from '@datapath/ipam';
 * console.log(JSON.stringify(hostLocalOwner('c0ffee', 'eth0'))); // "c0ffee\r\neth0"
 * ```
 */
export function hostLocalOwner(containerId: string, ifname: string): string {
  return `${containerId.trim()}\r\n${ifname}`;
}
