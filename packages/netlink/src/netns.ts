// Network namespaces: named ones like `ip netns`, handles by name/path/pid, and synchronous scoped
// calls inside a namespace that always restore the caller's namespace.
import { errnoCode } from '@datapath/errors';
import { NetlinkError } from './errors.js';
import {
  closeFile,
  createExclusive,
  exists,
  fdIdentity,
  isNsfs,
  listDir,
  mkdirp,
  openInNetns,
  openInNetnsAsync,
  openRead,
  unlink,
} from './sys/fs.js';
import {
  connectIn,
  type DgramSocket,
  type NsConnectOptions,
  type Server,
  type ServerOpts,
  type Socket,
  type SocketOptions,
  type SocketType,
  serverIn,
  udpIn,
} from './sys/inet.js';
import {
  MNT_DETACH,
  MS_BIND,
  MS_REC,
  MS_SHARED,
  mount,
  namespaceKind,
  setns,
  tryMount,
  tryUmount2,
  unshareNet,
} from './sys/libc.js';

/** Where named namespaces live, as with iproute2. */
export const NETNS_RUN_DIR = '/run/netns';
const SELF = '/proc/thread-self/ns/net';

/** How to find a network namespace: by `ip netns` name, by nsfs path, or by process id. */
export type NetnsRef =
  | {
      /** A name under /run/netns, as `ip netns` uses. */
      name: string;
    }
  | {
      /** A path on nsfs: a bind mount such as /run/netns/X, or /proc/PID/ns/net. */
      path: string;
    }
  | {
      /** A process whose network namespace to open. */
      pid: number;
    };

/** Identity of a namespace: device and inode of its nsfs file. */
export interface NetnsId {
  /** Device number of nsfs. */
  readonly dev: number;
  /** Inode number: unique per namespace. */
  readonly ino: number;
}

function validName(name: string, op: string): void {
  if (
    typeof name !== 'string' ||
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    name.includes('\0') ||
    Buffer.byteLength(name) > 255
  ) {
    throw new NetlinkError('InvalidArgument', `${op}: invalid namespace name ${JSON.stringify(name)}`, {
      op,
      target: String(name),
    });
  }
}

function refPath(ref: NetnsRef, op: string): string {
  if (ref === null || typeof ref !== 'object') {
    throw new NetlinkError(
      'InvalidArgument',
      `${op}: pass { name }, { path } or { pid }, got ${ref === null ? 'null' : typeof ref}`,
      { op },
    );
  }
  if ('name' in ref) {
    validName(ref.name, op);
    return `${NETNS_RUN_DIR}/${ref.name}`;
  }
  if ('path' in ref) {
    if (typeof ref.path !== 'string' || ref.path === '') {
      throw new NetlinkError('InvalidArgument', `${op}: empty namespace path`, { op });
    }
    return ref.path;
  }
  if (!Number.isInteger(ref.pid) || ref.pid <= 0) {
    throw new NetlinkError('InvalidArgument', `${op}: invalid pid ${ref.pid}`, { op });
  }
  return `/proc/${ref.pid}/ns/net`;
}

/** Leaves the process after a failed namespace restore: continuing would configure the wrong namespace. */
function fatalRestore(err: unknown): never {
  process.stderr.write(`@datapath/netlink: could not restore the network namespace: ${String(err)}\n`);
  process.exit(70);
}

/**
 * The one setns window of the package: runs `enter` (which moves this thread to another network
 * namespace: setns or unshare) and then `body`, and always returns the thread to the namespace it was in,
 * leaving the process when that is impossible.
 */
function inOtherNetns<T>(op: string, enter: () => void, body: () => T): T {
  const self = openRead(SELF, op);
  try {
    enter();
    try {
      return body();
    } finally {
      try {
        setns(self, op, SELF);
      } catch (err) {
        fatalRestore(err);
      }
    }
  } finally {
    closeFile(self, op);
  }
}

/**
 * An open network namespace (a file descriptor on nsfs). Close it with {@link Netns.close} or `using`.
 *
 * @example Opening a named namespace and running a synchronous call inside it
 * ```ts
 * import { Netns } from '@datapath/netlink';
 * using ns = Netns.open({ name: 'blue' });
 * ns.run(() => console.log('inside blue, synchronously'));
 * ```
 */
export class Netns implements Disposable {
  /** The namespace file descriptor (valid until {@link Netns.close}). */
  readonly fd: number;
  /** The path it was opened from. */
  readonly path: string;
  /** Device and inode of the namespace: equal for two handles on the same namespace. */
  readonly id: NetnsId;
  private closed = false;

