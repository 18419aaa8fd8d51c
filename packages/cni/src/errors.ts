import { DatapathError, type ErrorCode, isDatapathError } from '@datapath/errors';

/**
 * The error codes of the CNI specification (1–99 reserved by the spec, 999 by libcni), by name.
 * Codes from 100 up are free for a plugin's own use.
 */
export const CniErrorCode = {
  /** 1: the config's `cniVersion` is not supported, or does not allow the command. */
  IncompatibleVersion: 1,
  /** 2: a config field or value is not supported; the message names key and value. */
  UnsupportedField: 2,
  /** 3: the container is unknown or does not exist; the runtime need not call DEL. */
  UnknownContainer: 3,
  /** 4: a required `CNI_*` environment variable is missing or invalid; the message names it. */
  InvalidEnvironmentVariables: 4,
  /** 5: reading stdin or writing stdout failed. */
  IoFailure: 5,
  /** 6: the config or a result could not be decoded. */
  DecodingFailure: 6,
  /** 7: the network configuration is invalid. */
  InvalidNetworkConfig: 7,
  /** 8: `CNI_NETNS` is not a usable network namespace (libcni `ErrInvalidNetNS`). */
  InvalidNetNs: 8,
  /** 11: a transient condition; the runtime should retry later. */
  TryAgainLater: 11,
  /** 50: STATUS: the plugin cannot serve ADD right now. */
  PluginNotAvailable: 50,
  /** 51: STATUS: the plugin cannot serve ADD and existing attachments are degraded. */
  PluginNotAvailableDegraded: 51,
  /** 999: any unclassified failure (libcni `ErrInternal`). */
  Internal: 999,
} as const;

/** A numeric CNI error code: one of {@link CniErrorCode}, or a plugin-defined code ≥ 100. */
export type CniErrorCodeValue = (typeof CniErrorCode)[keyof typeof CniErrorCode] | (number & {});

/** The JSON a plugin prints on stdout when a command fails. */
export interface CniErrorJson {
  /** The config's `cniVersion` (the spec requires it; libcni's own plugins leave it out). */
  cniVersion: string;
  /** The numeric error code. */
  code: number;
  /** A short message. */
  msg: string;
  /** A longer explanation, when there is one. */
  details?: string;
}

const NAME_OF: ReadonlyMap<number, string> = new Map(Object.entries(CniErrorCode).map(([k, v]) => [v, k]));

// The SDK code a CNI code stands for, when a CniError is made from a number alone.
function sdkCodeOf(cniCode: number): ErrorCode {
  switch (cniCode) {
    case CniErrorCode.IncompatibleVersion:
      return 'Incompatible';
    case CniErrorCode.UnsupportedField:
      return 'NotSupported';
    case CniErrorCode.UnknownContainer:
      return 'NotFound';
    case CniErrorCode.IoFailure:
      return 'Io';
    case CniErrorCode.InvalidEnvironmentVariables:
    case CniErrorCode.DecodingFailure:
    case CniErrorCode.InvalidNetworkConfig:
    case CniErrorCode.InvalidNetNs:
      return 'InvalidArgument';
    case CniErrorCode.TryAgainLater:
      return 'TryAgain';
    case CniErrorCode.PluginNotAvailable:
    case CniErrorCode.PluginNotAvailableDegraded:
      return 'Unavailable';
    default:
      return 'Unknown';
  }
}

/** Options of the {@link CniError} constructor. */
export interface CniErrorOptions {
  /** The underlying error, preserved. */
  cause?: unknown;
  /** The SDK code; default: the one the CNI code stands for (7 → `InvalidArgument`, 11 → `TryAgain` …). */
  code?: ErrorCode | undefined;
  /** Domain detail; default: the name of the CNI code (`InvalidNetworkConfig`, `TryAgainLater` …). */
  reason?: string | undefined;
}

/**
 * The one error type of `@datapath/cni`: a CNI error code, a message and optional details, as the
 * runtime will see them. It is a `DatapathError` like every SDK error: `code` is the SDK-wide
 * `ErrorCode` (matched the same way as any other package's), and the numeric code the runtime receives
 * is `cniCode` (what `toJson` prints as `code`).
 *
 * @example Refusing a config value
 * ```ts
 * import { CniError, CniErrorCode } from '@datapath/cni';
 * throw new CniError(CniErrorCode.UnsupportedField, 'unsupported field "mode": "bridge"');
 * ```
 */
