// Node-local durable store shared by processes, in the directory layout of the CNI host-local plugin.
import { tryParseIp } from '@datapath/ip';
import { fail, IpamError } from './errors.js';
import type { Store, StoreProblem, StoreTxn, TransactHint } from './store.js';
import {
  closeQuiet,
  entryKind,
  linkNew,
  listDir,
  makeDir,
  openDir,
  openRw,
  openWrite,
  overwriteFd,
  pidAlive,
  preadStart,
  pwriteStart,
  readEntry,
  readText,
  remove,
  removeQuiet,
  replaceFile,
  sleepSync,
  syncFd,
  tryLockExclusive,
  unlock,
  writeNewFile,
} from './sys/files.js';

/** Options of a {@link FileStore}. */
export interface FileStoreOptions {
  /** fsync reservations before returning (default true). Turn off only on tmpfs or in tests. */
  sync?: boolean;
  /**
   * How long a transaction waits for the lock while another process holds it, in milliseconds (default
   * 10 000), before it fails with `Busy`. {@link FileStore.transact} waits blocking the thread (scripts, a CNI
   * plugin process); {@link FileStore.transactAsync} waits on timers (an agent's event loop keeps running).
   */
  lockTimeoutMs?: number;
}

/** A store entry's listing with what could not be read: what GC and STATUS callers report. */
export interface FileStoreCheck {
  /** Every reserved IP (taken, whether its owner is readable or not). */
  ips: string[];
  /** Entries named like an IP that are not readable reservation files (skipped, never released). */
  problems: StoreProblem[];
}

const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
const MAX_STAGE_ATTEMPTS = 64;

const TMP_PREFIX = '.dp-tmp.';
const LAST_PREFIX = 'last_reserved_ip.';

const isIpName = (n: string): boolean => tryParseIp(n) !== undefined;

const genText = (b: Uint8Array): string =>
  `${((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0}.${((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0}`;

/** The transaction view of a FileStore; one instance per store, valid only inside `transact`. */
class FileTxn implements StoreTxn {
  active = false;
  generation = 'none';
  staged: string | undefined;
  stagedOwner: string | undefined;
  reserved = false;
  bumped = false;
  readonly skipped = new Map<string, string>();

  constructor(private readonly store: FileStore) {}

  private skip(name: string, reason: string): void {
    this.skipped.set(name, reason);
  }

  problems(): StoreProblem[] {
    return [...this.skipped].map(([entry, reason]) => ({ entry, reason }));
  }

  private check(op: string): void {
    if (!this.active) fail('StoreFailure', op, 'the transaction is over', this.store.dir);
  }

  ips(): string[] {
    this.check('FileStore.ips');
    const out: string[] = [];
    for (const n of listDir(this.store.dir)) {
      if (n.startsWith(TMP_PREFIX)) {
        const pid = Number(n.slice(TMP_PREFIX.length).split('.')[0]);
        if (pid !== process.pid && !pidAlive(pid)) removeQuiet(this.store.path(n));
      } else if (isIpName(n)) out.push(n);
    }
    return out;
  }

  owner(ip: string): string | undefined {
    this.check('FileStore.owner');
    if (!isIpName(ip)) return undefined;
    const got = readEntry(this.store.path(ip));
    if (got.ok) return got.text;
    // Not a reservation file (a directory, a symlink to one …): the IP stays taken, nobody owns it.
    this.skip(ip, `${got.errno}: not a readable reservation file`);
    return undefined;
  }

  replace(ip: string, owner: string): boolean {
    this.check('FileStore.replace');
    if (!isIpName(ip)) return false;
    const path = this.store.path(ip);
    const kind = entryKind(path);
    if (kind === 'missing') return false;
    if (kind === 'directory') {
      this.skip(ip, 'EISDIR: not a readable reservation file');
      return false;
    }
    const tmp = this.store.stageFor(owner);
    this.store.bump(this);
    try {
      replaceFile(tmp, path);
    } catch (e) {
      removeQuiet(tmp);
      throw e;
    }
    this.reserved = true;
    return true;
  }

