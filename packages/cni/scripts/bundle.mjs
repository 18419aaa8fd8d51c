#!/usr/bin/env node
// Bundles the datapath-cni reference plugin into one CommonJS file (dist/datapath-cni.cjs by default, or
// the directory given as argv[2]) with esbuild (the one tsup drives). Everything is inlined except koffi's
// native addon package, which install.mjs copies next to the bundle.
// - CommonJS rather than ESM on purpose: an ESM bundle hoists every Node built-in import to the top of the
//   file, so `node:child_process` (used only to exec a delegate, or clang) would load on every invocation;
//   in CommonJS the `require()` stays inside the lazily initialised module that needs it.
// - node:crypto is replaced by a pure-JS SHA-256 / random stand-in (scripts/shims/crypto.ts): loading the
//   real module costs a short-lived process more than the hashing it is used for.
// - koffi is replaced by a lazy stand-in (scripts/shims/koffi.ts) that opens the native addon copied next
//   to the bundle as koffi.node on the first FFI call: koffi's own loader costs ≈8 ms (node:util and
//   platform detection) in a process that lives 40 ms.
// Usage: node scripts/bundle.mjs [outDir]
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = resolve(process.argv[2] ?? `${pkg}/dist`);
const require = createRequire(import.meta.url);
const esbuild = createRequire(require.resolve('tsup'))('esbuild');

/** Bundles the plugin into `outDir/datapath-cni.cjs`; returns the file's path. */
export async function bundle(dir = outDir) {
  const outfile = `${dir}/datapath-cni.cjs`;
  const cryptoShim = `${pkg}/scripts/shims/crypto.ts`;
  const koffiShim = `${pkg}/scripts/shims/koffi.ts`;
  await esbuild.build({
    entryPoints: [`${pkg}/src/plugin/main.ts`],
    outfile,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node22',
    minify: process.env.BUNDLE_MINIFY !== '0',
    treeShaking: true,
    legalComments: 'none',
    logLevel: 'warning',
    tsconfig: `${pkg}/tsconfig.json`,
    alias: Object.fromEntries(
      ['ipam', 'netdev', 'netlink', 'loader', 'libbpf', 'bpf-maps'].map((p) => [
        `@datapath/${p}`,
        `${pkg}/../${p}/src/index.ts`,
      ]),
    ),
    plugins: [
      {
        name: 'crypto-shim',
        setup(b) {
          b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: cryptoShim }));
          b.onResolve({ filter: /^koffi$/ }, () => ({ path: koffiShim }));
        },
      },
    ],
  });
  return outfile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await bundle());
}
