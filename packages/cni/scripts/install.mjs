#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
// Installs the datapath-cni reference plugin into a CNI bin directory:
//   PREFIX/datapath-cni                      a launcher (sh) that runs this Node by absolute path
//   PREFIX/datapath-cni.d/datapath-cni.cjs   the bundled plugin (one file)
//   PREFIX/datapath-cni.d/run.cjs            loads the bundle with a V8 code cache (scripts/run.cjs)
//   PREFIX/datapath-cni.d/koffi.node         koffi's native addon for this platform and libc
// The launcher works under a runtime's minimal environment (no PATH needed) and drops NODE_OPTIONS and
// NODE_EXTRA_CA_CERTS (they cost start-up time). The code caches (datapath-cni.cjs.<command>.v8cache) are
// written by the first ADD, DEL and CHECK after installation.
// Usage: node packages/cni/scripts/install.mjs PREFIX     (make install-cni PREFIX=/opt/cni/bin)
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundle } from './bundle.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const prefixArg = process.argv[2];
if (!prefixArg) {
  console.error('usage: node packages/cni/scripts/install.mjs PREFIX   (e.g. /opt/cni/bin)');
  process.exit(2);
}
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  console.error(`datapath-cni needs Node >= 22; this is ${process.version} (${process.execPath})`);
  process.exit(1);
}
const prefix = resolve(prefixArg);
const support = join(prefix, 'datapath-cni.d');
const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
if (!arch || process.platform !== 'linux') {
  console.error(`datapath-cni supports linux x64/arm64, not ${process.platform} ${process.arch}`);
  process.exit(1);
}

// koffi's addon for this platform, from the package that depends on koffi (@datapath/netlink): glibc or
// musl as the Node that runs it (what koffi's own loader would pick at every start).
const netlinkRequire = createRequire(resolve(here, '../../netlink/package.json'));
const koffiRequire = createRequire(join(dirname(netlinkRequire.resolve('koffi')), 'package.json'));
const nativeDir = dirname(koffiRequire.resolve(`@koromix/koffi-linux-${arch}/package.json`));
const libc = process.report.getReport().header.glibcVersionRuntime ? 'linux' : 'musl';
const addon = join(nativeDir, `${libc}_${arch}`, 'koffi.node');

const stage = mkdtempSync(join(tmpdir(), 'datapath-cni-install-'));
try {
  const file = await bundle(stage);
  mkdirSync(support, { recursive: true });
  // Leftovers of earlier layouts (koffi's package tree, Node's compile cache) and of the previous bundle.
  for (const old of ['node_modules', '.cache']) rmSync(join(support, old), { recursive: true, force: true });
  for (const f of readdirSync(support)) if (f.endsWith('.v8cache')) rmSync(join(support, f), { force: true });
  renameOrCopy(file, join(support, 'datapath-cni.cjs'));
  copyFileSync(join(here, 'run.cjs'), join(support, 'run.cjs'));
  copyFileSync(addon, join(support, '.koffi.node.tmp'));
  renameSync(join(support, '.koffi.node.tmp'), join(support, 'koffi.node'));
  const launcher = `#!/bin/sh
# datapath-cni launcher, written by packages/cni/scripts/install.mjs: runs the bundled plugin with the Node
# it was installed with (${process.version}), whatever PATH the container runtime passes.
unset NODE_OPTIONS NODE_EXTRA_CA_CERTS
exec ${process.execPath} ${join(support, 'run.cjs')} "$@"
`;
  const tmp = join(prefix, '.datapath-cni.tmp');
  writeFileSync(tmp, launcher);
  chmodSync(tmp, 0o755);
  renameSync(tmp, join(prefix, 'datapath-cni')); // atomic: a runtime never execs a half-written launcher
  // Prove the install works: VERSION must answer.
  const out = execFileSync(join(prefix, 'datapath-cni'), [], {
    env: { CNI_COMMAND: 'VERSION' },
    input: '',
    encoding: 'utf8',
  });
  JSON.parse(out);
  console.log(`installed ${join(prefix, 'datapath-cni')} (Node ${process.version} at ${process.execPath})`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}

function renameOrCopy(from, to) {
  try {
    renameSync(from, to);
  } catch {
    cpSync(from, to);
  }
}
