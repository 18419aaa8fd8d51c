/**
 * Pod addresses: @datapath/ipam's HostScope over the node's pod CIDR (and, when the agent has one, its IPv6
 * pod CIDR), durable in the agent's own state: every reserved address is an entry of the state's `ipam` table
 * (IP → owner), and each allocation or release is one record appended to the state journal before it
 * returns (what a `kill -9` right after it leaves behind, as the pods and leases beside it).
 *
 * Agents before this kept the reservations in a FileStore in `<stateDir>/ipam` (one file per address, the
 * host-local layout): a state without an `ipam` table takes that directory's reservations once
 * ({@link legacyAllocations}).
 */
import { existsSync } from 'node:fs';
import { type IpPrefix, parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import { HostScope, type Store, type StoreTxn } from '@datapath/ipam';
import { FileStore } from '@datapath/ipam/file-store';

/**
 * The HostScope's store: the state's table, changed in place; each transaction that changed it reports the
 * changed addresses once, at its end.
 */
class TableStore implements Store {
  readonly #table: Record<string, string>;
  #changed: string[] = [];
  onCommit: ((ips: readonly string[]) => void) | undefined;

  constructor(table: Record<string, string>) {
    this.#table = table;
  }

  transact<T>(fn: (tx: StoreTxn) => T): T {
    const t = this.#table;
    const changed = (ip: string) => this.#changed.push(ip);
    // Only this process changes the table: one generation for good (HostScope lists the table once).
    const tx: StoreTxn = {
      generation: 'table',
      ips: () => Object.keys(t),
      owner: (ip) => (Object.hasOwn(t, ip) ? t[ip] : undefined),
      reserve: (ip, owner) => {
        if (Object.hasOwn(t, ip)) return false;
        t[ip] = owner;
        changed(ip);
        return true;
      },
      release: (ip) => {
        if (!Object.hasOwn(t, ip)) return false;
        delete t[ip];
        changed(ip);
        return true;
      },
      replace: (ip, owner) => {
        if (!Object.hasOwn(t, ip)) return false;
        t[ip] = owner;
        changed(ip);
        return true;
      },
      problems: () => [],
    };
    try {
      return fn(tx);
    } finally {
      if (this.#changed.length > 0) this.onCommit?.(this.#changed.splice(0));
    }
  }

  /** The owner of `ip` in the table. */
  owner(ip: string): string | undefined {
    return Object.hasOwn(this.#table, ip) ? this.#table[ip] : undefined;
  }

  close(): void {}
}

/**
 * The reservations of an agent's older FileStore directory (IP → owner), or undefined when there is none.
 */
export function legacyAllocations(dir: string): Record<string, string> | undefined {
  if (!existsSync(dir)) return undefined;
  const store = new FileStore(dir, { sync: false });
  try {
    return store.transact((tx) => {
      const out: Record<string, string> = {};
      for (const ip of tx.ips()) {
        const owner = tx.owner(ip);
        if (owner !== undefined) out[ip] = owner;
      }
      return out;
    });
  } finally {
    store.close();
  }
}

/** The agent's address pool (IPv4, and IPv6 when configured): owners per IP, durable in the agent's state. */
export class AddressPool {
  readonly cidr: string;
  /** The IPv6 pod CIDR, when the agent has one. */
  readonly cidr6: string | undefined;
  readonly #store: TableStore;
  readonly #scope: HostScope;
  readonly #prefix: IpPrefix;
  readonly #prefix6: IpPrefix | undefined;

  /**
   * @param table the reservations (IP → owner): the state's `ipam` table, changed in place.
   */
  constructor(table: Record<string, string>, cidr: string, cidr6?: string) {
    this.cidr = cidr;
    this.cidr6 = cidr6;
    this.#store = new TableStore(table);
    this.#scope = new HostScope({
      v4: [cidr],
      ...(cidr6 === undefined ? {} : { v6: [cidr6] }),
      store: this.#store,
      strategy: 'contiguous',
    });
    this.#prefix = parsePrefix(cidr, { strict: false, family: 4 });
    this.#prefix6 = cidr6 === undefined ? undefined : parsePrefix(cidr6, { strict: false, family: 6 });
  }

  /**
   * Called with the addresses an allocation or release changed, before it returns: the agent appends them to
   * its journal there.
   */
  set onChange(fn: ((ips: readonly string[]) => void) | undefined) {
    this.#store.onCommit = fn;
  }

  /** Whether `ip` lies inside one of the pool's CIDRs. */
  contains(ip: string): boolean {
    const a = tryParseIp(ip, 4);
    if (a !== undefined) return prefixContains(this.#prefix, a);
    const b = this.#prefix6 === undefined ? undefined : tryParseIp(ip, 6);
    return b !== undefined && prefixContains(this.#prefix6!, b);
  }

  /** Reserves exactly `ip` for `owner`. */
  allocate(ip: string, owner: string): string {
    this.#scope.allocate(ip, owner);
    return ip;
  }

  /** Reserves the next free address of `family` (default 4) for `owner`. */
  allocateNext(owner: string, family: 4 | 6 = 4): string {
    return this.#scope.allocateNext(family, owner);
  }

  /** Frees `ip` (no-op when it is free). */
  release(ip: string): void {
    this.#scope.release(ip);
  }

  /** The owner of `ip`, or undefined when it is free. */
  ownerOf(ip: string): string | undefined {
    return this.#store.owner(ip);
  }

  /** IP → owner for every reserved address. */
  allocations(): Record<string, string> {
    return this.#scope.dump().allocations;
  }

  /** Usage lines (`3/254 allocated from 10.244.1.0/24`). */
  status(): string[] {
    return this.#scope.dump().status;
  }

  /** Nothing to release (the table is the state's); kept for the agent's close sequence. */
  close(): void {}
}
