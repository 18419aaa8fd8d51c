// The writer: applies a ServiceTable's planned changes to the kernel maps, one update at a time in the
// planned order, and undoes what it wrote when an update fails, so the maps hold the old service or the
// new one, never a mix.
import {
  type ArrayMap,
  type BpfMap,
  bytes,
  createMap,
  HashMap,
  HashOfMaps,
  type InnerMapRef,
} from '@datapath/bpf-maps';
import type { Collection } from '@datapath/loader';
import {
  affinityMatchKeyCodec,
  affinityMatchValueCodec,
  backendIdCodec,
  backendValueCodec,
  LB_MAP_NAMES,
  type LbAffinityMatchKey,
  type LbBackendValue,
  type LbMapOp,
  type LbRevNatValue,
  type LbServiceKey,
  type LbServiceValue,
  revNatIdCodec,
  revNatValueCodec,
  serviceKeyCodec,
  serviceValueCodec,
} from '../index.js';
import type { ServiceChange, ServiceTable } from '../plan.js';

/** The file descriptors of the shared maps of `bpf/lb.h` (a collection's, or pinned ones opened). */
export interface LbMapFds {
  /** `lb_services`. */
  services: number;
  /** `lb_backends`. */
  backends: number;
  /** `lb_reverse_nat`. */
  revNat: number;
  /** `lb_affinity_match`. */
  affinityMatch: number;
  /** `lb_maglev`. */
  maglev: number;
}

type Inner = ArrayMap<Uint8Array>;

/** How to put back what a map held before an update, and to let go of what that needed. */
interface Undo {
  /** Puts the old content back. */
  undo(): void;
  /** Releases handles kept for `undo` (after the change is committed). */
  release?(): void;
}

/**
 * Applies service changes planned by a `ServiceTable` to the maps of `bpf/lb.h`, in the planned order
 * (backends first, the master entry last; removals in reverse). If an update fails (a full map, say),
 * every update already made for that change is undone in reverse order and the error is rethrown, so
 * the datapath keeps the old service; the table records a change only once all its updates are in.
 *
 * The writer does not own the maps: closing it closes only its own handles.
 *
 * @example Applying a service through a loaded collection
 * ```ts
 * import { ServiceTable } from '@datapath/lb';
 * import { ServiceWriter } from '@datapath/lb/datapath';
 * import type { Collection } from '@datapath/loader';
 * declare const coll: Collection; // an object that includes lb.h
 * using writer = ServiceWriter.fromCollection(coll, new ServiceTable());
 * writer.upsert({ name: 'web', protocol: 'TCP', frontends: [{ address: '10.96.0.10', port: 80 }], backends: [] });
 * ```
 */
export class ServiceWriter implements Disposable {
  /** The table of what the maps hold. */
  readonly table: ServiceTable;
  readonly #services: HashMap<LbServiceKey, LbServiceValue>;
  readonly #backends: HashMap<number, LbBackendValue>;
  readonly #revNat: HashMap<number, LbRevNatValue>;
  readonly #affinityMatch: HashMap<LbAffinityMatchKey, number>;
  readonly #maglev: HashOfMaps<number, number, Uint8Array>;
  #closed = false;

