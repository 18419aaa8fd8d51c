import { describe, expect, it } from 'vitest';
import { LbError, type LbMapOp, ServiceTable, weightedSlotCounts } from '../src/index.js';

const svc = (
  backends: { address: string; port?: number; state?: string; weight?: number }[],
  extra = {},
) => ({
  name: 'web',
  protocol: 'TCP',
  frontends: [{ address: '10.96.0.10', port: 80 }],
  backends: backends.map((b) => ({ port: 8080, ...b })),
  ...extra,
});

/** A compact text of each op: `put services 10.96.0.10:80#2 → be 3`. */
function show(ops: readonly LbMapOp[]): string[] {
  return ops.map((o) => {
    switch (o.map) {
      case 'services': {
        const k = `${o.key.address}:${o.key.port}#${o.key.slot}`;
        if (o.op === 'delete') return `del services ${k}`;
        return o.key.slot === 0
          ? `put services ${k} count=${o.value.count} flags=${o.value.flags}`
          : `put services ${k} → be ${o.value.backendId}`;
      }
      case 'backends':
        return o.op === 'put'
          ? `put backends ${o.key} ${o.value.address} state=${o.value.state}`
          : `del backends ${o.key}`;
      case 'revNat':
        return `${o.op === 'put' ? 'put' : 'del'} revNat ${o.key}`;
      case 'affinityMatch':
        return `${o.op === 'put' ? 'put' : 'del'} affinityMatch ${o.key.backendId}/${o.key.revNatId}`;
      default:
        return `${o.op === 'put' ? 'put' : 'del'} maglev ${o.key}`;
    }
  });
}

/** Replays ops into plain maps, checking after EVERY op what a program could see. */
function replay(ops: readonly LbMapOp[], state = new Map<string, unknown>()) {
  const k = (o: LbMapOp) =>
    o.map === 'services'
      ? `s ${o.key.address} ${o.key.port} ${o.key.slot}`
      : o.map === 'affinityMatch'
        ? `a ${o.key.backendId} ${o.key.revNatId}`
        : `${o.map} ${o.key}`;
  for (const o of ops) {
    if (o.op === 'put') state.set(k(o), o.value);
    else state.delete(k(o));
    // invariant: every master's slots 1..count exist and name a backend that exists
    for (const [key, v] of state) {
      if (!key.startsWith('s ') || !key.endsWith(' 0')) continue;
      const [, a, p] = key.split(' ');
      const m = v as { count: number; revNatId: number; flags: number };
      expect(state.has(`revNat ${m.revNatId}`), `revNat of ${key}`).toBe(true);
      if (m.flags & 8 && m.count > 0) expect(state.has(`maglev ${m.revNatId}`)).toBe(true);
      for (let s = 1; s <= m.count; s++) {
        const slot = state.get(`s ${a} ${p} ${s}`) as { backendId: number } | undefined;
        expect(slot, `${key} slot ${s} after ${show([o])[0]}`).toBeDefined();
        expect(state.has(`backends ${slot!.backendId}`), `backend of ${key} slot ${s}`).toBe(true);
      }
    }
    for (const [key, v] of state) {
      if (key.startsWith('maglev '))
        for (const id of v as Uint32Array) expect(state.has(`backends ${id}`)).toBe(true);
    }
  }
  return state;
}

