#!/usr/bin/env node
// `make demo`: runs the reference agent on its bundled scenario. Needs root for namespaces and BPF.
import { spawnSync } from 'node:child_process';

if (process.getuid?.() !== 0) {
  console.error(
    'make demo needs root: it creates network namespaces, veths and BPF programs. Run: sudo make demo',
  );
  process.exit(1);
}
const r = spawnSync('pnpm', ['--silent', '--filter', '@datapath/example-agent', 'run', 'demo'], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
