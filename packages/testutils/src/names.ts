import { randomBytes } from 'node:crypto';

/** Every kernel object a test creates is named with this prefix, so leaks can be found and cleaned. */
export const TEST_PREFIX = 'dpt';

/** The run id shared by all workers of one test run (set by the global setup), 4 hex chars. */
export function runId(): string {
  const id = process.env.DATAPATH_TEST_RUN;
  if (id === undefined || !/^[0-9a-f]{4}$/.test(id)) {
    throw new Error(
      'DATAPATH_TEST_RUN is not set: privileged tests must run through the priv vitest project',
    );
  }
  return id;
}

/** The prefix of every object made in this run: `dpt` + run id (7 chars). */
export function runPrefix(): string {
  return `${TEST_PREFIX}${runId()}`;
}

/**
 * A unique name for a kernel object of this test run: `dpt` + run id + 6 hex = 13 chars, which fits
 * an interface name (≤ 15 bytes) with room for a one- or two-char suffix.
 */
export function uniqueName(): string {
  return `${runPrefix()}${randomBytes(3).toString('hex')}`;
}
