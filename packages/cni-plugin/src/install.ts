// The installer: puts a CNI plugin (datapath-cni, or a user's own written with runPlugin) into a CNI bin
// directory as a launcher plus a support directory:
//   BIN/NAME                  a sh launcher that execs an absolute Node (>= 22) on run.cjs, whatever PATH
//                             the container runtime passes (a runtime's minimal environment has none);
//                             for datapath-cni with the C shim built (native/shim.c), the shim instead: it
//                             forwards agent-mode configs to the agent itself and execs NAME.d/launch (that
//                             same sh launcher) for every other config
//   BIN/NAME.d/NAME.cjs       the plugin, one CommonJS bundle
//   BIN/NAME.d/run.cjs        loads the bundle through a V8 code cache per command (scripts/run.cjs)
//   BIN/NAME.d/koffi.node     koffi's native addon for this platform and libc (only when the bundle uses it)
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatapathError } from '@datapath/errors';
import { runSync } from './sys/exec.js';

/** The oldest Node major version a plugin installed by {@link installPlugin} runs on. */
export const MIN_NODE_MAJOR = 22;

/**
 * What went wrong in {@link installPlugin} or {@link bundlePlugin}: `InvalidArgument`, `NotSupported`,
 * `NotFound` (the SDK-wide codes), or `Failed` (a bundle or an installed launcher that did not work:
 * code `Unknown`, reason `Failed`).
 */
export type InstallErrorCode = 'InvalidArgument' | 'NotSupported' | 'NotFound' | 'Failed';

/** An installation or bundling failure (a `DatapathError` of `@datapath/errors`); `code` says which kind. */
export class InstallError extends DatapathError {
  /** Always `'InstallError'`. */
  override readonly name: string = 'InstallError';
  /** Creates one. */
  constructor(why: InstallErrorCode, message: string, options?: { cause?: unknown }) {
    super(why === 'Failed' ? 'Unknown' : why, message, {
      reason: why === 'Failed' ? 'Failed' : undefined,
      cause: options?.cause,
    });
  }
}

/** Options of {@link installPlugin}. */
export interface InstallOptions {
  /** The CNI bin directory (created when missing), e.g. `/opt/cni/bin`. */
  binDir: string;
  /** The plugin's name: the launcher's file name, the `type` a network config names. Default `datapath-cni`. */
  name?: string;
  /**
   * The plugin as one CommonJS file (made by {@link bundlePlugin} or your own esbuild run). Default: the
   * `datapath-cni` bundle shipped in this package.
   */
  bundle?: string;
  /** Absolute path of the Node the launcher runs (major ≥ 22). Default: the Node running the installer. */
  node?: string;
  /** Copy koffi's native addon next to the bundle: `auto` (default) when the bundle opens it. */
  koffi?: boolean | 'auto';
  /** Run the installed launcher with `CNI_COMMAND=VERSION` and check its answer (default `true`). */
  verify?: boolean;
  /**
   * Put datapath-cni's agent-mode forwarder, a small C program (`native/shim.c`, built by the package build
   * when a C compiler is there), in front of the Node plugin: agent-mode invocations then never start Node.
   * `auto` (default): when the bundle is datapath-cni's and the shim was built; `true`: required; `false`:
   * the Node client in the bundle forwards agent mode.
   */
  shim?: boolean | 'auto';
}

