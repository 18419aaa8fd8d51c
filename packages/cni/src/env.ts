import { CniError, CniErrorCode } from './errors.js';

/** The six CNI commands. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** The `CNI_*` variables of one invocation, after the spec's per-command rules were applied. */
export interface CniEnv {
  /** `CNI_COMMAND`. */
  command: CniCommand;
  /** `CNI_CONTAINERID` (ADD, DEL, CHECK). */
  containerId: string | undefined;
  /** `CNI_NETNS` (required for ADD and CHECK, optional for DEL). */
  netns: string | undefined;
  /** `CNI_IFNAME` (ADD, DEL, CHECK). */
  ifname: string | undefined;
  /** `CNI_ARGS`, raw (`K=V;K2=V2`). */
  args: string;
  /** `CNI_PATH` split on `:` (empty entries dropped). */
  path: string[];
  /** `CNI_NETNS_OVERRIDE` is `1` or `true`: skip the plugin's-own-namespace check. */
  netnsOverride: boolean;
}

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];

// Which variables each command requires (libcni skel, newest version: GC and STATUS need CNI_PATH).
const REQUIRED: Readonly<Record<string, readonly CniCommand[]>> = {
  CNI_CONTAINERID: ['ADD', 'CHECK', 'DEL'],
  CNI_NETNS: ['ADD', 'CHECK'],
  CNI_IFNAME: ['ADD', 'CHECK', 'DEL'],
  CNI_PATH: ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS'],
};
const ORDER = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Reads and validates the `CNI_*` variables the way libcni's skel does: every variable the command needs
 * must be set and non-empty (all missing names are listed at once), the command must be known, and for
 * ADD/DEL/CHECK the container id and interface name must be valid.
 *
 * @throws {@link CniError} code 4 for a missing or invalid variable (the message names it).
 * @example Reading the environment of an ADD
 * ```ts
 * import { readCniEnv } from '@datapath/cni';
 * const env = readCniEnv({ CNI_COMMAND: 'VERSION' });
 * console.log(env.command); // 'VERSION'
 * ```
 */
export function readCniEnv(vars: Readonly<Record<string, string | undefined>>): CniEnv {
  const get = (name: string) => vars[name] ?? '';
  const cmd = get('CNI_COMMAND');
  const missing = ORDER.filter(
    (name) =>
      get(name) === '' && (name === 'CNI_COMMAND' || (REQUIRED[name] ?? []).includes(cmd as CniCommand)),
  );
  if (missing.length > 0) {
    throw new CniError(
      CniErrorCode.InvalidEnvironmentVariables,
      `required env variables [${missing.join(',')}] missing`,
    );
  }
  if (!(COMMANDS as readonly string[]).includes(cmd)) {
    throw new CniError(CniErrorCode.InvalidEnvironmentVariables, `unknown CNI_COMMAND: ${cmd}`);
  }
  const command = cmd as CniCommand;
  const perContainer = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const override = get('CNI_NETNS_OVERRIDE').toLowerCase();
  return {
    command,
    containerId: perContainer ? get('CNI_CONTAINERID') : undefined,
    netns: perContainer && get('CNI_NETNS') !== '' ? get('CNI_NETNS') : undefined,
    ifname: perContainer ? get('CNI_IFNAME') : undefined,
    args: get('CNI_ARGS'),
    path: get('CNI_PATH')
      .split(':')
      .filter((p) => p !== ''),
    netnsOverride: override === '1' || override === 'true',
  };
}

/**
 * Validates a container id: non-empty, `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (libcni `ValidateContainerID`).
 *
 * @throws {@link CniError} code 3 when empty, code 4 when it has other characters.
 * @example Checking a runtime-supplied id
 * ```ts
 * import { validateContainerId } from '@datapath/cni';
 * validateContainerId('3f2a9c'); // ok
 * ```
 */
export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(CniErrorCode.UnknownContainer, 'missing containerID');
  if (!CONTAINER_ID.test(id)) {
    throw new CniError(CniErrorCode.InvalidEnvironmentVariables, 'invalid characters in containerID', id);
  }
}

