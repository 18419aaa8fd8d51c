#!/usr/bin/env node
// Installs datapath-cni from the workspace sources into a CNI bin directory (`make install-cni`): bundles
// the plugin fresh (scripts/bundle.mjs) and installs it with the package's installer (src/install.ts, the
// same code `npx @datapath/cni-plugin install` runs from the npm tarball). Run with tsx:
//   node --import tsx packages/cni-plugin/scripts/install.mjs PREFIX     (make install-cni PREFIX=/opt/cni/bin)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from './bundle.mjs';

const prefix = process.argv[2];
if (!prefix) {
  console.error(
    'usage: node --import tsx packages/cni-plugin/scripts/install.mjs PREFIX   (e.g. /opt/cni/bin)',
  );
  process.exit(2);
}
if (Number(process.versions.node.split('.')[0]) < 22) {
  console.error(`datapath-cni needs Node >= 22; this is ${process.version} (${process.execPath})`);
  process.exit(1);
}
const { installPlugin } = await import('../src/install.ts');
const stage = mkdtempSync(join(tmpdir(), 'datapath-cni-install-'));
try {
  const file = await bundle(stage);
  const inst = installPlugin({ binDir: prefix, bundle: file });
  console.log(
    `installed ${inst.launcher} (Node ${inst.nodeVersion} at ${inst.node}; agent mode through ${inst.forwarder === 'shim' ? 'the C shim' : 'the Node client'})`,
  );
} catch (err) {
  console.error(`datapath-cni install: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(stage, { recursive: true, force: true });
}