/** What {@link installPlugin} wrote. */
export interface Installation {
  /** The launcher: `binDir/name`. */
  launcher: string;
  /** The support directory: `binDir/name.d`. */
  supportDir: string;
  /** The Node the launcher runs. */
  node: string;
  /** Its version (`v24.1.0`). */
  nodeVersion: string;
  /**
   * What a runtime execs first: `shim` (the C forwarder, agent mode without Node) or `node` (the sh launcher;
   * agent mode goes through the bundle's Node client).
   */
  forwarder: 'shim' | 'node';
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const here = dirname(fileURLToPath(import.meta.url));

/** The first of `candidates` (relative to this module) that exists. */
function asset(what: string, candidates: readonly string[]): string {
  for (const c of candidates) {
    const f = resolve(here, c);
    if (existsSync(f)) return f;
  }
  throw new InstallError(
    'NotFound',
    `${what} not found (looked for ${candidates.join(', ')} next to ${here})`,
  );
}

/** The version of the Node at `node`, checked to be at least {@link MIN_NODE_MAJOR}. */
function nodeVersionOf(node: string): string {
  if (!isAbsolute(node)) {
    throw new InstallError('InvalidArgument', `node must be an absolute path, got "${node}"`);
  }
  let version = process.version;
  if (node !== process.execPath) {
    const r = runSync(node, ['-p', 'process.version'], {});
    if (r.error || r.status !== 0) {
      throw new InstallError(
        'NotFound',
        `cannot run ${node}: ${r.error?.message ?? r.stderr.trim() ?? `status ${r.status}`}`,
      );
    }
    version = r.stdout.trim();
  }
  const major = Number(/^v(\d+)\./.exec(version)?.[1] ?? 0);
  if (major < MIN_NODE_MAJOR) {
    throw new InstallError(
      'NotSupported',
      `a CNI plugin installed by @datapath/cni-plugin needs Node >= ${MIN_NODE_MAJOR}; ${node} is ${version}`,
    );
  }
  return version;
}

/** koffi's native addon for this platform and libc (what koffi's own loader would pick at every start). */
function koffiAddon(): string {
  const arch = ({ x64: 'x64', arm64: 'arm64' } as Record<string, string>)[process.arch];
  if (arch === undefined || process.platform !== 'linux') {
    throw new InstallError(
      'NotSupported',
      `koffi's addon: linux x64/arm64 only, not ${process.platform} ${process.arch}`,
    );
  }
  try {
    const req = createRequire(import.meta.url);
    const netlinkReq = createRequire(req.resolve('@datapath/netlink/package.json'));
    const koffiReq = createRequire(join(dirname(netlinkReq.resolve('koffi')), 'package.json'));
    const nativeDir = dirname(koffiReq.resolve(`@koromix/koffi-linux-${arch}/package.json`));
    const header = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
    const libc = header.header?.glibcVersionRuntime ? 'linux' : 'musl';
    const addon = join(nativeDir, `${libc}_${arch}`, 'koffi.node');
    if (!existsSync(addon)) throw new Error(`${addon} does not exist`);
    return addon;
  } catch (err) {
    if (err instanceof InstallError) throw err;
    throw new InstallError('NotFound', `koffi's native addon not found: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

const shQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Writes `data` to `file` through a temporary file and a rename: a reader never sees half of it. */
function writeAtomic(file: string, data: string | Buffer, mode?: number): void {
  const tmp = join(dirname(file), `.${process.pid}.tmp`);
  writeFileSync(tmp, data);
  if (mode !== undefined) chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/**
 * Installs a CNI plugin into a CNI bin directory: a launcher `binDir/name` that runs the bundle with an
 * absolute Node ≥ 22 (never `#!/usr/bin/env node`, which a runtime's minimal PATH may resolve to an older
 * Node or to none), through a V8 code cache per command, with koffi's addon beside it when the bundle
 * opens it. Then, unless `verify: false`, runs the launcher with `CNI_COMMAND=VERSION` as a runtime would.
 * Reinstalling over an earlier installation replaces it (stale code caches are removed).
 *
 * @throws {@link InstallError} `InvalidArgument` (bad name or paths), `NotSupported` (Node < 22, not
 * linux x64/arm64), `NotFound` (bundle, Node or koffi addon missing), `Failed` (the installed plugin does
 * not answer VERSION).
 * @example Installing your own plugin
 * ```ts
 * import { bundlePlugin, installPlugin } from '@datapath/cni-plugin';
 * const bundle = await bundlePlugin({ entry: './my-plugin.ts', outFile: '/tmp/my-plugin.cjs' });
 * installPlugin({ binDir: '/opt/cni/bin', name: 'my-plugin', bundle });
 * ```
 */
export function installPlugin(options: InstallOptions): Installation {
  const name = options.name ?? 'datapath-cni';
  if (!NAME.test(name)) {
    throw new InstallError('InvalidArgument', `plugin name "${name}" must match ${NAME.source}`);
  }
  if (typeof options.binDir !== 'string' || options.binDir === '') {
    throw new InstallError('InvalidArgument', 'binDir is required (e.g. /opt/cni/bin)');
  }
  const node = options.node ?? process.execPath;
  const nodeVersion = nodeVersionOf(node);
  const bundle =
    options.bundle !== undefined
      ? resolve(options.bundle)
      : asset('the datapath-cni bundle (build the package first)', [
          'datapath-cni.cjs',
          '../dist/datapath-cni.cjs',
        ]);
  if (!existsSync(bundle)) throw new InstallError('NotFound', `bundle ${bundle} does not exist`);
  const runner = asset('run.cjs', ['run.cjs', '../scripts/run.cjs']);
  const code = readFileSync(bundle);
  const wantKoffi =
    options.koffi === 'auto' || options.koffi === undefined ? code.includes('koffi.node') : options.koffi;
  const addon = wantKoffi ? koffiAddon() : undefined;

  const shim = shimBinary(options.shim ?? 'auto', options.bundle);
  const binDir = resolve(options.binDir);
  const support = join(binDir, `${name}.d`);
  mkdirSync(support, { recursive: true });
  // Leftovers of earlier layouts and the previous bundle's code caches.
  for (const old of ['node_modules', '.cache']) rmSync(join(support, old), { recursive: true, force: true });
  for (const f of readdirSync(support)) if (f.endsWith('.v8cache')) rmSync(join(support, f), { force: true });
  writeAtomic(join(support, `${name}.cjs`), code);
  writeAtomic(join(support, 'run.cjs'), readFileSync(runner));
  if (addon) writeAtomic(join(support, 'koffi.node'), readFileSync(addon));
  else rmSync(join(support, 'koffi.node'), { force: true });
  const launcher = join(binDir, name);
  writeAtomic(
    shim === undefined ? launcher : join(support, 'launch'),
    `#!/bin/sh
# ${name} launcher, written by @datapath/cni-plugin's installer: runs the bundled plugin with Node
# ${nodeVersion} by absolute path, whatever PATH the container runtime passes.
unset NODE_OPTIONS NODE_EXTRA_CA_CERTS
exec ${shQuote(node)} ${shQuote(join(support, 'run.cjs'))} "$@"
`,
    0o755,
  );
  if (shim !== undefined) writeAtomic(launcher, readFileSync(shim), 0o755);
  else rmSync(join(support, 'launch'), { force: true });
  if (options.verify !== false) {
    const r = runSync(launcher, [], { CNI_COMMAND: 'VERSION' }, '');
    let ok = false;
    try {
      ok =
        r.status === 0 &&
        Array.isArray((JSON.parse(r.stdout) as { supportedVersions?: unknown }).supportedVersions);
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new InstallError(
        'Failed',
        `installed ${launcher} but it does not answer VERSION (status ${r.status}): ${r.stdout}${r.stderr}`.trim(),
      );
    }
  }
  return {
    launcher,
    supportDir: support,
    node,
    nodeVersion,
    forwarder: shim === undefined ? 'node' : 'shim',
  };
}

/** The built agent-mode shim to install, per the `shim` option, or undefined. */
function shimBinary(want: boolean | 'auto', bundle: string | undefined): string | undefined {
  if (want === false) return undefined;
  const candidates = ['datapath-cni-shim', '../dist/datapath-cni-shim'];
  const found = candidates.map((c) => resolve(here, c)).find((f) => existsSync(f));
  if (want === true) {
    if (found === undefined)
      throw new InstallError(
        'NotFound',
        `the agent-mode shim is not built (no dist/datapath-cni-shim: the package build needs a C compiler)`,
      );
    return found;
  }
  // auto: only in front of datapath-cni itself (another plugin's configs may use "mode" for their own ends).
  const ours = bundle === undefined || basename(bundle) === 'datapath-cni.cjs';
  return ours ? found : undefined;
}

/** Options of {@link bundlePlugin}. */
export interface BundleOptions {
  /** The plugin's entry file (TypeScript or JavaScript) that calls `runPlugin` from `@datapath/cni`. */
  entry: string;
  /** Where to write the bundle (one CommonJS file). */
  outFile: string;
  /** Minify (default `true`). */
  minify?: boolean;
  /** Import specifiers to redirect (esbuild `alias`), e.g. a workspace package to its sources. */
  alias?: Record<string, string>;
}

/** The part of esbuild's API {@link bundlePlugin} uses. */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ errors: unknown[] }>;
}

/**
 * Bundles a plugin into one CommonJS file for {@link installPlugin}, with esbuild (an optional peer
 * dependency: `npm install -D esbuild`). `@datapath/netlink`'s FFI is redirected to the koffi addon the
 * installer copies next to the bundle, and `node:crypto` to a small pure-JS stand-in (both cut the start-up
 * time of a process that lives a few tens of milliseconds).
 *
 * @throws {@link InstallError} `NotFound` when esbuild is not installed, `Failed` when bundling fails.
 * @example Bundling a plugin written with runPlugin
 * ```ts
 * import { bundlePlugin } from '@datapath/cni-plugin';
 * const file = await bundlePlugin({ entry: './my-plugin.ts', outFile: './dist/my-plugin.cjs' });
 * ```
 */
export async function bundlePlugin(options: BundleOptions): Promise<string> {
  let esbuild: Esbuild;
  try {
    esbuild = (await import('esbuild')) as unknown as Esbuild;
  } catch (err) {
    throw new InstallError('NotFound', 'bundlePlugin needs esbuild: npm install -D esbuild', { cause: err });
  }
  const koffiShim = asset('the koffi shim', ['shims/koffi.js', 'shims/koffi.ts']);
  const cryptoShim = asset('the crypto shim', ['shims/crypto.js', 'shims/crypto.ts']);
  const outFile = resolve(options.outFile);
  try {
    await esbuild.build({
      entryPoints: [resolve(options.entry)],
      outfile: outFile,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node22',
      minify: options.minify !== false,
      treeShaking: true,
      legalComments: 'none',
      logLevel: 'silent',
      ...(options.alias ? { alias: options.alias } : {}),
      plugins: [
        {
          name: 'datapath-shims',
          setup(b: { onResolve(o: { filter: RegExp }, cb: () => { path: string }): void }) {
            b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: cryptoShim }));
            b.onResolve({ filter: /^koffi$/ }, () => ({ path: koffiShim }));
          },
        },
      ],
    });
  } catch (err) {
    throw new InstallError('Failed', `bundling ${options.entry} failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return outFile;
}
