// The control-plane state of the service maps and the ordered map updates that take them from one
// state to the next (spec first, then apply: `@datapath/lb/datapath`'s ServiceWriter applies them).
// Order: backends, reverse NAT, Maglev table, backend slots, then the master entry last; removals
// in reverse (master first, then slots, table, reverse NAT, backends). A program reading the maps
// between any two updates sees either the old or the new service, each with only valid backends.
import { LbError } from './errors.js';
import {
  type LbAffinityMatchKey,
  LbBackendState,
  type LbBackendValue,
  LbProto,
  type LbRevNatValue,
  LbServiceFlag,
  type LbServiceKey,
  type LbServiceValue,
} from './layout.js';
import { DEFAULT_MAGLEV_TABLE_SIZE, isMaglevTableSize, type MaglevTableSize, maglevTable } from './maglev.js';
import {
  DEFAULT_MAX_BACKENDS,
  frontendKey,
  parseService,
  type Service,
  type ServiceLimits,
  SLOT_LIMIT,
} from './model.js';
import { weightedSlotCounts } from './weights.js';

/** A map update that writes `value` at `key` of the map named `map`. */
export interface LbPut<M extends string, K, V> {
  /** Which map (`LB_MAP_NAMES` gives the C names). */
  readonly map: M;
  /** Always `put`. */
  readonly op: 'put';
  /** The key. */
  readonly key: K;
  /** The value (for `maglev`: the whole table, backend ids, `ServiceTable.tableSize` entries). */
  readonly value: V;
}

/** A map update that deletes `key` of the map named `map`. */
export interface LbDelete<M extends string, K> {
  /** Which map. */
  readonly map: M;
  /** Always `delete`. */
  readonly op: 'delete';
  /** The key. */
  readonly key: K;
}

/** One map update of a {@link ServiceChange}, in the order it must be applied. */
export type LbMapOp =
  | LbPut<'backends', number, LbBackendValue>
  | LbDelete<'backends', number>
  | LbPut<'services', LbServiceKey, LbServiceValue>
  | LbDelete<'services', LbServiceKey>
  | LbPut<'revNat', number, LbRevNatValue>
  | LbDelete<'revNat', number>
  | LbPut<'affinityMatch', LbAffinityMatchKey, number>
  | LbDelete<'affinityMatch', LbAffinityMatchKey>
  | LbPut<'maglev', number, Uint32Array>
  | LbDelete<'maglev', number>;

/** What the maps hold for one frontend of a service. */
export interface AppliedFrontend {
  /** Frontend id (`rev_nat_id`), 1..65535. */
  readonly revNatId: number;
  /** Service map key of its master entry (slot 0). */
  readonly key: LbServiceKey;
  /** Its master entry. */
  readonly master: LbServiceValue;
}

/** What the maps hold for one service. */
export interface AppliedService {
  /** The validated service. */
  readonly service: Service;
  /** Per frontend, in the service's order. */
  readonly frontends: readonly AppliedFrontend[];
  /** Backend id of each backend of the service, in the service's order. */
  readonly backendIds: readonly number[];
  /**
   * Backend ids in slots 1..count: the backends that take new flows, each repeated in proportion to
   * its weight (`weightedSlotCounts`), so a uniform pick over the slots follows the weights.
   */
  readonly slots: readonly number[];
  /** The Maglev table (backend ids), when the service selects by Maglev and has a backend. */
  readonly maglev: Uint32Array | undefined;
}

/** A planned change: the ordered map updates, and `commit()` to record it as applied. */
export interface ServiceChange {
  /** Name of the service changed. */
  readonly name: string;
  /** Map updates in the order they must be applied (empty when nothing changes). */
  readonly ops: readonly LbMapOp[];
  /**
   * Records the change in the table once its updates are applied.
   *
   * @throws {@link LbError} `InvalidService` when the table changed since the change was planned.
   */
  commit(): void;
}

/** Options of {@link ServiceTable}. */
export interface ServiceTableOptions extends ServiceLimits {
  /** Maglev table size (default {@link DEFAULT_MAGLEV_TABLE_SIZE}): the programs' LB_MAGLEV_TABLE_SIZE. */
  tableSize?: MaglevTableSize | undefined;
  /** Maglev hash seed, the same on every node (default 0). */
  seed?: number | undefined;
}

