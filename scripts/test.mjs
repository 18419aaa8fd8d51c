#!/usr/bin/env node
// Runs the unit and privileged vitest projects, enforces the CI rules and prints the closing summary:
//   unit: N passed, N failed, N skipped
//   privileged: N passed, N failed, N skipped
//   total: N passed, N failed, N skipped          <- always the last line
// Under CI=true a skipped privileged test, an empty privileged run or an empty unit run fails the suite.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { evaluate } from './test-policy.mjs';

const ci = process.env.CI === 'true' || process.env.CI === '1';
const extra = process.argv.slice(2);
mkdirSync('.test-results', { recursive: true });

function runProject(project) {
  const out = `.test-results/${project}.json`;
  rmSync(out, { force: true });
  const r = spawnSync(
    'pnpm',
    [
      'exec',
      'vitest',
      'run',
      '--project',
      project,
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${out}`,
      ...extra,
    ],
    { stdio: 'inherit', env: process.env },
  );
  let report;
  try {
    report = JSON.parse(readFileSync(out, 'utf8'));
  } catch {
    report = undefined;
  }
  return { exitCode: r.status ?? 1, report };
}

const unit = runProject('unit');
const priv = runProject('priv');
const verdict = evaluate({ unit, priv, ci, isRoot: process.getuid?.() === 0 });
for (const line of verdict.problems) console.error(`test: ${line}`);
console.log(
  `unit: ${verdict.unit.passed} passed, ${verdict.unit.failed} failed, ${verdict.unit.skipped} skipped`,
);
console.log(
  `privileged: ${verdict.priv.passed} passed, ${verdict.priv.failed} failed, ${verdict.priv.skipped} skipped`,
);
console.log(
  `total: ${verdict.total.passed} passed, ${verdict.total.failed} failed, ${verdict.total.skipped} skipped`,
);
process.exit(verdict.ok ? 0 : 1);
