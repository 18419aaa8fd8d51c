export { bpftoolJson, inNetns, ipJson, run } from './exec.js';
export type { LeakReport, LeakScanRoots } from './leaks.js';
export { describeLeaks, scanLeaks } from './leaks.js';
export { runId, runPrefix, TEST_PREFIX, uniqueName } from './names.js';
export type { TestNetns } from './netns.js';
export { createNetns, deleteNetns, withNetns } from './netns.js';
export type { SkippableContext } from './privileged.js';
export { requireRoot } from './privileged.js';
