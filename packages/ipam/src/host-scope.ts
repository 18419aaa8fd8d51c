// The IPAM layer an agent (or a CNI plugin) uses: pod CIDR pools per family, owners per IP, excluded IPs,
// expiration timers with tokens, and an optional Store shared across processes.
import { randomUUID } from 'node:crypto';
import { formatIpv6, type IpAddress, type IpFamily } from '@datapath/ip';
import { type Clock, systemClock } from './clock.js';
import { fail, IpamError } from './errors.js';
import { parseIp } from './parse.js';
import { PodCidrPool, type PodCidrStats } from './pod-pool.js';
import type { RangeOptions } from './range.js';
import type { Store, StoreTxn } from './store.js';

/** Parses `ip` and returns it in canonical text (IPv6 addresses are accepted in any valid spelling). */
function canonical(ip: string, op: string): IpAddress & { text: string } {
  const p = parseIp(ip, op);
  return { ...p, text: p.family === 4 ? ip : formatIpv6(p.value) };
}

/** Options of a {@link HostScope}. */
export interface HostScopeOptions extends RangeOptions {
  /** IPv4 pod CIDRs of the node, used in order. */
  v4?: string[];
  /** IPv6 pod CIDRs of the node, used in order. */
  v6?: string[];
  /** Where reservations live; default: this object only. */
  store?: Store;
  /** Time source of the expiration timers (default {@link systemClock}). */
  clock?: Clock;
  /** Called with the error when an expired IP cannot be released (e.g. a store failure). */
  onExpirationError?: (error: unknown) => void;
}

/** The IPs of one `allocateNextWithExpiration` call and the token that stops their timers. */
export interface ExpiringAllocation {
  /** The IPv4 address, when one was allocated. */
  v4?: string;
  /** The IPv6 address, when one was allocated. */
  v6?: string;
  /** Token for {@link HostScope.stopExpiration}. */
  token: string;
}

/** The two IPs of a dual-stack allocation. */
export interface DualAllocation {
  /** The IPv4 address. */
  v4: string;
  /** The IPv6 address. */
  v6: string;
}

/** Result of {@link HostScope.dump}. */
export interface HostScopeDump {
  /** IP → owner, for every allocated IP. */
  allocations: Record<string, string>;
  /** One line per family, e.g. `3/254 allocated from 10.0.0.0/24` (real capacity, IPv6 cap included). */
  status: string[];
  /** Per pod CIDR usage. */
  cidrs: PodCidrStats[];
}

interface Timer {
  token: string;
  handle: unknown;
}

/**
 * Host-scope IPAM: allocates pod IPs from the node's pod CIDRs with an owner per IP, excluded IPs and
 * expiration timers (Cilium's `hostScopeAllocator` plus the IPAM layer above it). With a {@link Store},
 * every operation is a store transaction, so several processes sharing a {@link FileStore} never collide.
 *
 * @example An agent's pod IPs
 * ```ts
 * import { HostScope } from '@datapath/ipam';
 * const ipam = new HostScope({ v4: ['10.244.1.0/24'], v6: ['fd00:10:244:1::/64'] });
 * const ip = ipam.allocateNext(4, 'default/web-0');
 * console.log(ipam.owner(ip)); // default/web-0
 * ```
 */
export class HostScope {
  private pools: { 4?: PodCidrPool; 6?: PodCidrPool } = {};
  private readonly owners = new Map<string, string>();
  private readonly excluded = new Map<string, string>();
  private readonly timers = new Map<string, Timer>();
  private readonly store: Store | undefined;
  private readonly clock: Clock;
  private readonly options: HostScopeOptions;
  private generation: string | undefined;
  /** IPs reserved in the store as of the last listing plus this scope's own changes since. */
  private known = new Set<string>();
  /** Excluded IPs that allocateNext drew and keeps taken (in memory only). */
  private readonly drawnExcluded = new Set<string>();

