import type { CniCommand } from './env.js';
import { CniError, CniErrorCode } from './errors.js';
import { type CniResult, parseResult } from './result.js';
import { execPlugin, findInPath } from './sys/exec.js';

/** The invocation a delegated call reuses: the same stdin, environment and plugin path. */
export interface DelegateContext {
  /** The full config, exactly as the plugin received it (or as it wants the delegate to see it). */
  stdin: string;
  /** The plugin's environment; `CNI_COMMAND` is replaced by the delegated command. */
  env: Readonly<Record<string, string | undefined>>;
  /** `CNI_PATH` directories, searched in order for the delegate binary. */
  path: readonly string[];
  /** The config's `cniVersion`, the version the delegate's result is read in. */
  cniVersion: string;
}

/**
 * Runs a delegated plugin (usually IPAM) found in `CNI_PATH` with the same environment and the same
 * stdin, the way libcni's `invoke.DelegateAdd/Del/Check/Status/GC` do. Returns the delegate's result,
 * converted to the newest shape, for ADD; `undefined` for the other commands. Its stderr passes through.
 *
 * @throws {@link CniError} with the delegate's own code and details when it fails (the message prefixed
 * with `plugin "TYPE": `), code 999 when it cannot be found or
 * started, code 6 when its result cannot be decoded.
 * @example Delegating address allocation to host-local
 * ```ts
 * import { delegate } from '@datapath/cni';
 * const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'pods', type: 'ptp',
 *   ipam: { type: 'host-local', subnet: '10.244.0.0/24' } });
 * const result = await delegate('ADD', 'host-local',
 *   { stdin, env: process.env, path: ['/opt/cni/bin'], cniVersion: '1.0.0' });
 * ```
 */
export async function delegate(
  command: Exclude<CniCommand, 'VERSION'>,
  type: string,
  ctx: DelegateContext,
): Promise<CniResult | undefined> {
  const file = findInPath(type, ctx.path);
  if (file === undefined) {
    throw new CniError(
      CniErrorCode.Internal,
      `failed to find plugin "${type}" in path [${ctx.path.join(' ')}]`,
    );
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined) env[k] = v;
  env.CNI_COMMAND = command;
  let out: Awaited<ReturnType<typeof execPlugin>>;
  try {
    out = await execPlugin(file, env, ctx.stdin);
  } catch (err) {
    throw new CniError(
      CniErrorCode.Internal,
      `failed to run plugin "${type}": ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
  if (out.status !== 0) throw delegateFailure(type, out.status, out.stdout);
  if (command !== 'ADD') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(out.stdout);
  } catch {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `plugin "${type}" printed a result that is not JSON`,
      out.stdout,
    );
  }
  return parseResult(json, ctx.cniVersion);
}

function delegateFailure(type: string, status: number | null, stdout: string): CniError {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && e.code >= 1 && Number.isInteger(e.code)) {
      // The delegate's own code and details; its message says which plugin failed.
      return new CniError(
        e.code,
        typeof e.msg === 'string' ? `plugin "${type}": ${e.msg}` : `plugin "${type}" failed`,
        typeof e.details === 'string' ? e.details : undefined,
      );
    }
  } catch {
    // not an error object: report the raw output below
  }
  return new CniError(
    CniErrorCode.Internal,
    `plugin "${type}" failed with status ${status ?? 'signal'}`,
    stdout.trim() || undefined,
  );
}
