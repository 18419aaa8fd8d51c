import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfError, createMap, u32, u64 } from '@datapath/bpf-maps';
import { bpftoolJson, requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPacket, compile, generate, load, openObject } from '../src/index.js';
import { bpfDir } from './helpers/fixtures.js';
import * as mim from './mapinmap.gen.js';

let obj: string;
beforeAll(async () => {
  obj = (await compile({ files: [join(bpfDir, 'mapinmap.bpf.c')] })).path;
});

const packet = buildPacket([
  { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
  { kind: 'ipv4', src: '10.244.0.1', dst: '10.244.0.2' },
  { kind: 'udp', sport: 1, dport: 2 },
]);
const NO_INNER = 1000;

/** Inner map id per outer key, as bpftool (an independent oracle) reads the outer map. */
function innerIds(outerId: number): Record<number, number> {
  const raw = bpftoolJson<{ key: string[]; inner_map_id?: number; value?: string[] }[]>([
    'map',
    'dump',
    'id',
    String(outerId),
  ]);
  const le32 = (hex: string[]) => hex.reduce((n, h, i) => n + Number.parseInt(h, 16) * 256 ** i, 0);
  return Object.fromEntries(raw.map((e) => [le32(e.key), e.inner_map_id ?? le32(e.value ?? [])]));
}

describe('map-in-map from an object', () => {
  it('the checked-in test/mapinmap.gen.ts is what the object generates', () => {
    expect(generate(readFileSync(obj), { source: 'mapinmap.bpf.o' })).toBe(
      readFileSync(fileURLToPath(new URL('./mapinmap.gen.ts', import.meta.url)), 'utf8'),
    );
  });

  it('a program reads the inner map at an index; replacing the inner map changes its answer; a misfit is refused and nothing changes', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(obj));
    const maps = mim.openMaps(coll);
    const g = mim.openGlobals(coll);
    const prog = coll.program('pick');
    const answer = (slot: number) => {
      g.slot = slot;
      return prog.run({ data: packet }).retval;
    };
    // The ELF's static initialisation (`.values = { [0] = &inner_a, [2] = &inner_b }`).
    expect(maps.outer.get(0)).toBe(maps.inner_a.id);
    expect(maps.outer.get(2)).toBe(maps.inner_b.id);
    expect(maps.outer.get(1)).toBeUndefined();
    expect(maps.outer.inner).toEqual({ type: 2, keySize: 4, valueSize: 4, maxEntries: 2, flags: 0 });
    maps.inner_a.set(0, 11);
    maps.inner_b.set(0, 22);
    expect([answer(0), answer(1), answer(2)]).toEqual([11, NO_INNER, 22]);

    // Replace slot 0 with a map made here: the program's next run reads it.
    using next = createMap({ type: 'array', value: u32, maxEntries: 2, name: 'next_gen' });
    next.set(0, 33);
    maps.outer.set(0, next);
    expect(answer(0)).toBe(33);
    expect(innerIds(maps.outer.id)[0]).toBe(next.id);
    using opened = maps.outer.open(0);
    expect(opened?.kind === 'array' && opened.get(0)).toBe(33);

    // A map of another shape: typed error before the update, the kernel's outer map unchanged.
    const before = innerIds(maps.outer.id);
    using tooBig = createMap({ type: 'array', value: u32, maxEntries: 3 });
    using wide = createMap({ type: 'array', value: u64, maxEntries: 2 });
    for (const misfit of [tooBig, wide]) {
      let err: unknown;
      try {
        maps.outer.set(0, misfit);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfError);
      expect(err).toMatchObject({ code: 'Incompatible', reason: 'InnerMapMismatch', errno: undefined });
    }
    expect(innerIds(maps.outer.id)).toEqual(before);
    expect(answer(0)).toBe(33);

    // Emptying a slot: the program finds no inner map.
    expect(maps.outer.delete(0)).toBe(true);
    expect(answer(0)).toBe(NO_INNER);

    // Hash of maps, keyed lookups.
    g.use_hash = 1;
    expect(answer(7)).toBe(NO_INNER);
    maps.by_key.set(7, maps.inner_b);
    expect(answer(7)).toBe(22);
    expect(maps.by_key.dump()).toEqual([[7, maps.inner_b.id]]);
    expect(() => maps.by_key.set(8, tooBig)).toThrow(expect.objectContaining({ code: 'Incompatible' }));
    expect(maps.by_key.count()).toBe(1);

    // The untyped client has the same checks, with raw byte codecs.
    const raw = coll.map('outer');
    expect(raw.kind).toBe('arrayOfMaps');
    if (raw.kind === 'arrayOfMaps') {
      expect(() => raw.set(1, wide)).toThrow(expect.objectContaining({ code: 'Incompatible' }));
      raw.set(1, next);
      g.use_hash = 0;
      expect(answer(1)).toBe(33);
    }
    expect(() => coll.mapOfMaps('inner_a')).toThrow(expect.objectContaining({ code: 'Incompatible' }));
    expect(() => coll.mapOfMaps('outer', { inner: { value: u64 } })).toThrow(
      expect.objectContaining({ code: 'Incompatible' }),
    );
  });
});
