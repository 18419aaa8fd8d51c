// One CIDR as an IP range over a Bitmap. IPv4 maths on numbers, IPv6 on bigints with a full 128-bit
// comparison (no aliasing across /64s, unlike upstream's low-64-bit offsets).
import {
  familyWidth,
  formatIpv4,
  formatIpv6,
  formatPrefix,
  type IpFamily,
  type IpPrefix,
  tryParseIpv4,
  tryParseIpv6,
} from '@datapath/ip';
import { type AllocatorOptions, Bitmap } from './bitmap.js';
import { fail } from './errors.js';
import { parseCidr } from './parse.js';

/** Options of a {@link RangeAllocator}. */
export interface RangeOptions extends AllocatorOptions {
  /**
   * Make the network and broadcast addresses usable too (Cilium's `WithAllowFirstLastIPs`, for delegated
   * prefixes). Default false: ranges of more than 2 addresses lose their first and last address.
   */
  allowFirstLast?: boolean;
}

/** The serialised state of a {@link RangeAllocator}: its CIDR and the upstream bitmap bytes. */
export interface RangeSnapshot {
  /** Canonical CIDR of the range. */
  range: string;
  /** Big-endian bitmap, bit i = i-th usable address (see {@link Bitmap.snapshot}). */
  data: Uint8Array;
}

/** IPv6 ranges are capped to the first 65536 addresses of the prefix, as upstream. */
export const IPV6_RANGE_CAP = 65536;

/**
 * An IP allocator over one CIDR (IPv4 or IPv6), with Cilium's size rules: the network and last address are
 * reserved when the prefix has more than 2 addresses (/31, /32, /127, /128 are fully usable), and an IPv6
 * range is capped to the first 65536 addresses of its prefix (so a /64 offers `prefix+1 … prefix+0xfffe`).
 *
 * @example Allocating from a /24
 * ```ts
 * import { RangeAllocator } from '@datapath/ipam';
 * const r = new RangeAllocator('10.244.1.0/24', { strategy: 'contiguous' });
 * console.log(r.allocateNext(), r.free); // 10.244.1.1 253
 * ```
 */
export class RangeAllocator {
  /** Canonical CIDR of the range (host bits cleared). */
  readonly cidr: string;
  /** 4 or 6. */
  readonly family: IpFamily;
  /** Number of usable addresses. */
  readonly size: number;
  /** The parsed prefix. @internal */
  readonly prefix: IpPrefix;
  private readonly bitmap: Bitmap;
  private readonly base4: number;
  private readonly base6: bigint;

  /**
   * Creates an empty range over `cidr`.
   *
   * @throws {@link IpamError} `InvalidCidr` for an unparsable CIDR; `SubnetTooBig` for IPv4 /0 and /1 and
   * IPv6 /0 and /1 (upstream silently makes them empty).
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * console.log(new RangeAllocator('fd00::/64').size); // 65534
   * ```
   */
  constructor(cidr: string, options: RangeOptions = {}) {
    const p = parseCidr(cidr, 'RangeAllocator');
    this.prefix = p;
    this.family = p.family;
    this.cidr = formatPrefix(p);
    const width = familyWidth(p.family);
    const hostBits = width - p.length;
    if (hostBits >= width - 1)
      fail('SubnetTooBig', 'RangeAllocator', `a /${p.length} range is too big to allocate from`, this.cidr);
    let size = p.family === 6 && hostBits >= 16 ? IPV6_RANGE_CAP : 2 ** hostBits;
    let offset = 0;
    if (size > 2 && options.allowFirstLast !== true) {
      size -= 2;
      offset = 1;
    }
    this.size = size;
    this.base4 = p.family === 4 ? Number(p.value) + offset : 0;
    this.base6 = p.family === 6 ? p.value + BigInt(offset) : 0n;
    this.bitmap = new Bitmap(size, options);
  }

  /** Number of free addresses. */
  get free(): number {
    return this.bitmap.free;
  }

  /** Number of allocated addresses. */
  get used(): number {
    return this.bitmap.used;
  }

  /** First usable address. */
  get first(): string {
    return this.ipAt(0);
  }

  /** Last usable address. */
  get last(): string {
    return this.ipAt(this.size - 1);
  }

  /** Address of the usable slot `offset`. @internal */
  ipAt(offset: number): string {
    return this.family === 4 ? formatIpv4(this.base4 + offset) : formatIpv6(this.base6 + BigInt(offset));
  }

  /** Offset of `ip` in the range, -1 when outside it or of the other family, -2 when unparsable. @internal */
  offsetOf(ip: string): number {
    if (this.family === 4) {
      const n = tryParseIpv4(ip);
      if (n === undefined) return tryParseIpv6(ip) !== undefined ? -1 : -2;
      const off = n - this.base4;
      return off >= 0 && off < this.size ? off : -1;
    }
    const v = tryParseIpv6(ip);
    if (v === undefined) return tryParseIpv4(ip) !== undefined ? -1 : -2;
    const d = v - this.base6;
    return d >= 0n && d < BigInt(this.size) ? Number(d) : -1;
  }