  reserve(ip: string, owner: string, rangeId?: string): boolean {
    this.check('FileStore.reserve');
    if (!isIpName(ip))
      fail('InvalidCidr', 'FileStore.reserve', `invalid IP address ${JSON.stringify(ip)}`, ip);
    const staged = this.staged !== undefined && this.stagedOwner === owner;
    const tmp = staged ? this.staged! : this.store.stageFor(owner);
    this.store.bump(this);
    if (!linkNew(tmp, this.store.path(ip))) {
      if (!staged) removeQuiet(tmp);
      return false;
    }
    removeQuiet(tmp);
    if (staged) this.staged = undefined;
    this.reserved = true;
    if (rangeId !== undefined) this.store.last(rangeId, ip);
    return true;
  }

  release(ip: string): boolean {
    this.check('FileStore.release');
    if (!isIpName(ip)) return false;
    const path = this.store.path(ip);
    if (entryKind(path) === 'directory') {
      this.skip(ip, 'EISDIR: not a readable reservation file');
      return false;
    }
    this.store.bump(this);
    return remove(path);
  }
}

/**
 * A {@link Store} in a directory, safe for many processes (a CNI plugin is a new process per call), in the
 * layout of the CNI `host-local` plugin so existing state can be migrated or shared:
 *
 * - `<dir>/<ip>`: one file per reserved IP, named by its canonical text, containing the owner (host-local
 *   writes `<containerID>\r\n<ifname>`; {@link hostLocalOwner} builds that string);
 * - `<dir>/last_reserved_ip.<rangeId>`: the last IP reserved from a range;
 * - `<dir>/lock`: the `flock(2)` lock file (the same one host-local locks). Its first 8 bytes hold a
 *   random generation token rewritten on every change, so processes can cache the directory listing.
 *
 * A reservation is written to a temporary file and fsync'd outside the lock, then hard-linked to its IP
 * name under the lock (the link fails if the IP is taken, whoever holds it), then the directory is fsync'd
 * before `transact` returns. A `kill -9` at any point leaves either no reservation or a complete one with its
 * owner; temporary files of dead processes are removed by the next listing.
 *
 * @example Reserving an IP for a container
 * ```ts
 * import { FileStore, hostLocalOwner } from '@datapath/ipam/file-store';
 * import { mkdtempSync } from 'node:fs';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 * const store = new FileStore(mkdtempSync(join(tmpdir(), 'ipam-')));
 * console.log(store.transact((tx) => tx.reserve('10.0.0.2', hostLocalOwner('c0ffee', 'eth0'), '0'))); // true
 * store.close();
 * ```
 */
export class FileStore implements Store {
  /** The store directory. */
  readonly dir: string;
  private readonly lockPath: string;
  private lockFd: number;
  private readonly sync: boolean;
  private readonly lockTimeoutMs: number;
  private tmpSeq = 0;
  private dirFd = -1;
  private readonly lastFds = new Map<string, number>();
  private readonly genBuf = new Uint8Array(8);
  private readonly txn = new FileTxn(this);

