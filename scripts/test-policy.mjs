// Pure decision logic of scripts/test.mjs, unit-tested in scripts/test-policy.test.ts.

/** Counts from a vitest JSON report; a missing report (crash) counts as one failure. */
export function counts(report) {
  if (!report) return { passed: 0, failed: 1, skipped: 0, total: 1, missing: true };
  const failedSuites = (report.testResults ?? []).filter(
    (r) => r.status === 'failed' && (r.assertionResults ?? []).every((a) => a.status !== 'failed'),
  ).length;
  const passed = report.numPassedTests ?? 0;
  const failed = (report.numFailedTests ?? 0) + failedSuites;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  return { passed, failed, skipped, total: passed + failed + skipped, missing: false };
}

/**
 * Decides whether the suite passed.
 * @param {{unit: {exitCode: number, report: any}, priv: {exitCode: number, report: any}, ci: boolean, isRoot: boolean}} input
 */
export function evaluate({ unit, priv, ci, isRoot }) {
  const u = counts(unit.report);
  const p = counts(priv.report);
  const problems = [];
  if (u.missing) problems.push('the unit run produced no report (crashed before reporting)');
  if (p.missing) problems.push('the privileged run produced no report (crashed before reporting)');
  if (unit.exitCode !== 0) problems.push(`the unit run exited ${unit.exitCode}`);
  if (priv.exitCode !== 0)
    problems.push(`the privileged run exited ${priv.exitCode} (failed test or leaked kernel objects)`);
  if (u.total === 0) problems.push('the unit run executed no test');
  if (ci) {
    if (!isRoot) problems.push('CI must run as root: the privileged suite cannot run');
    if (p.total === 0) problems.push('CI: the privileged run executed no test');
    if (p.skipped > 0)
      problems.push(`CI: ${p.skipped} privileged test(s) skipped; every privileged test must run in CI`);
  }
  const total = { passed: u.passed + p.passed, failed: u.failed + p.failed, skipped: u.skipped + p.skipped };
  return { ok: problems.length === 0 && total.failed === 0, problems, unit: u, priv: p, total };
}
