// Names that moved to the `@datapath/ipam/file-store` entry point, kept on the main entry for one minor
// version. They do not load the store's file system binding (koffi) at import: only a FileStore that locks
// does, so `@datapath/ipam` stays pure.
import { FileStore as MovedFileStore, type FileStoreOptions as MovedFileStoreOptions } from './file-store.js';

/**
 * @deprecated Import `FileStore` from `@datapath/ipam/file-store` (the durable store is no longer part of the
 * pure main entry point); this alias goes in the next minor version.
 */
export const FileStore = MovedFileStore;
/** @deprecated Import `FileStore` from `@datapath/ipam/file-store`. */
export type FileStore = MovedFileStore;
/** @deprecated Import `FileStoreOptions` from `@datapath/ipam/file-store`. */
export type FileStoreOptions = MovedFileStoreOptions;
