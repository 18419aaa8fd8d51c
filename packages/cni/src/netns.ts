import { statfsSync, statSync } from 'node:fs';
import { CniError, CniErrorCode } from './errors.js';

/** `NSFS_MAGIC` from `linux/magic.h`: the filesystem of namespace files. */
export const NSFS_MAGIC = 0x6e736673;

/** The file naming the calling thread's own network namespace. */
export const OWN_NETNS = '/proc/thread-self/ns/net';

/** Options of {@link checkNetnsPath}. */
export interface CheckNetnsOptions {
  /**
   * Namespaces the path must not be (besides the plugin's own): e.g. the namespace a plugin configures
   * as its host side when that is not its own.
   */
  forbidden?: readonly string[];
  /** Skip the own-namespace comparison (`CNI_NETNS_OVERRIDE=1`). */
  allowOwn?: boolean;
  /**
   * Report a path that exists but is not a namespace file (a regular file or a directory, what a vanished
   * netns bind mount leaves behind) as `missing` instead of throwing: what DEL needs, so it still
   * releases what the container held.
   */
  staleAsMissing?: boolean;
}

/** {@link checkNetnsPath}: the path is a usable namespace file. */
export interface NetnsFound {
  /** Discriminant. */
  kind: 'ok';
  /** Device number of the namespace file (nsfs). */
  dev: number;
  /** Inode number: the namespace identity. */
  ino: number;
}

/** {@link checkNetnsPath}: nothing exists at the path. */
export interface NetnsMissing {
  /** Discriminant. */
  kind: 'missing';
}

/** What {@link checkNetnsPath} found. */
export type NetnsCheck = NetnsFound | NetnsMissing;

function id(path: string): { dev: number; ino: number } | undefined {
  try {
    const s = statSync(path);
    return { dev: s.dev, ino: s.ino };
  } catch {
    return undefined;
  }
}

/**
 * Checks, before anything is configured, that `path` is a namespace file (on nsfs) and not the plugin's
 * own network namespace (nor any of `forbidden`). A path that does not exist is reported as `missing`
 * (DEL treats that as "already gone"), and so, with `staleAsMissing`, is one that is not a namespace file.
 *
 * @throws {@link CniError} code 8 (invalid netns) for a path that is not on nsfs (unless `staleAsMissing`), the plugin's own namespace
 * or a forbidden one.
 * @example Refusing the plugin's own namespace
 * ```ts
 * import { checkNetnsPath } from '@datapath/cni';
 * checkNetnsPath('/proc/self/ns/net'); // throws CniError code 8
 * ```
 */
export function checkNetnsPath(path: string, options: CheckNetnsOptions = {}): NetnsCheck {
  let type: number;
  try {
    type = Number(statfsSync(path).type);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    throw new CniError(CniErrorCode.InvalidNetNs, `failed to open netns "${path}": ${code ?? String(err)}`);
  }
  if (type !== NSFS_MAGIC) {
    if (options.staleAsMissing) return { kind: 'missing' };
    throw new CniError(
      CniErrorCode.InvalidNetNs,
      `unknown FS magic on "${path}": ${type.toString(16)}`,
      'CNI_NETNS must be a network namespace file (nsfs), e.g. /run/netns/NAME or /proc/PID/ns/net',
    );
  }
  const target = id(path);
  if (target === undefined) return { kind: 'missing' };
  const others = [...(options.allowOwn ? [] : [OWN_NETNS]), ...(options.forbidden ?? [])];
  for (const other of others) {
    const o = id(other);
    if (o !== undefined && o.dev === target.dev && o.ino === target.ino) {
      throw new CniError(
        CniErrorCode.InvalidNetNs,
        other === OWN_NETNS
          ? "plugin's netns and netns from CNI_NETNS should not be the same"
          : `netns from CNI_NETNS is the host-side namespace ${other}`,
      );
    }
  }
  return { kind: 'ok', ...target };
}
