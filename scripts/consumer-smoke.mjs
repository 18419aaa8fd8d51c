#!/usr/bin/env node
// Consumer smoke test: installs the packed tarballs (.packs/, from `make pack`) into a throwaway project
// OUTSIDE the workspace with plain npm (no workspace links), typechecks one program per package with
// `moduleResolution: node16` and with `bundler`, and runs them. The programs that need the kernel run
// only as root. The code blocks of docs/guide/getting-started.md marked `<!-- smoke: NAME.ts -->` are
// programs too (src/guide-NAME.ts), so the guide cannot drift from what works. Then the CNI plugin
// packaging, as a user gets it from npm: `npm exec datapath-cni install` puts datapath-cni into a CNI bin
// directory and the launcher answers VERSION and STATUS with an empty environment (no PATH: a runtime's);
// the same installer bundles and installs a user's own plugin written with runPlugin (--entry); an older
// Node (the system's /usr/bin/node when it is < 22) is refused loudly. Run by `make test` after `make pack`.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const packs = resolve('.packs');
const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz'));
if (tarballs.length === 0) {
  console.error('consumer-smoke: no tarballs in .packs/: run `make pack` first');
  process.exit(1);
}
const nameOf = (f) => `@datapath/${f.replace(/^datapath-/, '').replace(/-\d+\.\d+\.\d+.*\.tgz$/, '')}`;
const deps = Object.fromEntries(tarballs.map((f) => [nameOf(f), `file:${join(packs, f)}`]));
const dir = mkdtempSync(join(tmpdir(), 'datapath-consumer-'));
const keep = process.env.KEEP_CONSUMER === '1';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    console.error(
      `consumer-smoke: ${cmd} ${args.join(' ')} failed (exit ${r.status})\n${r.stdout}${r.stderr}`,
    );
    if (!keep) rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }
  return r.stdout;
}

try {
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify(
      {
        name: 'datapath-consumer',
        private: true,
        type: 'module',
        dependencies: deps,
        // Sibling @datapath dependencies resolve to the local tarballs, never to the registry.
        overrides: deps,
        devDependencies: { typescript: '6.0.3', '@types/node': '24.19.2', esbuild: '0.28.2' },
      },
      null,
      2,
    ),
  );
  cpSync(resolve('scripts/consumer/src'), join(dir, 'src'), { recursive: true });
  const guide = readFileSync(resolve('docs/guide/getting-started.md'), 'utf8');
  const snippets = [...guide.matchAll(/<!-- smoke: ([a-z0-9.-]+\.ts) -->\n```ts\n([\s\S]*?)\n```/g)];
  if (snippets.length === 0) {
    console.error(
      'consumer-smoke: no `<!-- smoke: NAME.ts -->` code blocks in docs/guide/getting-started.md',
    );
    process.exit(1);
  }
  for (const [, name, code] of snippets) writeFileSync(join(dir, 'src', `guide-${name}`), `${code}\n`);
  console.log(
    `consumer-smoke: ${snippets.length} code blocks of docs/guide/getting-started.md added as programs`,
  );
  const base = {
    strict: true,
    target: 'ES2023',
    lib: ['ES2023', 'ESNext.Disposable'],
    types: ['node'],
    skipLibCheck: false,
  };
  const configs = {
    node16: { ...base, module: 'node16', moduleResolution: 'node16', rootDir: 'src', outDir: 'out' },
    bundler: { ...base, module: 'esnext', moduleResolution: 'bundler', noEmit: true },
  };
  for (const [name, compilerOptions] of Object.entries(configs)) {
    writeFileSync(
      join(dir, `tsconfig.${name}.json`),
      JSON.stringify({ compilerOptions, include: ['src'] }, null, 2),
    );
  }
  run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']);
  for (const name of Object.keys(configs)) {
    run(join(dir, 'node_modules/.bin/tsc'), ['-p', `tsconfig.${name}.json`]);
    console.log(`consumer-smoke: typecheck with moduleResolution ${name}: ok`);
  }
  // CommonJS consumers: Node ≥ 22 loads the ESM build through require() (the `default` export condition).
  for (const name of Object.keys(deps).sort()) {
    const cjs = run(process.execPath, [
      '-e',
      `const m = require(${JSON.stringify(name)}); console.log(Object.keys(m).length);`,
    ]);
    if (!(Number(cjs.trim()) > 0)) {
      console.error(`consumer-smoke: require('${name}') gave no exports`);
      process.exit(1);
    }
  }
  console.log(`consumer-smoke: require() of ${Object.keys(deps).length} packages from CommonJS: ok`);
  const root = process.getuid?.() === 0;
  const programs = readdirSync(join(dir, 'src'))
    .filter((f) => f.endsWith('.ts'))
    .sort();
  let ran = 0;
  for (const f of programs) {
    const needsRoot = f.includes('.root.');
    if (needsRoot && !root) {
      console.log(`consumer-smoke: ${f}: skipped (needs root)`);
      continue;
    }
    const out = run(process.execPath, [join(dir, 'out', f.replace(/\.ts$/, '.js'))]);
    console.log(`consumer-smoke: ${f}: ${out.trim().split('\n').join(' | ')}`);
    ran++;
  }
  console.log(`consumer-smoke: ${ran} program(s) ran against the packed packages in ${dir}`);
  cniPluginFromNpm();
} finally {
  if (!keep) rmSync(dir, { recursive: true, force: true });
}