interface BackendEntry {
  id: number;
  refs: number;
  value: LbBackendValue;
}

const MAX_REV_NAT = 0xffff;
const MAX_BACKEND_ID = 0xffff_ffff;

const svcKey = (address: string, port: number, proto: number, slot: number): LbServiceKey => ({
  address,
  port,
  slot,
  proto,
  scope: 0,
});
const sameBackend = (a: LbBackendValue, b: LbBackendValue) =>
  a.address === b.address && a.port === b.port && a.proto === b.proto && a.state === b.state;
const sameMaster = (a: LbServiceValue, b: LbServiceValue) =>
  a.backendId === b.backendId &&
  a.count === b.count &&
  a.revNatId === b.revNatId &&
  a.flags === b.flags &&
  a.flags2 === b.flags2;
const sameTable = (a: Uint32Array | undefined, b: Uint32Array | undefined) => {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/**
 * The services the maps hold, and the planner of their changes: {@link ServiceTable.upsert} and
 * {@link ServiceTable.remove} validate, allocate ids and return the ordered map updates without
 * changing anything; `change.commit()` records the change once a writer has applied it. Pure: no
 * kernel access. One change at a time: a change planned before another was committed is refused.
 *
 * @example Planning a service
 * ```ts
 * import { ServiceTable } from '@datapath/lb';
 * const table = new ServiceTable();
 * const change = table.upsert({
 *   name: 'web',
 *   protocol: 'TCP',
 *   frontends: [{ address: '10.96.0.10', port: 80 }],
 *   backends: [{ address: '10.244.1.5', port: 8080 }],
 * });
 * console.log(change.ops.map((o) => `${o.op} ${o.map}`)); // put backends, put revNat, put affinityMatch, put services ×2
 * change.commit();
 * ```
 */
export class ServiceTable {
  /** Maglev table size. */
  readonly tableSize: MaglevTableSize;
  readonly #seed: number;
  readonly #limits: ServiceLimits;
  readonly #services = new Map<string, AppliedService>();
  readonly #frontendOwner = new Map<string, string>();
  readonly #backends = new Map<string, BackendEntry>();
  readonly #usedRevNat = new Set<number>();
  readonly #usedBackendIds = new Set<number>();
  #nextRevNat = 1;
  #nextBackendId = 1;
  #generation = 0;

  /** @throws {@link LbError} `InvalidTableSize` for a size not in `MAGLEV_TABLE_SIZES`. */
  constructor(options: ServiceTableOptions = {}) {
    const size = options.tableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
    if (!isMaglevTableSize(size))
      throw new LbError('InvalidTableSize', `table size ${String(size)} is not a Maglev table size`, {
        op: 'ServiceTable',
      });
    this.tableSize = size;
    this.#seed = options.seed ?? 0;
    this.#limits = { maxBackends: options.maxBackends };
  }

  /** The applied state of service `name`, if any. */
  get(name: string): AppliedService | undefined {
    return this.#services.get(name);
  }

  /** Names of the services, in insertion order. */
  names(): string[] {
    return [...this.#services.keys()];
  }

  /** The backend id the maps use for `address:port/protocol`, while some service has it. */
  backendId(address: string, port: number, protocol: 'TCP' | 'UDP'): number | undefined {
    return this.#backends.get(`${address}|${port}|${LbProto[protocol]}`)?.id;
  }

  /**
   * Plans creating or changing a service: validates it, allocates frontend and backend ids, and returns
   * the map updates (an incremental diff against what the table holds). Nothing changes until `commit()`.
   *
   * @throws {@link LbError} every validation reason of `parseService`; `DuplicateFrontend` (code
   * `AlreadyExists`) when another service has one of its frontends; `IdsExhausted` when no frontend or
   * backend id is left.
   * @example
   * ```ts
   * import { ServiceTable } from '@datapath/lb';
   * const table = new ServiceTable();
   * table.upsert({ name: 'dns', protocol: 'UDP', frontends: [{ address: '10.96.0.10', port: 53 }], backends: [] }).commit();
   * ```
   */
  upsert(input: unknown): ServiceChange {
    const op = 'ServiceTable.upsert';
    const service = parseService(input, this.#limits);
    const old = this.#services.get(service.name);
    const proto = LbProto[service.protocol];
    for (const [i, f] of service.frontends.entries()) {
      const owner = this.#frontendOwner.get(frontendKey(service.protocol, f.address, f.port));
      if (owner !== undefined && owner !== service.name)
        throw new LbError(
          'DuplicateFrontend',
          `${f.address}:${f.port}/${service.protocol} belongs to ${owner}`,
          {
            op,
            target: service.name,
            problems: [
              {
                path: `frontends[${i}]`,
                message: `belongs to service ${owner}`,
                reason: 'DuplicateFrontend',
              },
            ],
          },
        );
    }
    // Backend ids: reuse the shared entry of an address:port/proto, else allocate.
    const takenIds = new Set<number>();
    let nextId = this.#nextBackendId;
    const allocBackend = (): number => {
      for (let tries = 0; tries < MAX_BACKEND_ID; tries++) {
        const id = nextId;
        nextId = nextId >= MAX_BACKEND_ID ? 1 : nextId + 1;
        if (!this.#usedBackendIds.has(id) && !takenIds.has(id)) {
          takenIds.add(id);
          return id;
        }
      }
      throw new LbError('IdsExhausted', 'no backend id left', { op, target: service.name });
    };
    const backendIds: number[] = [];
    const backendValues: LbBackendValue[] = [];
    const newEntries = new Map<string, BackendEntry>();
    for (const b of service.backends) {
      const k = `${b.address}|${b.port}|${proto}`;
      const value: LbBackendValue = {
        address: b.address,
        port: b.port,
        proto,
        state: LbBackendState[b.state],
      };
      const existing = this.#backends.get(k);
      const id = existing?.id ?? allocBackend();
      backendIds.push(id);
      backendValues.push(value);
      newEntries.set(k, { id, refs: existing?.refs ?? 0, value });
    }
    const active = service.backends.flatMap((b, i) => (b.state === 'active' && b.weight > 0 ? [i] : []));
    const activeIds = active.map((i) => backendIds[i]!);
    const slotCounts = weightedSlotCounts(
      active.map((i) => service.backends[i]!.weight),
      Math.min(this.#limits.maxBackends ?? DEFAULT_MAX_BACKENDS, SLOT_LIMIT),
    );
    const slots = activeIds.flatMap((id, i) => Array<number>(slotCounts[i]!).fill(id));
    let maglev: Uint32Array | undefined;
    if (service.selection === 'maglev' && active.length > 0) {
      const idx = maglevTable(
        active.map((i) => ({
          key: `${service.backends[i]!.address}:${service.backends[i]!.port}`,
          weight: service.backends[i]!.weight,
        })),
        this.tableSize,
        { seed: this.#seed },
      );
      maglev = new Uint32Array(idx.length);
      for (let e = 0; e < idx.length; e++) maglev[e] = activeIds[idx[e]!]!;
    }
    // Frontend ids: keep the old ones of frontends that stay.
    const oldByKey = new Map<string, AppliedFrontend>();
    for (const f of old?.frontends ?? [])
      oldByKey.set(frontendKey(service.protocol, f.key.address, f.key.port), f);
    const takenRev = new Set<number>();
    let nextRev = this.#nextRevNat;
    const allocRev = (): number => {
      for (let tries = 0; tries < MAX_REV_NAT; tries++) {
        const id = nextRev;
        nextRev = nextRev >= MAX_REV_NAT ? 1 : nextRev + 1;
        if (!this.#usedRevNat.has(id) && !takenRev.has(id)) {
          takenRev.add(id);
          return id;
        }
      }
      throw new LbError('IdsExhausted', 'no frontend id (rev_nat_id) left', { op, target: service.name });
    };
    const sameProto = old !== undefined && old.service.protocol === service.protocol;
    const frontends: AppliedFrontend[] = service.frontends.map((f) => {
      const prev = sameProto ? oldByKey.get(frontendKey(service.protocol, f.address, f.port)) : undefined;
      const revNatId = prev?.revNatId ?? allocRev();
      let flags = 0;
      if (f.kind === 'NodePort') flags |= LbServiceFlag.NodePort;
      if (f.kind === 'ExternalIP') flags |= LbServiceFlag.ExternalIp;
      if (service.affinityTimeoutSeconds !== undefined) flags |= LbServiceFlag.Affinity;
      if (service.selection === 'maglev') flags |= LbServiceFlag.Maglev;
      if (service.family === 6) flags |= LbServiceFlag.Ipv6;
      return {
        revNatId,
        key: svcKey(f.address, f.port, proto, 0),
        master: {
          backendId: service.affinityTimeoutSeconds ?? 0,
          count: slots.length,
          revNatId,
          flags,
          flags2: 0,
        },
      };
    });
    const applied: AppliedService = { service, frontends, backendIds, slots, maglev };

    // ---- the ordered updates
    const ops: LbMapOp[] = [];
    const oldBackendKeys = new Set<string>();
    if (old !== undefined)
      for (const b of old.service.backends)
        oldBackendKeys.add(`${b.address}|${b.port}|${LbProto[old.service.protocol]}`);
    // 1. backends new to the maps, or turning active (a backend leaving the active state is
    // written after the slots stop naming it: step 8)
    const leaving: LbMapOp[] = [];
    for (const [k, e] of newEntries) {
      const cur = this.#backends.get(k);
      if (cur === undefined || !sameBackend(cur.value, e.value)) {
        const put: LbMapOp = { map: 'backends', op: 'put', key: e.id, value: e.value };
        if (cur !== undefined && e.value.state !== LbBackendState.active) leaving.push(put);
        else ops.push(put);
      }
    }
    const keptFrontends = new Set(frontends.map((f) => f.revNatId));
    const oldFrontends = sameProto ? (old?.frontends ?? []) : [];
    const oldKept = new Map(
      oldFrontends.filter((f) => keptFrontends.has(f.revNatId)).map((f) => [f.revNatId, f]),
    );
    const oldSlots = old?.slots ?? [];
    for (const f of frontends) {
      const prev = oldKept.get(f.revNatId);
      // 2. reverse NAT of new frontends
      if (prev === undefined)
        ops.push({
          map: 'revNat',
          op: 'put',
          key: f.revNatId,
          value: { address: f.key.address, port: f.key.port },
        });
      // 3. affinity matches of backends that now take new flows
      const before = new Set(prev === undefined ? [] : oldSlots);
      for (const id of activeIds)
        if (!before.has(id))
          ops.push({
            map: 'affinityMatch',
            op: 'put',
            key: { backendId: id, revNatId: f.revNatId },
            value: 1,
          });
      // 4. the Maglev table, before the master entry that enables it
      if (maglev !== undefined && (prev === undefined || !sameTable(old?.maglev, maglev)))
        ops.push({ map: 'maglev', op: 'put', key: f.revNatId, value: maglev });
      // 5. slots 1..count that are new or changed
      for (let s = 0; s < slots.length; s++) {
        if (prev === undefined || oldSlots[s] !== slots[s])
          ops.push({
            map: 'services',
            op: 'put',
            key: svcKey(f.key.address, f.key.port, f.key.proto, s + 1),
            value: { backendId: slots[s]!, count: 0, revNatId: f.revNatId, flags: 0, flags2: 0 },
          });
      }
      // 6. the master entry, last
      if (prev === undefined || !sameMaster(prev.master, f.master))
        ops.push({ map: 'services', op: 'put', key: f.key, value: f.master });
      // 7. what the smaller service no longer uses
      if (prev !== undefined) {
        for (let s = slots.length; s < oldSlots.length; s++)
          ops.push({
            map: 'services',
            op: 'delete',
            key: svcKey(f.key.address, f.key.port, f.key.proto, s + 1),
          });
        if (maglev === undefined && old?.maglev !== undefined)
          ops.push({ map: 'maglev', op: 'delete', key: f.revNatId });
        const now = new Set(slots);
        for (const id of new Set(oldSlots))
          if (!now.has(id))
            ops.push({ map: 'affinityMatch', op: 'delete', key: { backendId: id, revNatId: f.revNatId } });
      }
    }
    // 8. backends that stopped taking new flows
    ops.push(...leaving);
    // 9. frontends the service no longer has (all of them when its protocol changed)
    for (const f of old?.frontends ?? []) {
      if (sameProto && keptFrontends.has(f.revNatId)) continue;
      ops.push(...this.#frontendRemoval(f, old!));
    }
    // 10. backends no service uses any more
    const refs = new Map<string, number>();
    for (const [k, e] of this.#backends) refs.set(k, e.refs);
    for (const k of oldBackendKeys) refs.set(k, refs.get(k)! - 1);
    for (const k of newEntries.keys()) refs.set(k, (refs.get(k) ?? 0) + 1);
    for (const k of oldBackendKeys)
      if (refs.get(k) === 0) ops.push({ map: 'backends', op: 'delete', key: this.#backends.get(k)!.id });

    const generation = this.#generation;
    return {
      name: service.name,
      ops,
      commit: () => {
        this.#checkGeneration(generation, op);
        this.#generation++;
        if (old !== undefined) this.#forget(old);
        this.#services.set(service.name, applied);
        for (const f of frontends) {
          this.#usedRevNat.add(f.revNatId);
          this.#frontendOwner.set(frontendKey(service.protocol, f.key.address, f.key.port), service.name);
        }
        for (const [k, e] of newEntries) {
          const cur = this.#backends.get(k);
          if (cur === undefined) this.#backends.set(k, { id: e.id, refs: 1, value: e.value });
          else {
            cur.refs++;
            cur.value = e.value;
          }
          this.#usedBackendIds.add(e.id);
        }
        this.#nextRevNat = nextRev;
        this.#nextBackendId = nextId;
      },
    };
  }

  /**
   * Plans removing a service: its master entries first (new flows stop), then slots, tables,
   * reverse NAT, and the backends no other service uses.
   *
   * @throws {@link LbError} `UnknownService` (code `NotFound`) when the table has no such service.
   * @example
   * ```ts
   * import type { ServiceTable } from '@datapath/lb';
   * declare const table: ServiceTable;
   * table.remove('web').commit();
   * ```
   */
  remove(name: string): ServiceChange {
    const op = 'ServiceTable.remove';
    const old = this.#services.get(name);
    if (old === undefined)
      throw new LbError('UnknownService', `no service ${JSON.stringify(name)}`, { op, target: name });
    const ops: LbMapOp[] = [];
    for (const f of old.frontends) ops.push(...this.#frontendRemoval(f, old));
    const proto = LbProto[old.service.protocol];
    for (const b of old.service.backends) {
      const e = this.#backends.get(`${b.address}|${b.port}|${proto}`)!;
      if (e.refs === 1) ops.push({ map: 'backends', op: 'delete', key: e.id });
    }
    const generation = this.#generation;
    return {
      name,
      ops,
      commit: () => {
        this.#checkGeneration(generation, op);
        this.#generation++;
        this.#forget(old);
      },
    };
  }

  #frontendRemoval(f: AppliedFrontend, svc: AppliedService): LbMapOp[] {
    const ops: LbMapOp[] = [{ map: 'services', op: 'delete', key: f.key }];
    for (let s = 0; s < svc.slots.length; s++)
      ops.push({ map: 'services', op: 'delete', key: svcKey(f.key.address, f.key.port, f.key.proto, s + 1) });
    if (svc.maglev !== undefined) ops.push({ map: 'maglev', op: 'delete', key: f.revNatId });
    for (const id of new Set(svc.slots))
      ops.push({ map: 'affinityMatch', op: 'delete', key: { backendId: id, revNatId: f.revNatId } });
    ops.push({ map: 'revNat', op: 'delete', key: f.revNatId });
    return ops;
  }

  #forget(old: AppliedService): void {
    this.#services.delete(old.service.name);
    for (const f of old.frontends) {
      this.#usedRevNat.delete(f.revNatId);
      this.#frontendOwner.delete(frontendKey(old.service.protocol, f.key.address, f.key.port));
    }
    const proto = LbProto[old.service.protocol];
    for (const b of old.service.backends) {
      const k = `${b.address}|${b.port}|${proto}`;
      const e = this.#backends.get(k)!;
      if (--e.refs === 0) {
        this.#backends.delete(k);
        this.#usedBackendIds.delete(e.id);
      }
    }
  }

  #checkGeneration(generation: number, op: string): void {
    if (generation !== this.#generation)
      throw new LbError('InvalidService', 'the table changed since this change was planned: plan it again', {
        op,
      });
  }
}
