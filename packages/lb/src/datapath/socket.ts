// Socket-level load balancing: bpf/sock_lb.c compiled through the loader, attached to a cgroup, with a
// ServiceWriter over its maps.
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Collection,
  cgroupAttachAsync,
  compile,
  type Link,
  loadAsync,
  openObject,
  openPinnedLink,
  type Program,
} from '@datapath/loader';
import type { LbMapOp } from '../plan.js';
import { ServiceTable, type ServiceTableOptions } from '../plan.js';
import { LB_BPF_DIR, type LbConfigOptions, lbConfig } from './config.js';
import { ServiceWriter } from './writer.js';

/** The hooks {@link SocketLb} attaches, with the program each runs. */
export const SOCKET_LB_HOOKS = [
  ['connect4', 'lb_sock_connect4'],
  ['connect6', 'lb_sock_connect6'],
  ['sendmsg4', 'lb_sock_sendmsg4'],
  ['sendmsg6', 'lb_sock_sendmsg6'],
  ['recvmsg4', 'lb_sock_recvmsg4'],
  ['recvmsg6', 'lb_sock_recvmsg6'],
  ['getpeername4', 'lb_sock_getpeername4'],
  ['getpeername6', 'lb_sock_getpeername6'],
  ['sock_release', 'lb_sock_release'],
] as const;

/** Options of {@link SocketLb.attach}. */
export interface SocketLbOptions extends Omit<LbConfigOptions, 'maglevTableSize'>, ServiceTableOptions {
  /** cgroup v2 directory whose processes (and descendants) get socket LB, e.g. `/sys/fs/cgroup`. */
  cgroupPath: string;
  /** bpffs directory to pin the shared maps in (with `pinByName`). */
  pinDir?: string | undefined;
  /**
   * bpffs directory to pin the cgroup links in, one per hook (`<linkPinDir>/connect4`, …): pinned links
   * stay attached when this process closes them, exits or is killed, so sockets keep their load
   * balancing while no agent runs. A later `attach` with the same directory adopts them: each link gets
   * the newly loaded program atomically (`BPF_LINK_UPDATE`: the hook never runs none or two), so a
   * restart never attaches a second set. A pin that no longer fits (a link of another cgroup, or defunct)
   * is detached and replaced. Without it, the links detach on `close()`.
   */
  linkPinDir?: string | undefined;
}

