// The only place @datapath/ipam touches the kernel: file system calls for FileStore and flock(2) through
// koffi (Node has no flock). Every failure goes through ioError(), the one errno mapping of this layer.
import {
  closeSync,
  constants,
  fsyncSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import koffi from 'koffi';
import { IpamError } from '../errors.js';

const libc = koffi.load('libc.so.6');
const flockFn = libc.func('int flock(int fd, int operation)') as (fd: number, op: number) => number;

const LOCK_EX = 2;
const LOCK_UN = 8;

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  4: 'EINTR',
  9: 'EBADF',
  11: 'EWOULDBLOCK',
  22: 'EINVAL',
  37: 'ENOLCK',
};

/** Maps a failed file system call (a Node fs error or a raw errno) to a `StoreFailure` IpamError. */
export function ioError(err: unknown, op: string, target: string): IpamError {
  let errno = 'EIO';
  if (typeof err === 'number') errno = ERRNO_NAMES[err] ?? `errno ${err}`;
  else if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string')
    errno = (err as NodeJS.ErrnoException).code!;
  return new IpamError('StoreFailure', `${op}: ${errno} on ${target}`, { op, target, errno, cause: err });
}

const errnoOf = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** Creates a directory and its parents. */
export function makeDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw ioError(e, 'FileStore', path);
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

/** Takes an exclusive flock(2) on fd, blocking; retried on EINTR. */
export function lockExclusive(fd: number, path: string): void {
  for (;;) {
    if (flockFn(fd, LOCK_EX) === 0) return;
    const errno = koffi.errno();
    if (errno !== 4) throw ioError(errno, 'FileStore.lock', path);
  }
}

/** Drops the flock(2) on fd. */
export function unlock(fd: number, path: string): void {
  if (flockFn(fd, LOCK_UN) !== 0) throw ioError(koffi.errno(), 'FileStore.unlock', path);
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
