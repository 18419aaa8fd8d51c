import { execFileSync } from 'node:child_process';

/** Runs a command synchronously and returns stdout; throws with stderr on a non-zero exit. Oracles only. */
export function run(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; status?: number };
    throw new Error(`${cmd} ${args.join(' ')} exited ${e.status}: ${(e.stderr ?? '').trim()}`, {
      cause: err,
    });
  }
}

/** `ip -j …` (optionally inside a named netns) parsed as JSON: an independent oracle for kernel state. */
export function ipJson<T = unknown>(args: readonly string[], netns?: string): T {
  const full = netns === undefined ? ['-j', ...args] : ['-j', '-n', netns, ...args];
  const out = run('ip', full).trim();
  return (out === '' ? [] : JSON.parse(out)) as T;
}

/** `bpftool -j …` parsed as JSON. */
export function bpftoolJson<T = unknown>(args: readonly string[]): T {
  return JSON.parse(run('bpftool', ['-j', ...args])) as T;
}

/** Runs a command inside a named network namespace (`ip netns exec`). */
export function inNetns(netns: string, cmd: string, args: readonly string[]): string {
  return run('ip', ['netns', 'exec', netns, cmd, ...args]);
}
