export type { DatapathErrorOptions } from './base.js';
export { DatapathError, isDatapathError, notSupported, notSupportedMessage } from './base.js';
export type { ErrorCode } from './codes.js';
export { ERROR_CODES, isErrorCode } from './codes.js';
export type {
  ErrnoContext,
  ErrnoDescription,
  ErrnoMeaning,
  ErrnoName,
  ErrnoOptions,
  LayerErrorOptions,
} from './errno.js';
export { describeErrno, Errno, errnoCode, errnoErrorOf, errnoName } from './errno.js';
