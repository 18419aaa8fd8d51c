/** The part of vitest's test context this helper needs. */
export interface SkippableContext {
  skip: (note?: string) => void;
  task: { name: string };
}

/**
 * Skips the current test, with the reason, when it cannot run here: not root, or forced off through
 * `DATAPATH_TEST_FORCE_SKIP=<substring of the test name>` (used to prove that CI fails on a skipped
 * privileged test). Under `CI=true` the test runner turns any such skip into a failed run.
 */
export function requireRoot(ctx: SkippableContext): void {
  const forced = process.env.DATAPATH_TEST_FORCE_SKIP;
  if (forced && ctx.task.name.includes(forced)) ctx.skip(`forced by DATAPATH_TEST_FORCE_SKIP=${forced}`);
  if (process.getuid?.() !== 0) ctx.skip('needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)');
}