  /**
   * Creates the scope over the node's pod CIDRs.
   *
   * @throws {@link IpamError} `InvalidCidr` (unparsable, or no family configured); `Family` (an IPv6 CIDR in
   * `v4` or the reverse); `SubnetTooBig`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).dump().status); // ['0/254 allocated from 10.0.0.0/24']
   * ```
   */
  constructor(options: HostScopeOptions) {
    this.options = options;
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    if (options.v4 === undefined && options.v6 === undefined)
      fail('InvalidCidr', 'HostScope', 'no address family configured');
    this.pools = this.buildPools();
  }

  private buildPools(): { 4?: PodCidrPool; 6?: PodCidrPool } {
    const out: { 4?: PodCidrPool; 6?: PodCidrPool } = {};
    const { v4, v6 } = this.options;
    const rangeOpts: RangeOptions = {};
    if (this.options.strategy !== undefined) rangeOpts.strategy = this.options.strategy;
    if (this.options.random !== undefined) rangeOpts.random = this.options.random;
    if (this.options.allowFirstLast !== undefined) rangeOpts.allowFirstLast = this.options.allowFirstLast;
    if (v4 !== undefined) {
      out[4] = new PodCidrPool(v4, rangeOpts);
      if (out[4].family !== 4) fail('Family', 'HostScope', `${v4[0]} is not an IPv4 CIDR`, v4[0]);
    }
    if (v6 !== undefined) {
      out[6] = new PodCidrPool(v6, rangeOpts);
      if (out[6].family !== 6) fail('Family', 'HostScope', `${v6[0]} is not an IPv6 CIDR`, v6[0]);
    }
    return out;
  }

  /** Runs `fn` in a store transaction (reloading state changed by others), or directly without a store. */
  private tx<T>(fn: (t: StoreTxn | undefined) => T, owner?: string): T {
    const store = this.store;
    if (store === undefined) return fn(undefined);
    return store.transact(
      (t) => {
        if (t.generation !== this.generation) this.reload(t);
        try {
          return fn(t);
        } finally {
          this.generation = t.generation;
        }
      },
      owner === undefined ? {} : { owner },
    );
  }

  /** Applies what changed in the store since the last listing to the pools (incrementally). */
  private reload(t: StoreTxn): void {
    const listing = new Set(t.ips());
    for (const ip of this.known)
      if (!listing.has(ip) && !this.drawnExcluded.has(ip))
        this.pools[ip.indexOf(':') >= 0 ? 6 : 4]?.release(ip);
    for (const ip of listing) {
      if (this.known.has(ip)) continue;
      const pool = this.pools[ip.indexOf(':') >= 0 ? 6 : 4];
      if (pool?.contains(ip) && !pool.has(ip)) pool.allocate(ip);
    }
    this.known = listing;
    // Owners may have changed with the IPs: read them again on demand.
    for (const ip of [...this.owners.keys()]) if (!this.drawnExcluded.has(ip)) this.owners.delete(ip);
  }

  private pool(family: IpFamily, op: string): PodCidrPool {
    const p = this.pools[family];
    if (p === undefined) fail('Family', op, `IPv${family} is not configured`);
    return p;
  }

  private rangeId(family: IpFamily, ip: string): string {
    const i = this.pools[family]!.indexOf(ip);
    return String(family === 6 ? (this.options.v4?.length ?? 0) + i : i);
  }

  private reserveIn(t: StoreTxn, ip: string, owner: string, family: IpFamily): boolean {
    this.known.add(ip); // reserved now, or already reserved by somebody else
    return t.reserve(ip, owner, this.rangeId(family, ip));
  }

  private releaseIn(t: StoreTxn, ip: string): boolean {
    this.known.delete(ip);
    return t.release(ip);
  }

  private ownerIn(t: StoreTxn | undefined, ip: string): string | undefined {
    const o = this.owners.get(ip);
    if (o !== undefined || t === undefined) return o;
    const fromStore = t.owner(ip);
    if (fromStore !== undefined) this.owners.set(ip, fromStore);
    return fromStore;
  }

