#!/usr/bin/env node
// Bundles the datapath-cni reference plugin from the workspace sources into one CommonJS file
// (dist/datapath-cni.cjs by default, or the directory given as argv[2]) with esbuild (the one tsup drives),
// and copies the loader (scripts/run.cjs) beside it: `pnpm run build` ships both in the npm tarball, where
// the installer (src/install.ts) takes them from. Everything is inlined except koffi's native addon, which
// the installer copies next to the installed bundle.
// - CommonJS rather than ESM on purpose: an ESM bundle hoists every Node built-in import to the top of the
//   file, so `node:child_process` (used only to exec a delegate, or clang) would load on every invocation;
//   in CommonJS the `require()` stays inside the lazily initialised module that needs it.
// - node:crypto is replaced by a pure-JS SHA-256 / random stand-in (src/shims/crypto.ts): loading the
//   real module costs a short-lived process more than the hashing it is used for.
// - koffi is replaced by a lazy stand-in (src/shims/koffi.ts) that opens the native addon copied next
//   to the bundle as koffi.node: koffi's own loader costs ≈8 ms (node:util and platform detection) in a
//   process that lives 40 ms.
// The same choices are what bundlePlugin (src/install.ts) applies to a user's own plugin.
// Usage: node scripts/bundle.mjs [outDir]
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = resolve(process.argv[2] ?? `${pkg}/dist`);
const require = createRequire(import.meta.url);
const esbuild = createRequire(require.resolve('tsup'))('esbuild');

/** Bundles the plugin into `dir/datapath-cni.cjs` (and copies run.cjs there); returns the bundle's path. */
export async function bundle(dir = outDir) {
  const outfile = `${dir}/datapath-cni.cjs`;
  const cryptoShim = `${pkg}/src/shims/crypto.ts`;
  const koffiShim = `${pkg}/src/shims/koffi.ts`;
  mkdirSync(dir, { recursive: true });
  await esbuild.build({
    entryPoints: [`${pkg}/src/main.ts`],
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
      ['cni', 'http', 'ipam', 'netdev', 'netlink', 'loader', 'libbpf', 'bpf-maps'].map((p) => [
        `@datapath/${p}`,
        `${pkg}/../${p}/src/index.ts`,
      ]),
    ),
    plugins: [
      {
        name: 'datapath-shims',
        setup(b) {
          b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: cryptoShim }));
          b.onResolve({ filter: /^koffi$/ }, () => ({ path: koffiShim }));
          // Subpath entries of workspace packages, to their sources (the alias above maps package roots).
          b.onResolve({ filter: /^@datapath\/ipam\/file-store$/ }, () => ({
            path: `${pkg}/../ipam/src/file-store.ts`,
          }));
        },
      },
    ],
  });
  copyFileSync(`${pkg}/scripts/run.cjs`, `${dir}/run.cjs`);
  return outfile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await bundle());
}
