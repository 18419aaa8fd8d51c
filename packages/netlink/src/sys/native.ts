// The package's native addon (native/netlink.cc): sockets and files opened from a thread inside another
// network namespace, and netlink exchanges on libuv's threadpool. Optional: where it was not built (no
// compiler at install time, another platform) or DATAPATH_NETLINK_NATIVE=0, every caller has a fallback.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** @internal The addon's exports; every call returns a non-negative result or `-errno`. */
export interface NetlinkAddon {
  socketIn(nsFd: number, domain: number, type: number, protocol: number): number;
  openIn(nsFd: number, path: string, flags: number): number;
  /** socketIn on libuv's threadpool (absent from an addon built before it). */
  socketInAsync?(
    nsFd: number,
    domain: number,
    type: number,
    protocol: number,
    done: (r: number) => void,
  ): void;
  /** openIn on libuv's threadpool (absent from an addon built before it). */
  openInAsync?(nsFd: number, path: string, flags: number, done: (r: number) => void): void;
  exchange(
    fd: number,
    request: Buffer,
    seq: number,
    done: (errno: number, datagrams?: Buffer[]) => void,
  ): void;
}

function load(): NetlinkAddon | undefined {
  if (process.env.DATAPATH_NETLINK_NATIVE === '0') return undefined;
  try {
    const req = createRequire(import.meta.url);
    const root = dirname(req.resolve('@datapath/netlink/package.json'));
    const mod = req(join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'netlink.napi.node')) as
      | Partial<NetlinkAddon>
      | undefined;
    return typeof mod?.socketIn === 'function' && typeof mod.exchange === 'function'
      ? (mod as NetlinkAddon)
      : undefined;
  } catch {
    return undefined;
  }
}

/** @internal The loaded addon, or undefined. */
export const nativeAddon: NetlinkAddon | undefined = load();
