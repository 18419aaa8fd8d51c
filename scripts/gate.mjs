#!/usr/bin/env node
// TEMPORARY integration gate (removed before the round ends): while several branches merge into main on
// one 2-core machine, `make test` in a branch worktree under /work/wt/ runs only what the branch can
// break directly: lint, graph, typecheck, API reports, and the unit and privileged tests of the packages the branch
// changed. The full `make test` (CI) runs everything.
import { execFileSync, spawnSync } from 'node:child_process';

const run = (cmd, args) => {
  console.log(`== ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
const changed = execFileSync('git', ['diff', '--name-only', 'main...HEAD'], { encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);
const dirs = [
  ...new Set(
    changed.map((f) => f.split('/').slice(0, 2).join('/')).filter((d) => /^(packages|examples)\//.test(d)),
  ),
];
console.log(`gate: branch changes ${changed.length} files in ${dirs.join(', ') || '(no package)'}`);
run('pnpm', ['exec', 'biome', 'check', '--error-on-warnings', '.']);
run('node', ['scripts/check-graph.mjs']);
run('pnpm', ['exec', 'tsc', '-p', 'tsconfig.json']);
run('node', ['scripts/api-report.mjs', '--check']);
run('pnpm', ['exec', 'vitest', 'run', '--project', 'unit', '--passWithNoTests', 'scripts', ...dirs]);
if (dirs.length > 0)
  run('pnpm', ['exec', 'vitest', 'run', '--project', 'priv', '--passWithNoTests', ...dirs]);
console.log('gate: passed (full suite: make test outside /work/wt or with CI=true)');
