import { join } from 'node:path';
import { mapInfo } from '@datapath/libbpf';
import { bpftoolJson, requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Collection, compile, load, openObject } from '../src/index.js';
import { expectSame } from './helpers/btf-dump.js';
import { bpfDir } from './helpers/fixtures.js';
import * as shapes from './shapes.gen.js';

let shapesObj: string;

beforeAll(async () => {
  shapesObj = (await compile({ files: [join(bpfDir, 'shapes.bpf.c')] })).path;
});

const key: shapes.ShapeKey = { addr: 0x0af40001, port: 8080, proto: 6, lvl: shapes.Level.HIGH };
const inner = (n: number): shapes.Inner => ({ a: n, b: -n, c: n * 1000 });
const value: shapes.ShapeValue = {
  flag: 1,
  big: 2n ** 52n + 3n,
  neg: -(2n ** 40n),
  small: -123456,
  color: shapes.Color.BLUE,
  delta: shapes.Delta.MINUS,
  nested: inner(7),
  list: [inner(1), inner(2), inner(3)],
  words: [1, 2, 3, 0xffffffff],
  mac: Uint8Array.from([2, 0, 0, 0, 0, 9]),
  name: new TextEncoder().encode('ten-chars\0'),
  u: { word: 0x01020304 },
};

interface Dumped {
  key: string[];
  value: string[];
  formatted: { key: Record<string, unknown>; value: Record<string, unknown> };
}

describe('generated codecs against the kernel', () => {
  it('entries written through generated clients read back field for field through bpftool map dump -j', (ctx) => {
    requireRoot(ctx);
    const spec = openObject(shapesObj);
    using coll = load(spec);
    const maps = shapes.openMaps(coll);
    maps.shapes.set(key, value);
    maps.unions.set(1, { bytes4: Uint8Array.from([9, 8, 7, 6]) });
    const dumped = bpftoolJson<Dumped[]>(['map', 'dump', 'id', String(mapId(coll, 'shapes'))]);
    expect(dumped).toHaveLength(1);
    expectSame(
      dumped[0]!.formatted.key,
      key,
      'key',
      { 'key.addr': 32, 'key.port': 16 },
      { 'key.lvl': shapes.Level },
    );
    // A union reads back every member: compare with what the generated codec decodes, then with what was written.
    const back = maps.shapes.get(key)!;
    expect({ ...back, u: { word: back.u.word } }).toEqual(value);
    expect(back.u.bytes4).toEqual(Uint8Array.from([4, 3, 2, 1]));
    expectSame(
      dumped[0]!.formatted.value,
      back,
      'value',
      {},
      {
        'value.color': shapes.Color,
        'value.delta': shapes.Delta,
      },
    );
    const u = bpftoolJson<Dumped[]>(['map', 'dump', 'id', String(mapId(coll, 'unions'))]);
    expectSame(u[1]!.formatted.value, maps.unions.get(1), 'union', {});
  });
});

function mapId(coll: Collection, name: string): number {
  return mapInfo(coll.maps[name]!.fd).id;
}
