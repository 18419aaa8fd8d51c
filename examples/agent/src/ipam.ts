/**
 * Pod addresses: @datapath/ipam's HostScope over the node's pod CIDR, durable in a FileStore in the
 * agent's state directory (the host-local layout, so a CNI plugin could share it).
 */
import { FileStore, HostScope } from '@datapath/ipam';

/** The agent's IPv4 address pool: owners per IP, durable across agent restarts. */
export class AddressPool {
  readonly cidr: string;
  readonly #store: FileStore;
  readonly #scope: HostScope;
  readonly #net: number;
  readonly #mask: number;

  constructor(dir: string, cidr: string) {
    this.cidr = cidr;
    this.#store = new FileStore(dir, { sync: false });
    this.#scope = new HostScope({ v4: [cidr], store: this.#store, strategy: 'contiguous' });
    const [addr, len] = cidr.split('/') as [string, string];
    this.#mask = Number(len) === 0 ? 0 : (~0 << (32 - Number(len))) >>> 0;
    this.#net = (toU32(addr) & this.#mask) >>> 0;
  }

  /** Whether `ip` lies inside the pool's CIDR. */
  contains(ip: string): boolean {
    const n = toU32(ip);
    return n >= 0 && (n & this.#mask) >>> 0 === this.#net;
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

function toU32(ip: string): number {
  const p = ip.split('.');
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return -1;
  return p.reduce((a, x) => ((a << 8) | Number(x)) >>> 0, 0);
}