/** Runs an installed plugin as a runtime does: exactly `env` (no PATH), `stdin`; returns status and stdout. */
function exec(file, env, stdin = '') {
  const r = spawnSync(file, [], { env, input: stdin, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cniPluginFromNpm() {
  const fail = (msg) => {
    throw new Error(`consumer-smoke: cni-plugin: ${msg}`);
  };
  const bin = join(dir, 'cni-bin');
  const installed = run('npm', ['exec', '--', 'datapath-cni', 'install', bin]);
  // With the agent-mode C shim built, the shim is datapath-cni and the sh launcher is datapath-cni.d/launch.
  const shim = existsSync(join(bin, 'datapath-cni.d', 'launch'));
  const launcher = readFileSync(join(bin, shim ? 'datapath-cni.d/launch' : 'datapath-cni'), 'utf8');
  if (!launcher.includes(`exec '${process.execPath}'`) || launcher.includes('/usr/bin/env'))
    fail(`the launcher does not exec this Node by absolute path:\n${launcher}`);
  const v = exec(join(bin, 'datapath-cni'), { CNI_COMMAND: 'VERSION' });
  if (v.status !== 0 || !JSON.parse(v.stdout).supportedVersions?.includes('1.1.0'))
    fail(`VERSION: ${v.status} ${v.stdout}${v.stderr}`);
  // STATUS opens the host-local store and loads the handlers (koffi's addon, copied from npm's layout).
  const conf = JSON.stringify({
    cniVersion: '1.1.0',
    name: 'smoke',
    type: 'datapath-cni',
    ipam: { type: 'host-local', subnet: '10.244.0.0/24', dataDir: join(dir, 'ipam') },
  });
  const st = exec(join(bin, 'datapath-cni'), { CNI_COMMAND: 'STATUS', CNI_PATH: bin }, conf);
  if (st.status !== 0) fail(`STATUS: ${st.status} ${st.stdout}${st.stderr}`);
  console.log(`consumer-smoke: cni-plugin: ${installed.trim()}; VERSION and STATUS answer with an empty env`);

  // A user's own plugin, written with runPlugin, installed with the same launcher.
  writeFileSync(
    join(dir, 'my-plugin.ts'),
    `import { runPlugin } from '@datapath/cni';
void runPlugin({
  about: 'CNI plugin my-plugin v1',
  add: (a) => ({ interfaces: [{ name: a.ifname, sandbox: a.netns }], ips: [], routes: [] }),
  del: () => {},
  check: () => {},
});
`,
  );
  run('npm', [
    'exec',
    '--',
    'datapath-cni',
    'install',
    bin,
    '--name',
    'my-plugin',
    '--entry',
    'my-plugin.ts',
  ]);
  const add = exec(
    join(bin, 'my-plugin'),
    {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/proc/self/ns/net',
      CNI_NETNS_OVERRIDE: '1',
      CNI_IFNAME: 'eth0',
      CNI_PATH: bin,
    },
    JSON.stringify({ cniVersion: '1.0.0', name: 'mine', type: 'my-plugin' }),
  );
  if (add.status !== 0 || JSON.parse(add.stdout).interfaces?.[0]?.name !== 'eth0')
    fail(`my-plugin ADD: ${add.status} ${add.stdout}${add.stderr}`);
  console.log('consumer-smoke: cni-plugin: a runPlugin plugin installed with --entry answers ADD');

  // An older Node is refused loudly (the system Node, when there is one below 22).
  const old = spawnSync('/usr/bin/node', ['-p', 'process.versions.node'], { encoding: 'utf8' });
  if (old.status === 0 && Number(old.stdout.split('.')[0]) < 22) {
    const r = spawnSync(
      '/usr/bin/node',
      [join(dir, 'node_modules/@datapath/cni-plugin/bin/datapath-cni.cjs'), 'install', join(dir, 'old-bin')],
      { encoding: 'utf8' },
    );
    if (r.status === 0 || !r.stderr.includes('needs Node >= 22'))
      fail(`Node ${old.stdout.trim()} was not refused: ${r.status} ${r.stderr}`);
    console.log(`consumer-smoke: cni-plugin: Node ${old.stdout.trim()} refused: ${r.stderr.split('\n')[0]}`);
  } else {
    console.log(
      'consumer-smoke: cni-plugin: no Node < 22 at /usr/bin/node, the refusal is checked by the unit tests',
    );
  }
}
