import { CniError, CniErrorCode } from './errors.js';

/** Every CNI spec version this library speaks, oldest first (libcni `version.All`). */
export const ALL_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

/** A CNI spec version this library speaks. */
export type CniVersion = (typeof ALL_VERSIONS)[number];

/** The newest spec version this library speaks. */
export const CURRENT_VERSION: CniVersion = '1.1.0';

/** What a plugin prints for the VERSION command. */
export interface VersionInfo {
  /** The version the runtime asked in (echoed), or the newest supported one. */
  cniVersion: string;
  /** The spec versions the plugin accepts in a config. */
  supportedVersions: string[];
}

const SEMVER = /^(\d+)\.(\d+)\.(\d+)$/;

/**
 * Compares two `major.minor.patch` version strings: negative, zero or positive like a sort comparator.
 *
 * @throws {@link CniError} code 6 (decoding failure) when either is not a version string.
 * @example Checking that a config allows CHECK
 * ```ts
 * import { compareVersions } from '@datapath/cni';
 * compareVersions('0.3.1', '0.4.0') < 0; // true: CHECK is not allowed
 * ```
 */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  return pa[0] - pb[0] || pa[1] - pb[1] || pa[2] - pb[2];
}

function parseVersion(v: string): [number, number, number] {
  const m = SEMVER.exec(v);
  if (m === null)
    throw new CniError(CniErrorCode.DecodingFailure, `invalid version "${v}": not major.minor.patch`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * True when `v` is one of {@link ALL_VERSIONS}.
 *
 * @example Narrowing a config's version
 * ```ts
 * import { isCniVersion } from '@datapath/cni';
 * isCniVersion('0.3.1'); // true
 * ```
 */
export function isCniVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (ALL_VERSIONS as readonly string[]).includes(v);
}

/**
 * Checks a config's `cniVersion` against the versions a plugin supports, the way libcni's reconciler does
 * (exact membership), and returns it typed.
 *
 * @throws {@link CniError} code 1 (incompatible version) with details `config is "X", plugin supports [...]`.
 * @example Negotiating
 * ```ts
 * import { negotiateVersion } from '@datapath/cni';
 * const v = negotiateVersion('0.4.0', ['0.4.0', '1.0.0']); // '0.4.0'
 * ```
 */
export function negotiateVersion(configVersion: string, supported: readonly CniVersion[]): CniVersion {
  if ((supported as readonly string[]).includes(configVersion) && isCniVersion(configVersion)) {
    return configVersion;
  }
  const list = supported.map((v) => `"${v}"`).join(' ');
  throw new CniError(
    CniErrorCode.IncompatibleVersion,
    'incompatible CNI versions',
    `config is "${configVersion}", plugin supports [${list}]`,
  );
}

/**
 * The VERSION command's answer: echoes the requested version when it is a version string, otherwise the
 * newest version the plugin supports.
 *
 * @example Answering VERSION
 * ```ts
 * import { versionInfo, ALL_VERSIONS } from '@datapath/cni';
 * console.log(JSON.stringify(versionInfo('1.0.0', ALL_VERSIONS)));
 * ```
 */
export function versionInfo(requested: string | undefined, supported: readonly CniVersion[]): VersionInfo {
  const newest = [...supported].sort(compareVersions).at(-1) ?? CURRENT_VERSION;
  const echo = requested !== undefined && SEMVER.test(requested) ? requested : newest;
  return { cniVersion: echo, supportedVersions: [...supported] };
}
