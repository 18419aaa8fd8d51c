import type { CniPlugin, PluginIo } from '../src/index.js';
import { runPlugin } from '../src/index.js';

/** What one fake invocation produced. */
export interface Outcome {
  status: number;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs `plugin` against an in-memory environment and stdin, recording stdout, stderr and the exit status. */
export async function invoke<C>(
  plugin: CniPlugin<C>,
  env: Record<string, string | undefined>,
  stdin: unknown,
): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  let exited: number | undefined;
  const io: PluginIo = {
    env,
    readStdin: () => (typeof stdin === 'string' ? stdin : JSON.stringify(stdin)),
    writeStdout: (t) => {
      stdout += t;
    },
    writeStderr: (t) => {
      stderr += t;
    },
    exit: (s) => {
      exited = s;
    },
  };
  const status = await runPlugin(plugin, io);
  if (exited !== status) throw new Error(`exit(${exited}) but resolved ${status}`);
  return { status, stdout, stderr, json: stdout === '' ? undefined : JSON.parse(stdout) };
}
