// In-process host-local IPAM: the reference host-local plugin's semantics (range sets, rangeStart/End,
// gateway reserved, round-robin from last_reserved_ip, one address per range set, release by owner) over
// @datapath/ipam's FileStore (same on-disk layout and flock) and RangeAllocator (address arithmetic and
// the taken-address bitmap). No separate IPAM process is executed.

import { CniError, CniErrorCode } from '@datapath/cni';
import { tryParsePrefix } from '@datapath/ip';
import { hostLocalOwner, IpamError, RangeAllocator } from '@datapath/ipam';
import { FileStore } from '@datapath/ipam/file-store';

/** One range of a range set. */
export interface HostLocalRange {
  /** The subnet addresses come from. */
  subnet: string;
  /** First address to hand out (default: the subnet's first usable one). */
  rangeStart?: string | undefined;
  /** Last address to hand out (default: the subnet's last usable one). */
  rangeEnd?: string | undefined;
  /** Gateway (default: the subnet's first usable address); never handed out. */
  gateway?: string | undefined;
  /** Where the range is in the config (`ipam.ranges[0][1]`, `ipam`), for error messages. */
  path?: string | undefined;
}

/** An address handed out: `ip/prefix` and its gateway. */
export interface Lease {
  /** `ip/prefix` (the subnet's prefix length). */
  address: string;
  /** The range's gateway. */
  gateway: string;
}

interface PreparedRange {
  alloc: RangeAllocator;
  prefixLen: number;
  gateway: string;
  start: number;
  end: number;
  path: string;
}

const configError = (msg: string) => new CniError(CniErrorCode.InvalidNetworkConfig, msg);

/** `ip` written the way the store names its files (RFC 5952 for IPv6). */
const canonical = (ip: string, family: 4 | 6) =>
  new RangeAllocator(`${ip}/${family === 4 ? 32 : 128}`, { allowFirstLast: true }).first;

function prepare(r: HostLocalRange): PreparedRange {
  const path = r.path ?? 'ipam';
  let alloc: RangeAllocator;
  try {
    alloc = new RangeAllocator(r.subnet, { strategy: 'contiguous' });
  } catch (err) {
    throw configError(`${path}.subnet: ${r.subnet} is not usable: ${(err as Error).message}`);
  }
  const prefixLen = alloc.prefix.length;
  const width = alloc.family === 4 ? 32 : 128;
  // As host-local: a /31 or /32 (/127, /128) has no address to hand out besides the gateway.
  if (prefixLen > width - 2) {
    throw configError(
      `${path}.subnet: network ${r.subnet} is too small to allocate from (at most /${width - 2})`,
    );
  }
  const network = alloc.cidr.slice(0, alloc.cidr.indexOf('/'));
  if (tryParsePrefix(r.subnet) === undefined) {
    throw configError(`${path}.subnet: ${r.subnet} has host bits set: the network address is ${network}`);
  }
  const gateway = r.gateway === undefined ? alloc.first : canonical(r.gateway, alloc.family);
  const bound = (ip: string | undefined, dflt: number, what: string) => {
    if (ip === undefined) return dflt;
    const off = alloc.offsetOf(ip);
    if (off < 0) throw configError(`${path}.${what}: ${ip} is not a usable address of ${r.subnet}`);
    return off;
  };
  const start = bound(r.rangeStart, 0, 'rangeStart');
  const end = bound(r.rangeEnd, alloc.size - 1, 'rangeEnd');
  if (start > end) throw configError(`${path}: rangeStart is after rangeEnd in ${r.subnet}`);
  return { alloc, prefixLen, gateway, start, end, path };
}

/** The range of `set` whose rangeStart–rangeEnd holds `ip` (host-local's `Contains`). */
function rangeOf(set: readonly PreparedRange[], ip: string): PreparedRange | undefined {
  return set.find((r) => {
    if (!r.alloc.contains(ip)) return false;
    const off = r.alloc.offsetOf(ip);
    return off >= r.start && off <= r.end;
  });
}

