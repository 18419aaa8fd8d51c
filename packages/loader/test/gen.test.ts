import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { compile, generate } from '../src/index.js';
import { bpfDir } from './helpers/fixtures.js';
import { expectLayoutsMatch } from './helpers/layouts.js';
import * as shapes from './shapes.gen.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** How the checked-in test/shapes.gen.ts is made (the test below proves it current). */
const SHAPES_OPTIONS = { source: 'shapes.bpf.o', types: ['event'] };
let shapesObj: Uint8Array;

beforeAll(async () => {
  shapesObj = readFileSync((await compile({ files: [join(bpfDir, 'shapes.bpf.c')] })).path);
});

describe('generate', () => {
  it('the checked-in test/shapes.gen.ts is what the object generates, byte for byte, every time', () => {
    const a = generate(shapesObj, SHAPES_OPTIONS);
    expect(generate(shapesObj, SHAPES_OPTIONS)).toBe(a);
    expect(a).toBe(readFileSync(join(here, 'shapes.gen.ts'), 'utf8'));
  });

  it('gives every struct and union the size and field offsets of bpftool btf dump', async () => {
    const path = (await compile({ files: [join(bpfDir, 'shapes.bpf.c')] })).path;
    expect(Object.keys(shapes.types).sort()).toEqual([
      'either',
      'event',
      'inner',
      'packed_rec',
      'shape_key',
      'shape_value',
    ]);
    expectLayoutsMatch(shapes.types, path);
  });

  it('types maps, enums, constants and programs', () => {
    expect(shapes.mapSpecs.shapes).toMatchObject({
      type: 'hash',
      keySize: 8,
      valueSize: 112,
      maxEntries: 64,
    });
    expect(shapes.mapSpecs.events).toEqual({ type: 'ringbuf', maxEntries: 4096, keySize: 0, valueSize: 0 });
    expect(shapes.Color).toEqual({ RED: 1, GREEN: 2, BLUE: 40000 });
    expect(shapes.Delta).toEqual({ MINUS: -5, PLUS: 5 });
    expect(shapes.level.size).toBe(1);
    expect(shapes.constantDefaults).toEqual({
      limit: 42,
      offset: -7n,
      enabled: true,
      favourite: shapes.Color.GREEN,
      label: 'shapes',
      origin: { a: 1, b: -2, c: 3 },
    });
    expect(shapes.programSections).toEqual({ touch: 'tc' });
    // An enum codec refuses a value outside the enum.
    expect(() => shapes.color.encode(3 as never, new DataView(new ArrayBuffer(4)), 0)).toThrow(
      /not one of 1, 2, 40000/,
    );
  });

  it('refuses pointers and bitfields, naming the field', () => {
    expect(() => generate(shapesObj, { types: ['with_ptr'] })).toThrow(
      /struct with_ptr: field p is a pointer/,
    );
    expect(() => generate(shapesObj, { types: ['no_such_type'] })).toThrow(
      /no struct, union or enum named no_such_type/,
    );
    expect(() => generate(shapesObj, { codecs: { 'shape_key.port': 'ipv4' } })).toThrow(
      /field port: codec ipv4 is 4 bytes, the field 2/,
    );
  });

  it('refuses a bitfield layout unless its map is skipped', async () => {
    const obj = readFileSync((await compile({ files: [join(bpfDir, 'bitfield.bpf.c')] })).path);
    expect(() => generate(obj)).toThrow(/struct flag_key: field egress is a bitfield \(1 bits\)/);
    expect(generate(obj, { skipMaps: ['flags'] })).toContain('export const plainKey = struct(');
  });
});
