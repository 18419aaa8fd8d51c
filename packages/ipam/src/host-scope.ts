// The IPAM layer an agent (or a CNI plugin) uses: pod CIDR pools per family, owners per IP, excluded IPs,
// expiration timers with tokens, and an optional Store shared across processes.
import { randomUUID } from 'node:crypto';
import { formatIpv6, type IpAddress, type IpFamily } from '@datapath/ip';
import { type Clock, systemClock } from './clock.js';
import { checkFamily, fail, IpamError } from './errors.js';
import { parseIp } from './parse.js';
import { PodCidrPool, type PodCidrStats } from './pod-pool.js';
import type { RangeOptions } from './range.js';
import { MemoryStore, type Store, type StoreProblem, type StoreTxn } from './store.js';

/** The owner a store records for an address in its release cooldown; the line after it is the deadline. */
const COOLING = 'datapath:cooldown\r\n';
const coolingOwner = (until: number): string => `${COOLING}${until}`;
/** The deadline of a cooling owner string, or undefined when `owner` is a real owner. */
function coolingUntil(owner: string | undefined): number | undefined {
  if (owner === undefined || !owner.startsWith(COOLING)) return undefined;
  const until = Number(owner.slice(COOLING.length).trim());
  return Number.isFinite(until) ? until : 0;
}
const familyOf = (ip: string): IpFamily => (ip.indexOf(':') >= 0 ? 6 : 4);

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
  /**
   * One address per family per owner, as the CNI host-local plugin: a second `allocate`/`allocateNext` for
   * an owner that already holds an address of that family fails with `AlreadyAllocated` (default false).
   * {@link HostScope.allocateOrGet} returns the held address instead.
   */
  onePerOwner?: boolean;
  /**
   * Release cooldown in milliseconds (default 0: none). A released address stays out of allocation this
   * long (it is kept in the store under a cooldown marker, so it survives restarts and is honoured by every
   * process sharing the store). Free addresses are always preferred; when only cooling ones are left,
   * allocation fails with `Cooling` (not `Full`) until the first one's cooldown ends. A `rollback` of an
   * address that was never handed out does not cool. Needs a store with `replace` (both built-in stores);
   * without a `store` option a private {@link MemoryStore} is used.
   */
  cooldownMs?: number;
}

/**
 * What {@link HostScope.allocateOrGet} handed out: the owner's address per family, and which of them this
 * call created. Pass it to {@link HostScope.rollback} when the pod's setup fails.
 */
