// Where the netlink addon is built and found, and whether it can be built here: shared by build.mjs and
// the package's tests. (src/sys/native.ts computes the same file name at run time.) The addon uses
// Node-API only, so one build serves every Node version from 22 on.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The addon for this process's platform and architecture. */
export function prebuildPath() {
  return join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'netlink.napi.node');
}

/** A directory with Node's `node_api.h`, or undefined. */
export function nodeHeaders() {
  return [
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].find((dir) => existsSync(join(dir, 'node_api.h')));
}

/** The C++ compiler build.mjs runs. */
export const cxx = process.env.CXX ?? 'c++';

/** Why the addon cannot be built here, or undefined when it can. */
export function whyNotBuildable() {
  if (process.env.DATAPATH_NATIVE === '0') return 'DATAPATH_NATIVE=0';
  if (process.platform !== 'linux') return `platform ${process.platform}`;
  if (nodeHeaders() === undefined) return 'no Node-API headers (node_api.h)';
  if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) return `no C++ compiler (${cxx})`;
  return undefined;
}
