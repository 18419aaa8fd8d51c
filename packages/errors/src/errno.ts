import type { DatapathErrorOptions } from './base.js';
import type { ErrorCode } from './codes.js';

/** The name of an errno the SDK knows, e.g. `EEXIST`. */
export type ErrnoName =
  | 'EPERM'
  | 'ENOENT'
  | 'ESRCH'
  | 'EINTR'
  | 'EIO'
  | 'ENXIO'
  | 'E2BIG'
  | 'EBADF'
  | 'EAGAIN'
  | 'ENOMEM'
  | 'EACCES'
  | 'EFAULT'
  | 'EBUSY'
  | 'EEXIST'
  | 'ENODEV'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'EINVAL'
  | 'ENFILE'
  | 'EMFILE'
  | 'ENOSPC'
  | 'ERANGE'
  | 'ENAMETOOLONG'
  | 'ENOLCK'
  | 'ENOSYS'
  | 'ENODATA'
  | 'ENOLINK'
  | 'EPROTO'
  | 'EBADMSG'
  | 'EBADFD'
  | 'EMSGSIZE'
  | 'EPROTONOSUPPORT'
  | 'EOPNOTSUPP'
  | 'EAFNOSUPPORT'
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  | 'ENETDOWN'
  | 'ENETUNREACH'
  | 'ENOBUFS'
  | 'ETIMEDOUT'
  | 'ECONNREFUSED'
  | 'EHOSTUNREACH'
  | 'ESTALE'
  | 'ENOTSUPP';

// The one errno table of the SDK (Linux numbers, every architecture the SDK supports): errno → name →
// generic code. Both kernel layers (@datapath/libbpf and @datapath/netlink) map through describeErrno.
const TABLE = [
  [1, 'EPERM', 'PermissionDenied'],
  [2, 'ENOENT', 'NotFound'],
  [3, 'ESRCH', 'NotFound'],
  [4, 'EINTR', 'Interrupted'],
  [5, 'EIO', 'Io'],
  [6, 'ENXIO', 'NotFound'],
  [7, 'E2BIG', 'TooBig'],
  [9, 'EBADF', 'BadFd'],
  [11, 'EAGAIN', 'TryAgain'],
  [12, 'ENOMEM', 'OutOfMemory'],
  [13, 'EACCES', 'PermissionDenied'],
  [14, 'EFAULT', 'InvalidArgument'],
  [16, 'EBUSY', 'Busy'],
  [17, 'EEXIST', 'AlreadyExists'],
  [19, 'ENODEV', 'NotFound'],
  [20, 'ENOTDIR', 'InvalidArgument'],
  [21, 'EISDIR', 'InvalidArgument'],
  [22, 'EINVAL', 'InvalidArgument'],
  [23, 'ENFILE', 'Exhausted'],
  [24, 'EMFILE', 'Exhausted'],
  [28, 'ENOSPC', 'Exhausted'],
  [34, 'ERANGE', 'InvalidArgument'],
  [36, 'ENAMETOOLONG', 'TooBig'],
  [37, 'ENOLCK', 'Exhausted'],
  [38, 'ENOSYS', 'NotSupported'],
  [61, 'ENODATA', 'NotFound'],
  [67, 'ENOLINK', 'NotFound'],
  [71, 'EPROTO', 'Protocol'],
  [74, 'EBADMSG', 'Protocol'],
  // What bpf(2) answers for a closed fd since Linux 6.12.
  [77, 'EBADFD', 'BadFd'],
  [90, 'EMSGSIZE', 'TooBig'],
  [93, 'EPROTONOSUPPORT', 'NotSupported'],
  [95, 'EOPNOTSUPP', 'NotSupported'],
  [97, 'EAFNOSUPPORT', 'NotSupported'],
  [98, 'EADDRINUSE', 'AlreadyExists'],
  [99, 'EADDRNOTAVAIL', 'NotFound'],
  [100, 'ENETDOWN', 'NetworkDown'],
  [101, 'ENETUNREACH', 'Unreachable'],
  [105, 'ENOBUFS', 'Exhausted'],
  [110, 'ETIMEDOUT', 'TimedOut'],
  [111, 'ECONNREFUSED', 'Unavailable'],
  [113, 'EHOSTUNREACH', 'Unreachable'],
  [116, 'ESTALE', 'Stale'],
  // Kernel-internal, but leaks out of bpf(2) and some netlink requests.
  [524, 'ENOTSUPP', 'NotSupported'],
] as const satisfies readonly (readonly [number, ErrnoName, ErrorCode])[];

