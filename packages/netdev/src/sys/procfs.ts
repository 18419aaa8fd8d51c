// /proc/sys writes and reads, synchronous (they run inside setns windows), errno mapped through
// @datapath/netlink's errnoError: the one place errno is interpreted for this package.
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { errnoError } from '@datapath/netlink';

function mapped<T>(fn: () => T, op: string, syscall: string, target: string): T {
  try {
    return fn();
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    if (typeof errno === 'number') throw errnoError(-errno, { op, syscall, target, cause: err });
    throw err;
  }
}

/** Writes a /proc/sys file. */
export function procWrite(path: string, value: string, op: string): void {
  mapped(() => writeFileSync(path, value), op, 'write', path);
}

/** Reads a /proc/sys file, trimmed. */
export function procRead(path: string, op: string): string {
  return mapped(() => readFileSync(path, 'utf8'), op, 'read', path).trim();
}

/** The calling thread's network namespace as `net:[inode]`: a cheap identity check (one readlink). */
export function currentNetnsKey(): string {
  return mapped(
    () => readlinkSync('/proc/thread-self/ns/net'),
    'netnsCurrent',
    'readlink',
    '/proc/thread-self/ns/net',
  );
}