/**
 * Validates a network name from a config: same rule as a container id (libcni `ValidateNetworkName`).
 *
 * @throws {@link CniError} code 7 when missing or invalid.
 * @example Checking a network name
 * ```ts
 * import { validateNetworkName } from '@datapath/cni';
 * validateNetworkName('pods'); // ok
 * ```
 */
export function validateNetworkName(name: unknown): void {
  if (typeof name !== 'string' || name === '') {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'missing network name');
  }
  if (!CONTAINER_ID.test(name)) {
    throw new CniError(CniErrorCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
  }
}

/**
 * Validates an interface name as Linux and libcni require: 1–15 bytes, not `.` or `..`, and no `/`, `:`
 * or whitespace; and, beyond libcni, not `all` or `default` (the kernel refuses them) and no `%` (the
 * kernel would expand it, so the name made would not be the name asked for).
 *
 * @throws {@link CniError} code 4 naming `CNI_IFNAME`.
 * @example Checking an interface name
 * ```ts
 * import { validateIfname } from '@datapath/cni';
 * validateIfname('eth0'); // ok
 * ```
 */
export function validateIfname(name: string): void {
  const bad = (why: string) =>
    new CniError(CniErrorCode.InvalidEnvironmentVariables, `invalid CNI_IFNAME "${name}": ${why}`);
  if (name === '') throw bad('interface name is empty');
  if (Buffer.byteLength(name, 'utf8') > 15) throw bad('interface name is longer than 15 bytes');
  if (name === '.' || name === '..') throw bad('interface name is . or ..');
  // The kernel refuses these two (they name the per-family sysctl directories).
  if (name === 'all' || name === 'default') throw bad(`interface name "${name}" is reserved by the kernel`);
  if (/[/:\s]/u.test(name)) throw bad('interface name contains / or : or whitespace characters');
  // The kernel expands a `%d` in a new device's name (eth%d → eth0): the interface made would not be the one
  // named in the result, nor the one CHECK and DEL look for.
  if (name.includes('%')) throw bad('interface name contains %');
}

/**
 * Parses `CNI_ARGS` (`K=V;K2=V2`). Keys not in `known` are an error unless `IgnoreUnknown` is `1` or
 * `true`; `IgnoreUnknown` itself is always known and is not returned.
 *
 * @throws {@link CniError} code 4 for a pair without `=`, an unknown key, or a bad `IgnoreUnknown`.
 * @example Reading Kubernetes pod arguments
 * ```ts
 * import { parseCniArgs } from '@datapath/cni';
 * const a = parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web;FOO=1', ['K8S_POD_NAME']);
 * console.log(a.K8S_POD_NAME); // 'web'
 * ```
 */
export function parseCniArgs(raw: string, known: readonly string[] = []): Record<string, string> {
  const pairs: [string, string][] = [];
  for (const part of raw.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new CniError(CniErrorCode.InvalidEnvironmentVariables, `CNI_ARGS: invalid pair "${part}"`);
    }
    pairs.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  let ignoreUnknown = false;
  for (const [k, v] of pairs) {
    if (k !== 'IgnoreUnknown') continue;
    const b = v.toLowerCase();
    if (b === '1' || b === 'true') ignoreUnknown = true;
    else if (b === '0' || b === 'false') ignoreUnknown = false;
    else {
      throw new CniError(
        CniErrorCode.InvalidEnvironmentVariables,
        `CNI_ARGS: IgnoreUnknown: bad boolean "${v}"`,
      );
    }
  }
  const out: Record<string, string> = {};
  const unknown: string[] = [];
  for (const [k, v] of pairs) {
    if (k === 'IgnoreUnknown') continue;
    if (known.includes(k)) out[k] = v;
    else if (!ignoreUnknown) unknown.push(k);
  }
  if (unknown.length > 0) {
    throw new CniError(
      CniErrorCode.InvalidEnvironmentVariables,
      `CNI_ARGS: unknown args [${unknown.map((k) => `"${k}"`).join(' ')}]`,
    );
  }
  return out;
}