describe('ServiceTable', () => {
  it('creates a service backends first, master entry last', () => {
    const t = new ServiceTable();
    const c = t.upsert(svc([{ address: '10.244.1.5' }, { address: '10.244.2.7' }]));
    expect(show(c.ops)).toEqual([
      'put backends 1 10.244.1.5 state=0',
      'put backends 2 10.244.2.7 state=0',
      'put revNat 1',
      'put affinityMatch 1/1',
      'put affinityMatch 2/1',
      'put services 10.96.0.10:80#1 → be 1',
      'put services 10.96.0.10:80#2 → be 2',
      'put services 10.96.0.10:80#0 count=2 flags=0',
    ]);
    replay(c.ops);
    c.commit();
    expect(t.upsert(svc([{ address: '10.244.1.5' }, { address: '10.244.2.7' }])).ops).toEqual([]);
  });

  it('diffs incrementally: a removed backend leaves slots, master, then the backend map', () => {
    const t = new ServiceTable();
    const c1 = t.upsert(
      svc([{ address: '10.244.1.5' }, { address: '10.244.2.7' }, { address: '10.244.3.9' }]),
    );
    const state = replay(c1.ops);
    c1.commit();
    const c2 = t.upsert(svc([{ address: '10.244.1.5' }, { address: '10.244.3.9' }]));
    expect(show(c2.ops)).toEqual([
      'put services 10.96.0.10:80#2 → be 3',
      'put services 10.96.0.10:80#0 count=2 flags=0',
      'del services 10.96.0.10:80#3',
      'del affinityMatch 2/1',
      'del backends 2',
    ]);
    replay(c2.ops, state);
    c2.commit();
    // terminating: out of the slots first, then its state is written; it stays in the backend map
    const c3 = t.upsert(svc([{ address: '10.244.1.5', state: 'terminating' }, { address: '10.244.3.9' }]));
    expect(show(c3.ops)).toEqual([
      'put services 10.96.0.10:80#1 → be 3',
      'put services 10.96.0.10:80#0 count=1 flags=0',
      'del services 10.96.0.10:80#2',
      'del affinityMatch 1/1',
      'put backends 1 10.244.1.5 state=1',
    ]);
    replay(c3.ops, state);
    c3.commit();
    const c4 = t.remove('web');
    expect(show(c4.ops)).toEqual([
      'del services 10.96.0.10:80#0',
      'del services 10.96.0.10:80#1',
      'del affinityMatch 3/1',
      'del revNat 1',
      'del backends 1',
      'del backends 3',
    ]);
    replay(c4.ops, state);
    c4.commit();
    expect(state.size).toBe(0);
  });

  it('zero backends: a master entry with count 0 (refused by the datapath), no slots', () => {
    const t = new ServiceTable();
    const c = t.upsert(svc([], { affinity: { timeoutSeconds: 30 } }));
    expect(show(c.ops)).toEqual(['put revNat 1', 'put services 10.96.0.10:80#0 count=0 flags=4']);
    const master = c.ops.at(-1) as Extract<LbMapOp, { map: 'services'; op: 'put' }>;
    expect(master.value.backendId).toBe(30);
  });

  it('random selection by weight: each active backend fills slots in proportion to its weight', () => {
    const t = new ServiceTable();
    const c = t.upsert(
      svc([
        { address: '10.244.1.5', weight: 2 },
        { address: '10.244.2.7', weight: 6 },
        { address: '10.244.3.9', weight: 0 },
        { address: '10.244.4.1', weight: 4, state: 'terminating' },
      ]),
    );
    c.commit();
    // weights 2:6 → 1:3 slots; weight 0 and terminating backends get none
    expect(t.get('web')!.slots).toEqual([1, 2, 2, 2]);
    // one affinity match per backend, not per slot
    expect(show(c.ops).filter((o) => o.startsWith('put affinityMatch'))).toEqual([
      'put affinityMatch 1/1',
      'put affinityMatch 2/1',
    ]);
    const c2 = t.upsert(svc([{ address: '10.244.1.5' }, { address: '10.244.2.7' }]));
    expect(show(c2.ops)).toEqual([
      'put services 10.96.0.10:80#0 count=2 flags=0',
      'del services 10.96.0.10:80#3',
      'del services 10.96.0.10:80#4',
      'del backends 3',
      'del backends 4',
    ]);
  });

  it('weightedSlotCounts: exact after the common divisor, else proportional within the slot limit', () => {
    expect(weightedSlotCounts([2, 6, 4], 4096)).toEqual([1, 3, 2]);
    expect(weightedSlotCounts([1, 65535], 65535)).toEqual([1, 65534]);
    const c = weightedSlotCounts([1, 1000, 3000], 100);
    expect(c.reduce((a, b) => a + b, 0)).toBe(100);
    expect(c[0]).toBe(1); // every backend keeps a slot
    expect(Math.abs(c[2]! - 3 * c[1]!)).toBeLessThanOrEqual(4);
    expect(() => weightedSlotCounts([0], 10)).toThrow(RangeError);
    expect(() => weightedSlotCounts([1, 1, 1], 2)).toThrow(RangeError);
  });

  it('maglev: the table (backend ids) is written before the master that enables it, dropped after', () => {
    const t = new ServiceTable({ tableSize: 251 });
    const c = t.upsert(
      svc([{ address: '10.244.1.5' }, { address: '10.244.2.7', weight: 3 }], { selection: 'maglev' }),
    );
    const ops = show(c.ops);
    expect(ops.indexOf('put maglev 1')).toBeLessThan(
      ops.indexOf('put services 10.96.0.10:80#0 count=4 flags=8'),
    );
    const table = (c.ops.find((o) => o.map === 'maglev') as { value: Uint32Array }).value;
    expect(table.length).toBe(251);
    expect(new Set(table)).toEqual(new Set([1, 2]));
    const state = replay(c.ops);
    c.commit();
    const c2 = t.upsert(svc([{ address: '10.244.1.5' }, { address: '10.244.2.7', weight: 3 }]));
    expect(show(c2.ops)).toEqual(['put services 10.96.0.10:80#0 count=4 flags=0', 'del maglev 1']);
    replay(c2.ops, state);
  });

  it('shares backends between services by address, port and protocol; ids are reused only when free', () => {
    const t = new ServiceTable();
    t.upsert(svc([{ address: '10.244.1.5' }])).commit();
    const c = t.upsert({
      ...svc([{ address: '10.244.1.5' }]),
      name: 'web2',
      frontends: [{ address: '10.96.0.11', port: 80 }],
    });
    expect(show(c.ops).filter((o) => o.includes('backends'))).toEqual([]);
    c.commit();
    expect(show(t.remove('web').ops)).not.toContain('del backends 1');
  });

  it('bad input: typed errors, nothing planned, the table unchanged', () => {
    const t = new ServiceTable();
    t.upsert(svc([{ address: '10.244.1.5' }])).commit();
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(LbError);
        return `${(e as LbError).code} ${(e as LbError).reason}`;
      }
      return 'no error';
    };
    expect(err(() => t.upsert({ ...svc([]), name: 'other' }))).toBe('AlreadyExists DuplicateFrontend');
    expect(err(() => t.upsert(svc([{ address: '10.244.1.5', port: 0 }])))).toBe(
      'InvalidArgument InvalidPort',
    );
    expect(err(() => t.remove('nope'))).toBe('NotFound UnknownService');
    expect(err(() => new ServiceTable({ tableSize: 1000 as 251 }))).toBe('InvalidArgument InvalidTableSize');
    expect(t.names()).toEqual(['web']);
    // a change planned before another was committed is refused
    const a = t.upsert(svc([{ address: '10.244.1.6' }]));
    const b = t.upsert(svc([{ address: '10.244.1.7' }]));
    a.commit();
    expect(err(() => b.commit())).toBe('InvalidArgument InvalidService');
  });
});