  /**
   * Allocates a specific IP for `owner`.
   *
   * @throws {@link IpamError} `InvalidCidr`; `Family` (family not configured); `Excluded`; `NotInRange`;
   * `AlreadyAllocated`; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * ipam.allocate('10.0.0.1', 'router');
   * console.log(ipam.owner('10.0.0.1')); // router
   * ```
   */
  allocate(ipText: string, owner: string): void {
    const op = 'HostScope.allocate';
    const { family, text: ip } = canonical(ipText, op);
    this.pool(family, op);
    const ex = this.excluded.get(ip);
    if (ex !== undefined) fail('Excluded', op, `IP ${ip} is excluded, owned by ${ex}`, ip);
    this.tx((t) => {
      this.pool(family, op).allocate(ip);
      if (t !== undefined && !this.reserveIn(t, ip, owner, family)) {
        fail('AlreadyAllocated', op, `${ip} is already allocated`, ip);
      }
      this.owners.set(ip, owner);
    }, owner);
  }

  /**
   * Allocates a free IP of `family` for `owner` (excluded IPs drawn on the way stay taken, as upstream).
   *
   * @throws {@link IpamError} `Family` (not configured); `Full`; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v6: ['fd00::/120'] });
   * console.log(ipam.allocateNext(6, 'pod').startsWith('fd00::')); // true
   * ```
   */
  allocateNext(family: IpFamily, owner: string): string {
    this.pool(family, 'HostScope.allocateNext');
    return this.tx((t) => {
      let relisted = false;
      for (;;) {
        const pool = this.pools[family]!;
        // Before reporting Full with a store, list it again: a writer that does not bump the generation
        // (e.g. the host-local binary sharing the directory) may have freed addresses.
        if (t !== undefined && pool.free === 0 && !relisted) {
          relisted = true;
          this.reload(t);
        }
        const ip = pool.allocateNext();
        const ex = this.excluded.get(ip);
        if (ex !== undefined) {
          this.drawnExcluded.add(ip);
          this.owners.set(ip, `${owner} (excluded)`);
          continue;
        }
        if (t !== undefined && !this.reserveIn(t, ip, owner, family)) continue; // taken by another writer
        this.owners.set(ip, owner);
        return ip;
      }
    }, owner);
  }

  /**
   * Allocates one IPv6 and one IPv4 address for `owner` (IPv6 first, as Cilium); releases the IPv6 address if
   * IPv4 fails.
   *
   * @throws {@link IpamError} `Family` (a family not configured); `Full`; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'] });
   * const { v4, v6 } = ipam.allocateNextDual('pod');
   * console.log(ipam.owner(v4) === ipam.owner(v6)); // true
   * ```
   */
  allocateNextDual(owner: string): DualAllocation {
    this.pool(4, 'HostScope.allocateNextDual');
    const v6 = this.allocateNext(6, owner);
    try {
      return { v4: this.allocateNext(4, owner), v6 };
    } catch (e) {
      this.release(v6);
      throw e;
    }
  }

  /**
   * Allocates like {@link HostScope.allocateNext} (or both families with `'dual'`) and starts an expiration
   * timer on each IP: unless {@link HostScope.stopExpiration} is called with the returned token within
   * `timeoutMs`, the IPs are released (how IPs of failed or killed CNI ADDs are reclaimed).
   *
   * @throws {@link IpamError} as {@link HostScope.allocateNext}; nothing stays allocated on error.
   * @example
   * ```ts
   * import { HostScope, ManualClock } from '@datapath/ipam';
   * const clock = new ManualClock();
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'], clock });
   * const { v4 } = ipam.allocateNextWithExpiration(4, 'cni-add', 60_000);
   * clock.advance(60_000);
   * console.log(ipam.has(v4!)); // false
   * ```
   */
  allocateNextWithExpiration(
    family: IpFamily | 'dual',
    owner: string,
    timeoutMs: number,
  ): ExpiringAllocation {
    const token = randomUUID();
    const out: ExpiringAllocation = { token };
    if (family === 'dual') Object.assign(out, this.allocateNextDual(owner));
    else if (family === 4) out.v4 = this.allocateNext(4, owner);
    else out.v6 = this.allocateNext(6, owner);
    for (const ip of [out.v6, out.v4]) if (ip !== undefined) this.startTimer(ip, timeoutMs, token, owner);
    return out;
  }

