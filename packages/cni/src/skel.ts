import { readFileSync, writeSync } from 'node:fs';
import { type ConfigRules, type NetConf, parseConfig } from './config.js';
import {
  type CniCommand,
  parseCniArgs,
  readCniEnv,
  validateContainerId,
  validateIfname,
  validateNetworkName,
} from './env.js';
import { CniError, CniErrorCode, toCniError } from './errors.js';
import { checkNetnsPath } from './netns.js';
import { type CniResult, formatResult, parseResult, validateResultShape } from './result.js';
import { ALL_VERSIONS, type CniVersion, compareVersions, negotiateVersion, versionInfo } from './version.js';

/** Where a plugin reads its invocation and writes its answer; the real process by default. */
export interface PluginIo {
  /** The environment (`CNI_*`). */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads all of stdin. */
  readStdin: () => string | Promise<string>;
  /** Writes to stdout (results and error JSON only). */
  writeStdout: (text: string) => void;
  /** Writes to stderr (logs). */
  writeStderr: (text: string) => void;
  /** Ends the process with a status (tests record it instead). */
  exit: (status: number) => void;
}

/** A container attachment named in a GC request. */
export interface Attachment {
  /** The container id. */
  containerID: string;
  /** The interface name inside the container. */
  ifname: string;
}

/** What every handler receives. */
export interface BaseArgs<C> {
  /** The command being run. */
  command: CniCommand;
  /** The negotiated version: the config's `cniVersion`. */
  cniVersion: CniVersion;
  /** The validated config (base fields plus the plugin's own schema; unknown keys kept). */
  config: NetConf & C;
  /** The raw stdin, to pass on unchanged to a delegate. */
  stdin: string;
  /** The raw environment, to pass on to a delegate. */
  env: Readonly<Record<string, string | undefined>>;
  /** `CNI_PATH` directories. */
  path: string[];
  /** Writes one line to stderr (never stdout). */
  log: (message: string) => void;
}

