#!/usr/bin/env node
// `datapath-cni`: the installer of the npm package (npx @datapath/cni-plugin install /opt/cni/bin, or
// pnpm exec datapath-cni install /opt/cni/bin). It copies the plugin into a CNI bin directory behind a
// launcher that runs THIS Node by absolute path; container runtimes then exec the launcher, never this file.
// Written for any Node, so an older one than the plugin needs fails here, loudly, before anything loads.
'use strict';
const need = 22;
if (Number(process.versions.node.split('.')[0]) < need) {
  process.stderr.write(
    `datapath-cni: needs Node >= ${need}; this is ${process.version} (${process.execPath}).\n` +
      'Run the installer with a newer Node, e.g.: /path/to/node22/bin/node "$(command -v datapath-cni)" install /opt/cni/bin\n',
  );
  process.exit(1);
}
const usage = `usage: datapath-cni install [BIN_DIR] [--name NAME] [--bundle FILE | --entry FILE] [--node PATH]

Installs the datapath-cni CNI plugin (or, with --bundle/--entry, your own plugin written with
runPlugin from @datapath/cni) into BIN_DIR (default /opt/cni/bin) as BIN_DIR/NAME, a launcher that runs
Node ${process.version} (${process.execPath}) by absolute path, and BIN_DIR/NAME.d/ (bundle, loader,
code caches, koffi's addon when needed).
  --name NAME     plugin name, the config's "type" (default datapath-cni)
  --bundle FILE   a CommonJS bundle of your plugin
  --entry FILE    your plugin's entry file, bundled with esbuild (npm install -D esbuild)
  --node PATH     the Node the launcher runs (absolute, >= ${need}; default: this one)`;

if (process.env.CNI_COMMAND !== undefined) {
  // A runtime exec'd the npm bin itself: answer as a CNI plugin would, with the way out.
  process.stdout.write(
    `${JSON.stringify({
      cniVersion: '0.1.0',
      code: 999,
      msg: 'this is the datapath-cni installer, not the installed plugin',
      details: 'install the plugin with: npx @datapath/cni-plugin install /opt/cni/bin',
    })}\n`,
  );
  process.exit(1);
}

async function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd !== 'install') {
    console.error(`datapath-cni: unknown command "${cmd}"\n${usage}`);
    return 2;
  }
  const opts = { binDir: '/opt/cni/bin' };
  let entry;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const value = () => {
      const v = rest[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--name') opts.name = value();
    else if (a === '--bundle') opts.bundle = value();
    else if (a === '--entry') entry = value();
    else if (a === '--node') opts.node = value();
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else opts.binDir = a;
  }
  const { bundlePlugin, installPlugin } = await import('../dist/index.js');
  const { mkdtempSync, rmSync } = require('node:fs');
  const { join } = require('node:path');
  const stage =
    entry === undefined ? undefined : mkdtempSync(join(require('node:os').tmpdir(), 'cni-bundle-'));
  try {
    if (entry !== undefined) opts.bundle = await bundlePlugin({ entry, outFile: join(stage, 'plugin.cjs') });
    const inst = installPlugin(opts);
    console.log(
      `installed ${inst.launcher} (Node ${inst.nodeVersion} at ${inst.node}; agent mode through ${inst.forwarder === 'shim' ? 'the C shim' : 'the Node client'})`,
    );
  } finally {
    if (stage !== undefined) rmSync(stage, { recursive: true, force: true });
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`datapath-cni: ${err.message}`);
    process.exit(1);
  },
);