/** A released reservation: the address and the attachment it belonged to. */
export interface Released {
  /** The address. */
  ip: string;
  /** Its container id. */
  containerId: string;
  /** Its interface name. */
  ifname: string;
}

const same = (a: string | undefined, b: string) => a !== undefined && a.trim() === b.trim();

/** host-local over a FileStore in `<dataDir>/<network>`. */
export class HostLocalIpam {
  private readonly store: FileStore;
  private readonly sets: PreparedRange[][];

  /**
   * Opens the store of one network.
   *
   * @throws {@link CniError} 7 for a range that does not fit its subnet; IpamError `InvalidCidr` /
   * `StoreFailure` from the allocator and the store.
   */
  constructor(dir: string, rangeSets: HostLocalRange[][]) {
    this.sets = rangeSets.map((set) => set.map(prepare));
    // No fsync, like the reference host-local: a reservation only has to survive the plugin process (the
    // page cache does that, kill -9 included); after a power loss every container it belonged to is gone
    // too, and GC releases what the runtime no longer lists. Two fsyncs per ADD would be most of its I/O.
    this.store = new FileStore(dir, { sync: false });
  }

  /**
   * Checks range sets as the constructor does, without opening a store.
   *
   * @throws {@link CniError} 7 naming the bad key.
   */
  static check(rangeSets: readonly HostLocalRange[][]): void {
    for (const set of rangeSets) for (const r of set) prepare(r);
  }

  /** Releases the store's lock file. */
  close(): void {
    this.store.close();
  }

  /**
   * Reserves one address per range set for (containerId, ifname), atomically: all or none. `requested`
   * addresses (runtimeConfig `ips`) are taken when they fall in a set.
   */
  allocate(containerId: string, ifname: string, requested: readonly string[] = []): Lease[] {
    const owner = hostLocalOwner(containerId, ifname);
    // As host-local: each range set takes the first requested address it holds; any left over fails ADD
    // (a requested address is never silently replaced by a dynamic one).
    const wanted = this.sets.map((): string | undefined => undefined);
    const left = [...new Set(requested)];
    this.sets.forEach((set, idx) => {
      const k = left.findIndex((ip) => rangeOf(set, ip) !== undefined);
      if (k < 0) return;
      const ip = left.splice(k, 1)[0]!;
      const r = rangeOf(set, ip)!;
      const want = r.alloc.ipAt(r.alloc.offsetOf(ip));
      if (want === r.gateway) throw configError(`requested IP ${want} is the gateway of ${r.path}`);
      wanted[idx] = want;
    });
    if (left.length > 0) {
      throw configError(`failed to allocate all requested IPs: ${left.join(' ')}`);
    }
    return this.store.transact(
      (tx) => {
        const taken = tx.ips();
        for (const ip of taken) {
          if (same(tx.owner(ip), owner)) {
            throw new CniError(
              CniErrorCode.Internal,
              `${ip} has been allocated to ${containerId}, duplicate allocation is not allowed`,
            );
          }
        }
        const leases: Lease[] = [];
        const done: string[] = [];
        try {
          this.sets.forEach((set, idx) => {
            const rangeId = String(idx);
            const lease = this.pick(set, taken, wanted[idx], this.store.lastReservedIp(rangeId));
            const ip = lease.address.slice(0, lease.address.indexOf('/'));
            if (!tx.reserve(ip, owner, rangeId)) {
              throw new IpamError('AlreadyAllocated', `${ip} is already allocated`, {
                op: 'host-local',
                target: ip,
              });
            }
            done.push(ip);
            leases.push(lease);
          });
        } catch (err) {
          for (const ip of done) tx.release(ip);
          throw err;
        }
        return leases;
      },
      { owner },
    );
  }

