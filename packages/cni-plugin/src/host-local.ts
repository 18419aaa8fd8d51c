// In-process host-local IPAM: the reference host-local plugin's semantics (range sets, rangeStart/End,
// gateway reserved, round-robin from last_reserved_ip, one address per range set, release by owner) over
// @datapath/ipam's FileStore (same on-disk layout and flock) and RangeAllocator (address arithmetic and
// the taken-address bitmap). No separate IPAM process is executed.

import { CniError, CniErrorCode } from '@datapath/cni';
import { FileStore, hostLocalOwner, IpamError, RangeAllocator } from '@datapath/ipam';

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
}

function prepare(r: HostLocalRange): PreparedRange {
  const alloc = new RangeAllocator(r.subnet, { strategy: 'contiguous' });
  const prefixLen = Number(r.subnet.slice(r.subnet.indexOf('/') + 1));
  const gateway = r.gateway ?? alloc.first;
  const bound = (ip: string | undefined, dflt: number, what: string) => {
    if (ip === undefined) return dflt;
    const off = alloc.offsetOf(ip);
    if (off < 0) {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `ipam: ${what} ${ip} is not a usable address of ${r.subnet}`,
      );
    }
    return off;
  };
  const start = bound(r.rangeStart, 0, 'rangeStart');
  const end = bound(r.rangeEnd, alloc.size - 1, 'rangeEnd');
  if (start > end) {
    throw new CniError(
      CniErrorCode.InvalidNetworkConfig,
      `ipam: rangeStart is after rangeEnd in ${r.subnet}`,
    );
  }
  return { alloc, prefixLen, gateway, start, end };
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
            const lease = this.pick(set, taken, requested, this.store.lastReservedIp(rangeId));
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
    requested: readonly string[],
    last: string | undefined,
  ): Lease {
    for (const want of requested) {
      const r = set.find((x) => x.alloc.contains(want));
      if (r === undefined) continue;
      const off = r.alloc.offsetOf(want);
      if (off < r.start || off > r.end || want === r.gateway || taken.includes(want)) {
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

  /** Releases every reservation whose owner is not in `keep` (`containerId\r\nifname` strings); returns them. */
  gc(keep: ReadonlySet<string>): string[] {
    return this.store.transact((tx) => {
      const released: string[] = [];
      for (const ip of tx.ips()) {
        const owner = tx.owner(ip)?.trim();
        if (owner !== undefined && !keep.has(owner) && tx.release(ip)) released.push(ip);
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
