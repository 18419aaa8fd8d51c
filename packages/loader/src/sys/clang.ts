// The only place this package starts a child process: clang, with an argument array (never a shell).
import { spawn } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** What one compiler run produced. */
export interface CompilerRun {
  /** Exit status (null when killed by a signal). */
  exitCode: number | null;
  /** Everything the compiler wrote to stderr (diagnostics), capped at 1 MiB. */
  stderr: string;
}

/**
 * Runs a C-to-BPF compiler. The default runs clang; tests and embedders inject their own (for example to
 * count compiler runs or to run clang in a sandbox).
 */
export interface CompilerRunner {
  /**
   * A string that changes whenever the compiler would produce different output (its resolved path, size and
   * modification time for clang). Part of every cache key; must not start a process.
   */
  identity(): string;
  /** Runs the compiler with `args` in `cwd`. */
  run(args: readonly string[], cwd: string): Promise<CompilerRun>;
}

const STDERR_CAP = 1 << 20;

/** Finds `command` in PATH (or checks it when it is a path); undefined when it is not an executable. */
export function resolveExecutable(command: string, path = process.env.PATH ?? ''): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : path
        .split(delimiter)
        .filter(isAbsolute)
        .map((d) => join(d, command));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** The default runner: `clang` (or `command`) found in PATH, run with an argument array. */
export function clangRunner(command = 'clang'): CompilerRunner {
  let resolved: string | undefined;
  const locate = (): string => {
    resolved ??= resolveExecutable(command);
    if (resolved === undefined) {
      const err = new Error(`${command} not found in PATH`) as NodeJS.ErrnoException;
      err.code = 'ENOENT';
      throw err;
    }
    return resolved;
  };
  return {
    identity() {
      const exe = realpathSync(locate());
      const st = statSync(exe);
      return `${exe}:${st.size}:${Math.trunc(st.mtimeMs)}`;
    },
    run(args, cwd) {
      const exe = locate();
      return new Promise((resolve, reject) => {
        const child = spawn(exe, [...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'], shell: false });
        let stderr = '';
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk: string) => {
          if (stderr.length < STDERR_CAP) stderr += chunk.slice(0, STDERR_CAP - stderr.length);
        });
        child.on('error', reject);
        child.on('close', (exitCode) => resolve({ exitCode, stderr }));
      });
    },
  };
}