  private offsetOrThrow(ip: string, op: string): number {
    const off = this.offsetOf(ip);
    if (off === -2) fail('InvalidCidr', op, `invalid IP address ${JSON.stringify(ip)}`, String(ip));
    if (off < 0)
      fail('NotInRange', op, `${ip} is not in the range ${this.first} … ${this.last} of ${this.cidr}`, ip);
    return off;
  }

  /** Whether `ip` is a usable address of this range (false for unparsable text). */
  contains(ip: string): boolean {
    return this.offsetOf(ip) >= 0;
  }

  /**
   * Allocates a specific address.
   *
   * @throws {@link IpamError} `InvalidCidr` (not an IP), `NotInRange` (outside the usable range, including the
   * network and last address and the other family), `AlreadyAllocated`.
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const r = new RangeAllocator('10.0.0.0/24');
   * r.allocate('10.0.0.5');
   * console.log(r.has('10.0.0.5')); // true
   * ```
   */
  allocate(ip: string): void {
    const off = this.offsetOrThrow(ip, 'RangeAllocator.allocate');
    if (!this.bitmap.set(off))
      fail('AlreadyAllocated', 'RangeAllocator.allocate', `${ip} is already allocated`, ip);
  }

  /**
   * Allocates a free address with the range's strategy.
   *
   * @throws {@link IpamError} `Full` when no address is free (`target` is the CIDR).
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const r = new RangeAllocator('10.0.0.0/30', { strategy: 'contiguous' });
   * console.log(r.allocateNext()); // 10.0.0.1
   * ```
   */
  allocateNext(): string {
    const off = this.bitmap.next();
    if (off < 0) fail('Full', 'RangeAllocator.allocateNext', `range ${this.cidr} is full`, this.cidr);
    return this.family === 4 ? formatIpv4(this.base4 + off) : formatIpv6(this.base6 + BigInt(off));
  }

  /**
   * Frees an address; a no-op when it is free or outside the range.
   *
   * @throws {@link IpamError} `InvalidCidr` when `ip` is not an IP address.
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const r = new RangeAllocator('10.0.0.0/24');
   * const ip = r.allocateNext();
   * r.release(ip);
   * console.log(r.used); // 0
   * ```
   */
  release(ip: string): void {
    const off = this.offsetOf(ip);
    if (off >= 0) this.bitmap.clear(off);
    else if (off === -2)
      fail('InvalidCidr', 'RangeAllocator.release', `invalid IP address ${JSON.stringify(ip)}`, ip);
  }

  /**
   * Whether an address is allocated (false outside the range).
   *
   * @throws {@link IpamError} `InvalidCidr` when `ip` is not an IP address.
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * console.log(new RangeAllocator('10.0.0.0/24').has('10.0.0.1')); // false
   * ```
   */
  has(ip: string): boolean {
    const off = this.offsetOf(ip);
    if (off === -2) fail('InvalidCidr', 'RangeAllocator.has', `invalid IP address ${JSON.stringify(ip)}`, ip);
    return off >= 0 && this.bitmap.get(off);
  }

  /**
   * Calls `fn` with every allocated address, in address order.
   *
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const r = new RangeAllocator('10.0.0.0/24');
   * r.allocate('10.0.0.9');
   * r.allocate('10.0.0.3');
   * r.forEach((ip) => console.log(ip)); // 10.0.0.3, then 10.0.0.9
   * ```
   */
  forEach(fn: (ip: string) => void): void {
    this.bitmap.forEach((off) => {
      fn(this.ipAt(off));
    });
  }

  /**
   * The range's state in the upstream format (`RangeAllocation`: CIDR text plus big-endian bitmap bytes).
   *
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const r = new RangeAllocator('10.0.0.0/24');
   * r.allocate('10.0.0.4'); // slot 3
   * const s = r.snapshot();
   * console.log(s.range, Buffer.from(s.data).toString('hex')); // 10.0.0.0/24 08
   * ```
   */
  snapshot(): RangeSnapshot {
    return { range: this.cidr, data: this.bitmap.snapshot() };
  }

  /**
   * Replaces the state with a snapshot of the same CIDR.
   *
   * @throws {@link IpamError} `Mismatch` when the snapshot is of another CIDR; `InvalidSnapshot` when it
   * sets bits past the range size. The range is unchanged on error.
   * @example
   * ```ts
   * import { RangeAllocator } from '@datapath/ipam';
   * const a = new RangeAllocator('10.0.0.0/24');
   * a.allocate('10.0.0.7');
   * const b = new RangeAllocator('10.0.0.0/24');
   * b.restore(a.snapshot());
   * console.log(b.has('10.0.0.7')); // true
   * ```
   */
  restore(snapshot: RangeSnapshot): void {
    let other: IpPrefix | undefined;
    try {
      other = parseCidr(snapshot?.range, 'RangeAllocator.restore');
    } catch {
      other = undefined;
    }
    if (
      other === undefined ||
      other.family !== this.family ||
      other.value !== this.prefix.value ||
      other.length !== this.prefix.length
    )
      fail(
        'Mismatch',
        'RangeAllocator.restore',
        `the snapshot range ${String(snapshot?.range)} does not match ${this.cidr}`,
        this.cidr,
      );
    this.bitmap.restore(snapshot.data);
  }
}
