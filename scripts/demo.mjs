#!/usr/bin/env node
// `make demo`: the reference agent's three-node cluster (scenarios/demo-cluster.json: a local etcd, three
// node agents joined by a fabric bridge, native routing), every probe sent across nodes, the matrix printed
// with each pod's node; exits non-zero on any mismatch. `node scripts/demo.mjs --single` runs the single-node
// scenario (scenarios/demo.json) instead. Needs root for namespaces and BPF.
import { spawnSync } from 'node:child_process';

if (process.getuid?.() !== 0) {
  console.error(
    'make demo needs root: it creates network namespaces, veths and BPF programs. Run: sudo make demo',
  );
  process.exit(1);
}
const single = process.argv.includes('--single');
const r = spawnSync(
  'pnpm',
  ['--silent', '--filter', '@datapath/example-agent', 'run', single ? 'demo:single' : 'demo'],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