/** The cgroup v2 id of a cgroup directory (its kernfs inode number), as link info reports it. */
function cgroupIdOf(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

/**
 * Attaches `program` to the cgroup hook, through the link pinned at `pin` when there is a fitting one
 * (updated in place; `adopted` true), else a new link pinned there. Without `pin`, a plain link.
 */
async function attachHook(
  program: Program,
  cgroupPath: string,
  hook: (typeof SOCKET_LB_HOOKS)[number][0],
  pin: string | undefined,
): Promise<{ link: Link; adopted: boolean }> {
  if (pin !== undefined && existsSync(pin)) {
    const old = openPinnedLink(pin);
    try {
      const info = old.info();
      if (info.kind === 'cgroup' && info.cgroupId === cgroupIdOf(cgroupPath)) {
        old.update(program); // the kernel refuses a program of another attach type: replaced below
        return { link: old, adopted: true };
      }
    } catch {
      // defunct, or another hook's link: detached and replaced below
    }
    try {
      old.detach();
    } catch {
      old.close();
      rmSync(pin, { force: true });
    }
  }
  const link = await cgroupAttachAsync(program, { cgroupPath, attachType: hook });
  if (pin !== undefined) {
    try {
      link.pin(pin);
    } catch (err) {
      link.close();
      throw err;
    }
  }
  return { link, adopted: false };
}

/**
 * Socket-level load balancing on a cgroup: `bpf/sock_lb.c` (connect, sendmsg, recvmsg and getpeername
 * hooks for IPv4 and IPv6, and sock_release, which drops a connected socket's reverse entry) compiled and loaded through `@datapath/loader` and attached to the cgroup,
 * and a {@link ServiceWriter} over its maps. Sockets of processes in the cgroup that connect or send to
 * a service address reach a backend directly; replies and `getpeername()` show the service address.
 *
 * @example A ClusterIP for the processes of one cgroup
 * ```ts
 * import { SocketLb } from '@datapath/lb/datapath';
 * await using lb = await SocketLb.attach({ cgroupPath: '/sys/fs/cgroup/app' });
 * lb.upsert({
 *   name: 'web', protocol: 'TCP',
 *   frontends: [{ address: '10.96.0.10', port: 80 }],
 *   backends: [{ address: '10.244.1.5', port: 8080 }],
 * });
 * ```
 */
export class SocketLb implements AsyncDisposable, Disposable {
  /** The writer over the loaded maps. */
  readonly writer: ServiceWriter;
  /** The loaded object (programs and maps). */
  readonly collection: Collection;
  readonly #links: Link[];
  #closed = false;

  private constructor(collection: Collection, writer: ServiceWriter, links: Link[]) {
    this.collection = collection;
    this.writer = writer;
    this.#links = links;
  }

  /**
   * Compiles (cached), loads and attaches the socket-LB programs to `cgroupPath`.
   *
   * @throws `CompileError` / `BpfError` of `@datapath/loader` (a verifier rejection, `PermissionDenied`
   * without CAP_BPF and CAP_NET_ADMIN, `NotFound` for a missing cgroup); `LbError` `InvalidTableSize`.
   * Nothing stays attached or loaded when it throws.
   * @example
   * ```ts
   * import { SocketLb } from '@datapath/lb/datapath';
   * const lb = await SocketLb.attach({ cgroupPath: '/sys/fs/cgroup/app', tableSize: 251 });
   * lb.close();
   * ```
   */
  static async attach(options: SocketLbOptions): Promise<SocketLb> {
    const table = new ServiceTable(options);
    const obj = await compile({
      files: [join(LB_BPF_DIR, 'sock_lb.c'), join(LB_BPF_DIR, 'lb.h')],
      config: lbConfig({ ...options, maglevTableSize: table.tableSize }),
    });
    const coll = await loadAsync(
      openObject(obj.path, 'lb_sock'),
      options.pinDir === undefined ? {} : { pinDir: options.pinDir },
    );
    const links: Link[] = [];
    const made: Link[] = [];
    let writer: ServiceWriter | undefined;
    const dir = options.linkPinDir;
    try {
      if (dir !== undefined) mkdirSync(dir, { recursive: true });
      for (const [hook, prog] of SOCKET_LB_HOOKS) {
        const { link, adopted } = await attachHook(
          coll.program(prog),
          options.cgroupPath,
          hook,
          dir === undefined ? undefined : join(dir, hook),
        );
        links.push(link);
        if (!adopted) made.push(link);
      }
      writer = ServiceWriter.fromCollection(coll, table);
      return new SocketLb(coll, writer, links);
    } catch (err) {
      writer?.close();
      // what this call attached goes (pins included); adopted links keep running, now our program
      for (const l of links.reverse()) {
        try {
          if (made.includes(l)) l.detach();
          else l.close();
        } catch {
          l.close();
        }
      }
      coll.close();
      throw err;
    }
  }

  /** The service table. */
  get table(): ServiceTable {
    return this.writer.table;
  }

  /**
   * Creates or changes a service ({@link ServiceWriter.upsert}).
   *
   * @throws as {@link ServiceWriter.upsert}.
   * @example
   * ```ts
   * import type { SocketLb } from '@datapath/lb/datapath';
   * declare const lb: SocketLb;
   * lb.upsert({ name: 'dns', protocol: 'UDP', frontends: [{ address: '10.96.0.10', port: 53 }], backends: [] });
   * ```
   */
  upsert(input: unknown): readonly LbMapOp[] {
    return this.writer.upsert(input);
  }

  /**
   * Removes a service ({@link ServiceWriter.remove}).
   *
   * @throws as {@link ServiceWriter.remove}.
   * @example
   * ```ts
   * import type { SocketLb } from '@datapath/lb/datapath';
   * declare const lb: SocketLb;
   * lb.remove('dns');
   * ```
   */
  remove(name: string): readonly LbMapOp[] {
    return this.writer.remove(name);
  }

  /**
   * Detaches every hook now, removing the link pins too, then closes like `close()`.
   * Equivalent to: `bpftool cgroup detach CGROUP connect4 id ID` for each hook.
   *
   * @example Removing socket LB for good
   * ```ts
   * import { SocketLb } from '@datapath/lb/datapath';
   * const lb = await SocketLb.attach({ cgroupPath: '/sys/fs/cgroup/app', linkPinDir: '/sys/fs/bpf/app/links' });
   * lb.detach();
   * ```
   */
  detach(): void {
    if (this.#closed) return;
    for (const l of [...this.#links].reverse()) {
      try {
        l.detach();
      } catch {
        l.close();
      }
    }
    this.#links.length = 0;
    this.close();
  }

  /** Closes the maps and releases the links: unpinned links detach, pinned ones (`linkPinDir`) stay attached. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.writer.close();
    for (const l of this.#links.reverse()) l.close();
    this.collection.close();
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as `close()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