/** What DEL receives: the netns may be absent or already gone. */
export interface DelArgs<C> extends BaseArgs<C> {
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_IFNAME`. */
  ifname: string;
  /** `CNI_NETNS` when set and still present (checked to be nsfs and not the plugin's own), else undefined. */
  netns: string | undefined;
  /** Parsed `CNI_ARGS` (keys the plugin declared). */
  args: Record<string, string>;
  /** The config's `prevResult`, parsed in the config's version and converted to the newest shape. */
  prevResult: CniResult | undefined;
}

/** What ADD receives. */
export interface AddArgs<C> extends DelArgs<C> {
  /** `CNI_NETNS`, checked to be a namespace file that is not the plugin's own. */
  netns: string;
}

/** What CHECK receives: `prevResult` is required. */
export interface CheckArgs<C> extends AddArgs<C> {
  /** The result of the ADD being checked, in the newest shape. */
  prevResult: CniResult;
}

/** What GC receives. */
export interface GcArgs<C> extends BaseArgs<C> {
  /** Attachments to keep (`cni.dev/valid-attachments`, or the older `cni.dev/attachments`). */
  validAttachments: Attachment[];
}

/** A CNI plugin: one handler per command, the versions it speaks and its config schema. */
export interface CniPlugin<C = {}> {
  /** ADD: create the attachment and return its result (in the newest shape; it is converted on output). */
  add(args: AddArgs<C>): CniResult | Promise<CniResult>;
  /** DEL: remove the attachment, best effort and idempotent. */
  del(args: DelArgs<C>): void | Promise<void>;
  /** CHECK: verify the attachment; throw a {@link CniError} when it is not as expected. */
  check(args: CheckArgs<C>): void | Promise<void>;
  /** GC: release everything not in `validAttachments`; absent means nothing to collect. */
  gc?(args: GcArgs<C>): void | Promise<void>;
  /** STATUS: throw code 50 or 51 when ADD cannot be served; absent means always ready. */
  status?(args: BaseArgs<C>): void | Promise<void>;
  /** Spec versions accepted in a config; defaults to {@link ALL_VERSIONS}. */
  versions?: readonly CniVersion[];
  /** Printed on stderr when run without `CNI_COMMAND`, e.g. `CNI plugin foo v1.0.0`. */
  about?: string;
  /**
   * The plugin's own config rules: a zod schema (classic or mini), or a validator function of the
   * base-checked config (see {@link ConfigRules}); failures are code 7.
   */
  config?: ConfigRules<C>;
  /** `CNI_ARGS` keys the plugin understands; others fail unless `IgnoreUnknown=1`. */
  cniArgs?: readonly string[];
}

function readAllStdin(): string | Promise<string> {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EBADF' || code === 'ENXIO') return '';
    if (code !== 'EAGAIN') throw err;
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') throw err;
    }
  }
}

/**
 * The real process: `process.env`, fd 0/1/2 read and written synchronously (so nothing is lost on exit),
 * and `process.exit`.
 *
 * @example Running a plugin on the real process explicitly
 * ```ts
 * import { processIo, runPlugin } from '@datapath/cni';
 * declare const plugin: Parameters<typeof runPlugin>[0];
 * await runPlugin(plugin, processIo());
 * ```
 */
export function processIo(): PluginIo {
  return {
    env: process.env,
    readStdin: readAllStdin,
    writeStdout: (t) => writeAll(1, t),
    writeStderr: (t) => writeAll(2, t),
    exit: (status) => process.exit(status),
  };
}

const CONTAINER_COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK'];
const MIN_VERSION: Partial<Record<CniCommand, string>> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

/**
 * Runs a CNI plugin for one invocation, as libcni's skel does: reads the `CNI_*` variables and stdin,
 * applies the spec's rules (required variables per command, container id, the 15-byte interface name,
 * config name and version, CHECK ≥ 0.4.0, GC/STATUS ≥ 1.1.0), validates the config, refuses a netns
 * that is not nsfs or is the plugin's own before calling any handler, then writes the result in the
 * config's `cniVersion`, or `{ cniVersion, code, msg, details }` on stdout with exit status 1. Logs go
 * to stderr only. Resolves to the exit status after calling `io.exit`.
 *
 * @throws never: every failure becomes the CNI error JSON (see {@link toCniError} for the code mapping).
 * @example A minimal plugin
 * ```ts
 * import { runPlugin } from '@datapath/cni';
 * await runPlugin({
 *   add: ({ ifname, netns }) => ({ interfaces: [{ name: ifname, sandbox: netns }] }),
 *   del: () => {},
 *   check: () => {},
 * });
 * ```
 */
export async function runPlugin<C = {}>(plugin: CniPlugin<C>, io: PluginIo = processIo()): Promise<number> {
  const versions = plugin.versions ?? ALL_VERSIONS;
  const newest = [...versions].sort(compareVersions).at(-1) ?? '1.1.0';
  let errVersion: string = newest;
  let status = 0;
  try {
    const out = await dispatch(plugin, io, versions, (v) => {
      errVersion = v;
    });
    if (out !== undefined) io.writeStdout(`${JSON.stringify(out)}\n`);
  } catch (err) {
    const e = toCniError(err);
    if (e.cniCode === CniErrorCode.Internal && e.cause instanceof Error && e.cause.stack) {
      io.writeStderr(`${e.cause.stack}\n`);
    }
    status = 1;
    try {
      io.writeStdout(`${JSON.stringify(e.toJson(errVersion))}\n`);
    } catch {
      // stdout is gone: the exit status still says it failed
    }
  }
  io.exit(status);
  return status;
}

async function dispatch<C>(
  plugin: CniPlugin<C>,
  io: PluginIo,
  versions: readonly CniVersion[],
  setErrVersion: (v: string) => void,
): Promise<unknown> {
  let env: ReturnType<typeof readCniEnv>;
  try {
    env = readCniEnv(io.env);
  } catch (err) {
    if ((io.env.CNI_COMMAND ?? '') === '') {
      if (plugin.about) io.writeStderr(`${plugin.about}\n`);
      io.writeStderr(`CNI protocol versions supported: ${versions.join(', ')}\n`);
      return undefined;
    }
    throw err;
  }

  let stdin: string;
  try {
    stdin = await io.readStdin();
  } catch (err) {
    if (env.command === 'VERSION') stdin = '';
    else throw new CniError(CniErrorCode.IoFailure, `error reading from stdin: ${(err as Error).message}`);
  }
  if (env.command === 'VERSION') {
    let requested: string | undefined;
    try {
      const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
      if (typeof v === 'string') requested = v;
    } catch {
      // VERSION works without input
    }
    return versionInfo(requested, versions);
  }

  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniErrorCode.DecodingFailure,
      `error unmarshall network config: ${(err as Error).message}`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(CniErrorCode.DecodingFailure, 'error unmarshall network config: not a JSON object');
  }
  const rawVersion = (raw as { cniVersion?: unknown }).cniVersion;
  if (typeof rawVersion === 'string' && rawVersion !== '') setErrVersion(rawVersion);
  validateNetworkName((raw as { name?: unknown }).name);
  const perContainer = CONTAINER_COMMANDS.includes(env.command);
  if (perContainer) {
    validateContainerId(env.containerId ?? '');
    validateIfname(env.ifname ?? '');
  }
  if (rawVersion !== undefined && typeof rawVersion !== 'string') {
    throw new CniError(CniErrorCode.DecodingFailure, 'cniVersion must be a string');
  }
  const configVersion = rawVersion === undefined || rawVersion === '' ? '0.1.0' : rawVersion;
  const min = MIN_VERSION[env.command];
  if (min !== undefined && compareVersions(configVersion, min) < 0) {
    throw new CniError(CniErrorCode.IncompatibleVersion, `config version does not allow ${env.command}`);
  }
  const cniVersion = negotiateVersion(configVersion, versions);
  const config = parseConfig(raw, plugin.config);
  const base: BaseArgs<C> = {
    command: env.command,
    cniVersion,
    config,
    stdin,
    env: io.env,
    path: env.path,
    log: (m) => io.writeStderr(`${m}\n`),
  };

  if (env.command === 'STATUS') {
    await plugin.status?.(base);
    return undefined;
  }
  if (env.command === 'GC') {
    await plugin.gc?.({ ...base, validAttachments: attachments(raw) });
    return undefined;
  }

  const args = parseCniArgs(env.args, plugin.cniArgs);
  let prevResult: CniResult | undefined;
  if (config.prevResult !== undefined && config.prevResult !== null) {
    try {
      prevResult = parseResult(config.prevResult, cniVersion);
    } catch (err) {
      const e = toCniError(err);
      throw new CniError(CniErrorCode.InvalidNetworkConfig, `invalid prevResult: ${e.message}`, e.details);
    }
  }
  const containerId = env.containerId ?? '';
  const ifname = env.ifname ?? '';
  const netnsPath = env.netns ?? '';

  if (env.command === 'DEL') {
    let netns: string | undefined;
    if (netnsPath !== '') {
      // A stale CNI_NETNS (a regular file or directory left by a vanished bind mount) is a namespace that is
      // gone: DEL must still release what the container held, so the handler gets no netns.
      const found = checkNetnsPath(netnsPath, { allowOwn: env.netnsOverride, staleAsMissing: true });
      netns = found.kind === 'ok' ? netnsPath : undefined;
    }
    await plugin.del({ ...base, containerId, ifname, netns, args, prevResult });
    return undefined;
  }

  const found = checkNetnsPath(netnsPath, { allowOwn: env.netnsOverride });
  if (found.kind === 'missing') {
    throw new CniError(CniErrorCode.InvalidNetNs, `failed to open netns "${netnsPath}": no such file`);
  }
  if (env.command === 'CHECK') {
    if (prevResult === undefined) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, 'CHECK requires a prevResult in the config');
    }
    await plugin.check({ ...base, containerId, ifname, netns: netnsPath, args, prevResult });
    return undefined;
  }
  const result = await plugin.add({ ...base, containerId, ifname, netns: netnsPath, args, prevResult });
  const out = formatResult(result, cniVersion);
  try {
    validateResultShape(out, cniVersion);
  } catch (err) {
    throw new CniError(CniErrorCode.Internal, 'plugin produced an invalid result', toCniError(err).details);
  }
  return out;
}

function attachments(raw: object): Attachment[] {
  const r = raw as Record<string, unknown>;
  const list = r['cni.dev/valid-attachments'] ?? r['cni.dev/attachments'];
  if (!Array.isArray(list)) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'GC requires cni.dev/valid-attachments (a list)');
  }
  return list.map((a, i) => {
    const o = a as { containerID?: unknown; ifname?: unknown } | null;
    if (typeof o?.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(
        CniErrorCode.InvalidNetworkConfig,
        `cni.dev/valid-attachments[${i}] needs string containerID and ifname`,
      );
    }
    return { containerID: o.containerID, ifname: o.ifname };
  });
}
