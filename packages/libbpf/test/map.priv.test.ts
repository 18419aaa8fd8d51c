import { bpftoolJson, requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { BpfError, fdClose, MapType, mapCreate, mapLookup, mapUpdate } from '../src/index.js';

interface BpftoolEntry {
  key: string[];
  value: string[];
}

const hex = (bytes: number[]) => bytes.map((b) => `0x${b.toString(16).padStart(2, '0')}`);

describe('bpf(2) through koffi', () => {
  it('creates a hash map whose contents bpftool reads back', (ctx) => {
    requireRoot(ctx);
    const name = uniqueName();
    const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 16, name });
    try {
      mapUpdate(fd, new Uint8Array([7, 0, 0, 0]), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
      const dump = bpftoolJson<BpftoolEntry[]>(['map', 'dump', 'name', name]);
      expect(dump).toHaveLength(1);
      expect(dump[0]?.key).toEqual(hex([7, 0, 0, 0]));
      expect(dump[0]?.value).toEqual(hex([1, 2, 3, 4, 5, 6, 7, 8]));
      const value = new Uint8Array(8);
      expect(mapLookup(fd, new Uint8Array([7, 0, 0, 0]), value)).toBe(true);
      expect([...value]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(mapLookup(fd, new Uint8Array([8, 0, 0, 0]), value)).toBe(false);
    } finally {
      fdClose(fd);
    }
  });

  it('maps a kernel rejection to a typed error', (ctx) => {
    requireRoot(ctx);
    // A hash map with a zero-sized key is rejected by the kernel with EINVAL.
    const err = (() => {
      try {
        mapCreate({ type: MapType.Hash, keySize: 0, valueSize: 8, maxEntries: 16 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(BpfError);
    expect(err).toMatchObject({ code: 'InvalidArgument', errno: 22, op: 'mapCreate' });
  });
});
