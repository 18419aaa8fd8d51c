// The only place this package starts processes: the installer's checks (a Node's version, the installed
// launcher answering VERSION).
import { spawnSync } from 'node:child_process';

/** What a finished process printed and returned. */
export interface RunOutcome {
  /** Exit status (`null` when killed by a signal). */
  status: number | null;
  /** stdout. */
  stdout: string;
  /** stderr. */
  stderr: string;
  /** Set when the program could not be started (ENOENT, EACCES, …). */
  error?: Error;
}

/** Runs `file` with `args`, exactly `env` and `input` on stdin, and waits for it (at most `timeoutMs`). */
export function runSync(
  file: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  input = '',
  timeoutMs = 30_000,
): RunOutcome {
  const r = spawnSync(file, args, { env, input, encoding: 'utf8', timeout: timeoutMs });
  const out: RunOutcome = { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (r.error) out.error = r.error;
  return out;
}