const BY_NUMBER = new Map<number, readonly [ErrnoName, ErrorCode]>(
  TABLE.map(([n, name, code]) => [n, [name, code]]),
);

/**
 * The errno numbers the SDK knows, by name (Linux values): `Errno.EINTR === 4`. A sys layer uses these
 * for its retry loops (`EINTR`) instead of bare numbers; the meaning of an errno is decided only by
 * {@link describeErrno}.
 *
 * @example Naming an errno in a retry loop
 * ```ts
 * import { Errno } from '@datapath/errors';
 * console.log(Errno.EINTR, Errno.EEXIST); // 4 17
 * ```
 */
export const Errno: { readonly [K in ErrnoName]: number } = Object.freeze(
  Object.fromEntries(TABLE.map(([n, name]) => [name, n])) as { [K in ErrnoName]: number },
);

/**
 * The name of an errno (`17` → `EEXIST`); an errno outside the table reads `errno 1234`.
 *
 * @example Naming a raw errno
 * ```ts
 * import { errnoName } from '@datapath/errors';
 * console.log(errnoName(17), errnoName(9999)); // EEXIST errno 9999
 * ```
 */
export function errnoName(errno: number): string {
  return BY_NUMBER.get(errno)?.[0] ?? `errno ${errno}`;
}

function codeOf(
  known: readonly [ErrnoName, ErrorCode] | undefined,
  special: ErrorCode | ErrnoMeaning | undefined,
): ErrorCode {
  if (special !== undefined) return typeof special === 'string' ? special : special.code;
  return known?.[1] ?? 'Unknown';
}

/**
 * Only the code of an errno, as {@link describeErrno} would report it, without building a message: for
 * a sys layer's hot path that turns one expected answer into a result (`NotFound` on a map lookup → a
 * miss) and maps everything else with `describeErrno`.
 *
 * @example Deciding a lookup miss
 * ```ts
 * import { errnoCode } from '@datapath/errors';
 * console.log(errnoCode(2), errnoCode(7, { E2BIG: 'Exhausted' })); // NotFound Exhausted
 * ```
 */
export function errnoCode(errno: number, meaning?: ErrnoContext['meaning']): ErrorCode {
  const known = BY_NUMBER.get(errno);
  return codeOf(known, known === undefined ? undefined : meaning?.[known[0]]);
}

/** What an errno means in one call, when that differs from the table: a code, and a reason to carry. */
export interface ErrnoMeaning {
  /** The code to report instead of the table's. */
  code: ErrorCode;
  /** Domain detail for `reason`, e.g. `Full` for `E2BIG` on a hash map update. */
  reason?: string;
}

/** Where an errno came from and what it means there: the input of {@link describeErrno}. */
export interface ErrnoContext {
  /** The SDK operation that failed, e.g. `mapUpdate`. */
  op: string;
  /** The system call or kernel request that failed, e.g. `bpf(BPF_MAP_UPDATE_ELEM)`; defaults to `op`. */
  syscall?: string | undefined;
  /** What the operation acted on; named in the message. */
  target?: string | undefined;
  /** Text the kernel sent with the errno (a netlink extended ACK), appended to the message. */
  detail?: string | undefined;
  /**
   * Meanings specific to this call, by errno name, overriding the table: a hash map update passes
   * `{ E2BIG: { code: 'Exhausted', reason: 'Full' } }`, because there `E2BIG` means the map is full.
   */
  meaning?: Partial<Record<ErrnoName, ErrorCode | ErrnoMeaning>> | undefined;
  /**
   * The privilege the call needs (`CAP_NET_ADMIN`, `CAP_BPF` …), told to the user when the errno
   * means `PermissionDenied`.
   */
  privilege?: string | undefined;
}

/** The outcome of {@link describeErrno}: everything a kernel layer puts on its error. */
export interface ErrnoDescription {
  /** The SDK code the errno means in this call. */
  code: ErrorCode;
  /** Domain detail, when the call's `meaning` gave one. */
  reason: string | undefined;
  /** The errno itself. */
  errno: number;
  /** Its name (`EEXIST`, or `errno 1234` outside the table). */
  errnoName: string;
  /** The message: `op: syscall failed: NAME (target): detail`, plus the privilege hint when denied. */
  message: string;
}

