// @datapath/cni is the CNI spec library: importing it must load no native code (no FFI, no addon) and no
// socket or child-process module, so any plugin, on any platform, can use it. Checked in a fresh Node
// process through its loaded built-in modules (process.moduleLoadList) and its memory map
// (/proc/self/maps: no *.node addon, no libffi). The package is bundled from its sources first (zod stays
// external), so the check needs no build and sees exactly what src/ imports.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const pkg = resolve(fileURLToPath(new URL('..', import.meta.url)));
// Inside the package's own node_modules, so the bundle resolves zod as the package does.
const dir = join(pkg, 'node_modules', '.purity-check');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PROBE = `
const before = new Set(process.moduleLoadList);
const mod = await import(process.argv[1]);
const loaded = process.moduleLoadList.filter((m) => !before.has(m));
const { readFileSync } = await import('node:fs');
const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5] ?? '').filter(Boolean);
console.log(JSON.stringify({ exports: Object.keys(mod).length, loaded, maps: [...new Set(maps)] }));
`;

function probe(entry: string): { exports: number; loaded: string[]; maps: string[] } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE, entry], {
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

async function bundle(source: string, name: string): Promise<string> {
  const tsup = createRequire(import.meta.url).resolve('tsup');
  const esbuild = createRequire(tsup)('esbuild') as {
    build(o: Record<string, unknown>): Promise<unknown>;
  };
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, name);
  await esbuild.build({
    entryPoints: [source],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    packages: 'external',
    logLevel: 'silent',
  });
  return outfile;
}

const NATIVE_MODULES = /^NativeModule (child_process|net|dgram|worker_threads|internal\/child_process)$/;

describe('@datapath/cni loads no native code at import', () => {
  it('no child_process/net/dgram module, no *.node addon and no libffi in the process', async () => {
    const r = probe(await bundle(join(pkg, 'src/index.ts'), 'index.mjs'));
    expect(r.exports).toBeGreaterThan(20);
    expect(r.loaded.filter((m) => NATIVE_MODULES.test(m))).toEqual([]);
    expect(r.maps.filter((f) => f.endsWith('.node') || /libffi|koffi/.test(f))).toEqual([]);
  });

  it('the probe sees a native addon and child_process when a module loads them (it can fail)', async () => {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'impure.mjs');
    const koffi = createRequire(join(pkg, '../netlink/package.json')).resolve('koffi');
    writeFileSync(
      file,
      `import 'node:child_process';\nimport { createRequire } from 'node:module';\nexport const k = createRequire(import.meta.url)(${JSON.stringify(koffi)});\n`,
    );
    const r = probe(file);
    expect(r.loaded.some((m) => NATIVE_MODULES.test(m))).toBe(true);
    expect(r.maps.some((f) => f.endsWith('.node'))).toBe(true);
  });
});
