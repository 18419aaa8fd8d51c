#!/usr/bin/env node
// Runs every workspace package's `bench` script and rewrites BENCHMARKS.md from the sections they write.
// Contract: a package's `bench` script writes one Markdown section to `$BENCH_OUT/<package-dir>.md`,
// every figure there a ratio against a baseline measured in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const out = resolve('.bench-results');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const only = process.argv.slice(2);
const dirs = ['packages', 'examples']
  .flatMap((top) => readdirSync(top).map((d) => join(top, d)))
  .filter((d) => existsSync(join(d, 'package.json')))
  .filter((d) => JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).scripts?.bench)
  .filter((d) => only.length === 0 || only.some((o) => d.endsWith(o)));

const failed = [];
for (const dir of dirs) {
  console.log(`== bench ${dir}`);
  const r = spawnSync('pnpm', ['run', '--silent', 'bench'], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, BENCH_OUT: out },
  });
  if (r.status !== 0) failed.push(dir);
}

const sections = readdirSync(out)
  .filter((f) => f.endsWith('.md'))
  .sort();
const previous = existsSync('BENCHMARKS.md') ? readFileSync('BENCHMARKS.md', 'utf8') : '';
const kept = new Map();
// Keep the sections of packages that were not rerun this time (e.g. `make bench ipam`).
for (const m of previous.matchAll(/<!-- section:(\S+) -->\n([\s\S]*?)<!-- end:\1 -->/g)) kept.set(m[1], m[2]);
for (const f of sections)
  kept.set(f.replace(/\.md$/, ''), `${readFileSync(join(out, f), 'utf8').trimEnd()}\n`);
const uname = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
const header = `# Benchmarks

Written by \`make bench\` (\`node scripts/bench.mjs [package…]\`); do not edit by hand. Every figure is a
ratio against a baseline measured in the same run on the same machine (2 vCPU VM, Linux ${uname},
Node ${process.versions.node}). Performance targets live here, never in timed unit tests.

`;
const body = [...kept.entries()]
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([name, text]) => `<!-- section:${name} -->\n${text}<!-- end:${name} -->\n`)
  .join('\n');
writeFileSync('BENCHMARKS.md', header + body);
console.log(`BENCHMARKS.md: ${kept.size} section(s)`);
if (failed.length) {
  console.error(`bench failed in: ${failed.join(', ')}`);
  process.exit(1);
}
