import { rmSync } from 'node:fs';
import { BpfError, fdClose, MapType, mapCreate, objGet } from '@datapath/libbpf';
import { bpftoolJson, requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { ArrayOfMaps, createMap, HashOfMaps, openPinned, u32, u64 } from '../src/index.js';

/** Inner map ids per outer key as bpftool (an independent oracle) sees them. */
function bpftoolInnerIds(id: number): Map<number, number> {
  const raw = bpftoolJson<{ key: string[]; inner_map_id?: number; value?: string[] }[]>([
    'map',
    'dump',
    'id',
    String(id),
  ]);
  const le32 = (hex: string[]) => hex.reduce((n, h, i) => n + Number.parseInt(h, 16) * 256 ** i, 0);
  return new Map(raw.map((e) => [le32(e.key), e.inner_map_id ?? le32(e.value ?? [])]));
}

describe('map-in-map clients', () => {
  it('array of maps: set by map object or fd, get gives the inner id, open a typed client; delete empties', (ctx) => {
    requireRoot(ctx);
    using outer = createMap({
      type: 'arrayOfMaps',
      maxEntries: 4,
      name: 'outer_t',
      inner: { type: 'array', value: u32, maxEntries: 2 },
    });
    expect(outer.kind).toBe('arrayOfMaps');
    expect(outer.inner).toEqual({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 2, flags: 0 });
    using a = createMap({ type: 'array', value: u32, maxEntries: 2 });
    a.set(1, 11);
    const bFd = mapCreate({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 2 });
    outer.set(0, a);
    outer.set(2, bFd);
    fdClose(bFd); // the outer map holds its own reference
    expect(outer.get(0)).toBe(a.id);
    expect(outer.get(1)).toBeUndefined();
    const ids = bpftoolInnerIds(outer.id);
    expect(ids.get(0)).toBe(a.id);
    expect(ids.get(2)).toBe(outer.get(2));
    using opened = outer.open(0);
    expect(opened?.kind).toBe('array');
    expect(opened?.get(1)).toBe(11);
    expect(outer.open(3)).toBeUndefined();
    expect(outer.delete(2)).toBe(true);
    expect(outer.get(2)).toBeUndefined();
    expect([...outer.keys()]).toEqual([0]);
    expect([...outer.entries()]).toEqual([[0, a.id]]);
    expect(outer.count()).toBe(1);
    expect(outer.dump()).toEqual([[0, a.id]]);
  });

  it('refuses an inner map of another shape before the update, naming every difference; the slot keeps its map', (ctx) => {
    requireRoot(ctx);
    using outer = createMap({
      type: 'arrayOfMaps',
      maxEntries: 2,
      inner: { type: 'array', value: u32, maxEntries: 2 },
    });
    using good = createMap({ type: 'array', value: u32, maxEntries: 2 });
    outer.set(0, good);
    const before = bpftoolInnerIds(outer.id);
    using wrongValue = createMap({ type: 'array', value: u64, maxEntries: 2 });
    using wrongSize = createMap({ type: 'array', value: u32, maxEntries: 3 });
    using wrongType = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 2 });
    using wrongFlags = createMap({ type: 'array', value: u32, maxEntries: 2, flags: 1 << 7 });
    const cases: Array<[{ fd: number }, RegExp]> = [
      [wrongValue, /valueSize: map has 8, expected 4/],
      [wrongSize, /maxEntries: map has 3, expected 2/],
      [wrongType, /type: map is hash, expected array/],
      [wrongFlags, /flags: map has 0x80, expected 0x0/],
    ];
    for (const [map, message] of cases) {
      let err: unknown;
      try {
        outer.set(0, map);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BpfError);
      expect(err).toMatchObject({ code: 'Incompatible', reason: 'InnerMapMismatch', op: 'set' });
      expect((err as BpfError).errno).toBeUndefined(); // refused before the update call
      expect((err as Error).message).toMatch(message);
    }
    // A batch with one bad entry writes nothing.
    expect(() =>
      outer.setMany([
        [1, good],
        [0, wrongValue],
      ]),
    ).toThrow(expect.objectContaining({ code: 'Incompatible' }));
    expect(bpftoolInnerIds(outer.id)).toEqual(before);
    expect(outer.get(0)).toBe(good.id);
    expect(() => outer.set(0, -1)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(() => outer.set(0, { fd: 0 })).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(bpftoolInnerIds(outer.id)).toEqual(before);
  });

  it('hash of maps with typed inner hashes; wraps an existing fd; a bad inner spec is refused before any map exists', (ctx) => {
    requireRoot(ctx);
    const name = uniqueName()
      .slice(0, 15)
      .replace(/[^A-Za-z0-9_]/g, '_');
    using outer = createMap({
      type: 'hashOfMaps',
      key: u32,
      maxEntries: 8,
      name,
      inner: { type: 'hash', key: u32, value: u64, maxEntries: 16 },
    });
    using ns7 = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 16 });
    ns7.set(5, 50n);
    outer.set(7, ns7, 'noExist');
    expect(() => outer.set(7, ns7, 'noExist')).toThrow(expect.objectContaining({ code: 'AlreadyExists' }));
    using view = HashOfMaps.fromFd(outer.fd, {
      key: u32,
      inner: { type: 'hash', key: u32, value: u64, maxEntries: 16 },
    });
    using inner = view.open(7);
    expect(inner?.kind).toBe('hash');
    expect(inner?.get(5)).toBe(50n);
    expect(() =>
      ArrayOfMaps.fromFd(outer.fd, { inner: { type: 'array', value: u32, maxEntries: 1 } }),
    ).toThrow(expect.objectContaining({ code: 'Incompatible' }));
    expect(() =>
      createMap({
        type: 'arrayOfMaps',
        maxEntries: 1,
        inner: { type: 'progArray' as 'array', value: u32, maxEntries: 1 },
      }),
    ).toThrow(expect.objectContaining({ code: 'InvalidArgument', reason: 'InnerMapSpec' }));
    expect(() => createMap({ type: 'arrayOfMaps', maxEntries: 1, inner: undefined as never })).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(outer.count()).toBe(1);
    expect(outer.dump()).toEqual([[7, ns7.id]]);
    // Pinned: openPinned cannot know the inner spec and says so; fromFd with it works.
    const pin = `/sys/fs/bpf/${uniqueName()}`;
    outer.pin(pin);
    try {
      expect(() => openPinned(pin, { type: 'hashOfMaps' } as never)).toThrow(
        expect.objectContaining({
          code: 'InvalidArgument',
          message: expect.stringMatching(/HashOfMaps\.fromFd/),
        }),
      );
      using again = HashOfMaps.fromFd(
        objGet(pin),
        { key: u32, inner: { type: 'hash', key: u32, value: u64, maxEntries: 16 } },
        { owned: true },
      );
      expect(again.get(7)).toBe(ns7.id);
    } finally {
      rmSync(pin);
    }
    expect(outer.delete(7)).toBe(true);
    expect(outer.open(7)).toBeUndefined();
  });
});