  private constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
    this.id = fdIdentity(fd, 'netnsOpen');
  }

  /**
   * Opens a namespace by name (`/run/netns/NAME`), nsfs path, or pid (`/proc/PID/ns/net`).
   * Paths that are not nsfs are refused before anything else happens, and so is a namespace file of
   * another kind (a mount, pid or user namespace, e.g. `/proc/PID/ns/mnt`).
   *
   * Equivalent to: `ip netns exec NAME …` / `nsenter --net=PATH …` (the open part).
   *
   * @throws {@link NetlinkError} `InvalidArgument` (a reference that is not `{ name }`, `{ path }` or
   * `{ pid }`, a bad name, a file that is not a network namespace), `NotFound`, `PermissionDenied`.
   * @example Opening by pid
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * using ns = Netns.open({ pid: process.pid });
   * console.log(ns.id.ino);
   * ```
   */
  static open(ref: NetnsRef): Netns {
    const op = 'netnsOpen';
    const path = refPath(ref, op);
    if (!isNsfs(path, op)) {
      throw new NetlinkError('InvalidArgument', `${op}: ${path} is not a network namespace (not on nsfs)`, {
        op,
        target: path,
      });
    }
    const fd = openRead(path, op);
    try {
      const kind = namespaceKind(fd, op, path);
      if (kind !== 'net') {
        throw new NetlinkError(
          'InvalidArgument',
          `${op}: ${path} is ${kind === undefined ? 'not a namespace' : `a ${kind} namespace`}, not a network namespace`,
          { op, target: path },
        );
      }
      return new Netns(fd, path);
    } catch (err) {
      closeFile(fd, op);
      throw err;
    }
  }

  /**
   * Opens the namespace the calling (main) thread is in now.
   *
   * @throws {@link NetlinkError} `PermissionDenied`.
   * @example Remembering where we are
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * using here = Netns.current();
   * console.log(here.path);
   * ```
   */
  static current(): Netns {
    const fd = openRead(SELF, 'netnsCurrent');
    try {
      return new Netns(fd, SELF);
    } catch (err) {
      closeFile(fd, 'netnsCurrent');
      throw err;
    }
  }

  /**
   * Whether this handle names the same namespace as `other`.
   *
   * @example Refusing to configure our own namespace
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * using a = Netns.current();
   * using b = Netns.current();
   * console.log(a.sameAs(b)); // true
   * ```
   */
  sameAs(other: Netns): boolean {
    return this.id.dev === other.id.dev && this.id.ino === other.id.ino;
  }

  /**
   * Runs a synchronous function with the calling thread inside this namespace and always moves it back,
   * even when `fn` throws. `fn` must not be async: a returned promise is rejected as `InvalidArgument`
   * (the thread would otherwise be restored before the async work ran).
   *
   * Equivalent to: `ip netns exec NAME …` / `nsenter --net=PATH …`.
   *
   * @throws {@link NetlinkError} `InvalidArgument` for an async `fn`, `PermissionDenied`, `BadFd`;
   * whatever `fn` throws.
   * @example Writing a sysctl inside a namespace
   * ```ts
   * import { writeFileSync } from 'node:fs';
   * import { Netns } from '@datapath/netlink';
   * using ns = Netns.open({ name: 'blue' });
   * ns.run(() => writeFileSync('/proc/sys/net/ipv4/conf/all/forwarding', '1'));
   * ```
   */
  run<T>(fn: () => T): T {
    const op = 'netnsRun';
    this.ensureOpen(op);
    const result = inOtherNetns(op, () => setns(this.fd, op, this.path), fn);
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as { then?: unknown }).then === 'function'
    ) {
      throw new NetlinkError('InvalidArgument', `${op}: the function passed to run() must be synchronous`, {
        op,
      });
    }
    return result;
  }

  /**
   * Opens a second, independent handle on the same namespace (its own fd, same {@link Netns.path}), for
   * an object that must keep the namespace beyond the caller's handle. Close both.
   *
   * @throws {@link NetlinkError} `BadFd` when this handle is closed.
   * @example Keeping the namespace for later
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * using here = Netns.current();
   * using kept = here.dup();
   * console.log(kept.sameAs(here)); // true
   * ```
   */
  dup(): Netns {
    const op = 'netnsDup';
    this.ensureOpen(op);
    const fd = openRead(`/proc/self/fd/${this.fd}`, op);
    try {
      return new Netns(fd, this.path);
    } catch (err) {
      closeFile(fd, op);
      throw err;
    }
  }

  /**
   * Closes the namespace fd; idempotent.
   *
   * @example Closing explicitly
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * const ns = Netns.current();
   * ns.close();
   * ```
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeFile(this.fd, 'netnsClose');
  }

  /** Same as {@link Netns.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * A standard `net.Server` listening inside this namespace: `listen()` creates the socket inside (on a
   * short-lived thread, this thread never moves) and binds it there; connections are served on the
   * event loop as for any server. Only `listen(port?, host?, backlog?, cb?)` or
   * `listen({ port, host, backlog }, cb?)` (TCP) is supported; the default host is `::`.
   *
   * Equivalent to: `ip netns exec NAME <server>` without a process.
   *
   * @throws {@link NetlinkError} `BadFd` (closed handle); bind failures (`AlreadyExists` for a port in
   * use, `NotFound` for an address the namespace does not have) arrive as the server's `'error'` event.
   * @example An echo server inside a namespace
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * const ns = Netns.open({ name: 'blue' });
   * const server = ns.createServer((socket) => socket.pipe(socket));
   * server.listen(7000, '10.244.1.5', () => console.log('listening inside blue'));
   * ```
   */
  createServer(
    optionsOrListener?: ServerOpts | ((socket: Socket) => void),
    listener?: (socket: Socket) => void,
  ): Server {
    this.ensureOpen('netnsCreateServer');
    return typeof optionsOrListener === 'function'
      ? serverIn(this, {}, optionsOrListener)
      : serverIn(this, optionsOrListener ?? {}, listener);
  }

  /**
   * A standard `net.Socket` connected from inside this namespace: the socket is created (and bound to
   * `localAddress`, when given) inside, then connected on the event loop. A host name is resolved in
   * the calling thread's namespace.
   *
   * Equivalent to: `ip netns exec NAME nc HOST PORT` without a process.
   *
   * @throws {@link NetlinkError} `BadFd` (closed handle), `InvalidArgument` (no port, bad address),
   * `PermissionDenied`; connect failures arrive as the socket's `'error'` event.
   * @example A TCP probe from inside a namespace
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * const ns = Netns.open({ name: 'blue' });
   * const socket = ns.connect({ host: '10.244.1.6', port: 7000 }, () => socket.end('ping'));
   * socket.on('error', (err) => console.error(err.message));
   * ```
   */
  connect(options: NsConnectOptions, onConnect?: () => void): Socket {
    this.ensureOpen('netnsConnect');
    return connectIn(this, options, onConnect);
  }

  /**
   * A standard `dgram.Socket` bound inside this namespace: `bind()`, explicit or implicit on the first
   * `send()`, creates the socket inside and binds it there.
   *
   * Equivalent to: `ip netns exec NAME <udp program>` without a process.
   *
   * @throws {@link NetlinkError} `BadFd` (closed handle); bind failures arrive as the `'error'` event.
   * @example A UDP socket inside a namespace
   * ```ts
   * import { Netns } from '@datapath/netlink';
   * const ns = Netns.open({ name: 'blue' });
   * const udp = ns.createSocket('udp4');
   * udp.bind(5353, '10.244.1.5', () => console.log(udp.address()));
   * ```
   */
  createSocket(typeOrOptions: SocketType | SocketOptions): DgramSocket {
    this.ensureOpen('netnsCreateSocket');
    return udpIn(this, typeOrOptions);
  }

  /**
   * Opens a file as seen from inside this namespace and returns its fd (close it with `fs.close`): the open
   * runs on a short-lived thread inside the namespace, this thread never moves. What `/proc/sys/net/*` shows
   * depends on the namespace of the opener, and the fd keeps it: reads and writes through it (e.g. with
   * `fs.write`, on libuv's threadpool) act on this namespace's knobs.
   *
   * Equivalent to: `ip netns exec NAME cat FILE` (the open part).
   *
   * @throws {@link NetlinkError} `BadFd` (closed handle), `NotFound`, `PermissionDenied`, `InvalidArgument`
   * (a mode other than `r` or `w`).
   * @example Writing a sysctl of another namespace without entering it
   * ```ts
   * import { write, close } from 'node:fs';
   * import { Netns } from '@datapath/netlink';
   * using ns = Netns.open({ name: 'blue' });
   * const fd = ns.openFile('/proc/sys/net/ipv4/ip_forward', 'w');
   * write(fd, '1', () => close(fd, () => undefined));
   * ```
   */
  openFile(path: string, mode: 'r' | 'w'): number {
    const op = 'netnsOpenFile';
    this.ensureOpen(op);
    if (mode !== 'r' && mode !== 'w')
      throw new NetlinkError('InvalidArgument', `${op}: mode must be 'r' or 'w', got ${String(mode)}`, {
        op,
      });
    return openInNetns(this, path, mode === 'w', op);
  }

  /**
   * The async form of {@link Netns.openFile}: the thread that enters the namespace to open the file is started
   * and awaited on libuv's threadpool, so the event loop goes on meanwhile. Same result and errors.
   *
   * Equivalent to: `ip netns exec NAME cat PATH` (open only).
   *
   * @throws {@link NetlinkError} as {@link Netns.openFile} (as a rejection).
   * @example Writing a sysctl inside a namespace without blocking
   * ```ts
   * import { close, write } from 'node:fs';
   * import { Netns } from '@datapath/netlink';
   * using ns = Netns.open({ name: 'blue' });
   * const fd = await ns.openFileAsync('/proc/sys/net/ipv4/ip_forward', 'w');
   * write(fd, '1', () => close(fd, () => undefined));
   * ```
   */
  async openFileAsync(path: string, mode: 'r' | 'w'): Promise<number> {
    const op = 'netnsOpenFile';
    this.ensureOpen(op);
    if (mode !== 'r' && mode !== 'w')
      throw new NetlinkError('InvalidArgument', `${op}: mode must be 'r' or 'w', got ${String(mode)}`, {
        op,
      });
    return openInNetnsAsync(this, path, mode === 'w', op);
  }

  /** Whether {@link Netns.close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  private ensureOpen(op: string): void {
    if (this.closed) throw new NetlinkError('BadFd', `${op}: the namespace handle is closed`, { op });
  }
}

function ensureSharedRunDir(op: string): void {
  mkdirp(NETNS_RUN_DIR, op);
  // As iproute2: make /run/netns a shared mount point (bind it onto itself the first time), so the
  // namespace mounts propagate to every mount namespace that sees /run/netns.
  let errno = tryMount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  if (errnoCode(errno) === 'InvalidArgument') {
    mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', MS_BIND | MS_REC, op);
    errno = tryMount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC);
  }
  if (errno !== 0) mount('', NETNS_RUN_DIR, 'none', MS_SHARED | MS_REC, op);
}

/**
 * Creates a named network namespace the way `ip netns add` does (visible to `ip netns list`) and
 * returns it open. Loopback is left down, as with iproute2.
 *
 * Equivalent to: `ip netns add NAME`.
 *
 * @throws {@link NetlinkError} `InvalidArgument` (bad name), `AlreadyExists`, `PermissionDenied`.
 * @example Creating and deleting a namespace
 * ```ts
 * import { netnsAdd, netnsDelete } from '@datapath/netlink';
 * const ns = netnsAdd('blue');
 * ns.close();
 * netnsDelete('blue');
 * ```
 */
