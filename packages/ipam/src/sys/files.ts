// The only place @datapath/ipam touches the kernel: file system calls for FileStore, and flock(2) through
// koffi (Node has no flock). koffi is loaded on the first lock, never at import: `@datapath/ipam` stays a
// pure module graph. Every failure goes through ioError(), the one errno mapping of this layer.
import {
  closeSync,
  constants,
  fsyncSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { describeErrno, Errno } from '@datapath/errors';
import { IpamError } from '../errors.js';

interface FlockBinding {
  flock(fd: number, op: number): number;
  errno(): number;
}
let binding: FlockBinding | undefined;

/** libc's flock(2), bound on first use (the FFI is loaded only by a process that really locks a store). */
function flockBinding(): FlockBinding {
  if (binding === undefined) {
    // In a CommonJS bundle (the datapath-cni plugin) this literal require is what the bundler sees and
    // inlines (or redirects); as an ES module, the require is made from this module's own URL.
    const mod = typeof __filename === 'string' ? require('koffi') : createRequire(import.meta.url)('koffi');
    // A bundler may hand back an ES module namespace (its `default` is koffi).
    const koffi = (mod.default ?? mod) as typeof import('koffi');
    const fn = koffi.load('libc.so.6').func('int flock(int fd, int operation)') as (
      fd: number,
      op: number,
    ) => number;
    binding = { flock: fn, errno: () => koffi.errno() };
  }
  return binding;
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/**
 * Maps a failed file system call (a Node fs error or a raw errno) to a `StoreFailure` IpamError whose
 * code is the errno's, through the SDK's one errno table.
 */
export function ioError(err: unknown, op: string, target: string): IpamError {
  let errno = Errno.EIO;
  if (typeof err === 'number') errno = err;
  else if (err instanceof Error && typeof (err as NodeJS.ErrnoException).errno === 'number')
    errno = Math.abs((err as NodeJS.ErrnoException).errno!);
  const d = describeErrno(errno, { op, target });
  return new IpamError('StoreFailure', `${op}: ${d.errnoName} on ${target}`, {
    op,
    target,
    code: d.code,
    errno,
    errnoName: d.errnoName,
    cause: err,
  });
}

/** The errno name of a Node fs error (`ENOENT`, `EEXIST` …), or undefined. */
const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/**
 * Pseudo file systems (statfs `f_type`) a store directory must not live on: their entries are made by the
 * kernel, `mkdir` and `link` fail there in ways that make naive retry loops spin, and nothing is durable.
 */
const PSEUDO_FS: Readonly<Record<number, string>> = {
  40864: 'proc',
  1650812274: 'sysfs',
  2613483: 'cgroup',
  1667723888: 'cgroup2',
  1684170528: 'debugfs',
  1953653091: 'tracefs',
  1935894131: 'securityfs',
  3405662737: 'bpf',
  7377: 'devpts',
  1650812272: 'configfs',
  1634035564: 'pstore',
  3730735588: 'efivarfs',
  1853056627: 'nsfs',
  4185718668: 'selinuxfs',
  1112100429: 'binfmt_misc',
  1702057283: 'fusectl',
  427819522: 'mqueue',
  1346981957: 'pipefs',
  1397703499: 'sockfs',
};

/** The name of the pseudo file system `path` (an existing directory) is on, or undefined for a real one. */
export function pseudoFs(path: string): string | undefined {
  try {
    return PSEUDO_FS[Number(statfsSync(path).type)];
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/**
 * Creates a directory and its missing parents, one `mkdir(2)` per missing component (bounded by the path's
 * depth, unlike Node's recursive mkdir, which spins forever under /proc). Refuses a directory on a pseudo
 * file system with `NotSupported`.
 */
export function makeDir(path: string): void {
  const missing: string[] = [];
  let cur = resolve(path);
  for (;;) {
    let isDir: boolean;
    try {
      isDir = statSync(cur).isDirectory();
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw ioError(e, 'FileStore', cur);
      missing.push(cur);
      const up = dirname(cur);
      if (up === cur) throw ioError(e, 'FileStore', cur);
      cur = up;
      continue;
    }
    if (!isDir) throw ioError(Errno.ENOTDIR, 'FileStore', cur);
    break;
  }
  // `cur` is the deepest existing ancestor: the store would live on its file system.
  const fs = pseudoFs(cur);
  if (fs !== undefined)
    throw new IpamError(
      'NotSupported',
      `FileStore: ${path} is on the ${fs} pseudo file system; a store needs a real one (ext4, xfs, tmpfs, …)`,
      { op: 'FileStore', target: path },
    );
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (e) {
      if (errnoOf(e) === 'EEXIST' && isDirectory(dir)) continue; // created meanwhile by another process
      throw ioError(e, 'FileStore', dir);
    }
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Opens (creating) a file read-write and returns its fd. */
export function openRw(path: string): number {
  try {
    return openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Closes an fd, ignoring errors. */
export function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * One non-blocking attempt at an exclusive flock(2) on fd: true when taken, false when another open file
 * holds it. EINTR is retried (a bounded number of times).
 */
export function tryLockExclusive(fd: number, path: string): boolean {
  const b = flockBinding();
  for (let i = 0; i < 100; i++) {
    if (b.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = b.errno();
    if (errno === Errno.EAGAIN) return false; // EWOULDBLOCK
    if (errno !== Errno.EINTR) throw ioError(errno, 'FileStore.lock', path);
  }
  throw ioError(Errno.EINTR, 'FileStore.lock', path);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the calling thread for `ms` (the synchronous lock wait; the async one uses timers). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** Drops the flock(2) on fd. */
export function unlock(fd: number, path: string): void {
  const b = flockBinding();
  if (b.flock(fd, LOCK_UN) !== 0) throw ioError(b.errno(), 'FileStore.unlock', path);
}

/** Reads up to `buf.length` bytes at offset 0; returns the count. */
export function preadStart(fd: number, buf: Uint8Array, path: string): number {
  try {
    return readSync(fd, buf, 0, buf.length, 0);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Writes `buf` at offset 0 of fd. */
export function pwriteStart(fd: number, buf: Uint8Array, path: string): void {
  try {
    writeSync(fd, buf, 0, buf.length, 0);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Writes a new file exclusively with `content`, optionally fsyncs it; false when it already exists. */
export function writeNewFile(path: string, content: string, sync: boolean): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o644);
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') return false;
    throw ioError(e, 'FileStore.reserve', path);
  }
  try {
    writeSync(fd, content);
    if (sync) fsyncSync(fd);
  } catch (e) {
    closeQuiet(fd);
    removeQuiet(path);
    throw ioError(e, 'FileStore.reserve', path);
  } finally {
    closeQuiet(fd);
  }
  return true;
}

/** Opens a directory for fsync. */
export function openDir(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** fsyncs an fd (a directory fd: entries created or removed in it become durable). */
export function syncFd(fd: number, path: string): void {
  try {
    fsyncSync(fd);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Opens (creating) a small file for in-place rewrites with {@link overwriteFd}. */
export function openWrite(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o644);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/**
 * Replaces the content of a small open file in place, without fsync: it writes at offset 0 and then
 * truncates to the new length, never to zero, because ext4 flushes a file synchronously (auto_da_alloc)
 * when it is truncated to zero or renamed over, which costs milliseconds.
 */
export function overwriteFd(fd: number, content: string, path: string): void {
  try {
    const buf = Buffer.from(content);
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Hard-links `from` to `to`; false when `to` exists. */
export function linkNew(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') return false;
    throw ioError(e, 'FileStore.reserve', to);
  }
}

/** Atomically replaces `to` with `from` (rename(2)). */
export function replaceFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (e) {
    throw ioError(e, 'FileStore.replace', to);
  }
}

/** What is at a path, without following a final symlink. */
export type EntryKind = 'file' | 'directory' | 'missing' | 'other';

/** Whether `path` is a regular file, a directory, missing, or something else (symlink, socket, …). */
export function entryKind(path: string): EntryKind {
  try {
    const st = lstatSync(path);
    return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other';
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return 'missing';
    throw ioError(e, 'FileStore', path);
  }
}

/** Removes a file; false when it did not exist. */
export function remove(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw ioError(e, 'FileStore.release', path);
  }
}

/** Removes a file, ignoring every error. */
export function removeQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // best effort
  }
}

/** Reads a small text file; undefined when it does not exist. */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw ioError(e, 'FileStore', path);
  }
}

/** The result of reading an entry that should be a small regular file. */
export type OwnerRead = { ok: true; text: string | undefined } | { ok: false; errno: string };

/**
 * Reads a store entry: its text (undefined when missing), or the errno when it is not readable as a file
 * (a directory, a symlink to one, a dangling symlink loop …). Only a real I/O error throws.
 */
export function readEntry(path: string): OwnerRead {
  try {
    return { ok: true, text: readFileSync(path, 'utf8') };
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ENOENT') return { ok: true, text: undefined };
    if (
      errno === 'EISDIR' ||
      errno === 'ELOOP' ||
      errno === 'EACCES' ||
      errno === 'ENXIO' ||
      errno === 'EINVAL'
    )
      return { ok: false, errno };
    throw ioError(e, 'FileStore', path);
  }
}

/** Names in a directory. */
export function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (e) {
    throw ioError(e, 'FileStore', path);
  }
}

/** Whether a process with this pid exists (EPERM counts as alive). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) !== 'ESRCH';
  }
}
