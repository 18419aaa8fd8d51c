import { readdirSync, readlinkSync } from 'node:fs';

/** An open file descriptor of this process and what it points to (`readlink /proc/self/fd/N`). */
export interface OpenFd {
  /** The descriptor number. */
  fd: number;
  /** Its target: a path, `socket:[ino]`, `pipe:[ino]`, `anon_inode:bpf-map`, `net:[ino]`, … */
  target: string;
}

/** Lists this process's open file descriptors (the fd used to read the directory itself excluded). */
export function openFds(dir = '/proc/self/fd'): OpenFd[] {
  const out: OpenFd[] = [];
  for (const name of readdirSync(dir)) {
    let target: string;
    try {
      target = readlinkSync(`${dir}/${name}`);
    } catch {
      continue; // the directory handle readdirSync used, closed by now
    }
    out.push({ fd: Number(name), target });
  }
  return out.sort((a, b) => a.fd - b.fd);
}

// Descriptors the runtime itself opens lazily and keeps (Node's event loop, libuv's thread pool and
// signal handling, V8): never something a test forgot to close.
const RUNTIME =
  /^anon_inode:\[(eventpoll|eventfd|signalfd|timerfd|io_uring)\]$|^anon_inode:inotify$|^\/dev\/(null|u?random|tty|pts\/\d+)$/;

const key = (f: OpenFd) => `${f.fd} ${f.target}`;
// Descriptors a test declared process-lifetime on purpose (see processLifetime), in this worker.
const lifetime = new Set<string>();

/**
 * Runs `fn` and declares the descriptors it leaves open as process-lifetime on purpose (e.g. the default
 * netlink handle behind netdev's module-level functions, which a test of that default opens), so the
 * privileged suite's fd check does not count them. Everything else a test file leaves open fails it.
 */
export function processLifetime<T>(fn: () => T): T {
  const before = openFds();
  const result = fn();
  for (const f of leakedFds(before, openFds())) lifetime.add(key(f));
  return result;
}

/**
 * The descriptors in `after` that were not open in `before` (by number and target), minus the ones
 * the runtime opens for itself (epoll, eventfd, signalfd, timerfd, io_uring, inotify, /dev/null, …)
 * and the ones declared with {@link processLifetime}.
 */
export function leakedFds(before: readonly OpenFd[], after: readonly OpenFd[]): OpenFd[] {
  const had = new Set(before.map(key));
  return after.filter((f) => !had.has(key(f)) && !lifetime.has(key(f)) && !RUNTIME.test(f.target));
}

/** A one-line description of leaked descriptors, e.g. `fd 23 → net:[4026532301]`. */
export function describeFds(fds: readonly OpenFd[]): string {
  return fds.map((f) => `fd ${f.fd} → ${f.target}`).join(', ');
}