  private startTimer(ip: string, timeoutMs: number, token: string, owner: string | undefined): void {
    if (this.timers.has(ip))
      fail('TimerExists', 'HostScope.startExpiration', `expiration timer already registered for ${ip}`, ip);
    const handle = this.clock.setTimeout(() => {
      if (this.timers.get(ip)?.token !== token) return;
      this.timers.delete(ip);
      try {
        // With the owner it had: another process sharing the store may have released and reallocated it.
        this.release(ip, owner);
      } catch (e) {
        if (!(e instanceof IpamError && e.code === 'Mismatch')) this.options.onExpirationError?.(e);
      }
    }, timeoutMs);
    this.timers.set(ip, { token, handle });
  }

  /**
   * Starts an expiration timer on `ip`; returns its token.
   *
   * @throws {@link IpamError} `InvalidCidr`; `TimerExists` when `ip` already has one.
   * @example
   * ```ts
   * import { HostScope, ManualClock } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'], clock: new ManualClock() });
   * const ip = ipam.allocateNext(4, 'pod');
   * const token = ipam.startExpiration(ip, 1000);
   * ipam.stopExpiration(ip, token);
   * ```
   */
  startExpiration(ipText: string, timeoutMs: number): string {
    const ip = canonical(ipText, 'HostScope.startExpiration').text;
    const token = randomUUID();
    this.startTimer(ip, timeoutMs, token, this.owner(ip));
    return token;
  }

  /**
   * Stops the expiration timer of `ip` (the endpoint was created: keep the IP).
   *
   * @throws {@link IpamError} `InvalidCidr`; `NoTimer` (none registered); `TokenMismatch` (the timer belongs to another
   * allocation, e.g. a stale CNI call).
   * @example
   * ```ts
   * import { HostScope, IpamError } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * try {
   *   ipam.stopExpiration('10.0.0.9', 'x');
   * } catch (e) {
   *   console.log((e as IpamError).code); // 'NoTimer'
   * }
   * ```
   */
  stopExpiration(ipText: string, token: string): void {
    const ip = canonical(ipText, 'HostScope.stopExpiration').text;
    const t = this.timers.get(ip);
    if (t === undefined)
      fail('NoTimer', 'HostScope.stopExpiration', `no expiration timer registered for ${ip}`, ip);
    if (t.token !== token) fail('TokenMismatch', 'HostScope.stopExpiration', `token mismatch for ${ip}`, ip);
    this.clock.clearTimeout(t.handle);
    this.timers.delete(ip);
  }

  /**
   * Releases `ip` (and its timer); with `owner`, only if it is that owner's (a stale release must not free
   * a live IP). Returns false when the IP was not allocated.
   *
   * @throws {@link IpamError} `InvalidCidr`; `Mismatch` when `owner` is given and differs; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * const ip = ipam.allocateNext(4, 'a');
   * console.log(ipam.release(ip, 'a'), ipam.release(ip)); // true false
   * ```
   */
  release(ipText: string, owner?: string): boolean {
    const op = 'HostScope.release';
    const { family, text: ip } = canonical(ipText, op);
    return this.tx((t) => {
      // Read the owner only when it must be checked (with a FileStore that is a file read).
      const cur = owner === undefined ? this.owners.get(ip) : this.ownerIn(t, ip);
      if (owner !== undefined && cur !== undefined && cur !== owner)
        fail('Mismatch', op, `${ip} is owned by ${cur}, not ${owner}`, ip);
      const timer = this.timers.get(ip);
      if (timer !== undefined) {
        this.clock.clearTimeout(timer.handle);
        this.timers.delete(ip);
      }
      const p = this.pools[family];
      const had = (p?.has(ip) ?? false) || cur !== undefined;
      p?.release(ip);
      this.owners.delete(ip);
      this.drawnExcluded.delete(ip);
      const inStore = t !== undefined && this.releaseIn(t, ip);
      return had || inStore;
    });
  }