export function netnsAdd(name: string): Netns {
  const op = 'netnsAdd';
  validName(name, op);
  const path = `${NETNS_RUN_DIR}/${name}`;
  ensureSharedRunDir(op);
  createExclusive(path, op);
  try {
    inOtherNetns(
      op,
      () => unshareNet(op),
      () => mount(SELF, path, 'none', MS_BIND, op),
    );
    return Netns.open({ path });
  } catch (err) {
    tryUmount2(path, MNT_DETACH);
    try {
      unlink(path, op);
    } catch {
      // best effort: the creation error is the one to report
    }
    throw err;
  }
}

/**
 * Deletes a named network namespace: detaches its bind mount and removes the file. The namespace
 * itself disappears when its last user (process, open fd, veth peer reference) is gone.
 *
 * Equivalent to: `ip netns del NAME`.
 *
 * @throws {@link NetlinkError} `InvalidArgument` (bad name), `NotFound`, `PermissionDenied`, `Busy`.
 * @example Deleting a namespace
 * ```ts
 * import { netnsAdd, netnsDelete } from '@datapath/netlink';
 * netnsAdd('green').close();
 * netnsDelete('green');
 * ```
 */
export function netnsDelete(name: string): void {
  const op = 'netnsDelete';
  validName(name, op);
  const path = `${NETNS_RUN_DIR}/${name}`;
  if (!exists(path))
    throw new NetlinkError('NotFound', `${op}: no namespace named ${name}`, { op, target: path });
  // EINVAL means it was not mounted (a stale file): removing the file is all that is left to do.
  tryUmount2(path, MNT_DETACH);
  unlink(path, op);
}

/**
 * Lists the named network namespaces under /run/netns.
 *
 * Equivalent to: `ip netns list`.
 *
 * @example Listing namespaces
 * ```ts
 * import { netnsList } from '@datapath/netlink';
 * console.log(netnsList());
 * ```
 */
export function netnsList(): string[] {
  return listDir(NETNS_RUN_DIR).sort();
}
