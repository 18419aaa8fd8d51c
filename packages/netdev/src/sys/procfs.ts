// /proc/sys writes and reads, synchronous (they run inside setns windows), errno mapped through
// @datapath/netlink's fsCall: the one place errno is interpreted for this package.
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { fsCall } from '@datapath/netlink';

/** Writes a /proc/sys file. */
export function procWrite(path: string, value: string, op: string): void {
  fsCall(() => writeFileSync(path, value), op, 'write', path);
}

/** Reads a /proc/sys file, trimmed. */
export function procRead(path: string, op: string): string {
  return fsCall(() => readFileSync(path, 'utf8'), op, 'read', path).trim();
}

/** The calling thread's network namespace as `net:[inode]`: a cheap identity check (one readlink). */
export function currentNetnsKey(): string {
  return fsCall(
    () => readlinkSync('/proc/thread-self/ns/net'),
    'netnsCurrent',
    'readlink',
    '/proc/thread-self/ns/net',
  );
}
