// Synchronous file operations on namespace files and /proc/sys, with Node's errors mapped through
// fsCall. Synchronous on purpose: they run inside setns windows, where nothing may go async.
import * as fs from 'node:fs';
import { errnoError, fsCall } from '../errors.js';
import { nativeAddon } from './native.js';

const NSFS_MAGIC = 0x6e73_6673;

/** Opens a file read-only (close-on-exec), e.g. a namespace file. */
export function openRead(path: string, op: string): number {
  return fsCall(() => fs.openSync(path, 'r'), op, 'open', path);
}

/**
 * Opens `path` from a thread inside the namespace `ns` (the native addon: a short-lived thread, this one never
 * moves; without it, inside a synchronous `ns.run` window): what `/proc/sys/net` shows depends on the namespace
 * of the opener, and the fd keeps showing that namespace's files.
 */
export function openInNetns(
  ns: { fd: number; path: string; run<T>(fn: () => T): T },
  path: string,
  write: boolean,
  op: string,
): number {
  const addon = nativeAddon;
  if (addon === undefined)
    return ns.run(() => fsCall(() => fs.openSync(path, write ? 'w' : 'r'), op, 'open', path));
  const flags = write ? fs.constants.O_WRONLY : fs.constants.O_RDONLY; // the addon adds O_CLOEXEC
  const fd = addon.openIn(ns.fd, path, flags);
  if (fd < 0) throw errnoError(-fd, { op, syscall: 'setns+open', target: `${path} in ${ns.path}` });
  return fd;
}

/** {@link openInNetns} with the thread inside the namespace started and awaited on libuv's threadpool. */
export async function openInNetnsAsync(
  ns: { fd: number; path: string; run<T>(fn: () => T): T },
  path: string,
  write: boolean,
  op: string,
): Promise<number> {
  const start = nativeAddon?.openInAsync;
  if (start === undefined) return openInNetns(ns, path, write, op);
  const flags = write ? fs.constants.O_WRONLY : fs.constants.O_RDONLY; // the addon adds O_CLOEXEC
  const fd = await new Promise<number>((resolve) => start(ns.fd, path, flags, resolve));
  if (fd < 0) throw errnoError(-fd, { op, syscall: 'setns+open', target: `${path} in ${ns.path}` });
  return fd;
}

/** Creates an empty file, failing when it exists (`O_CREAT|O_EXCL`). */
export function createExclusive(path: string, op: string): void {
  fsCall(() => fs.closeSync(fs.openSync(path, 'wx', 0o444)), op, 'open(O_CREAT|O_EXCL)', path);
}

/** Closes an fd opened by {@link openRead}. */
export function closeFile(fd: number, op: string): void {
  fsCall(() => fs.closeSync(fd), op, 'close', String(fd));
}

/** Device and inode of an open fd: two fds name the same namespace iff these are equal. */
export function fdIdentity(fd: number, op: string): { dev: number; ino: number } {
  const st = fsCall(() => fs.fstatSync(fd), op, 'fstat', String(fd));
  return { dev: st.dev, ino: st.ino };
}

/** Device and inode of a path. */
export function pathIdentity(path: string, op: string): { dev: number; ino: number } {
  const st = fsCall(() => fs.statSync(path), op, 'stat', path);
  return { dev: st.dev, ino: st.ino };
}

/** Whether `path` is on nsfs (a namespace file, a bind mount of one, or a /proc/PID/ns link). */
export function isNsfs(path: string, op: string): boolean {
  return fsCall(() => fs.statfsSync(path), op, 'statfs', path).type === NSFS_MAGIC;
}

/** `mkdir -p` with mode 0755. */
export function mkdirp(path: string, op: string): void {
  fsCall(() => fs.mkdirSync(path, { recursive: true, mode: 0o755 }), op, 'mkdir', path);
}

/** unlink(2). */
export function unlink(path: string, op: string): void {
  fsCall(() => fs.unlinkSync(path), op, 'unlink', path);
}

/** Whether a path exists (no error mapping: a plain probe). */
export function exists(path: string): boolean {
  return fs.existsSync(path);
}

/** Lists a directory; a missing directory is empty. */
export function listDir(path: string): string[] {
  try {
    return fs.readdirSync(path);
  } catch {
    return [];
  }
}

/** Writes a whole small file synchronously (a /proc/sys knob). */
export function writeSmallFile(path: string, value: string, op: string): void {
  fsCall(() => fs.writeFileSync(path, value), op, 'write', path);
}

/** Reads a whole small file synchronously (a /proc/sys knob). */
export function readSmallFile(path: string, op: string): string {
  return fsCall(() => fs.readFileSync(path, 'utf8'), op, 'read', path);
}
