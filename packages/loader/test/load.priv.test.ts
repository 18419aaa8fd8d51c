import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { u32, u64 } from '@datapath/bpf-maps';
import { DatapathError } from '@datapath/errors';
import { bpftoolJson, requireRoot, uniqueName } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BpfError,
  CompileError,
  type CompilerRunner,
  clangRunner,
  compile,
  load,
  loadAsync,
  openObject,
  VerifierError,
} from '../src/index.js';

const bpfDir = fileURLToPath(new URL('./bpf/', import.meta.url));
let cacheDir: string;
let counterObj: string;

beforeAll(async () => {
  cacheDir = mkdtempSync(join(tmpdir(), 'dp-loader-cache-'));
  counterObj = (await compile({ files: [join(bpfDir, 'counter.bpf.c')], cacheDir })).path;
});
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

function counting(): CompilerRunner & { runs: number; args: string[][] } {
  const real = clangRunner();
  const r = {
    runs: 0,
    args: [] as string[][],
    identity: () => real.identity(),
    run(args: readonly string[], cwd: string) {
      r.runs++;
      r.args.push([...args]);
      return real.run(args, cwd);
    },
  };
  return r;
}

describe('compile with clang', () => {
  it('produces a loadable object, and a cache hit does not run clang', async (ctx) => {
    requireRoot(ctx);
    const runner = counting();
    const source = `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile __u32 answer = ${process.pid};
SEC("xdp") int pass(struct xdp_md *ctx) { return answer ? XDP_PASS : XDP_DROP; }
char LICENSE[] SEC("license") = "GPL";
`;
    const cold = await compile({ source, cacheDir, runner, config: { EXTRA: 1 } });
    expect(cold.cached).toBe(false);
    expect(runner.runs).toBe(1);
    // -mcpu is probed from the kernel: Linux ≥ 5.1 accepts the v3 ISA (32-bit jumps).
    expect(runner.args[0]).toContain('-mcpu=v3');
    const warm = await compile({ source, cacheDir, runner, config: { EXTRA: 1 } });
    expect(warm).toMatchObject({ cached: true, path: cold.path });
    expect(runner.runs).toBe(1);
    // A runner that cannot run at all still gets the cached object.
    const broken: CompilerRunner = {
      identity: runner.identity,
      run: () => Promise.reject(new Error('must not run')),
    };
    expect((await compile({ source, cacheDir, runner: broken, config: { EXTRA: 1 } })).path).toBe(cold.path);
    const spec = openObject(cold.path);
    expect(spec.getConstant('answer')).toBe(process.pid);
    using coll = load(spec);
    expect(coll.program('pass').info().typeName).toBe('xdp');
  });

  it('reports a compile error with the file and line', async (ctx) => {
    requireRoot(ctx);
    const err = await compile({ source: '#include <linux/bpf.h>\n\nint broken( {\n', cacheDir }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(CompileError);
    expect([err.code, err.reason]).toEqual(['InvalidArgument', 'CompileFailed']);
    expect(err.diagnostics.find((d: { severity: string }) => d.severity === 'error')).toMatchObject({
      file: 'source.bpf.c',
      line: 3,
    });
    expect(readdirSync(cacheDir).filter((f) => f.startsWith('tmp-'))).toEqual([]);
  });
});

describe('openObject and load', () => {
  it('describes maps, programs and typed constants, and checks constant types', (ctx) => {
    requireRoot(ctx);
    const spec = openObject(counterObj);
    expect(spec.maps.counters).toMatchObject({
      type: 2,
      keySize: 4,
      valueSize: 8,
      maxEntries: 4,
      pinning: 'none',
    });
    expect(spec.maps.shared).toMatchObject({ type: 1, pinning: 'byName' });
    expect(Object.values(spec.programs).map((p) => [p.name, p.section, p.typeName])).toEqual([
      ['count_drop', 'tc', 'sched_cls'],
      ['count_pass', 'tc', 'sched_cls'],
      ['xdp_count', 'xdp', 'xdp'],
    ]);
    expect(spec.constants.port).toMatchObject({ kind: 'int', signed: false, size: 2 });
    expect(spec.getConstant('port')).toBe(9);
    spec.setConstant('port', 65535);
    expect(() => spec.setConstant('port', 65536)).toThrow(BpfError);
    expect(() => spec.setConstant('port', 'x' as never)).toThrow(/expects an integer/);
    expect(() => spec.setConstant('nope', 1)).toThrow(expect.objectContaining({ code: 'NotFound' }));
    const copy = spec.copy();
    copy.setConstant('port', 1);
    expect(spec.getConstant('port')).toBe(65535);
  });

  it('exposes loaded maps as @datapath/bpf-maps objects, raw or typed, checked against the map', (ctx) => {
    requireRoot(ctx);
    const spec = openObject(counterObj);
    spec.maps.shared!.pinning = 'none';
    const coll = load(spec);
    try {
      const counters = coll.map('counters', { key: u32, value: u64 });
      expect(counters.kind).toBe('array');
      if (counters.kind !== 'array') return;
      counters.set(2, 42n);
      expect(counters.get(2)).toBe(42n);
      const raw = coll.map('counters');
      expect(raw.kind).toBe('array');
      if (raw.kind === 'array') expect([...(raw.get(2) as Uint8Array)]).toEqual([42, 0, 0, 0, 0, 0, 0, 0]);
      const id = coll.map('counters').id;
      const dump = bpftoolJson<Array<{ key: string[]; value: string[] }>>(['map', 'dump', 'id', String(id)]);
      expect(dump[2]?.value[0]).toBe('0x2a');
      expect(() => coll.map('counters', { key: u32, value: u32 })).toThrow(
        expect.objectContaining({ code: 'Incompatible' }),
      );
      expect(() => coll.map('nope')).toThrow(expect.objectContaining({ code: 'NotFound' }));
    } finally {
      coll.close();
    }
    expect(() => coll.map('counters')).toThrow(expect.objectContaining({ code: 'BadFd' }));
  });

  it('throws VerifierError carrying the complete verifier log', async (ctx) => {
    requireRoot(ctx);
    const obj = (await compile({ files: [join(bpfDir, 'reject.bpf.c')], cacheDir })).path;
    // A tiny first buffer forces the log to grow: the error must still carry all of it.
    const err = (() => {
      try {
        load(openObject(obj), { logSize: 256 });
      } catch (e) {
        return e;
      }
    })() as VerifierError;
    expect(err).toBeInstanceOf(VerifierError);
    expect(err).toBeInstanceOf(BpfError);
    expect(err.program).toBe('unchecked');
    // A rejected program is what is wrong, not the caller's privileges (issue 17).
    expect([err.code, err.reason, err.errnoName]).toEqual(['InvalidArgument', 'VerifierRejected', 'EACCES']);
    expect(err).toBeInstanceOf(DatapathError);
    expect(err.truncated).toBe(false);
    expect(err.log).toContain('invalid access to packet');
    expect(err.log).toMatch(/processed \d+ insns/);
    expect(err.log.length).toBeGreaterThan(256);
  });

  it('loadAsync: the same VerifierError and log, no pin left on failure, abort before the kernel call', async (ctx) => {
    requireRoot(ctx);
    const obj = (await compile({ files: [join(bpfDir, 'reject.bpf.c')], cacheDir })).path;
    const caught = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        return e as VerifierError;
      }
      throw new Error('expected a rejection');
    };
    const syncErr = await caught(() => load(openObject(obj), { logSize: 256 }));
    const asyncErr = await caught(() => loadAsync(openObject(obj), { logSize: 256 }));
    expect(asyncErr).toBeInstanceOf(VerifierError);
    const fields = (e: VerifierError) => [
      e.code,
      e.reason,
      e.errnoName,
      e.program,
      e.truncated,
      e.message,
      e.log,
    ];
    expect(fields(asyncErr)).toEqual(fields(syncErr));

    const pinned = (await compile({ files: [join(bpfDir, 'reject-pinned.bpf.c')], cacheDir })).path;
    const root = join('/sys/fs/bpf', uniqueName());
    try {
      await expect(loadAsync(openObject(pinned), { pinDir: join(root, 'maps') })).rejects.toBeInstanceOf(
        VerifierError,
      );
      expect(existsSync(root)).toBe(false);
      // Aborted before the call: nothing created. A load waiting behind another one can still be aborted.
      const ac = new AbortController();
      ac.abort();
      await expect(
        loadAsync(openObject(counterObj), { pinDir: root, signal: ac.signal }),
      ).rejects.toMatchObject({
        code: 'Interrupted',
        reason: 'Aborted',
      });
      expect(existsSync(root)).toBe(false);
      const first = loadAsync(openObject(counterObj), { pinDir: root });
      const queued = new AbortController();
      const second = loadAsync(openObject(counterObj), { pinDir: root, signal: queued.signal });
      queued.abort();
      await expect(second).rejects.toMatchObject({ code: 'Interrupted', reason: 'Aborted' });
      (await first).close();
      expect(readdirSync(root)).toEqual(['shared']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a failed load leaves no pin and no pin directory behind', async (ctx) => {
    requireRoot(ctx);
    const obj = (await compile({ files: [join(bpfDir, 'reject-pinned.bpf.c')], cacheDir })).path;
    const root = join('/sys/fs/bpf', uniqueName());
    try {
      expect(() => load(openObject(obj), { pinDir: join(root, 'maps') })).toThrow(VerifierError);
      expect(existsSync(root)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reuses a compatible pinned map, refuses an incompatible one with the differences, replaces on request', (ctx) => {
    requireRoot(ctx);
    const pinDir = join('/sys/fs/bpf', uniqueName());
    try {
      const first = load(openObject(counterObj), { pinDir });
      const pinned = bpftoolJson<{ id: number }>(['map', 'show', 'pinned', join(pinDir, 'shared')]);
      first.close();
      // Compatible: reused (same map id).
      const again = load(openObject(counterObj), { pinDir });
      expect(bpftoolJson<{ id: number }>(['map', 'show', 'pinned', join(pinDir, 'shared')]).id).toBe(
        pinned.id,
      );
      again.close();
      // Incompatible: a typed error listing the difference, the pin untouched.
      const bigger = openObject(counterObj);
      bigger.maps.shared!.maxEntries = 32;
      const err = (() => {
        try {
          load(bigger, { pinDir });
        } catch (e) {
          return e;
        }
      })() as BpfError;
      expect(err).toBeInstanceOf(BpfError);
      expect(err.code).toBe('Incompatible');
      expect(err.message).toContain('max_entries 16 (pinned) ≠ 32 (spec)');
      expect(readdirSync(pinDir)).toEqual(['shared']);
      expect(bpftoolJson<{ id: number }>(['map', 'show', 'pinned', join(pinDir, 'shared')]).id).toBe(
        pinned.id,
      );
      // Opt-in replacement: a new map with 32 entries, no leftover ":pending" pin.
      using replaced = load(bigger, { pinDir, replaceIncompatible: ['shared'] });
      const now = bpftoolJson<{ id: number; max_entries: number }>([
        'map',
        'show',
        'pinned',
        join(pinDir, 'shared'),
      ]);
      expect(now.max_entries).toBe(32);
      expect(now.id).not.toBe(pinned.id);
      expect(readdirSync(pinDir)).toEqual(['shared']);
      expect(replaced.map('shared').maxEntries).toBe(32);
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  });

  it('refuses a pinned map without pinDir and a pin directory outside bpffs, leaving nothing behind', (ctx) => {
    requireRoot(ctx);
    expect(() => load(openObject(counterObj))).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    const off = join(tmpdir(), uniqueName());
    expect(() => load(openObject(counterObj), { pinDir: off })).toThrow(/not on a bpffs mount/);
    expect(existsSync(off)).toBe(false);
  });
});
