export type { HttpErrorCode, HttpErrorReason } from './errors.js';
export { HttpError } from './errors.js';
export type { ExchangeOptions } from './exchange.js';
export { exchange } from './exchange.js';
export type { RequestOptions } from './request.js';
export { formatRequest } from './request.js';
export type { HttpHeaders, HttpResponse, ReadResponse, ResponseReaderOptions } from './response.js';
export { DEFAULT_MAX_HEAD_BYTES, ResponseReader } from './response.js';
