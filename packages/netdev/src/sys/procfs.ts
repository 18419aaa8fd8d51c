// /proc/sys writes and reads, synchronous (they run inside setns windows), errno mapped through
// @datapath/netlink's fsCall: the one place errno is interpreted for this package.
import { close, open, readFileSync, readlinkSync, write, writeFileSync } from 'node:fs';
import { fsCall, type Netns } from '@datapath/netlink';

/** Writes a /proc/sys file. */
export function procWrite(path: string, value: string, op: string): void {
  fsCall(() => writeFileSync(path, value), op, 'write', path);
}

/**
 * Writes a /proc/sys file without blocking the event loop: opened inside `netns` from a short-lived thread
 * (the main thread never enters it), written and closed on libuv's threadpool.
 */
export async function procWriteAsync(path: string, value: string, op: string, netns?: Netns): Promise<void> {
  const mapped = (syscall: string) => (err: unknown) =>
    fsCall(
      () => {
        throw err;
      },
      op,
      syscall,
      path,
    );
  const fd =
    netns === undefined
      ? await new Promise<number>((resolve, reject) =>
          open(path, 'w', (err, fd) => (err ? reject(err) : resolve(fd))),
        ).catch(mapped('open'))
      : await netns.openFileAsync(path, 'w');
  try {
    await new Promise<void>((resolve, reject) =>
      write(fd, value, (err) => (err ? reject(err) : resolve())),
    ).catch(mapped('write'));
  } finally {
    await new Promise<void>((resolve) => close(fd, () => resolve()));
  }
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