  private pick(
    set: PreparedRange[],
    taken: string[],
    want: string | undefined,
    last: string | undefined,
  ): Lease {
    if (want !== undefined) {
      const r = rangeOf(set, want)!;
      if (taken.includes(want)) {
        throw new IpamError('AlreadyAllocated', `requested IP ${want} is not available`, {
          op: 'host-local',
          target: want,
        });
      }
      return { address: `${want}/${r.prefixLen}`, gateway: r.gateway };
    }
    // Round-robin as host-local: start after the last reserved address (in whichever range holds it).
    let first = set.findIndex((r) => last !== undefined && r.alloc.contains(last));
    if (first < 0) first = 0;
    for (let k = 0; k <= set.length; k++) {
      const r = set[(first + k) % set.length]!;
      // A fresh bitmap per pick: the reservations on disk are the truth, not an earlier pick's state.
      const used = new RangeAllocator(r.alloc.cidr, { strategy: 'contiguous' });
      for (const ip of [...taken, r.gateway]) if (used.contains(ip) && !used.has(ip)) used.allocate(ip);
      const span = r.end - r.start + 1;
      const lastOff = k === 0 && last !== undefined ? r.alloc.offsetOf(last) : -1;
      const begin = lastOff >= r.start && lastOff <= r.end ? lastOff + 1 - r.start : 0;
      for (let i = 0; i < span; i++) {
        const off = r.start + ((begin + i) % span);
        const ip = used.ipAt(off);
        if (!used.has(ip)) return { address: `${ip}/${r.prefixLen}`, gateway: r.gateway };
      }
    }
    throw new IpamError(
      'Full',
      `no IP addresses available in range set ${set.map((r) => r.alloc.cidr).join(',')}`,
      {
        op: 'host-local',
      },
    );
  }

  /** Releases every address of (containerId, ifname); returns how many. Idempotent. */
  release(containerId: string, ifname: string): number {
    const owner = hostLocalOwner(containerId, ifname);
    return this.store.transact((tx) => {
      let n = 0;
      for (const ip of tx.ips()) if (same(tx.owner(ip), owner) && tx.release(ip)) n++;
      return n;
    });
  }

  /** Releases the given addresses if (and only if) they still belong to (containerId, ifname). */
  releaseLeases(containerId: string, ifname: string, leases: readonly Lease[]): void {
    const owner = hostLocalOwner(containerId, ifname);
    this.store.transact((tx) => {
      for (const l of leases) {
        const ip = l.address.slice(0, l.address.indexOf('/'));
        if (same(tx.owner(ip), owner)) tx.release(ip);
      }
    });
  }

  /** The addresses reserved for (containerId, ifname). */
  owned(containerId: string, ifname: string): string[] {
    const owner = hostLocalOwner(containerId, ifname);
    return this.store.transact((tx) => tx.ips().filter((ip) => same(tx.owner(ip), owner)));
  }

  /**
   * Releases every reservation whose owner is not in `keep` (`containerId\r\nifname` strings); returns
   * what it released and whose it was.
   */
  gc(keep: ReadonlySet<string>): Released[] {
    return this.store.transact((tx) => {
      const released: Released[] = [];
      for (const ip of tx.ips()) {
        const owner = tx.owner(ip)?.trim();
        if (owner !== undefined && !keep.has(owner) && tx.release(ip)) {
          const [containerId = '', ifname = ''] = owner.split(/\r?\n/);
          released.push({ ip, containerId, ifname });
        }
      }
      return released;
    });
  }

  /** Free addresses per range set (0 in a set means ADD cannot succeed). */
  freePerSet(): number[] {
    return this.store.transact((tx) => {
      const taken = tx.ips();
      return this.sets.map((set) =>
        set.reduce((sum, r) => {
          let used = 0;
          for (const ip of taken) {
            const off = r.alloc.offsetOf(ip);
            if (off >= r.start && off <= r.end) used++;
          }
          const gw = r.alloc.offsetOf(r.gateway);
          if (gw >= r.start && gw <= r.end && !taken.includes(r.gateway)) used++;
          return sum + (r.end - r.start + 1 - used);
        }, 0),
      );
    });
  }
}
