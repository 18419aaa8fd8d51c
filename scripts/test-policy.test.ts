import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM script without declarations
import { evaluate } from './test-policy.mjs';

const report = (passed: number, failed: number, pending: number) => ({
  numPassedTests: passed,
  numFailedTests: failed,
  numPendingTests: pending,
  numTodoTests: 0,
  testResults: [],
});

describe('test policy', () => {
  const ok = { exitCode: 0, report: report(3, 0, 0) };
  it('passes a clean run', () => {
    expect(evaluate({ unit: ok, priv: ok, ci: true, isRoot: true }).ok).toBe(true);
  });
  it('fails CI when a privileged test skipped', () => {
    const v = evaluate({ unit: ok, priv: { exitCode: 0, report: report(2, 0, 1) }, ci: true, isRoot: true });
    expect(v.ok).toBe(false);
    expect(v.problems.join()).toMatch(/skipped/);
  });
  it('allows privileged skips outside CI', () => {
    expect(
      evaluate({ unit: ok, priv: { exitCode: 0, report: report(0, 0, 3) }, ci: false, isRoot: false }).ok,
    ).toBe(true);
  });
  it('fails CI on an empty privileged run', () => {
    expect(
      evaluate({ unit: ok, priv: { exitCode: 0, report: report(0, 0, 0) }, ci: true, isRoot: true }).ok,
    ).toBe(false);
  });
  it('fails on an empty unit run anywhere', () => {
    expect(
      evaluate({ unit: { exitCode: 0, report: report(0, 0, 0) }, priv: ok, ci: false, isRoot: true }).ok,
    ).toBe(false);
  });
  it('fails when vitest exits non-zero even with green counts (leak check in teardown)', () => {
    expect(
      evaluate({ unit: ok, priv: { exitCode: 1, report: report(3, 0, 0) }, ci: true, isRoot: true }).ok,
    ).toBe(false);
  });
  it('counts a suite that failed to load as a failure', () => {
    const r = { ...report(1, 0, 0), testResults: [{ status: 'failed', assertionResults: [] }] };
    const v = evaluate({ unit: { exitCode: 1, report: r }, priv: ok, ci: false, isRoot: true });
    expect(v.total.failed).toBe(1);
    expect(v.ok).toBe(false);
  });
  it('counts a crashed run with no report as a failure', () => {
    const v = evaluate({ unit: ok, priv: { exitCode: 1, report: undefined }, ci: false, isRoot: true });
    expect(v.ok).toBe(false);
    expect(v.priv.failed).toBe(1);
  });
});
