#!/usr/bin/env node
// Consumer smoke test: installs the packed tarballs (.packs/, from `make pack`) into a throwaway project
// OUTSIDE the workspace with plain npm (no workspace links), typechecks one program per package with
// `moduleResolution: node16` and with `bundler`, and runs them. The programs that need the kernel run
// only as root. Run by `make test` after `make pack`.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
        devDependencies: { typescript: '6.0.3', '@types/node': '24.19.2' },
      },
      null,
      2,
    ),
  );
  cpSync(resolve('scripts/consumer/src'), join(dir, 'src'), { recursive: true });
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
} finally {
  if (!keep) rmSync(dir, { recursive: true, force: true });
}
