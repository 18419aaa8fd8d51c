#!/usr/bin/env node
// Checks the workspace dependency graph (STYLE.md rule 2):
//   - no cycles between workspace packages;
//   - every `@datapath/*` import in a package's src/ is declared in its package.json dependencies;
//   - every runtime dependency a package declares is imported by its src/ (no dead weight for users);
//   - the leaf packages (`@datapath/ip`) have no runtime dependency and import no Node built-in;
//   - the pure packages stay pure: `@datapath/policy` and `@datapath/cni` (the CNI spec library) depend
//     on no kernel package, and their src/ imports no FFI, socket or child process module statically (a
//     lazy `await import()` inside a function is allowed: it loads nothing at import; their
//     test/pure.test.ts checks a fresh process's loaded modules and /proc/self/maps).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const tops = ['packages', 'examples'];
const pkgs = new Map();
for (const top of tops) {
  for (const d of readdirSync(top)) {
    try {
      const manifest = JSON.parse(readFileSync(join(top, d, 'package.json'), 'utf8'));
      pkgs.set(manifest.name, { dir: join(top, d), manifest });
    } catch {
      // not a package
    }
  }
}
const KERNEL = [
  '@datapath/libbpf',
  '@datapath/netlink',
  '@datapath/bpf-maps',
  '@datapath/loader',
  '@datapath/netdev',
];
const PURE = {
  '@datapath/policy': KERNEL,
  '@datapath/cni': [...KERNEL, '@datapath/ipam', '@datapath/cni-plugin'],
};
const LEAF = new Set(['@datapath/ip']);
// Modules a pure package may not import at module load (FFI, sockets, child processes, native addons).
const NATIVE = /^(koffi|node:child_process|child_process|node:net|net|node:dgram|dgram|node:worker_threads)$/;
const problems = [];
const deps = (m) => Object.keys({ ...m.dependencies, ...m.peerDependencies }).filter((n) => pkgs.has(n));

function walk(dir, out) {
  for (const e of readdirSync(dir)) {
    const f = join(dir, e);
    if (statSync(f).isDirectory()) walk(f, out);
    else if (/\.(ts|mts|js|mjs)$/.test(e) && !/\.test\.ts$/.test(e)) out.push(f);
  }
  return out;
}

for (const [name, { dir, manifest }] of pkgs) {
  const declared = new Set(deps(manifest));
  let files = [];
  try {
    files = walk(join(dir, 'src'), []);
  } catch {
    // no src
  }
  const imported = new Set();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/(?:from|import\(|require\()\s*['"]((?:@[a-z0-9-]+\/)?[a-z0-9.-]+)/gi)) {
      imported.add(m[1]);
    }
    for (const m of text.matchAll(/from\s+['"](@datapath\/[a-z0-9-]+)/g)) {
      const target = m[1];
      if (target !== name && !declared.has(target))
        problems.push(`${f} imports ${target}, which ${name} does not declare`);
    }
  }
  if (files.length > 0) {
    for (const dep of Object.keys(manifest.dependencies ?? {})) {
      if (!imported.has(dep))
        problems.push(`${name} declares the dependency ${dep} but its src/ never imports it`);
    }
  }
  if (LEAF.has(name)) {
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
      problems.push(`${name} is a leaf package but depends on ${dep}`);
    for (const spec of imported)
      if (!spec.startsWith('.') && spec !== name)
        problems.push(`${name} is a leaf package but its src/ imports ${spec}`);
  }
  if (PURE[name]) {
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(
        /^\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]/gm,
      )) {
        const spec = m[1] ?? m[2] ?? m[3];
        if (NATIVE.test(spec) || spec.endsWith('.node')) {
          problems.push(`${f}: ${name} must stay pure but imports ${spec} at module load`);
        }
      }
    }
  }
  for (const banned of PURE[name] ?? []) {
    if (declared.has(banned)) problems.push(`${name} must stay pure but depends on ${banned}`);
  }
}

// Cycle detection (DFS with colours).
const state = new Map();
function visit(name, path) {
  if (state.get(name) === 'done') return;
  if (state.get(name) === 'active') {
    problems.push(`dependency cycle: ${[...path.slice(path.indexOf(name)), name].join(' → ')}`);
    return;
  }
  state.set(name, 'active');
  for (const d of deps(pkgs.get(name).manifest)) visit(d, [...path, name]);
  state.set(name, 'done');
}
for (const name of pkgs.keys()) visit(name, []);

if (problems.length) {
  console.error(`dependency graph:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`dependency graph: ${pkgs.size} packages, acyclic, imports declared, no unused dependencies`);
