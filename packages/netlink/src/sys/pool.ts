// How many netlink exchanges may wait on libuv's threadpool at once. rtnetlink serialises its work on
// one kernel lock, so more than two threads waiting there gains nothing and would keep fs and dns calls
// (which share the pool) waiting; the rest queue here, on the event loop, at no cost.
import { availableParallelism } from 'node:os';

const poolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4;
const slots = Math.max(1, Math.min(2, Math.floor(poolSize / 2), availableParallelism()));
let busy = 0;
const waiting: Array<() => void> = [];

/** Waits for a threadpool slot; call the returned function when the work is done. */
export function acquireSlot(): Promise<() => void> {
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else busy--;
  };
  if (busy < slots) {
    busy++;
    return Promise.resolve(release);
  }
  return new Promise((resolve) => waiting.push(() => resolve(release)));
}