  /**
   * Opens (creating) the store directory and its lock file.
   *
   * @throws {@link IpamError} `StoreFailure` with the errno when the directory or lock file cannot be created
   * (or `lockTimeoutMs` is not a number ≥ 0); `NotSupported` when `dir` is on a pseudo file system (procfs,
   * sysfs, cgroup, bpffs, …).
   * @example
   * ```ts
   * import { FileStore } from '@datapath/ipam/file-store';
   * const store = new FileStore('/var/lib/cni/networks/mynet');
   * store.close();
   * ```
   */
  constructor(dir: string, options: FileStoreOptions = {}) {
    this.dir = dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
    this.sync = options.sync ?? true;
    const timeout = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout < 0)
      fail('StoreFailure', 'FileStore', `lockTimeoutMs must be a finite number ≥ 0, got ${timeout}`, dir);
    this.lockTimeoutMs = timeout;
    makeDir(dir);
    this.lockPath = `${this.dir}/lock`;
    this.lockFd = openRw(this.lockPath);
  }

  private stage(owner: string): string {
    for (let i = 0; i < MAX_STAGE_ATTEMPTS; i++) {
      const path = this.path(`${TMP_PREFIX}${process.pid}.${++this.tmpSeq}`);
      if (writeNewFile(path, owner, this.sync)) return path;
      removeQuiet(path); // left by a dead process that had our pid
    }
    return fail('StoreFailure', 'FileStore.reserve', 'cannot create a temporary file', this.dir);
  }

  private begin(hint: TransactHint | undefined, op: string): FileTxn {
    if (this.lockFd < 0) fail('StoreFailure', op, 'the store is closed', this.dir);
    const tx = this.txn;
    if (tx.active) fail('StoreFailure', op, 'transactions do not nest', this.dir);
    tx.staged = hint?.owner === undefined ? undefined : this.stage(hint.owner);
    tx.stagedOwner = hint?.owner;
    tx.reserved = false;
    tx.bumped = false;
    tx.skipped.clear();
    return tx;
  }

  private busy(op: string, tx: FileTxn): never {
    if (tx.staged !== undefined) removeQuiet(tx.staged);
    tx.staged = undefined;
    throw new IpamError(
      'Busy',
      `${op}: the lock ${this.lockPath} is held by another process (waited ${this.lockTimeoutMs} ms)`,
      { op, target: this.lockPath },
    );
  }

  /** Runs fn with the lock held (taken by the caller), then unlocks and makes reservations durable. */
  private run<T>(tx: FileTxn, fn: (tx: StoreTxn) => T): T {
    tx.active = true;
    try {
      const got = preadStart(this.lockFd, this.genBuf, this.lockPath);
      tx.generation = got === 8 ? genText(this.genBuf) : 'none';
      return fn(tx);
    } finally {
      tx.active = false;
      unlock(this.lockFd, this.lockPath);
      if (tx.staged !== undefined) removeQuiet(tx.staged);
      tx.staged = undefined;
      if (tx.reserved && this.sync) {
        if (this.dirFd < 0) this.dirFd = openDir(this.dir);
        syncFd(this.dirFd, this.dir);
      }
    }
  }

  /**
   * Runs `fn` holding the store's `flock(2)` across processes. Reservations made in `fn` are durable
   * (fsync'd) when this returns. While another process holds the lock this waits, blocking the thread, at
   * most `lockTimeoutMs`; use {@link FileStore.transactAsync} on an event loop.
   *
   * @throws {@link IpamError} `Busy` when the lock stayed held for `lockTimeoutMs`; `StoreFailure` on a file
   * system error; anything `fn` throws.
   * @example
   * ```ts
   * import { FileStore } from '@datapath/ipam/file-store';
   * const store = new FileStore('/tmp/ipam-example');
   * console.log(store.transact((tx) => tx.ips().length));
   * store.close();
   * ```
   */
  transact<T>(fn: (tx: StoreTxn) => T, hint?: TransactHint): T {
    const op = 'FileStore.transact';
    const tx = this.begin(hint, op);
    if (!tryLockExclusive(this.lockFd, this.lockPath)) {
      const deadline = performance.now() + this.lockTimeoutMs;
      // Exponential backoff from 0.1 ms (a contended lock is usually held for microseconds) to 50 ms.
      let pause = 0.1;
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0) this.busy(op, tx);
        sleepSync(Math.min(pause, left));
        pause = Math.min(pause * 2, 50);
        if (tryLockExclusive(this.lockFd, this.lockPath)) break;
      }
    }
    return this.run(tx, fn);
  }

  /**
   * {@link FileStore.transact} without blocking the event loop while another process holds the lock: the
   * wait (at most `lockTimeoutMs`) is on timers; `fn` runs synchronously once the lock is held.
   *
   * @throws {@link IpamError} `Busy` when the lock stayed held for `lockTimeoutMs`; `StoreFailure` on a file
   * system error; anything `fn` throws (as a rejected promise).
   * @example
   * ```ts
   * import { FileStore } from '@datapath/ipam/file-store';
   * const store = new FileStore('/tmp/ipam-example');
   * console.log(await store.transactAsync((tx) => tx.ips().length));
   * store.close();
   * ```
   */
  async transactAsync<T>(fn: (tx: StoreTxn) => T, hint?: TransactHint): Promise<T> {
    const op = 'FileStore.transactAsync';
    const deadline = performance.now() + this.lockTimeoutMs;
    let pause = 1;
    for (;;) {
      if (this.lockFd < 0) fail('StoreFailure', op, 'the store is closed', this.dir);
      if (this.txn.active) fail('StoreFailure', op, 'transactions do not nest', this.dir);
      if (tryLockExclusive(this.lockFd, this.lockPath)) break;
      const left = deadline - performance.now();
      if (left <= 0)
        throw new IpamError(
          'Busy',
          `${op}: the lock ${this.lockPath} is held by another process (waited ${this.lockTimeoutMs} ms)`,
          { op, target: this.lockPath },
        );
      await new Promise((r) => setTimeout(r, Math.min(pause, left)));
      pause = Math.min(pause * 2, 50);
    }
    let tx: FileTxn;
    try {
      tx = this.begin(hint, op);
    } catch (e) {
      unlock(this.lockFd, this.lockPath);
      throw e;
    }
    return this.run(tx, fn);
  }

  /**
   * Lists the store and reports the entries that are not readable reservations (a directory or a symlink
   * to one named like an IP): what a GC or STATUS caller shows. Those entries keep their IP taken and are
   * never released by an owner.
   *
   * @throws {@link IpamError} `Busy`; `StoreFailure`.
   * @example
   * ```ts
   * import { FileStore } from '@datapath/ipam/file-store';
   * const store = new FileStore('/tmp/ipam-example');
   * console.log(store.check().problems); // []
   * store.close();
   * ```
   */
  check(): FileStoreCheck {
    return this.transact((tx) => {
      const ips = tx.ips();
      for (const ip of ips) tx.owner(ip);
      return { ips, problems: tx.problems?.() ?? [] };
    });
  }

  /** Writes a new random generation token (once per transaction). @internal */
  bump(tx: FileTxn): void {
    if (tx.bumped) return;
    tx.bumped = true;
    // A random token (not a counter): a recreated lock file can never repeat a cached value.
    const b = this.genBuf;
    for (let i = 0; i < 8; i++) b[i] = (Math.random() * 256) | 0;
    pwriteStart(this.lockFd, b, this.lockPath);
    tx.generation = genText(b);
  }

  /** The file of `name` in the store. @internal */
  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Stages the owner content in a temporary file. @internal */
  stageFor(owner: string): string {
    return this.stage(owner);
  }

  /** Rewrites `last_reserved_ip.<rangeId>`. @internal */
  last(rangeId: string, ip: string): void {
    this.writeLast(rangeId, ip);
  }

  private writeLast(rangeId: string, ip: string): void {
    const path = this.path(`${LAST_PREFIX}${rangeId}`);
    let fd = this.lastFds.get(rangeId);
    if (fd === undefined) {
      fd = openWrite(path);
      this.lastFds.set(rangeId, fd);
    }
    overwriteFd(fd, ip, path);
  }

  /**
   * The last IP reserved from a range id (host-local's `last_reserved_ip.<id>`), if any.
   *
   * @throws {@link IpamError} `StoreFailure` on a file system error.
   * @example
   * ```ts
   * import { FileStore } from '@datapath/ipam/file-store';
   * const store = new FileStore('/tmp/ipam-example');
   * console.log(store.lastReservedIp('0'));
   * store.close();
   * ```
   */
  lastReservedIp(rangeId: string): string | undefined {
    return readText(this.path(`${LAST_PREFIX}${rangeId}`))?.trim();
  }

  /** {@link FileStore.close} (`using store = new FileStore(dir)`). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the lock file (dropping the lock if held). */
  close(): void {
    if (this.lockFd >= 0) closeQuiet(this.lockFd);
    if (this.dirFd >= 0) closeQuiet(this.dirFd);
    for (const fd of this.lastFds.values()) closeQuiet(fd);
    this.lastFds.clear();
    this.lockFd = -1;
    this.dirFd = -1;
  }
}

export type { IpamErrorCode } from './errors.js';
export { IpamError } from './errors.js';
export { hostLocalOwner } from './host-local.js';
