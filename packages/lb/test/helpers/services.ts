/**
 * Services for the per-packet tests: the package's planner (`ServiceTable`) decides the map updates
 * and their order; this applies them, in that order, to the service maps pinned in `pinDir` (through
 * the package's layout codecs). Maglev tables are not applied (the tests select at random).
 */
import { join } from 'node:path';
import { type HashMap, openPinned } from '@datapath/bpf-maps';
import {
  affinityMatchKeyCodec,
  affinityMatchValueCodec,
  backendIdCodec,
  backendValueCodec,
  LB_MAP_NAMES,
  type LbMapOp,
  revNatIdCodec,
  revNatValueCodec,
  type ServiceInput,
  ServiceTable,
  serviceKeyCodec,
  serviceValueCodec,
} from '../../src/index.js';

/** Applies service changes to the maps pinned in `pinDir`. */
export class TestServices implements Disposable {
  readonly table = new ServiceTable();
  readonly #maps: Record<'services' | 'backends' | 'revNat' | 'affinityMatch', HashMap<unknown, unknown>>;

  constructor(pinDir: string) {
    const open = (name: string, key: unknown, value: unknown) =>
      openPinned(join(pinDir, name), { type: 'hash', key, value } as never) as HashMap<unknown, unknown>;
    this.#maps = {
      services: open(LB_MAP_NAMES.services, serviceKeyCodec, serviceValueCodec),
      backends: open(LB_MAP_NAMES.backends, backendIdCodec, backendValueCodec),
      revNat: open(LB_MAP_NAMES.revNat, revNatIdCodec, revNatValueCodec),
      affinityMatch: open(LB_MAP_NAMES.affinityMatch, affinityMatchKeyCodec, affinityMatchValueCodec),
    };
  }

  /** Plans the service and applies its ordered map updates. */
  upsert(input: ServiceInput): void {
    const change = this.table.upsert(input);
    for (const op of change.ops) this.#apply(op);
    change.commit();
  }

  #apply(op: LbMapOp): void {
    if (op.map === 'maglev') throw new Error('TestServices: Maglev tables are not applied');
    const map = this.#maps[op.map];
    const key: unknown = op.key;
    if (op.op === 'put') map.set(key, op.value as unknown);
    else map.delete(key);
  }

  close(): void {
    for (const m of Object.values(this.#maps)) m.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
