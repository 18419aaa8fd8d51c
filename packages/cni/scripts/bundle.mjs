#!/usr/bin/env node
// Bundles the datapath-cni reference plugin into one CommonJS file (dist/datapath-cni.cjs by default, or
// the directory given as argv[2]). Everything is inlined except koffi's native addon package, which
// install.mjs copies next to the bundle. CommonJS rather than ESM on purpose: an ESM bundle hoists every
// Node built-in import to the top of the file, so `node:child_process` (used only to exec a delegate, or
// clang) would load on every invocation; in CommonJS the `require()` stays inside the lazily initialised
// module that needs it. Usage: node scripts/bundle.mjs [outDir]
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'tsup';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = resolve(process.argv[2] ?? `${pkg}/dist`);

/** Bundles the plugin into `outDir/datapath-cni.mjs`; returns the file's path. */
export async function bundle(dir = outDir) {
  await build({
    entry: { 'datapath-cni': `${pkg}/src/plugin/main.ts` },
    outDir: dir,
    format: ['cjs'],
    platform: 'node',
    target: 'node22',
    bundle: true,
    splitting: false,
    treeshake: false, // rollup's tree shaking would hoist every require() to the top again
    minify: process.env.BUNDLE_MINIFY !== '0',
    sourcemap: false,
    dts: false,
    clean: false,
    silent: true,
    config: false,
    tsconfig: `${pkg}/tsconfig.json`,
    noExternal: [/.*/],
    external: ['@koromix/koffi-linux-x64', '@koromix/koffi-linux-arm64'],
    outExtension: () => ({ js: '.cjs' }),
    esbuildOptions(o) {
      o.legalComments = 'none';
      // koffi locates its native addon from import.meta; give CommonJS the equivalent.
      o.define = { ...o.define, 'import.meta.url': '__bundle_url', 'import.meta.dirname': '__dirname' };
      o.banner = { js: 'var __bundle_url = require("url").pathToFileURL(__filename).href;' };
      o.alias = Object.fromEntries(
        ['ipam', 'netdev', 'netlink', 'loader', 'libbpf', 'bpf-maps'].map((p) => [
          `@datapath/${p}`,
          `${pkg}/../${p}/src/index.ts`,
        ]),
      );
    },
  });
  return `${dir}/datapath-cni.cjs`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await bundle());
}
