// The persistence interface of HostScope, and its in-memory implementation.

/** One transaction on a {@link Store}, valid only inside {@link Store.transact}. */
export interface StoreTxn {
  /** Opaque token; it differs from the last one seen whenever anybody changed the store since. */
  readonly generation: string;
  /** Every reserved IP (canonical text), in no particular order. */
  ips(): string[];
  /** Owner recorded for `ip`, or undefined when it is not reserved. */
  owner(ip: string): string | undefined;
  /**
   * Reserves `ip` for `owner`; false when it is already reserved (by anybody, in any process). The
   * reservation is durable before {@link Store.transact} returns. `rangeId` names the range it came from.
   */
  reserve(ip: string, owner: string, rangeId?: string): boolean;
  /** Removes the reservation of `ip`; returns false when there was none. */
  release(ip: string): boolean;
  /**
   * Atomically replaces the owner recorded for a reserved `ip` (a `kill -9` leaves the old or the new
   * owner, never none); false when `ip` is not reserved. Needed by {@link HostScopeOptions.cooldownMs}.
   */
  replace?(ip: string, owner: string): boolean;
  /**
   * Entries the store skipped since the transaction began because they are not readable reservations
   * (e.g. a directory named like an IP): their IPs stay taken, and they are never released by an owner.
   */
  problems?(): StoreProblem[];
}

/** A store entry that is not a readable reservation, skipped (and reported) rather than failing. */
export interface StoreProblem {
  /** The entry's name (an IP). */
  entry: string;
  /** What is wrong, e.g. `EISDIR: a directory, not a reservation file`. */
  reason: string;
}

/** Hints that let a store prepare work outside its lock. */
export interface TransactHint {
  /** The owner the transaction will probably reserve for. */
  owner?: string;
}

/**
 * Where a {@link HostScope} keeps reservations: a transaction runs with the store's exclusive lock held
 * (across processes for a {@link FileStore}), so allocations by several processes never collide.
 */
export interface Store {
  /** Runs `fn` holding the store's exclusive lock and returns its result. */
  transact<T>(fn: (tx: StoreTxn) => T, hint?: TransactHint): T;
  /**
   * The same, waiting for the lock without blocking the event loop (`fn` itself runs synchronously once
   * the lock is held). Optional: {@link HostScope}'s async methods fall back to {@link Store.transact}.
   */
  transactAsync?<T>(fn: (tx: StoreTxn) => T, hint?: TransactHint): Promise<T>;
  /** Releases the store's resources. */
  close(): void;
}

let epochCounter = 0;

/**
 * A {@link Store} in memory, shared by the HostScopes of one process (tests, or an agent with its own
 * persistence).
 *
 * @example Two scopes sharing one store never hand out the same IP
 * ```ts
 * import { HostScope, MemoryIpamStore } from '@datapath/ipam';
 * const store = new MemoryIpamStore();
 * const a = new HostScope({ v4: ['10.0.0.0/30'], store });
 * const b = new HostScope({ v4: ['10.0.0.0/30'], store });
 * console.log(a.allocateNext(4, 'pod-a') !== b.allocateNext(4, 'pod-b')); // true
 * ```
 */
export class MemoryIpamStore implements Store {
  private readonly map = new Map<string, string>();
  private readonly lastReserved = new Map<string, string>();
  private readonly epoch = `${process.pid}.${++epochCounter}`;
  private counter = 0;

  /**
   * Runs `fn` with the store's state (there is no real lock: JavaScript runs it to completion).
   *
   * @example
   * ```ts
   * import { MemoryIpamStore } from '@datapath/ipam';
   * const s = new MemoryIpamStore();
   * console.log(s.transact((tx) => tx.reserve('10.0.0.1', 'a'))); // true
   * ```
   */
  transact<T>(fn: (tx: StoreTxn) => T, _hint?: TransactHint): T {
    const self = this;
    const tx: StoreTxn = {
      get generation() {
        return `${self.epoch}.${self.counter}`;
      },
      ips: () => [...self.map.keys()],
      owner: (ip) => self.map.get(ip),
      reserve: (ip, owner, rangeId) => {
        if (self.map.has(ip)) return false;
        self.counter++;
        self.map.set(ip, owner);
        if (rangeId !== undefined) self.lastReserved.set(rangeId, ip);
        return true;
      },
      release: (ip) => {
        if (!self.map.has(ip)) return false;
        self.counter++;
        return self.map.delete(ip);
      },
      replace: (ip, owner) => {
        if (!self.map.has(ip)) return false;
        self.counter++;
        self.map.set(ip, owner);
        return true;
      },
      problems: () => [],
    };
    return fn(tx);
  }

  /** Last IP reserved from a range id, as host-local's `last_reserved_ip.<id>`. */
  lastReservedIp(rangeId: string): string | undefined {
    return this.lastReserved.get(rangeId);
  }

  /** Does nothing. */
  close(): void {}

  /** Does nothing (`using store = new MemoryStore()`). */
  [Symbol.dispose](): void {}
}

/**
 * @deprecated Use {@link MemoryIpamStore} (renamed so it does not collide with `@datapath/kvstore`'s
 * `MemoryStore`); this alias goes in the next minor version.
 */
export const MemoryStore = MemoryIpamStore;
/** @deprecated Use {@link MemoryIpamStore}; this alias goes in the next minor version. */
export type MemoryStore = MemoryIpamStore;
