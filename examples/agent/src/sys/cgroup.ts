/**
 * The cgroup the socket LB is attached to. Pods here are network namespaces without processes of their
 * own: the agent's in-process probes stand in for them, so the process joins the node's pod cgroup while
 * it sends them (a socket belongs to the cgroup of the task that created it) and goes back afterwards.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentError } from '../errors.js';

/** The first cgroup v2 mount of this machine. */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, path, type] = line.split(' ');
    if (type === 'cgroup2' && path) return path;
  }
  throw new AgentError(
    'NotSupported',
    'socket LB needs a cgroup v2 mount (Linux ≥ 4.17 for cgroup/connect hooks)',
  );
}

/** `<cgroup2 root>/<name>`, created when missing. Equivalent to: `mkdir /sys/fs/cgroup/<name>`. */
export function ensureCgroup(name: string): string {
  const dir = join(cgroup2Root(), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Removes a cgroup directory (it must hold no process); a missing one is fine. */
export function removeCgroup(dir: string): void {
  if (existsSync(dir)) rmdirSync(dir);
}

/** This process's cgroup v2 directory. */
function ownCgroup(): string {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  return join(cgroup2Root(), line?.slice(3) ?? '/');
}

let chain: Promise<unknown> = Promise.resolve();

/**
 * Runs `fn` with this process in the cgroup `dir` (sockets it creates meanwhile get that cgroup's socket
 * programs), then moves it back. Calls are serialised.
 */
export function inCgroup<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const run = async (): Promise<T> => {
    const back = ownCgroup();
    writeFileSync(join(dir, 'cgroup.procs'), `${process.pid}\n`);
    try {
      return await fn();
    } finally {
      writeFileSync(join(back, 'cgroup.procs'), `${process.pid}\n`);
    }
  };
  const p = chain.then(run, run);
  chain = p.catch(() => undefined);
  return p;
}

/** Removes `<cgroup2 root>/<name>` when it exists and is empty (what a closed agent's socket LB left). */
export function removeCgroupIfPresent(name: string): void {
  removeCgroup(join(cgroup2Root(), name));
}
