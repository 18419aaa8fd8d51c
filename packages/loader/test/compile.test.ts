import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatapathError } from '@datapath/errors';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CompileError, type CompilerRunner, compile, configHeader } from '../src/index.js';

/** A fake compiler: writes a deterministic "object" for `-o` and counts its runs. */
function fakeRunner(identity = 'fake-clang 1'): CompilerRunner & { runs: string[][] } {
  const runs: string[][] = [];
  return {
    runs,
    identity: () => identity,
    async run(args, cwd) {
      runs.push([...args]);
      await new Promise((r) => setTimeout(r, 20));
      const out = args[args.indexOf('-o') + 1]!;
      const input = args[args.indexOf('-c') + 1]!;
      const text = readFileSync(resolve(cwd, input), 'utf8');
      if (text.includes('syntax error')) {
        const line = text.split('\n').findIndex((l) => l.includes('syntax error')) + 1;
        return {
          exitCode: 1,
          stderr: `${input}:${line}:5: error: expected ';' after expression\n1 error generated.\n`,
        };
      }
      writeFileSync(out, `OBJ ${args.join(' ')}`);
      return { exitCode: 0, stderr: '' };
    },
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dp-compile-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('compile', () => {
  it('runs the compiler once, then serves the same key from the cache without running it', async () => {
    const runner = fakeRunner();
    const opts = { source: 'int x;', cacheDir: dir, runner, mcpu: 'v3' as const, defines: { A: 1 } };
    const cold = await compile(opts);
    expect(cold.cached).toBe(false);
    expect(runner.runs).toHaveLength(1);
    const warm = await compile(opts);
    expect(warm).toEqual({ path: cold.path, key: cold.key, cached: true });
    expect(runner.runs).toHaveLength(1);
    expect(existsSync(cold.path)).toBe(true);
  });

  it('uses reproducible flags: -O2 -g --target=bpf, -mcpu, __NR_CPUS__, the multiarch include dir', async () => {
    const runner = fakeRunner();
    await compile({
      source: 'int x;',
      cacheDir: dir,
      runner,
      mcpu: 'v2',
      defines: { DEBUG: true, N: 4 },
      cflags: ['-Wextra'],
    });
    const args = runner.runs[0]!;
    expect(args).toEqual(
      expect.arrayContaining(['-O2', '-g', '--target=bpf', '-mcpu=v2', '-DDEBUG', '-DN=4', '-Wextra']),
    );
    expect(args.some((a) => /^-D__NR_CPUS__=\d+$/.test(a))).toBe(true);
    if (process.arch === 'x64') expect(args).toContain('-I/usr/include/x86_64-linux-gnu');
  });

  it('changes the key with the source, defines, config, flags and compiler identity', async () => {
    const base = { source: 'int x;', cacheDir: dir, mcpu: 'v3' as const };
    const keys = new Set<string>();
    for (const variant of [
      { ...base },
      { ...base, source: 'int y;' },
      { ...base, defines: { A: 2 } },
      { ...base, config: { MODE: 1 } },
      { ...base, cflags: ['-Wextra'] },
      { ...base, mcpu: 'v2' as const },
    ]) {
      keys.add((await compile({ ...variant, runner: fakeRunner() })).key);
    }
    keys.add((await compile({ ...base, runner: fakeRunner('fake-clang 2') })).key);
    expect(keys.size).toBe(7);
  });

  it('keys on the content of files and of headers under includeDirs', async () => {
    const src = join(dir, 'prog.c');
    const inc = join(dir, 'inc');
    const cache = join(dir, 'cache');
    writeFileSync(src, '#include "h.h"\n');
    rmSync(inc, { recursive: true, force: true });
    mkdirSync(inc);
    writeFileSync(join(inc, 'h.h'), '#define X 1\n');
    const runner = fakeRunner();
    const a = await compile({ files: [src], includeDirs: [inc], cacheDir: cache, runner, mcpu: 'v3' });
    const same = await compile({ files: [src], includeDirs: [inc], cacheDir: cache, runner, mcpu: 'v3' });
    writeFileSync(join(inc, 'h.h'), '#define X 2\n');
    const b = await compile({ files: [src], includeDirs: [inc], cacheDir: cache, runner, mcpu: 'v3' });
    expect(same.cached).toBe(true);
    expect(b.key).not.toBe(a.key);
    expect(runner.runs).toHaveLength(2);
  });

  it('compiles once per key under concurrency', async () => {
    const runner = fakeRunner();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => compile({ source: 'int z;', cacheDir: dir, runner, mcpu: 'v3' })),
    );
    expect(runner.runs).toHaveLength(1);
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
    expect(results.filter((r) => !r.cached)).toHaveLength(1);
  });

  it('turns diagnostics into a CompileError with file and line, and caches nothing', async () => {
    const runner = fakeRunner();
    const err = await compile({
      source: 'int a;\nint b;\nsyntax error here\n',
      cacheDir: dir,
      runner,
      mcpu: 'v3',
    }).catch((e) => e);
    expect(err).toBeInstanceOf(CompileError);
    expect(err).toMatchObject({ code: 'InvalidArgument', reason: 'CompileFailed' });
    expect(err.diagnostics[0]).toMatchObject({ file: 'source.bpf.c', line: 3, column: 5, severity: 'error' });
    expect(err.message).toContain('source.bpf.c:3:5');
    const again = await compile({
      source: 'int a;\nint b;\nsyntax error here\n',
      cacheDir: dir,
      runner,
      mcpu: 'v3',
    }).catch((e) => e);
    expect(again).toBeInstanceOf(CompileError);
    expect(runner.runs).toHaveLength(2);
  });

  it('rejects bad options before running anything', async () => {
    const runner = fakeRunner();
    const bad = [
      { cacheDir: dir, runner },
      { source: 'x', files: ['y.c'], cacheDir: dir, runner },
      { source: 'x', defines: { 'A B': 1 }, cacheDir: dir, runner },
      { source: 'x', config: { X: 1.5 }, cacheDir: dir, runner },
      { files: [join(dir, 'missing.c')], cacheDir: dir, runner },
    ];
    for (const opts of bad) {
      const err = await compile({ mcpu: 'v3', ...(opts as object) } as never).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'CompileError', code: 'InvalidArgument' });
      // Shares the SDK error base (code from the one closed set).
      expect(err).toBeInstanceOf(DatapathError);
    }
    expect(runner.runs).toHaveLength(0);
  });

  it('refuses a cache directory others can write to', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const runner = fakeRunner();
    await expect(compile({ source: 'int q;', cacheDir: shared, runner, mcpu: 'v3' })).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    expect(runner.runs).toHaveLength(0);
  });

  it('reports a missing compiler as CompilerNotFound', async () => {
    const runner: CompilerRunner = {
      identity: () => {
        throw new Error('clang not found in PATH');
      },
      run: () => Promise.reject(new Error('unreachable')),
    };
    await expect(compile({ source: 'x', cacheDir: dir, runner, mcpu: 'v3' })).rejects.toMatchObject({
      code: 'NotFound',
      reason: 'CompilerNotFound',
    });
  });
});

