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

/**
 * The one error type of `@datapath/cni`: a CNI error code, a message and optional details, as the
 * runtime will see them.
 *
 * @example Refusing a config value
 * ```ts
 * import { CniError, CniErrorCode } from '@datapath/cni';
 * throw new CniError(CniErrorCode.UnsupportedField, 'unsupported field "mode": "bridge"');
 * ```
 */
export class CniError extends Error {
  /** Always `'CniError'`. */
  override readonly name = 'CniError';
  /** The numeric CNI error code. */
  readonly code: CniErrorCodeValue;
  /** A longer explanation, when there is one. */
  readonly details: string | undefined;

  constructor(code: CniErrorCodeValue, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options?.cause === undefined ? undefined : { cause: options.cause });
    if (!Number.isInteger(code) || code < 1) throw new RangeError(`CniError: code must be ≥ 1, got ${code}`);
    this.code = code;
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
    const out: CniErrorJson = { cniVersion, code: this.code, msg: this.message };
    if (this.details !== undefined) out.details = this.details;
    return out;
  }
}

// SDK error codes (IpamError, NetlinkError, NetdevError, BpfError, LoaderError …) → CNI codes. Matched on
// the error's `code` string only, so this package does not import the packages that throw them.
const SDK_CODE_TO_CNI: Readonly<Record<string, number>> = {
  // A bad value in the config reached a lower layer: the config is invalid.
  InvalidArgument: CniErrorCode.InvalidNetworkConfig,
  InvalidCidr: CniErrorCode.InvalidNetworkConfig,
  MaskInvalid: CniErrorCode.InvalidNetworkConfig,
  SubnetTooBig: CniErrorCode.InvalidNetworkConfig,
  Family: CniErrorCode.InvalidNetworkConfig,
  OutOfRange: CniErrorCode.InvalidNetworkConfig,
  NotInRange: CniErrorCode.InvalidNetworkConfig,
  Excluded: CniErrorCode.InvalidNetworkConfig,
  Mismatch: CniErrorCode.InvalidNetworkConfig,
  // Conditions that clear up by themselves (a lock, a full pool that pods will give back).
  Busy: CniErrorCode.TryAgainLater,
  Interrupted: CniErrorCode.TryAgainLater,
  Timeout: CniErrorCode.TryAgainLater,
  TryAgain: CniErrorCode.TryAgainLater,
  Full: CniErrorCode.TryAgainLater,
  Exhausted: CniErrorCode.TryAgainLater,
  NoSpace: CniErrorCode.TryAgainLater,
};

const SDK_ERROR_NAME = /^[A-Z][A-Za-z]*Error$/;

/**
 * Translates any thrown value into a {@link CniError}: the single boundary where SDK error codes become
 * CNI codes (a bad value → 7, a transient condition such as `Busy` or a `Full` pool → 11, everything
 * else → 999). A `CniError` passes through unchanged; the original error is kept as `cause`.
 *
 * @example Mapping an allocator failure
 * ```ts
 * import { toCniError } from '@datapath/cni';
 * const err = toCniError(Object.assign(new Error('range full'), { name: 'IpamError', code: 'Full' }));
 * console.log(err.code); // 11
 * ```
 */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && SDK_ERROR_NAME.test(err.name) && err.name !== 'SystemError') {
      const mapped = SDK_CODE_TO_CNI[code] ?? CniErrorCode.Internal;
      return new CniError(mapped, err.message, `${err.name} ${code}`, { cause: err });
    }
    return new CniError(CniErrorCode.Internal, err.message, undefined, { cause: err });
  }
  return new CniError(CniErrorCode.Internal, String(err), undefined, { cause: err });
}
