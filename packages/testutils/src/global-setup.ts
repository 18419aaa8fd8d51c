import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { describeLeaks, scanLeaks } from './leaks.js';
import { TEST_PREFIX } from './names.js';

/**
 * vitest global setup of the privileged project: picks the run id every worker names its objects with,
 * and afterwards fails the run if anything with that run's prefix is still in the kernel (then removes it,
 * so one leaky run does not poison the next).
 */
export default function setup(): () => void {
  const id = process.env.DATAPATH_TEST_RUN ?? randomBytes(2).toString('hex');
  process.env.DATAPATH_TEST_RUN = id;
  const prefix = `${TEST_PREFIX}${id}`;
  return () => {
    const report = scanLeaks(prefix);
    const message = describeLeaks(report);
    if (message === undefined) return;
    for (const ns of report.netns) tryRun('ip', ['netns', 'del', ns]);
    for (const link of report.links) tryRun('ip', ['link', 'del', link]);
    for (const pin of report.pins) rmSync(pin, { recursive: true, force: true });
    throw new Error(message);
  };
}

function tryRun(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // best effort cleanup
  }
}
