import { readdirSync } from 'node:fs';
import { BpfError, MapType, mapCreate } from '@datapath/libbpf';
import { bpftoolJson, requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { bytes, createMap, HashMap, ipv4, openMapFd, struct, u16, u32, u64 } from '../src/index.js';
import { bpftoolDump, byKey, le } from './helpers.js';

describe('HashMap against the kernel', () => {
  it('round-trips typed entries that bpftool reads back byte for byte', (ctx) => {
    requireRoot(ctx);
    const value = struct({ packets: u64, port: u16 }); // 8 + 2, padded to 16
    using map = createMap({ type: 'hash', key: ipv4, value, maxEntries: 64, name: uniqueName() });
    expect(map.kind).toBe('hash');
    map.set('10.244.0.1', { packets: 5n, port: 80 });
    map.set('10.244.0.2', { packets: 2n ** 40n, port: 443 }, 'noExist');
    map.set('10.244.0.1', { packets: 6n, port: 81 }, 'exist');

    const dump = byKey(bpftoolDump(map.id));
    expect(dump.map((e) => [...e.key])).toEqual([
      [10, 244, 0, 1],
      [10, 244, 0, 2],
    ]);
    expect([...dump[0]!.value!]).toEqual([...le(6, 8), ...le(81, 2), 0, 0, 0, 0, 0, 0]);
    expect([...dump[1]!.value!]).toEqual([...le(2n ** 40n, 8), ...le(443, 2), 0, 0, 0, 0, 0, 0]);

    expect(map.get('10.244.0.1')).toEqual({ packets: 6n, port: 81 });
    expect(map.get('10.244.0.9')).toBeUndefined();
    expect(map.has('10.244.0.2')).toBe(true);
    expect(map.lookupAndDelete('10.244.0.2')).toEqual({ packets: 2n ** 40n, port: 443 });
    expect(map.delete('10.244.0.2')).toBe(false);
    expect(bpftoolDump(map.id)).toHaveLength(1);
  });

  it('maps flag conflicts and a full map to typed errors', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 2, name: uniqueName() });
    map.set(1, 1);
    expect(() => map.set(1, 2, 'noExist')).toThrow(
      expect.objectContaining({ code: 'AlreadyExists', errno: 17 }),
    );
    expect(() => map.set(9, 2, 'exist')).toThrow(expect.objectContaining({ code: 'NotFound', errno: 2 }));
    map.set(2, 2);
    const err = (() => {
      try {
        map.set(3, 3);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ code: 'Exhausted', reason: 'Full', errno: 7 }); // a full hash map answers E2BIG
    expect(bpftoolDump(map.id)).toHaveLength(2);
  });

  it('rejects a bad key before any syscall', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 4, name: uniqueName() });
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => map.set(bad, 1)).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
    }
    expect(() => map.set(1, 'x' as unknown as number)).toThrow(
      expect.objectContaining({ code: 'InvalidArgument' }),
    );
    expect(bpftoolDump(map.id)).toHaveLength(0);
  });

  it('rejects a key of the wrong size before any syscall', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: bytes(6), value: u32, maxEntries: 4, name: uniqueName() });
    map.set(Uint8Array.from([1, 2, 3, 4, 5, 6]), 1);
    for (const bad of [new Uint8Array(5), new Uint8Array(7), [1, 2, 3, 4, 5, 6]]) {
      expect(() => map.set(bad as Uint8Array, 2)).toThrow(
        expect.objectContaining({ code: 'InvalidArgument', errno: undefined }),
      );
      expect(() => map.get(bad as Uint8Array)).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    }
    const dump = bpftoolDump(map.id);
    expect(dump.map((e) => [...e.key])).toEqual([[1, 2, 3, 4, 5, 6]]);
    expect([...dump[0]!.value!]).toEqual(le(1, 4));
  });

  it('wraps an existing fd and rejects codecs of the wrong size with every differing field', (ctx) => {
    requireRoot(ctx);
    const fd = mapCreate({
      type: MapType.Hash,
      keySize: 4,
      valueSize: 8,
      maxEntries: 16,
      name: uniqueName(),
    });
    using owner = HashMap.fromFd(fd, { key: u32, value: u64 }, { owned: true });
    owner.set(3, 33n);
    const view = openMapFd(fd, { key: u32, value: u64 });
    expect(view.kind).toBe('hash');
    if (view.kind !== 'hash') throw new Error('unreachable');
    expect(view.get(3)).toEqual(33n);
    view.close(); // not owned: the fd stays open
    expect(owner.get(3)).toEqual(33n);
    const err = (() => {
      try {
        openMapFd(fd, { key: u64, value: u32 });
      } catch (e) {
        return e as BpfError;
      }
    })();
    expect(err).toMatchObject({ code: 'Incompatible' });
    expect(err?.message).toMatch(/keySize: map has 4, codec has 8/);
    expect(err?.message).toMatch(/valueSize: map has 8, codec has 4/);
  });

  it('lets the loop delete the entry it was just given: each key once, no restart', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 512, name: uniqueName() });
    map.setMany(Array.from({ length: 500 }, (_, i) => [i, i] as const));
    const stats = { yielded: 0, skipped: 0, restarts: 0, aborted: false };
    const seen: number[] = [];
    for (const [k, v] of map.entries({ stats })) {
      expect(v).toBe(k);
      seen.push(k);
      expect(map.delete(k)).toBe(true);
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(stats).toEqual({ yielded: 500, skipped: 0, restarts: 0, aborted: false });
    expect(bpftoolDump(map.id)).toHaveLength(0);
  });

  it('goes on from the previous key when the next one vanished', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 128, name: uniqueName() });
    map.setMany(Array.from({ length: 100 }, (_, i) => [i, i] as const));
    const all = Array.from({ length: 100 }, (_, i) => i);
    const stats = { yielded: 0, skipped: 0, restarts: 0, aborted: false };
    const seen: number[] = [];
    for (const [k] of map.entries({ stats })) {
      seen.push(k);
      // Delete every other key, including the successor the walk already fetched: the next step finds
      // it gone (skipped) and continues from this key, which still exists: no restart.
      if (seen.length === 1) map.deleteMany(all.filter((i) => i !== k));
    }
    expect(seen).toHaveLength(1);
    expect(stats).toEqual({ yielded: 1, skipped: 1, restarts: 0, aborted: false });
  });

  it('restarts at the first key when the previous key vanished too, without repeating entries', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 128, name: uniqueName() });
    map.setMany(Array.from({ length: 100 }, (_, i) => [i, i] as const));
    const all = Array.from({ length: 100 }, (_, i) => i);
    const stats = { yielded: 0, skipped: 0, restarts: 0, aborted: false };
    const seen: number[] = [];
    for (const [k] of map.entries({ stats })) {
      seen.push(k);
      // At the second entry, delete everything but the first: the current key and its fetched successor
      // are gone, so get_next_key starts over at the first key, which was already yielded.
      if (seen.length === 2) map.deleteMany(all.filter((i) => i !== seen[0]));
    }
    expect(seen).toHaveLength(2);
    expect(stats).toEqual({ yielded: 2, skipped: 1, restarts: 1, aborted: false });
  });

  it('createMap rejects bad specs with typed errors and leaves no map or fd behind', (ctx) => {
    requireRoot(ctx);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const name = uniqueName();
    const cases: [unknown, string, number | undefined][] = [
      [
        { type: 'hash', key: u32, value: u32, maxEntries: 4, name: 'bad name!' },
        'InvalidArgument',
        undefined,
      ],
      [{ type: 'nope', key: u32, value: u32, maxEntries: 4 }, 'InvalidArgument', undefined],
      [{ type: 'hash', value: u32, maxEntries: 4 }, 'InvalidArgument', undefined],
      [{ type: 'hash', key: u32, value: u32, maxEntries: -1 }, 'InvalidArgument', undefined],
      [{ type: 'hash', key: u32, value: u32, maxEntries: 0, name }, 'InvalidArgument', 22],
    ];
    for (const [spec, code, errno] of cases) {
      expect(() => createMap(spec as Parameters<typeof createMap>[0])).toThrow(
        expect.objectContaining({ code, errno }),
      );
    }
    expect(fds()).toBe(before);
    const maps = bpftoolJson<{ name?: string }[]>(['map', 'list']);
    expect(maps.some((m) => m.name === name)).toBe(false);
  });

  it('throws BadFd after close', (ctx) => {
    requireRoot(ctx);
    const map = createMap({ type: 'hash', key: u32, value: u32, maxEntries: 4, name: uniqueName() });
    map.close();
    map.close();
    expect(() => map.get(1)).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });
});
