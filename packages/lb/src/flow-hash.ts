// The flow hash of per-packet Maglev, the same function as bpf/lb.h's lb_flow_hash4/lb_flow_hash6: a
// caller (a test, an operator) can predict which backend any node sends a flow to.
import { ipToBytes, tryParseIp } from '@datapath/ip';
import { LbError } from './errors.js';
import type { Backend, LbProtocol } from './model.js';
import type { AppliedService } from './plan.js';

/** A flow as the per-packet programs see its first packet (the client's side of it). */
export interface FlowTuple {
  /** The client's address (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv6). */
  source: string;
  /** The client's port. */
  sourcePort: number;
  /** The service port the flow is sent to (the frontend's port). */
  destinationPort: number;
  /** Its protocol. */
  protocol: LbProtocol;
}

const PROTO: Readonly<Record<LbProtocol, number>> = { TCP: 6, UDP: 17 };

const rol32 = (w: number, s: number) => ((w << s) | (w >>> (32 - s))) >>> 0;

/** Bob Jenkins' lookup3 hash of three words (Linux's `jhash_3words`), unsigned 32-bit. */
function jhash3words(a: number, b: number, c: number, initval: number): number {
  const init = (initval + 0xdeadbeef + 12) >>> 0;
  a = (a + init) >>> 0;
  b = (b + init) >>> 0;
  c = (c + init) >>> 0;
  c = ((c ^ b) - rol32(b, 14)) >>> 0;
  a = ((a ^ c) - rol32(c, 11)) >>> 0;
  b = ((b ^ a) - rol32(a, 25)) >>> 0;
  c = ((c ^ b) - rol32(b, 16)) >>> 0;
  a = ((a ^ c) - rol32(c, 4)) >>> 0;
  b = ((b ^ a) - rol32(a, 14)) >>> 0;
  c = ((c ^ b) - rol32(b, 24)) >>> 0;
  return c;
}

const port = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535;

/**
 * The flow hash the per-packet programs index a service's Maglev table with (`hash % tableSize`):
 * lookup3 over the client's address, `(sourcePort << 16) | destinationPort` and the protocol number,
 * with the cluster's `seed` (the programs' `hashSeed`). The destination address is not part of it, so a
 * NodePort flow lands on the same backend whichever node's address it arrives at.
 *
 * @param seed the cluster's seed (an unsigned 32-bit integer, default 0).
 * @throws {@link LbError} `InvalidAddress`, `InvalidPort` or `InvalidProtocol` (code `InvalidArgument`).
 * @example Hashing a flow
 * ```ts
 * import { flowHash } from '@datapath/lb';
 * const h = flowHash({ source: '10.244.1.2', sourcePort: 40000, destinationPort: 80, protocol: 'TCP' }, 7);
 * console.log(h % 16381); // the Maglev table entry every node uses for this flow
 * ```
 */
export function flowHash(tuple: FlowTuple, seed = 0): number {
  const op = 'flowHash';
  const ip = typeof tuple?.source === 'string' ? tryParseIp(tuple.source) : undefined;
  if (ip === undefined)
    throw new LbError('InvalidAddress', `not an IP address: ${String(tuple?.source)}`, { op });
  if (!port(tuple.sourcePort) || !port(tuple.destinationPort))
    throw new LbError('InvalidPort', `ports must be integers in 0..65535`, { op });
  const proto = PROTO[tuple.protocol];
  if (proto === undefined)
    throw new LbError('InvalidProtocol', `protocol must be TCP or UDP, got ${String(tuple.protocol)}`, {
      op,
    });
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new LbError('InvalidNatConfig', `seed must be an unsigned 32-bit integer, got ${String(seed)}`, {
      op,
    });
  const ports = ((tuple.sourcePort << 16) | tuple.destinationPort) >>> 0;
  const b = ipToBytes(ip);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length === 4) return jhash3words(view.getUint32(0), ports, proto, seed);
  const h = jhash3words(view.getUint32(0), view.getUint32(4), view.getUint32(8), seed);
  return jhash3words(view.getUint32(12), ports, proto, h);
}

/**
 * The backend a Maglev service's per-packet programs choose for a new flow (on every node whose
 * programs have the same `seed`), from what a {@link ServiceTable} holds for it (`table.get(name)`);
 * `undefined` when the service does not select by Maglev or has no backend for new flows. Session
 * affinity, when the service has it, takes precedence for a client that already has an entry.
 *
 * @throws {@link LbError} as {@link flowHash}.
 * @example Predicting the backend of a flow
 * ```ts
 * import { maglevBackendFor, ServiceTable } from '@datapath/lb';
 * const table = new ServiceTable();
 * table.upsert({ name: 'web', protocol: 'TCP', selection: 'maglev', frontends: [{ address: '10.96.0.10', port: 80 }],
 *   backends: [{ address: '10.244.1.2', port: 8080 }, { address: '10.244.2.2', port: 8080 }] }).commit();
 * const be = maglevBackendFor(table.get('web')!, { source: '10.244.3.4', sourcePort: 40000, destinationPort: 80, protocol: 'TCP' });
 * console.log(be?.address);
 * ```
 */
export function maglevBackendFor(service: AppliedService, tuple: FlowTuple, seed = 0): Backend | undefined {
  const h = flowHash(tuple, seed);
  const table = service.maglev;
  if (table === undefined || table.length === 0) return undefined;
  const id = table[h % table.length]!;
  const i = service.backendIds.indexOf(id);
  return i < 0 ? undefined : service.service.backends[i];
}
