#!/usr/bin/env node
// `make pack`: packs every public package into .packs/, then checks each tarball:
//   - contents: only package.json, README.md, LICENSE, CHANGELOG.md and dist/ (no tests, no sources)
//   - publint --strict
//   - @arethetypeswrong/cli with the ESM-only profile
//   - the manifest: a `repository` with this package's `directory`, and an exports map whose `.` entry
//     has a `default` condition, so Node ≥ 22 can `require()` the ESM build (consumer-smoke proves it)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { publicPackages } from './public-packages.mjs';

const out = resolve('.packs');
rmSync(out, { recursive: true, force: true });
mkdirSync(out);
// Deliberately shipped data besides dist/: JSON schemas (cni config), the policy scenario library, and
// libbpf's native bpf(2) and poll addon (its sources, its build script and the prebuilt addon per platform and Node ABI),
// netlink's Node-API addon (namespace sockets, threadpool exchanges: source, build script, prebuilt addon),
// cni-plugin's agent-mode shim source and build script (the built shim is in dist/), and lb's BPF C (the
// header programs include, the socket-LB and per-packet programs, compiled on the user's machine through the loader).
const ALLOWED =
  /^package\/(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/.+|bin\/[a-z-]+\.cjs|[a-z-]+\.schema\.json|scenarios\/[^/]+\.json|bpf\/[a-z0-9_]+\.[ch]|native\/(bpf\.cc|poll\.cc|work\.cc|netlink\.cc|shim\.c|build\.mjs|where\.mjs)|prebuilds\/[a-z0-9]+-[a-z0-9]+\/(bpf\.abi\d+|netlink\.napi)\.node)$/;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const problems = [];
const rootRepo = JSON.parse(readFileSync('package.json', 'utf8')).repository?.url;
for (const { dir, name, manifest } of publicPackages()) {
  const repo = manifest.repository;
  if (repo?.type !== 'git' || repo.url !== rootRepo || repo.directory !== dir) {
    problems.push(
      `${name}: package.json needs "repository": { "type": "git", "url": "${rootRepo}", "directory": "${dir}" }`,
    );
  }
  if (typeof manifest.exports?.['.']?.default !== 'string') {
    problems.push(
      `${name}: exports["."] needs a "default" condition (lets Node ≥ 22 require() the ESM build)`,
    );
  }
  const before = new Set(readdirSync(out));
  const packed = run('pnpm', ['pack', '--pack-destination', out], { cwd: dir });
  if (!packed.ok) {
    problems.push(`${name}: pnpm pack failed\n${packed.out}`);
    continue;
  }
  const tarball = readdirSync(out).find((f) => !before.has(f));
  const file = join(out, tarball);
  const listing = run('tar', ['tzf', file]).out.trim().split('\n');
  const extra = listing.filter((f) => !ALLOWED.test(f));
  if (extra.length) problems.push(`${name}: unexpected files in the tarball: ${extra.join(', ')}`);
  for (const needed of [
    'package/dist/index.js',
    'package/dist/index.d.ts',
    'package/README.md',
    'package/LICENSE',
  ]) {
    if (!listing.includes(needed)) problems.push(`${name}: ${needed} missing from the tarball`);
  }
  const lint = run('pnpm', ['exec', 'publint', '--strict', file]);
  if (!lint.ok) problems.push(`${name}: publint --strict\n${lint.out}`);
  const types = run('pnpm', ['exec', 'attw', file, '--profile', 'esm-only', '--format', 'ascii']);
  if (!types.ok) problems.push(`${name}: attw (esm-only)\n${types.out}`);
  console.log(
    `pack: ${tarball} (${listing.length} files)${lint.ok && types.ok && !extra.length ? ' ok' : ''}`,
  );
}
if (problems.length) {
  console.error(problems.join('\n\n'));
  process.exit(1);
}