  /**
   * Wraps the maps (by fd; not owned) for `table`.
   *
   * @throws `BpfError` (of `@datapath/bpf-maps`) `Incompatible` when a map's shape differs from the
   * layout, `BadFd` for a closed fd.
   * @example
   * ```ts
   * import { ServiceTable } from '@datapath/lb';
   * import { type LbMapFds, ServiceWriter } from '@datapath/lb/datapath';
   * declare const fds: LbMapFds;
   * const writer = new ServiceWriter(fds, new ServiceTable());
   * writer.close();
   * ```
   */
  constructor(fds: LbMapFds, table: ServiceTable) {
    this.table = table;
    const opened: BpfMap<unknown, unknown>[] = [];
    try {
      this.#services = HashMap.fromFd(fds.services, { key: serviceKeyCodec, value: serviceValueCodec });
      opened.push(this.#services as BpfMap<unknown, unknown>);
      this.#backends = HashMap.fromFd(fds.backends, { key: backendIdCodec, value: backendValueCodec });
      opened.push(this.#backends as BpfMap<unknown, unknown>);
      this.#revNat = HashMap.fromFd(fds.revNat, { key: revNatIdCodec, value: revNatValueCodec });
      opened.push(this.#revNat as BpfMap<unknown, unknown>);
      this.#affinityMatch = HashMap.fromFd(fds.affinityMatch, {
        key: affinityMatchKeyCodec,
        value: affinityMatchValueCodec,
      });
      opened.push(this.#affinityMatch as BpfMap<unknown, unknown>);
      this.#maglev = HashOfMaps.fromFd(fds.maglev, {
        key: revNatIdCodec,
        inner: { type: 'array', value: bytes(table.tableSize * 4), maxEntries: 1 },
      });
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
  }

  /**
   * A writer over the lb.h maps of a loaded collection.
   *
   * @throws `BpfError` `NotFound` when the collection lacks one of the maps, as the constructor otherwise.
   * @example
   * ```ts
   * import { ServiceTable } from '@datapath/lb';
   * import { ServiceWriter } from '@datapath/lb/datapath';
   * import type { Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * using writer = ServiceWriter.fromCollection(coll, new ServiceTable({ tableSize: 251 }));
   * ```
   */
  static fromCollection(coll: Collection, table: ServiceTable): ServiceWriter {
    return new ServiceWriter(
      {
        services: coll.map(LB_MAP_NAMES.services).fd,
        backends: coll.map(LB_MAP_NAMES.backends).fd,
        revNat: coll.map(LB_MAP_NAMES.revNat).fd,
        affinityMatch: coll.map(LB_MAP_NAMES.affinityMatch).fd,
        maglev: coll.map(LB_MAP_NAMES.maglev).fd,
      },
      table,
    );
  }

  /**
   * Creates or changes a service: plans it on the table, applies the updates, records it.
   *
   * @returns the updates applied (empty when the maps already held this service).
   * @throws `LbError` (of `@datapath/lb`) for invalid input (nothing written); the `BpfError` of a failed
   * map update, after undoing this change's earlier updates.
   * @example
   * ```ts
   * import type { ServiceWriter } from '@datapath/lb/datapath';
   * declare const writer: ServiceWriter;
   * writer.upsert({
   *   name: 'web', protocol: 'TCP',
   *   frontends: [{ address: '10.96.0.10', port: 80 }],
   *   backends: [{ address: '10.244.1.5', port: 8080 }],
   * });
   * ```
   */
  upsert(input: unknown): readonly LbMapOp[] {
    return this.apply(this.table.upsert(input));
  }

  /**
   * Removes a service (master entries first, so new flows stop at once).
   *
   * @throws `LbError` `UnknownService`; a `BpfError` as {@link ServiceWriter.upsert}.
   * @example
   * ```ts
   * import type { ServiceWriter } from '@datapath/lb/datapath';
   * declare const writer: ServiceWriter;
   * writer.remove('web');
   * ```
   */
  remove(name: string): readonly LbMapOp[] {
    return this.apply(this.table.remove(name));
  }

  /**
   * Applies a planned change of this writer's table and commits it.
   *
   * @throws as {@link ServiceWriter.upsert}.
   * @example
   * ```ts
   * import type { ServiceWriter } from '@datapath/lb/datapath';
   * declare const writer: ServiceWriter;
   * const change = writer.table.remove('web');
   * writer.apply(change);
   * ```
   */
  apply(change: ServiceChange): readonly LbMapOp[] {
    const undo: Undo[] = [];
    try {
      for (const op of change.ops) undo.push(this.#applyOne(op));
      change.commit();
    } catch (err) {
      for (let i = undo.length - 1; i >= 0; i--) {
        try {
          undo[i]!.undo();
        } catch {
          // best effort: keep undoing the rest
        }
      }
      throw err;
    }
    for (const u of undo) u.release?.();
    return change.ops;
  }

  #applyOne(op: LbMapOp): Undo {
    switch (op.map) {
      case 'services':
        return swap(this.#services, op.key, op.op === 'put' ? op.value : undefined);
      case 'backends':
        return swap(this.#backends, op.key, op.op === 'put' ? op.value : undefined);
      case 'revNat':
        return swap(this.#revNat, op.key, op.op === 'put' ? op.value : undefined);
      case 'affinityMatch':
        return swap(this.#affinityMatch, op.key, op.op === 'put' ? op.value : undefined);
      default:
        return this.#swapTable(op.key, op.op === 'put' ? op.value : undefined);
    }
  }

  /** Replaces (or removes) a frontend's Maglev table: a fresh inner map filled, then swapped in. */
  #swapTable(key: number, table: Uint32Array | undefined): Undo {
    const before = this.#maglev.open(key) as Inner | undefined;
    try {
      if (table === undefined) {
        if (before !== undefined) this.#maglev.delete(key);
      } else {
        using inner = createMap({
          type: 'array',
          value: bytes(this.table.tableSize * 4),
          maxEntries: 1,
          name: 'lb_maglev_in',
        });
        inner.set(0, new Uint8Array(table.buffer, table.byteOffset, table.byteLength));
        this.#maglev.set(key, inner as InnerMapRef);
      }
    } catch (err) {
      before?.close();
      throw err;
    }
    return {
      undo: () => {
        try {
          if (before === undefined) this.#maglev.delete(key);
          else this.#maglev.set(key, before as InnerMapRef);
        } finally {
          before?.close();
        }
      },
      release: () => before?.close(),
    };
  }

  /** Closes the writer's handles on the maps (the maps stay). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of [this.#services, this.#backends, this.#revNat, this.#affinityMatch, this.#maglev])
      m.close();
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Puts `value` at `key` (or deletes it when undefined); returns how to put back what was there. */
function swap<K, V>(map: HashMap<K, V>, key: K, value: V | undefined): Undo {
  const before = map.get(key);
  if (value === undefined) map.delete(key);
  else map.set(key, value);
  return {
    undo: () => {
      if (before === undefined) map.delete(key);
      else map.set(key, before);
    },
  };
}
