// vitest setup file of the privileged project: fails a test file that leaves file descriptors open in
// the test worker (a Netns, a netlink Handle, a map, program or link fd, a file): compares
// /proc/self/fd before the file's first test and after its last hook (STYLE rule 14).
// Descriptors the runtime opens for itself are ignored (see leakedFds); one that is closed a moment
// later (an async close in flight) gets a short grace period before it counts. Tests act in their own
// namespaces: the process-lifetime default handle behind netdev's module-level functions (the caller's
// namespace, STYLE rule 5) counts as a leak too; pass `{ netns }` or `{ handle }` instead.
import { afterAll, beforeAll } from 'vitest';
import { describeFds, leakedFds, type OpenFd, openFds } from './fds.js';

let before: OpenFd[] = [];

beforeAll(() => {
  before = openFds();
});

afterAll(async () => {
  let leaked = leakedFds(before, openFds());
  for (let i = 0; i < 5 && leaked.length > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    leaked = leakedFds(before, openFds());
  }
  if (leaked.length > 0) {
    throw new Error(
      `this test file left ${leaked.length} file descriptor(s) open: ${describeFds(leaked)} — close every handle (using / close())`,
    );
  }
});