export interface Lease {
  /** The owner the addresses belong to. */
  readonly owner: string;
  /** The IPv4 address, when requested. */
  readonly v4?: string;
  /** The IPv6 address, when requested. */
  readonly v6?: string;
  /** The addresses this call allocated (the others the owner already held): only these are rolled back. */
  readonly created: readonly string[];
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
  /** Released addresses in their cooldown → when each becomes allocatable again (the clock's milliseconds). */
  cooling: Record<string, number>;
  /** Store entries skipped because they are not readable reservations (their IPs stay taken). */
  problems: StoreProblem[];
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
  private readonly cooldownMs: number;
  private problemList: StoreProblem[] = [];
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
   * `v4` or the reverse); `SubnetTooBig`; `Mismatch` (a `cooldownMs` that is not a number ≥ 0);
   * `NotSupported` (a `cooldownMs` with a store that cannot `replace`).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).dump().status); // ['0/254 allocated from 10.0.0.0/24']
   * ```
   */
  constructor(options: HostScopeOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    if (options.v4 === undefined && options.v6 === undefined)
      fail('InvalidCidr', 'HostScope', 'no address family configured');
    const cooldown = options.cooldownMs ?? 0;
    if (!Number.isFinite(cooldown) || cooldown < 0)
      fail('Mismatch', 'HostScope', `cooldownMs must be a finite number ≥ 0, got ${cooldown}`);
    this.cooldownMs = cooldown;
    this.store = options.store ?? (cooldown > 0 ? new MemoryStore() : undefined);
    if (cooldown > 0 && this.store !== undefined && !this.store.transact((t) => t.replace !== undefined))
      fail('NotSupported', 'HostScope', 'cooldownMs needs a store that implements StoreTxn.replace');
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
    return store.transact((t) => this.inTx(t, fn), owner === undefined ? {} : { owner });
  }

  /** {@link HostScope.tx} waiting for the store's lock without blocking the event loop. */
  private async txAsync<T>(fn: (t: StoreTxn | undefined) => T, owner?: string): Promise<T> {
    const store = this.store;
    if (store === undefined) return fn(undefined);
    const hint = owner === undefined ? {} : { owner };
    if (store.transactAsync === undefined) return store.transact((t) => this.inTx(t, fn), hint);
    return store.transactAsync((t) => this.inTx(t, fn), hint);
  }

  private inTx<T>(t: StoreTxn, fn: (t: StoreTxn | undefined) => T): T {
    if (t.generation !== this.generation) this.reload(t);
    try {
      return fn(t);
    } finally {
      this.generation = t.generation;
      const found = t.problems?.();
      if (found !== undefined && found.length > 0) {
        const seen = new Set(this.problemList.map((p) => p.entry));
        for (const p of found) if (!seen.has(p.entry)) this.problemList.push(p);
      }
    }
  }

  /** Applies what changed in the store since the last listing to the pools (incrementally). */
  private reload(t: StoreTxn): void {
    const listing = new Set(t.ips());
    for (const ip of this.known)
      if (!listing.has(ip) && !this.drawnExcluded.has(ip)) this.pools[familyOf(ip)]?.release(ip);
    for (const ip of listing) {
      if (this.known.has(ip)) continue;
      const pool = this.pools[familyOf(ip)];
      if (pool?.contains(ip) && !pool.has(ip)) pool.allocate(ip);
    }
    this.known = listing;
    // Owners may have changed with the IPs: read them again on demand.
    for (const ip of [...this.owners.keys()]) if (!this.drawnExcluded.has(ip)) this.owners.delete(ip);
  }

  private pool(family: IpFamily, op: string): PodCidrPool {
    checkFamily(family, op);
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
   * `AlreadyAllocated` (also: the owner already holds an address of the family, with `onePerOwner`);
   * `Cooling` (the address is in its release cooldown); `StoreFailure`; `Busy`.
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
      this.checkOnePerOwner(t, owner, family, op);
      const pool = this.pool(family, op);
      if (t !== undefined && pool.has(ip)) {
        // A cooling address: reclaim it if its cooldown is over, else say when it will be.
        const until = coolingUntil(this.ownerIn(t, ip));
        if (until !== undefined) {
          if (until > this.clock.now())
            throw new IpamError('Cooling', `${op}: ${ip} is in its release cooldown`, {
              op,
              target: ip,
              cooling: 1,
              availableAt: until,
            });
          this.dropIn(t, ip);
        }
      }
      pool.allocate(ip);
      if (t !== undefined && !this.reserveIn(t, ip, owner, family)) {
        fail('AlreadyAllocated', op, `${ip} is already allocated`, ip);
      }
      this.owners.set(ip, owner);
    }, owner);
  }

  /** With `onePerOwner`: fails when `owner` already holds an address of `family`. */
  private checkOnePerOwner(t: StoreTxn | undefined, owner: string, family: IpFamily, op: string): void {
    if (this.options.onePerOwner !== true) return;
    const held = this.heldBy(t, owner, family);
    if (held !== undefined)
      fail('AlreadyAllocated', op, `${owner} already holds ${held} (one address per owner)`, held);
  }

  /** The first address of `family` held by `owner`, if any. */
  private heldBy(t: StoreTxn | undefined, owner: string, family: IpFamily): string | undefined {
    const pool = this.pools[family];
    if (pool === undefined) return undefined;
    for (const ip of this.allocated(t))
      if (familyOf(ip) === family && this.ownerIn(t, ip) === owner) return ip;
    return undefined;
  }

  /** Removes `ip` from the pool and the store, without cooldown. */
  private dropIn(t: StoreTxn | undefined, ip: string): boolean {
    const timer = this.timers.get(ip);
    if (timer !== undefined) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(ip);
    }
    const p = this.pools[familyOf(ip)];
    const had = p?.has(ip) ?? false;
    p?.release(ip);
    this.owners.delete(ip);
    this.drawnExcluded.delete(ip);
    const inStore = t !== undefined && this.releaseIn(t, ip);
    return had || inStore;
  }

  /** Releases `ip`: into its cooldown when one is configured, else back to the pool. */
  private freeIn(t: StoreTxn | undefined, ip: string): boolean {
    if (this.cooldownMs <= 0 || t === undefined || this.drawnExcluded.has(ip)) return this.dropIn(t, ip);
    const timer = this.timers.get(ip);
    if (timer !== undefined) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(ip);
    }
    const marker = coolingOwner(this.clock.now() + this.cooldownMs);
    if (!t.replace!(ip, marker)) return this.dropIn(t, ip);
    this.owners.set(ip, marker);
    return true;
  }

  /**
   * With the pool of `family` full: frees the cooling addresses whose cooldown is over; returns how many
   * it freed, or throws `Cooling` when every remaining one is still cooling.
   */
  private reclaimCooling(t: StoreTxn, family: IpFamily, op: string): number {
    const now = this.clock.now();
    let freed = 0;
    let cooling = 0;
    let first = Number.POSITIVE_INFINITY;
    for (const ip of t.ips()) {
      if (familyOf(ip) !== family) continue;
      const until = coolingUntil(this.ownerIn(t, ip));
      if (until === undefined) continue;
      if (until <= now) {
        this.dropIn(t, ip);
        freed++;
      } else {
        cooling++;
        first = Math.min(first, until);
      }
    }
    if (freed === 0 && cooling > 0)
      throw new IpamError(
        'Cooling',
        `${op}: no free IPv${family} address: ${cooling} released address(es) still in their cooldown, the first free at ${first}`,
        { op, cooling, availableAt: first },
      );
    return freed;
  }

  /**
   * Allocates a free IP of `family` for `owner` (excluded IPs drawn on the way stay taken, as upstream).
   *
   * @throws {@link IpamError} `Family` (not 4 or 6, or not configured); `Full`; `Cooling` (only addresses in
   * their release cooldown are left); `AlreadyAllocated` (the owner already holds one, with `onePerOwner`);
   * `StoreFailure`; `Busy`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v6: ['fd00::/120'] });
   * console.log(ipam.allocateNext(6, 'pod').startsWith('fd00::')); // true
   * ```
   */
  allocateNext(family: IpFamily, owner: string): string {
    const op = 'HostScope.allocateNext';
    this.pool(family, op);
    return this.tx((t) => {
      this.checkOnePerOwner(t, owner, family, op);
      return this.nextIn(t, family, owner, op);
    }, owner);
  }

  /**
   * {@link HostScope.allocateNext}, waiting for a shared store's lock without blocking the event loop.
   *
   * @throws {@link IpamError} as {@link HostScope.allocateNext}, plus `Busy` (as a rejected promise).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * console.log(ipam.owner(await ipam.allocateNextAsync(4, 'pod'))); // pod
   * ```
   */
  async allocateNextAsync(family: IpFamily, owner: string): Promise<string> {
    const op = 'HostScope.allocateNextAsync';
    this.pool(family, op);
    return this.txAsync((t) => {
      this.checkOnePerOwner(t, owner, family, op);
      return this.nextIn(t, family, owner, op);
    }, owner);
  }

  private nextIn(t: StoreTxn | undefined, family: IpFamily, owner: string, op: string): string {
    let relisted = false;
    let reclaimed = false;
    // Bounded: every turn takes an address out of the pool (drawn excluded, or taken by another writer),
    // and the relist and the reclaim happen once each.
    for (;;) {
      const pool = this.pools[family]!;
      // Before reporting Full with a store, list it again: a writer that does not bump the generation
      // (e.g. the host-local binary sharing the directory) may have freed addresses.
      if (t !== undefined && pool.free === 0 && !relisted) {
        relisted = true;
        this.reload(t);
      }
      // Still full: addresses whose release cooldown is over are free again (Cooling if none is yet).
      if (t !== undefined && pool.free === 0 && !reclaimed) {
        reclaimed = true;
        this.reclaimCooling(t, family, op);
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
  }

  /**
   * The owner's address of `family` (or both with `'dual'`), allocating only what it does not hold yet:
   * host-local's one-address-per-owner, and what a CNI ADD that may be retried needs. All or nothing.
   * The returned {@link Lease} says what this call created; on a failed pod setup pass it to
   * {@link HostScope.rollback}, which never frees an address the owner held before (a live pod's).
   *
   * @throws {@link IpamError} `Family`; `Full`; `Cooling`; `StoreFailure`; `Busy`.
   * @example A CNI ADD with a safe rollback
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * const lease = ipam.allocateOrGet(4, 'c0ffee/eth0');
   * try {
   *   console.log('plumb', lease.v4);
   * } catch (e) {
   *   ipam.rollback(lease); // frees only what allocateOrGet created
   *   throw e;
   * }
   * console.log(ipam.allocateOrGet(4, 'c0ffee/eth0').created.length); // 0: the same address again
   * ```
   */
  allocateOrGet(family: IpFamily | 'dual', owner: string): Lease {
    const op = 'HostScope.allocateOrGet';
    const fams = this.leaseFamilies(family, op);
    return this.tx((t) => this.orGetIn(t, fams, owner, op), owner);
  }

  /**
   * {@link HostScope.allocateOrGet}, waiting for a shared store's lock without blocking the event loop.
   *
   * @throws {@link IpamError} as {@link HostScope.allocateOrGet} (as a rejected promise).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v6: ['fd00::/120'] });
   * console.log((await ipam.allocateOrGetAsync(6, 'pod')).created.length); // 1
   * ```
   */
  async allocateOrGetAsync(family: IpFamily | 'dual', owner: string): Promise<Lease> {
    const op = 'HostScope.allocateOrGetAsync';
    const fams = this.leaseFamilies(family, op);
    return this.txAsync((t) => this.orGetIn(t, fams, owner, op), owner);
  }

  private leaseFamilies(family: IpFamily | 'dual', op: string): IpFamily[] {
    if (family === 'dual') {
      this.pool(6, op);
      this.pool(4, op);
      return [6, 4];
    }
    this.pool(family, op);
    return [family];
  }

  private orGetIn(t: StoreTxn | undefined, fams: IpFamily[], owner: string, op: string): Lease {
    const created: string[] = [];
    const got: { v4?: string; v6?: string } = {};
    try {
      for (const fam of fams) {
        let ip = this.heldBy(t, owner, fam);
        if (ip === undefined) {
          ip = this.nextIn(t, fam, owner, op);
          created.push(ip);
        }
        got[fam === 4 ? 'v4' : 'v6'] = ip;
      }
    } catch (e) {
      for (const ip of created) this.dropIn(t, ip);
      throw e;
    }
    return { owner, ...got, created };
  }

  /**
   * Undoes an {@link HostScope.allocateOrGet} whose pod setup failed: frees the addresses that call created,
   * if they still belong to the lease's owner, without cooldown (they were never handed out). An address
   * the owner held before the call (a live pod's, on a retried ADD) is never freed. Returns what it freed.
   *
   * @throws {@link IpamError} `StoreFailure`; `Busy`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * const first = ipam.allocateOrGet(4, 'pod');
   * const retry = ipam.allocateOrGet(4, 'pod'); // a retried ADD: nothing created
   * console.log(ipam.rollback(retry), ipam.has(first.v4!)); // [] true
   * ```
   */
  rollback(lease: Lease): string[] {
    return this.tx((t) => this.rollbackIn(t, lease));
  }

  /**
   * {@link HostScope.rollback}, waiting for a shared store's lock without blocking the event loop.
   *
   * @throws {@link IpamError} as {@link HostScope.rollback} (as a rejected promise).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * console.log((await ipam.rollbackAsync(ipam.allocateOrGet(4, 'pod'))).length); // 1
   * ```
   */
  async rollbackAsync(lease: Lease): Promise<string[]> {
    return this.txAsync((t) => this.rollbackIn(t, lease));
  }

  private rollbackIn(t: StoreTxn | undefined, lease: Lease): string[] {
    const freed: string[] = [];
    for (const ip of lease.created)
      if (this.ownerIn(t, ip) === lease.owner && this.dropIn(t, ip)) freed.push(ip);
    return freed;
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
    if (family !== 'dual') checkFamily(family, 'HostScope.allocateNextWithExpiration');
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
        if (!(e instanceof IpamError && e.reason === 'Mismatch')) this.options.onExpirationError?.(e);
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
   *   console.log((e as IpamError).code, (e as IpamError).reason); // 'NotFound' 'NoTimer'
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
    const ip = canonical(ipText, op).text;
    return this.tx((t) => this.releaseOneIn(t, ip, owner, op));
  }

  /**
   * {@link HostScope.release}, waiting for a shared store's lock without blocking the event loop.
   *
   * @throws {@link IpamError} as {@link HostScope.release}, plus `Busy` (as a rejected promise).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * console.log(await ipam.releaseAsync(ipam.allocateNext(4, 'a'), 'a')); // true
   * ```
   */
  async releaseAsync(ipText: string, owner?: string): Promise<boolean> {
    const op = 'HostScope.releaseAsync';
    const ip = canonical(ipText, op).text;
    return this.txAsync((t) => this.releaseOneIn(t, ip, owner, op));
  }

  private releaseOneIn(t: StoreTxn | undefined, ip: string, owner: string | undefined, op: string): boolean {
    // Read the owner only when it must be checked (with a FileStore that is a file read), or when cooling
    // addresses may exist (a cooling address is already released).
    const cur = owner === undefined && this.cooldownMs <= 0 ? this.owners.get(ip) : this.ownerIn(t, ip);
    if (coolingUntil(cur) !== undefined) return false;
    if (owner !== undefined && cur !== undefined && cur !== owner)
      fail('Mismatch', op, `${ip} is owned by ${cur}, not ${owner}`, ip);
    const had = this.freeIn(t, ip);
    return had || cur !== undefined;
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
    return this.tx((t) => this.releaseOwnerIn(t, owner));
  }

  /**
   * {@link HostScope.releaseOwner}, waiting for a shared store's lock without blocking the event loop.
   *
   * @throws {@link IpamError} `StoreFailure`; `Busy` (as a rejected promise).
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'] });
   * ipam.allocateNext(4, 'pod-1');
   * console.log((await ipam.releaseOwnerAsync('pod-1')).length); // 1
   * ```
   */
  async releaseOwnerAsync(owner: string): Promise<string[]> {
    return this.txAsync((t) => this.releaseOwnerIn(t, owner));
  }

  private releaseOwnerIn(t: StoreTxn | undefined, owner: string): string[] {
    const ips = this.allocated(t).filter((ip) => this.ownerIn(t, ip) === owner);
    for (const ip of ips) this.freeIn(t, ip);
    return ips;
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
   *   console.log((e as IpamError).code, (e as IpamError).reason); // 'InvalidArgument' 'Excluded'
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
    const { family, text } = canonical(ip, 'HostScope.has');
    return this.tx((t) => {
      if (!(this.pools[family]?.has(text) ?? false)) return false;
      // A cooling address is not allocated (only looked up when cooling addresses may exist).
      return this.cooldownMs <= 0 || coolingUntil(this.ownerIn(t, text)) === undefined;
    });
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
      const cooling: Record<string, number> = {};
      const coolingPer = { 4: 0, 6: 0 };
      for (const ip of this.allocated(t)) {
        const owner = this.ownerIn(t, ip);
        const until = coolingUntil(owner);
        if (until === undefined) allocations[ip] = owner ?? '';
        else {
          cooling[ip] = until;
          coolingPer[familyOf(ip)]++;
        }
      }
      const status: string[] = [];
      const cidrs: PodCidrStats[] = [];
      for (const fam of [4, 6] as const) {
        const p = this.pools[fam];
        if (p === undefined) continue;
        const c = coolingPer[fam];
        status.push(
          `${p.used - c}/${p.size} allocated${c > 0 ? `, ${c} cooling,` : ''} from ${p.cidrs.join(', ')}`,
        );
        cidrs.push(...p.stats().cidrs);
      }
      return { allocations, status, cidrs, cooling, problems: [...this.problemList] };
    });
  }

  /**
   * Free addresses of a family (0 when not configured; addresses in their release cooldown are not free).
   *
   * @throws {@link IpamError} `Family` (not 4 or 6); `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).free(4)); // 254
   * ```
   */
  free(family: IpFamily): number {
    checkFamily(family, 'HostScope.free');
    return this.tx(() => this.pools[family]?.free ?? 0);
  }

  /**
   * Released addresses of a family still in their cooldown (0 when none, or the family is not
   * configured). They are counted neither as free nor as allocated.
   *
   * @throws {@link IpamError} `Family` (not 4 or 6); `StoreFailure`.
   * @example
   * ```ts
   * import { HostScope, ManualClock } from '@datapath/ipam';
   * const ipam = new HostScope({ v4: ['10.0.0.0/24'], cooldownMs: 30_000, clock: new ManualClock() });
   * ipam.release(ipam.allocateNext(4, 'pod'));
   * console.log(ipam.cooling(4), ipam.free(4)); // 1 253
   * ```
   */
  cooling(family: IpFamily): number {
    checkFamily(family, 'HostScope.cooling');
    return this.tx((t) => {
      if (t === undefined) return 0;
      let n = 0;
      for (const ip of t.ips())
        if (familyOf(ip) === family && coolingUntil(this.ownerIn(t, ip)) !== undefined) n++;
      return n;
    });
  }

  /**
   * Store entries skipped so far because they are not readable reservations (e.g. a directory named
   * like an IP in a {@link FileStore}): they keep their IP taken and are never released by an owner.
   * A CNI GC or STATUS reports them.
   *
   * @example
   * ```ts
   * import { HostScope } from '@datapath/ipam';
   * console.log(new HostScope({ v4: ['10.0.0.0/24'] }).problems()); // []
   * ```
   */
  problems(): StoreProblem[] {
    return [...this.problemList];
  }
}
