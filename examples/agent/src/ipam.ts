/**
 * Pod addresses: @datapath/ipam's HostScope over the node's pod CIDR, durable in a FileStore in the
 * agent's state directory (the host-local layout, so a CNI plugin could share it).
 */
import { type IpPrefix, parsePrefix, prefixContains, tryParseIp } from '@datapath/ip';
import { HostScope } from '@datapath/ipam';
import { FileStore } from '@datapath/ipam/file-store';

/** The agent's IPv4 address pool: owners per IP, durable across agent restarts. */
export class AddressPool {
  readonly cidr: string;
  readonly #store: FileStore;
  readonly #scope: HostScope;
  readonly #prefix: IpPrefix;

  constructor(dir: string, cidr: string) {
    this.cidr = cidr;
    this.#store = new FileStore(dir, { sync: false });
    this.#scope = new HostScope({ v4: [cidr], store: this.#store, strategy: 'contiguous' });
    this.#prefix = parsePrefix(cidr, { strict: false, family: 4 });
  }

  /** Whether `ip` lies inside the pool's CIDR. */
  contains(ip: string): boolean {
    const a = tryParseIp(ip, 4);
    return a !== undefined && prefixContains(this.#prefix, a);
  }

  /** Reserves exactly `ip` for `owner`. */
  allocate(ip: string, owner: string): string {
    this.#scope.allocate(ip, owner);
    return ip;
  }

  /** Reserves the next free address for `owner`. */
  allocateNext(owner: string): string {
    return this.#scope.allocateNext(4, owner);
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
