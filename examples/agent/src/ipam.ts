/**
 * Pod addresses: @datapath/ipam's HostScope over the node's pod CIDR (and, when the agent has one, its IPv6
 * pod CIDR), durable in a FileStore in the agent's state directory (the host-local layout, so a CNI plugin
 * could share it).
 */
import { type IpPrefix, parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import { HostScope } from '@datapath/ipam';
import { FileStore } from '@datapath/ipam/file-store';

/** The agent's address pool (IPv4, and IPv6 when configured): owners per IP, durable across agent restarts. */
export class AddressPool {
  readonly cidr: string;
  /** The IPv6 pod CIDR, when the agent has one. */
  readonly cidr6: string | undefined;
  readonly #store: FileStore;
  readonly #scope: HostScope;
  readonly #prefix: IpPrefix;
  readonly #prefix6: IpPrefix | undefined;

  constructor(dir: string, cidr: string, cidr6?: string) {
    this.cidr = cidr;
    this.cidr6 = cidr6;
    this.#store = new FileStore(dir, { sync: false });
    this.#scope = new HostScope({
      v4: [cidr],
      ...(cidr6 === undefined ? {} : { v6: [cidr6] }),
      store: this.#store,
      strategy: 'contiguous',
    });
    this.#prefix = parsePrefix(cidr, { strict: false, family: 4 });
    this.#prefix6 = cidr6 === undefined ? undefined : parsePrefix(cidr6, { strict: false, family: 6 });
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

  /** IP → owner for every reserved address. */
  allocations(): Record<string, string> {
    return this.#scope.dump().allocations;
  }

  /** Usage lines (`3/254 allocated from 10.244.1.0/24`). */
  status(): string[] {
    return this.#scope.dump().status;
  }

  /** Closes the store's lock file. */
  close(): void {
    this.#store.close();
  }
}
