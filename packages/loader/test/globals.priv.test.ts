import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { u32 } from '@datapath/bpf-maps';
import { requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPacket, compile, generate, load, openObject, TcAct } from '../src/index.js';
import * as globals from './globals.gen.js';
import { bpfDir } from './helpers/fixtures.js';

let obj: string;
beforeAll(async () => {
  obj = (await compile({ files: [join(bpfDir, 'globals.bpf.c')] })).path;
});

const packet = buildPacket([
  { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
  { kind: 'ipv4', src: '10.244.0.1', dst: '10.244.0.2' },
  { kind: 'udp', sport: 1, dport: 2 },
]);

describe('mutable globals (.data/.bss)', () => {
  it('the checked-in test/globals.gen.ts is what the object generates', () => {
    expect(generate(readFileSync(obj), { source: 'globals.bpf.o' })).toBe(
      readFileSync(fileURLToPath(new URL('./globals.gen.ts', import.meta.url)), 'utf8'),
    );
  });

  it('a program counts into .bss, TypeScript reads the count; writing a .data flag changes the next verdict', (ctx) => {
    requireRoot(ctx);
    using coll = load(openObject(obj));
    const g = globals.openGlobals(coll);
    expect(g.runs).toBe(0n);
    expect(g.drop_all).toBe(1);
    expect(g.last).toEqual({ a: 7, b: 9 });
    const prog = coll.program('count');
    for (let i = 0; i < 5; i++) expect(prog.run({ data: packet }).retval).toBe(TcAct.SHOT);
    expect(g.runs).toBe(5n);
    expect(g.last).toEqual({ a: 7, b: packet.length });
    g.drop_all = 0;
    expect(prog.run({ data: packet }).retval).toBe(TcAct.OK);
    prog.run({ data: packet, repeat: 10 });
    expect(g.runs).toBe(16n);
    g.runs = 100n;
    prog.run({ data: packet });
    expect(g.runs).toBe(101n);
    // The untyped form, and its checks.
    expect(coll.globals('.data').read(u32, 0)).toBe(0);
    expect(() => coll.globals('.data').read(u32, 10)).toThrow(/outside the section/);
    expect(() => coll.globals('.rodata')).toThrow(expect.objectContaining({ code: 'NotSupported' }));
  });

  it('refuses access once the collection is closed', (ctx) => {
    requireRoot(ctx);
    const coll = load(openObject(obj));
    const g = globals.openGlobals(coll);
    coll.close();
    expect(() => g.runs).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });
});
