export type { BpfErrorCode, BpfErrorOptions } from './errors.js';
export { BpfError, errnoError } from './errors.js';
export type { MapCreateSpec, MapTypeId } from './map.js';
export { fdClose, MapType, mapCreate, mapLookup, mapUpdate } from './map.js';
