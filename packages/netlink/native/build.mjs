#!/usr/bin/env node
// Builds the netlink addon (netlink.cc: sockets created inside a namespace, netlink exchanges on libuv's
// threadpool) into prebuilds/<platform>-<arch>/netlink.napi.node, where src/sys/native.ts looks for it.
// It is optional: without a C++ compiler or Node's headers the build says so, and the async forms run
// their system calls on the calling thread. A compile error with both present fails the build.
// DATAPATH_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cxx, nodeHeaders, prebuildPath, whyNotBuildable } from './where.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = prebuildPath();
const why = whyNotBuildable();
if (why !== undefined) {
  console.log(`@datapath/netlink: native addon not built (${why}); async calls run on the calling thread`);
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
const tmp = join(dirname(out), `netlink.${process.pid}.tmp.node`);
const args = ['-O2', '-fPIC', '-shared', '-std=c++20', '-fvisibility=hidden', '-Wall', '-Werror', '-pthread'];
const cc = spawnSync(cxx, [...args, '-I', nodeHeaders(), '-o', tmp, join(here, 'netlink.cc')], {
  stdio: 'inherit',
});
if (cc.status !== 0) {
  rmSync(tmp, { force: true });
  console.error(`@datapath/netlink: ${cxx} failed to build native/netlink.cc (exit ${cc.status})`);
  process.exit(1);
}
try {
  const mod = createRequire(import.meta.url)(tmp);
  for (const f of ['socketIn', 'openIn', 'socketInAsync', 'openInAsync', 'exchange'])
    if (typeof mod[f] !== 'function') throw new Error(`no ${f}() export`);
} catch (e) {
  rmSync(tmp, { force: true });
  console.error(`@datapath/netlink: the built addon does not load: ${e.message}`);
  process.exit(1);
}
renameSync(tmp, out);
console.log(`@datapath/netlink: native addon built: ${out.slice(join(here, '..').length + 1)}`);