export class CniError extends DatapathError {
  /** Always `'CniError'`. */
  override readonly name: string = 'CniError';
  /** The numeric CNI error code, as the runtime receives it. */
  readonly cniCode: CniErrorCodeValue;
  /** A longer explanation, when there is one. */
  readonly details: string | undefined;

  constructor(cniCode: CniErrorCodeValue, msg: string, details?: string, options: CniErrorOptions = {}) {
    if (!Number.isInteger(cniCode) || cniCode < 1) {
      throw new DatapathError('InvalidArgument', `CniError: code must be an integer ≥ 1, got ${cniCode}`, {
        op: 'CniError',
      });
    }
    super(options.code ?? sdkCodeOf(cniCode), msg, {
      reason: options.reason ?? NAME_OF.get(cniCode),
      cause: options.cause,
    });
    this.cniCode = cniCode;
    this.details = details === '' ? undefined : details;
  }

  /**
   * The error as the spec's JSON object, stamped with `cniVersion`.
   *
   * @example Printing an error the way a plugin must
   * ```ts
   * import { CniError } from '@datapath/cni';
   * process.stdout.write(JSON.stringify(new CniError(11, 'agent down').toJson('1.1.0')));
   * ```
   */
  toJson(cniVersion: string): CniErrorJson {
    const out: CniErrorJson = { cniVersion, code: this.cniCode, msg: this.message };
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

/**
 * The CNI code for an SDK error code: a bad value that reached a lower layer is an invalid config (7),
 * a condition that clears up by itself is "try again later" (11), anything else is internal (999).
 * Exhaustive: a new `ErrorCode` does not compile until it is placed here.
 */
function cniCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'InvalidArgument':
    case 'TooBig':
      return CniErrorCode.InvalidNetworkConfig;
    case 'Busy':
    case 'TryAgain':
    case 'TimedOut':
    case 'Interrupted':
    case 'Unavailable':
    case 'Exhausted':
      return CniErrorCode.TryAgainLater;
    case 'NotFound':
    case 'AlreadyExists':
    case 'PermissionDenied':
    case 'InvalidState':
    case 'NotSupported':
    case 'Incompatible':
    case 'OutOfMemory':
    case 'BadFd':
    case 'Stale':
    case 'Unreachable':
    case 'NetworkDown':
    case 'Protocol':
    case 'Io':
    case 'Unknown':
      return CniErrorCode.Internal;
    default: {
      const unplaced: never = code;
      return unplaced;
    }
  }
}

/**
 * Translates any thrown value into a {@link CniError}: the single boundary where SDK error codes become
 * CNI codes, by the SDK-wide `code` every `DatapathError` carries (whichever package threw it): a bad
 * value (`InvalidArgument`, `TooBig`) → 7; a transient condition (`Busy`, `TryAgain`, `TimedOut`,
 * `Interrupted`, `Unavailable`, `Exhausted` — a full pool that pods will give back) → 11; everything
 * else → 999. A `CniError` passes through unchanged; otherwise the original error is kept as `cause`,
 * its code and reason stay on the result, and `details` names its origin (`IpamError Exhausted (Full)`).
 *
 * @example Mapping an allocator failure
 * ```ts
 * import { DatapathError } from '@datapath/errors';
 * import { toCniError } from '@datapath/cni';
 * const err = toCniError(new DatapathError('Exhausted', 'range full', { reason: 'Full' }));
 * console.log(err.cniCode); // 11
 * ```
 */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (isDatapathError(err)) {
    const origin = `${err.name} ${err.code}${err.reason === undefined ? '' : ` (${err.reason})`}`;
    return new CniError(cniCodeFor(err.code), err.message, origin, {
      cause: err,
      code: err.code,
      reason: err.reason,
    });
  }
  if (err instanceof Error)
    return new CniError(CniErrorCode.Internal, err.message, undefined, { cause: err });
  return new CniError(CniErrorCode.Internal, String(err), undefined, { cause: err });
}
