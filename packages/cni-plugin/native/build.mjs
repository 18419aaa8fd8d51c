#!/usr/bin/env node
// Builds datapath-cni's agent-mode forwarder (native/shim.c) into dist/datapath-cni-shim, which the installer
// puts in front of the Node plugin (src/install.ts). Optional, like @datapath/libbpf's native addon: without a
// C compiler the build says so and installations use the Node client (src/sys/agent-forward.ts). A compile
// error with a compiler present fails the build. Linked statically when the C library allows (no dynamic
// loader at exec: the shim's whole point is its start-up time). DATAPATH_NATIVE=0 skips it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'datapath-cni-shim');
const say = (m) => console.log(`@datapath/cni-plugin: ${m}`);

if (process.env.DATAPATH_NATIVE === '0') {
  say('agent-mode shim not built (DATAPATH_NATIVE=0); installations use the Node client');
  process.exit(0);
}
const cc = [process.env.CC, 'cc', 'gcc', 'clang'].find(
  (c) => c && spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0,
);
if (cc === undefined) {
  say('agent-mode shim not built (no C compiler: install gcc or clang); installations use the Node client');
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
const args = ['-O2', '-s', '-Wall', '-Wextra', '-Werror', '-o', tmp, join(here, 'shim.c')];
let linked = 'static';
let r = spawnSync(cc, ['-static', ...args], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
if (r.status !== 0 && /cannot find -lc|statically linked/.test(r.stderr ?? '')) {
  linked = 'dynamic';
  r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
}
if (r.status !== 0) {
  rmSync(tmp, { force: true });
  process.stderr.write(r.stderr ?? '');
  console.error(`@datapath/cni-plugin: ${cc} failed to build native/shim.c (exit ${r.status})`);
  process.exit(1);
}
renameSync(tmp, out);
say(`agent-mode shim built (${linked}): dist/datapath-cni-shim`);