/**
 * Maps an errno to the SDK's code, name and message: the one place the SDK interprets errno. The table
 * gives the generic meaning (`ENOENT` → `NotFound`, `EPERM` → `PermissionDenied`, `EAGAIN` → `TryAgain`,
 * `ENOSPC` → `Exhausted` …); a caller whose call gives an errno a specific meaning says so in
 * `context.meaning`. A permission failure's message names `context.privilege`.
 *
 * @example A full hash map, as the map layer reports it
 * ```ts
 * import { describeErrno } from '@datapath/errors';
 * const d = describeErrno(7, {
 *   op: 'mapUpdate',
 *   syscall: 'bpf(BPF_MAP_UPDATE_ELEM)',
 *   target: 'lxc',
 *   meaning: { E2BIG: { code: 'Exhausted', reason: 'Full' } },
 * });
 * console.log(d.code, d.reason, d.message); // Exhausted Full mapUpdate: bpf(BPF_MAP_UPDATE_ELEM) failed: E2BIG (lxc)
 * ```
 */
export function describeErrno(errno: number, context: ErrnoContext): ErrnoDescription {
  const known = BY_NUMBER.get(errno);
  const name = known?.[0] ?? `errno ${errno}`;
  const special = known === undefined ? undefined : context.meaning?.[known[0]];
  const code = codeOf(known, special);
  const reason = typeof special === 'object' ? special.reason : undefined;
  const where = context.syscall ?? context.op;
  const target = context.target === undefined ? '' : ` (${context.target})`;
  const detail = context.detail === undefined || context.detail === '' ? '' : `: ${context.detail}`;
  const hint =
    code === 'PermissionDenied' && context.privilege !== undefined ? ` (needs ${context.privilege})` : '';
  return {
    code,
    reason,
    errno,
    errnoName: name,
    message: `${context.op}: ${where} failed: ${name}${target}${detail}${hint}`,
  };
}

/** The errno part of a kernel layer's error options: what an errno means in this call, and who may make it. */
export interface ErrnoOptions {
  /** Meanings specific to this call, by errno name (a map update's `E2BIG` means the map is full). */
  meaning?: ErrnoContext['meaning'];
  /** The privilege the call needs, named when it was denied; default: the layer's own. */
  privilege?: string | undefined;
}

/** The options every layer's error takes: the SDK operation that failed is required. */
export interface LayerErrorOptions extends DatapathErrorOptions {
  /** The SDK operation that failed, e.g. `linkAdd`. */
  op: string;
}

/**
 * Builds a kernel layer's own error for an errno through {@link describeErrno}: the one adapter every
 * layer's `errnoError` is, so the code, reason, name and message are made the same way everywhere.
 * `make` is the layer's constructor; `options` are its error options plus {@link ErrnoOptions};
 * `defaults.privilege` is named when the call was denied and `options.privilege` is not given;
 * `defaults.detail` is text the kernel sent (a netlink extended ACK).
 *
 * @example A layer's errnoError in one call
 * ```ts
 * import { DatapathError, type DatapathErrorOptions, errnoErrorOf, type ErrnoOptions } from '@datapath/errors';
 * class ToyError extends DatapathError {}
 * const errnoError = (errno: number, options: DatapathErrorOptions & ErrnoOptions & { op: string }) =>
 *   errnoErrorOf((code, message, o) => new ToyError(code, message, o), errno, options, { privilege: 'root' });
 * console.log(errnoError(1, { op: 'toy' }).message); // toy: toy failed: EPERM (needs root)
 * ```
 */
export function errnoErrorOf<E, O extends LayerErrorOptions>(
  make: (code: ErrorCode, message: string, options: O) => E,
  errno: number,
  options: O & ErrnoOptions,
  defaults: { privilege?: string; detail?: string | undefined } = {},
): E {
  const { meaning, privilege, ...rest } = options;
  const d = describeErrno(errno, {
    op: options.op,
    syscall: options.syscall,
    target: options.target,
    detail: defaults.detail,
    meaning,
    privilege: privilege ?? defaults.privilege,
  });
  return make(d.code, d.message, {
    ...(rest as unknown as O),
    reason: options.reason ?? d.reason,
    errno,
    errnoName: d.errnoName,
  });
}
