#!/usr/bin/env node
// Bundles the datapath-cni reference plugin into one ESM file (dist/datapath-cni.mjs by default, or the
// directory given as argv[2]). Everything is inlined except koffi's native addon package, which
// install.mjs copies next to the bundle. Usage: node scripts/bundle.mjs [outDir]
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
    format: ['esm'],
    platform: 'node',
    target: 'node22',
    bundle: true,
    splitting: false,
    treeshake: true,
    minify: process.env.BUNDLE_MINIFY !== '0',
    sourcemap: false,
    dts: false,
    clean: false,
    silent: true,
    config: false,
    tsconfig: `${pkg}/tsconfig.json`,
    noExternal: [/.*/],
    external: ['@koromix/koffi-linux-x64', '@koromix/koffi-linux-arm64'],
    outExtension: () => ({ js: '.mjs' }),
    esbuildOptions(o) {
      o.legalComments = 'none';
      o.alias = Object.fromEntries(
        ['ipam', 'netdev', 'netlink', 'loader', 'libbpf', 'bpf-maps'].map((p) => [
          `@datapath/${p}`,
          `${pkg}/../${p}/src/index.ts`,
        ]),
      );
    },
  });
  return `${dir}/datapath-cni.mjs`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await bundle());
}
