#!/usr/bin/env node
// Checks the workspace dependency graph (STYLE.md rule 2):
//   - no cycles between workspace packages;
//   - every `@datapath/*` import in a package's src/ is declared in its package.json dependencies;
//   - every runtime dependency a package declares is imported by its src/ (no dead weight for users);
//   - the leaf packages (`@datapath/ip`, and `@datapath/errors`, the error base every package shares)
//     import no Node built-in and depend on nothing but the error base (which depends on nothing);
//   - the pure packages (scripts/pure-packages.mjs: policy, ipam, the CNI spec library) stay pure: they
//     depend on no kernel package, and the import graph of their main entry point (src/index.ts, type-only
//     imports aside) imports no FFI, socket, child-process or native-addon module, and loads such a module
//     lazily (`await import()`, `createRequire`) only inside src/sys/, where it is loaded on first use.
//     scripts/purity.test.ts checks the same at run time on the built entry points. The pure-entry packages
//     (`@datapath/lb`) get the import-graph check of their main entry only: their subpaths reach the kernel.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import {
  EXTRA_BANNED_DEPS,
  IMPURE_MODULES,
  KERNEL_PACKAGES,
  PURE_ENTRY_PACKAGES,
  PURE_PACKAGES,
} from './pure-packages.mjs';

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
const PURE = Object.fromEntries(
  PURE_PACKAGES.map((name) => [name, [...KERNEL_PACKAGES, ...(EXTRA_BANNED_DEPS[name] ?? [])]]),
);
const LEAF = new Set(['@datapath/ip', '@datapath/errors']);
const ERROR_BASE = '@datapath/errors';
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
    const allowed = (spec) => spec === name || (spec === ERROR_BASE && name !== ERROR_BASE);
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
      if (!allowed(dep)) problems.push(`${name} is a leaf package but depends on ${dep}`);
    for (const spec of imported)
      if (!spec.startsWith('.') && !allowed(spec))
        problems.push(`${name} is a leaf package but its src/ imports ${spec}`);
  }
  for (const banned of PURE[name] ?? []) {
    if (declared.has(banned)) problems.push(`${name} must stay pure but depends on ${banned}`);
  }
}

// The static import graph of each pure package's main entry point.
const stripComments = (text) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
for (const name of [...PURE_PACKAGES, ...PURE_ENTRY_PACKAGES]) {
  const pkg = pkgs.get(name);
  if (pkg === undefined) {
    problems.push(`scripts/pure-packages.mjs lists ${name}, which is not a workspace package`);
    continue;
  }
  const entry = resolve(pkg.dir, 'src', 'index.ts');
  const seen = new Set();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const text = stripComments(readFileSync(file, 'utf8'));
    const where = relative(process.cwd(), file);
    // Static imports and re-exports that bring code at run time (`import type`/`export type` do not).
    for (const m of text.matchAll(
      /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm,
    )) {
      if (m[2]) continue;
      const spec = m[3];
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (existsSync(target)) queue.push(target);
        else problems.push(`${where} imports ${spec}, which check-graph cannot find`);
      } else if (IMPURE_MODULES.includes(spec) || spec.endsWith('.node')) {
        problems.push(`${name} must stay pure at import but ${where} imports ${spec}`);
      }
    }
    // A lazy binding is allowed only in the package's kernel layer (src/sys/), loaded on first use.
    const inSys = relative(join(pkg.dir, 'src'), file).startsWith('sys/');
    for (const m of text.matchAll(/(?:require|import)\(\s*['"]([^'"]+)['"]/g)) {
      if (!inSys && (IMPURE_MODULES.includes(m[1]) || m[1].endsWith('.node')))
        problems.push(`${name}: ${where} loads ${m[1]} outside src/sys/`);
    }
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
