// sysctls under /proc/sys/net, written synchronously inside the target namespace.
import type { Netns } from '@datapath/netlink';
import { procRead, procWrite, procWriteAsync } from './sys/procfs.js';
import { bad } from './validate.js';

/** Options of {@link sysctlSet} / {@link sysctlGet}. */
export interface SysctlOptions {
  /** The namespace whose knob to write; default: the caller's. */
  netns?: Netns | undefined;
}

/** `net.ipv4.conf.eth0.rp_filter` → `/proc/sys/net/ipv4/conf/eth0/rp_filter`; only `net.*` keys. */
export function sysctlPath(key: string, op: string): string {
  if (typeof key !== 'string' || !/^net[./][A-Za-z0-9_.\-/]+$/.test(key) || key.includes('..')) {
    bad(op, `invalid sysctl key ${JSON.stringify(key)} (only net.* keys)`, String(key));
  }
  // Interface names may contain dots, so a '/' separator form is accepted too: net/ipv4/conf/eth0.1/rp_filter.
  const path = key.includes('/') ? key : key.replaceAll('.', '/');
  return `/proc/sys/${path}`;
}

/**
 * Writes a network sysctl, inside `netns` when given (a synchronous namespace window).
 *
 * Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad key or value), `NotFound` (no such knob, e.g.
 * the interface does not exist), `PermissionDenied`.
 * @example Turning off reverse-path filtering on a host veth
 * ```ts
 * import { sysctlSet } from '@datapath/netdev';
 * sysctlSet('net.ipv4.conf.lxc1.rp_filter', '0');
 * ```
 */
export function sysctlSet(key: string, value: string | number, options: SysctlOptions = {}): void {
  const op = 'sysctlSet';
  const path = sysctlPath(key, op);
  const text = String(value);
  if (/[\n\0]/.test(text)) bad(op, `invalid sysctl value ${JSON.stringify(text)}`, key);
  const write = () => procWrite(path, text, op);
  if (options.netns) options.netns.run(write);
  else write();
}

/**
 * The async form of {@link sysctlSet}: the knob is opened inside `netns` from a short-lived thread (this
 * thread never enters the namespace) and written on libuv's threadpool. Same checks and errors.
 *
 * Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) as {@link sysctlSet}.
 * @example Turning off reverse-path filtering inside a namespace
 * ```ts
 * import { Netns } from '@datapath/netlink';
 * import { sysctlSetAsync } from '@datapath/netdev';
 * using ns = Netns.open({ name: 'blue' });
 * await sysctlSetAsync('net.ipv4.conf.eth0.rp_filter', '0', { netns: ns });
 * ```
 */
export async function sysctlSetAsync(
  key: string,
  value: string | number,
  options: SysctlOptions = {},
): Promise<void> {
  const op = 'sysctlSet';
  const path = sysctlPath(key, op);
  const text = String(value);
  if (/[\n\0]/.test(text)) bad(op, `invalid sysctl value ${JSON.stringify(text)}`, key);
  await procWriteAsync(path, text, op, options.netns);
}

/**
 * Reads a network sysctl, inside `netns` when given.
 *
 * Equivalent to: `ip netns exec NS sysctl -n KEY`.
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument`, `NotFound`.
 * @example Reading the forwarding switch
 * ```ts
 * import { sysctlGet } from '@datapath/netdev';
 * console.log(sysctlGet('net.ipv4.ip_forward'));
 * ```
 */
export function sysctlGet(key: string, options: SysctlOptions = {}): string {
  const op = 'sysctlGet';
  const path = sysctlPath(key, op);
  const read = () => procRead(path, op);
  return options.netns ? options.netns.run(read) : read();
}
