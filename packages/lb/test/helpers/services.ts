/**
 * Services for the per-packet tests, written into the pinned service maps of lb.h in the order a
 * program never sees half of: backends, then slots, then the master entry (its count) last.
 */
import { join } from 'node:path';
import { be16, type HashMap, ipv6, openPinned, pad, struct, u8, u16, u32 } from '@datapath/bpf-maps';

const svcKey = struct(
  { addr: ipv6, dport: be16, slot: u16, proto: u8, scope: u8, pad: pad(2) },
  { size: 24 },
);
const svcValue = struct(
  { backendId: u32, count: u16, revNatId: u16, flags: u8, flags2: u8, pad: pad(2) },
  { size: 12 },
);
const backend = struct({ addr: ipv6, port: be16, proto: u8, state: u8 }, { size: 20 });

const mapped = (ip: string) => `::ffff:${ip}`;

/** A test backend: its id in lb_backends, address, port and state (0 active, 1 terminating). */
export interface TestBackend {
  id: number;
  address: string;
  port: number;
  state?: 0 | 1 | 2;
}

/** Writes services into the maps pinned in `pinDir`. */
export class TestServices implements Disposable {
  readonly #services: HashMap<ReturnType<typeof svcKey.decode>, ReturnType<typeof svcValue.decode>>;
  readonly #backends: HashMap<number, ReturnType<typeof backend.decode>>;

  constructor(pinDir: string) {
    this.#services = openPinned(join(pinDir, 'lb_services'), { type: 'hash', key: svcKey, value: svcValue });
    this.#backends = openPinned(join(pinDir, 'lb_backends'), { type: 'hash', key: u32, value: backend });
  }

  /** Sets the frontend `address:port/proto` (id `revNatId`) to `backends`; only active ones take new flows. */
  set(
    frontend: { address: string; port: number; proto: 6 | 17; revNatId: number },
    backends: TestBackend[],
  ): void {
    for (const b of backends)
      this.#backends.set(b.id, {
        addr: mapped(b.address),
        port: b.port,
        proto: frontend.proto,
        state: b.state ?? 0,
      });
    const active = backends.filter((b) => (b.state ?? 0) === 0);
    const key = (slot: number) => ({
      addr: mapped(frontend.address),
      dport: frontend.port,
      slot,
      proto: frontend.proto,
      scope: 0,
    });
    for (const [i, b] of active.entries()) {
      this.#services.set(key(i + 1), {
        backendId: b.id,
        count: 0,
        revNatId: frontend.revNatId,
        flags: 1,
        flags2: 0,
      });
    }
    this.#services.set(key(0), {
      backendId: 0,
      count: active.length,
      revNatId: frontend.revNatId,
      flags: 1,
      flags2: 0,
    });
  }

  close(): void {
    this.#services.close();
    this.#backends.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
