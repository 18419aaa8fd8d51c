// Where the native bpf(2) backend is built and found, and whether it can be built here: shared by
// build.mjs and the package's tests, so both follow one set of rules. (src/sys/libc.ts computes the same
// file name at run time from inside the bundle.)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The addon for this process's platform, architecture and Node module ABI. */
export function prebuildPath() {
  return join(
    root,
    'prebuilds',
    `${process.platform}-${process.arch}`,
    `bpf.abi${process.versions.modules}.node`,
  );
}

/**
 * Node's headers for exactly this Node's module ABI (a header set of another version would build an
 * addon this Node refuses to load), or undefined.
 */
export function nodeHeaders() {
  return [
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].find((dir) => {
    const version = join(dir, 'node_version.h');
    if (!existsSync(join(dir, 'node.h')) || !existsSync(version)) return false;
    return new RegExp(`#define NODE_MODULE_VERSION ${process.versions.modules}\\b`).test(
      readFileSync(version, 'utf8'),
    );
  });
}

/** The C++ compiler build.mjs runs. */
export const cxx = process.env.CXX ?? 'c++';

/** Why the addon cannot be built here, or undefined when it can. */
export function whyNotBuildable() {
  if (process.env.DATAPATH_NATIVE === '0') return 'DATAPATH_NATIVE=0';
  if (process.platform !== 'linux') return `platform ${process.platform}`;
  if (nodeHeaders() === undefined) return `no Node headers for module ABI ${process.versions.modules}`;
  if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) return `no C++ compiler (${cxx})`;
  return undefined;
}