  /**
   * Releases every IP held by `owner`; returns them.
   *
   * @throws {@link IpamError} `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'], v6: ['fd00::/120'] });
   * ipam.allocateNextDual('pod-1');
   * console.log(ipam.releaseOwner('pod-1').length); // 2
   * ```
   */
  releaseOwner(owner: string): string[] {
    return this.tx((t) => {
      const ips = this.allocated(t).filter((ip) => this.ownerIn(t, ip) === owner);
      for (const ip of ips) {
        const timer = this.timers.get(ip);
        if (timer !== undefined) {
          this.clock.clearTimeout(timer.handle);
          this.timers.delete(ip);
        }
        this.pools[ip.indexOf(':') >= 0 ? 6 : 4]?.release(ip);
        this.owners.delete(ip);
        this.drawnExcluded.delete(ip);
        if (t !== undefined) this.releaseIn(t, ip);
      }
      return ips;
    });
  }

  private allocated(t: StoreTxn | undefined): string[] {
    const set = new Set<string>();
    const add = (ip: string): void => {
      set.add(ip);
    };
    this.pools[4]?.forEach(add);
    this.pools[6]?.forEach(add);
    if (t !== undefined) for (const ip of t.ips()) set.add(ip);
    return [...set];
  }

  /**
   * Excludes `ip` from allocation (e.g. an address used outside IPAM); `allocate` of it then fails and
   * `allocateNext` skips it.
   *
   * @throws {@link IpamError} `InvalidCidr`.
   * @example
   * ```ts
   * import { HostScope, IpamError } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * ipam.exclude('10.0.0.1', 'gateway');
   * try {
   *   ipam.allocate('10.0.0.1', 'pod');
   * } catch (e) {
   *   console.log((e as IpamError).code); // 'Excluded'
   * }
   * ```
   */
  exclude(ip: string, owner: string): void {
    this.excluded.set(canonical(ip, 'HostScope.exclude').text, owner);
  }

  /** Whether `ip` is excluded. */
  isExcluded(ip: string): boolean {
    return this.excluded.has(canonical(ip, 'HostScope.isExcluded').text);
  }

  /**
   * Whether `ip` is allocated.
   *
   * @throws {@link IpamError} `InvalidCidr`; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).has('10.0.0.1')); // false
   * ```
   */
  has(ip: string): boolean {
    const { family } = canonical(ip, 'HostScope.has');
    return this.tx(() => this.pools[family]?.has(ip) ?? false);
  }

  /**
   * The owner of `ip`, or undefined when it is not allocated.
   *
   * @throws {@link IpamError} `InvalidCidr`; `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).owner('10.0.0.1')); // undefined
   * ```
   */
  owner(ip: string): string | undefined {
    const text = canonical(ip, 'HostScope.owner').text;
    return this.tx((t) => this.ownerIn(t, text));
  }

  /**
   * Every allocation with its owner, and usage per family and pod CIDR.
   *
   * @throws {@link IpamError} `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * ipam.allocate('10.0.0.5', 'pod-a');
   * console.log(ipam.dump().allocations); // { '10.0.0.5': 'pod-a' }
   * ```
   */
  dump(): HostScopeDump {
    return this.tx((t) => {
      const allocations: Record<string, string> = {};
      for (const ip of this.allocated(t)) allocations[ip] = this.ownerIn(t, ip) ?? '';
      const status: string[] = [];
      const cidrs: PodCidrStats[] = [];
      for (const fam of [4, 6] as const) {
        const p = this.pools[fam];
        if (p === undefined) continue;
        status.push(`${p.used}/${p.size} allocated from ${p.cidrs.join(', ')}`);
        cidrs.push(...p.stats().cidrs);
      }
      return { allocations, status, cidrs };
    });
  }

  /**
   * Free addresses of a family (0 when not configured).
   *
   * @throws {@link IpamError} `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).free(4)); // 254
   * ```
   */
  free(family: IpFamily): number {
    return this.tx(() => this.pools[family]?.free ?? 0);
  }
}
