#!/usr/bin/env node
// Builds the native addon (bpf.cc: the bpf(2) backend; poll.cc: fd readiness on the event loop; work.cc:
// bpf(2) on libuv's threadpool) for the Node running this script, into
// prebuilds/<platform>-<arch>/bpf.abi<NODE_MODULE_VERSION>.node, where sys/libc.ts looks for it.
// It is optional: without a C++ compiler or Node's headers the build says so and the package uses koffi.
// A compile error with both present fails the build. DATAPATH_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cxx, nodeHeaders, prebuildPath, whyNotBuildable } from './where.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const abi = process.versions.modules;
const out = prebuildPath();
const outDir = dirname(out);

const why = whyNotBuildable();
if (why !== undefined) {
  console.log(`@datapath/libbpf: native bpf(2) backend not built (${why}); the koffi backend is used`);
  process.exit(0);
}
const headers = nodeHeaders();

mkdirSync(outDir, { recursive: true });
const tmp = join(outDir, `bpf.abi${abi}.${process.pid}.tmp.node`);
const args = [
  '-O2',
  '-fPIC',
  '-shared',
  '-std=c++20',
  '-fvisibility=hidden',
  '-Wall',
  '-Werror',
  '-Wno-unused-parameter',
];
const sources = ['bpf.cc', 'poll.cc', 'work.cc'].map((f) => join(here, f));
const cc = spawnSync(cxx, [...args, '-I', headers, '-o', tmp, ...sources], { stdio: 'inherit' });
if (cc.status !== 0) {
  rmSync(tmp, { force: true });
  console.error(
    `@datapath/libbpf: ${cxx} failed to build native/bpf.cc + poll.cc + work.cc (exit ${cc.status})`,
  );
  process.exit(1);
}
// Load what was built before putting it in place: an addon this Node cannot load is a build error.
try {
  const mod = createRequire(import.meta.url)(tmp);
  for (const f of ['bpf', 'bpfAsync', 'pollOpen', 'pollStart', 'pollStop', 'pollClose', 'pollRef'])
    if (typeof mod[f] !== 'function') throw new Error(`no ${f}() export`);
} catch (e) {
  rmSync(tmp, { force: true });
  console.error(`@datapath/libbpf: the built native backend does not load: ${e.message}`);
  process.exit(1);
}
renameSync(tmp, out);
console.log(`@datapath/libbpf: native bpf(2) backend built: ${out.slice(join(here, '..').length + 1)}`);
