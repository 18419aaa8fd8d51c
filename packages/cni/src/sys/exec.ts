// The only place this package starts processes: running a delegated plugin binary.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** What a delegated plugin run returned. */
export interface ExecOutcome {
  /** Exit status (`null` when killed by a signal). */
  status: number | null;
  /** Everything it printed on stdout. */
  stdout: string;
}

/** Finds an executable named `name` in the directories of `path`, in order. */
export function findInPath(name: string, path: readonly string[]): string | undefined {
  if (name === '' || name.includes('/')) return undefined;
  for (const dir of path) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next directory
    }
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Executes a plugin binary with `env` and `stdin`; its stderr passes through to ours. Retries a few times
 * on ETXTBSY ("text file busy"), as libcni does when a binary is being replaced.
 */
export async function execPlugin(
  file: string,
  env: Readonly<Record<string, string>>,
  stdin: string,
): Promise<ExecOutcome> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await execOnce(file, env, stdin);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ETXTBSY' || attempt >= 4) throw err;
      await sleep(50 * (attempt + 1));
    }
  }
}

async function execOnce(
  file: string,
  env: Readonly<Record<string, string>>,
  stdin: string,
): Promise<ExecOutcome> {
  // Loaded on first use: node:child_process costs a plugin several milliseconds of start-up, and only
  // delegated IPAM needs it.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = spawn(file, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.stdin.on('error', () => {
      // a plugin that exits without reading stdin: its status tells the story
    });
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(chunks).toString('utf8') }));
    child.stdin.end(stdin);
  });
}