describe('compile across processes', () => {
  it('two processes compiling the same key run the compiler once', async () => {
    // A fake clang in PATH that logs each run and takes a while, so the two processes overlap.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const log = join(dir, 'runs.log');
    writeFileSync(
      join(bin, 'clang'),
      '#!/bin/sh\necho "$$" >> "$FAKE_CLANG_LOG"\nsleep 1.5\nprev=""\nfor a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\nprintf OBJ > "$out"\n',
      { mode: 0o755 },
    );
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `import(${JSON.stringify(index)}).then((m) => m.compile({ source: 'int shared;', cacheDir: ${JSON.stringify(join(dir, 'cache'))}, mcpu: 'v3' })).then((r) => console.log(JSON.stringify(r)))`;
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_CLANG_LOG: log };
    const one = () =>
      new Promise<{ path: string; cached: boolean }>((resolvePromise, reject) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', '-e', script],
          { env, cwd: fileURLToPath(new URL('..', import.meta.url)) },
          (err, stdout) => (err ? reject(err) : resolvePromise(JSON.parse(stdout.trim().split('\n').pop()!))),
        );
      });
    const [a, b] = await Promise.all([one(), one()]);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(a.path).toBe(b.path);
    expect([a.cached, b.cached].sort()).toEqual([false, true]);
  });
});

describe('configHeader', () => {
  it('renders sorted #define lines for integers, bigints and booleans', () => {
    expect(configHeader({ B: true, A: 7, C: 1n << 40n, D: false })).toBe(
      '/* Generated by @datapath/loader: do not edit. */\n#pragma once\n#define A 7\n#define B 1\n#define C 1099511627776ULL\n#define D 0\n',
    );
  });
});
