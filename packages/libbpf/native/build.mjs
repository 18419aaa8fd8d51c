#!/usr/bin/env node
// Builds the native bpf(2) backend (bpf.cc) for the Node running this script, into
// prebuilds/<platform>-<arch>/bpf.abi<NODE_MODULE_VERSION>.node, where sys/libc.ts looks for it.
// It is optional: without a C++ compiler or Node's headers the build says so and the package uses koffi.
// A compile error with both present fails the build. DATAPATH_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const abi = process.versions.modules;
const outDir = join(here, '..', 'prebuilds', `${process.platform}-${process.arch}`);
const out = join(outDir, `bpf.abi${abi}.node`);
const skip = (why) => {
  console.log(`@datapath/libbpf: native bpf(2) backend not built (${why}); the koffi backend is used`);
  process.exit(0);
};

if (process.env.DATAPATH_NATIVE === '0') skip('DATAPATH_NATIVE=0');
if (process.platform !== 'linux') skip(`platform ${process.platform}`);

// Node's headers, for exactly this Node's module ABI (a header set of another version would build an
// addon this Node refuses to load).
const headers = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].find((dir) => {
  const version = join(dir, 'node_version.h');
  if (!existsSync(join(dir, 'node.h')) || !existsSync(version)) return false;
  return new RegExp(`#define NODE_MODULE_VERSION ${abi}\\b`).test(readFileSync(version, 'utf8'));
});
if (headers === undefined) skip(`no Node headers for module ABI ${abi}`);

const cxx = process.env.CXX ?? 'c++';
if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) skip(`no C++ compiler (${cxx})`);

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
const cc = spawnSync(cxx, [...args, '-I', headers, '-o', tmp, join(here, 'bpf.cc')], { stdio: 'inherit' });
if (cc.status !== 0) {
  rmSync(tmp, { force: true });
  console.error(`@datapath/libbpf: ${cxx} failed to build native/bpf.cc (exit ${cc.status})`);
  process.exit(1);
}
// Load what was built before putting it in place: an addon this Node cannot load is a build error.
try {
  const { bpf } = createRequire(import.meta.url)(tmp);
  if (typeof bpf !== 'function') throw new Error('no bpf() export');
} catch (e) {
  rmSync(tmp, { force: true });
  console.error(`@datapath/libbpf: the built native backend does not load: ${e.message}`);
  process.exit(1);
}
renameSync(tmp, out);
console.log(`@datapath/libbpf: native bpf(2) backend built: ${out.slice(join(here, '..').length + 1)}`);
