// Advisory file locks (flock), which Node lacks: used by IPAM stores shared between plugin processes.
import { closeFile, openRead } from './sys/fs.js';
import { flock } from './sys/libc.js';

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_UN = 8;

/** A held `flock` lock; release it with {@link FileLock.release} or `using`. */
export interface FileLock extends Disposable {
  /** Unlocks and closes the file; idempotent. */
  release(): void;
}

/**
 * Takes an advisory lock on an existing file, blocking until it is granted (exclusive unless `shared`).
 *
 * Equivalent to: `flock PATH …`.
 *
 * @throws {@link NetlinkError} `NotFound` (no such file), `PermissionDenied`, `Interrupted`.
 * @example Serialising a read-modify-write between processes
 * ```ts
 * import { lockFile } from '@datapath/netlink';
 * using lock = lockFile('/var/lib/cni/networks/pods/lock');
 * // … mutate the store …
 * ```
 */
export function lockFile(path: string, options: { shared?: boolean } = {}): FileLock {
  const op = 'lockFile';
  const fd = openRead(path, op);
  try {
    flock(fd, options.shared ? LOCK_SH : LOCK_EX, op, path);
  } catch (err) {
    closeFile(fd, op);
    throw err;
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    try {
      flock(fd, LOCK_UN, op, path);
    } finally {
      closeFile(fd, op);
    }
  };
  return { release, [Symbol.dispose]: release };
}
