// Socket-level load balancing: bpf/sock_lb.c compiled through the loader, attached to a cgroup, with a
// ServiceWriter over its maps.
import { join } from 'node:path';
import {
  type Collection,
  cgroupAttachAsync,
  compile,
  type Link,
  loadAsync,
  openObject,
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
] as const;

/** Options of {@link SocketLb.attach}. */
export interface SocketLbOptions extends Omit<LbConfigOptions, 'maglevTableSize'>, ServiceTableOptions {
  /** cgroup v2 directory whose processes (and descendants) get socket LB, e.g. `/sys/fs/cgroup`. */
  cgroupPath: string;
  /** bpffs directory to pin the shared maps in (with `pinByName`). */
  pinDir?: string | undefined;
}

/**
 * Socket-level load balancing on a cgroup: `bpf/sock_lb.c` (connect, sendmsg, recvmsg and getpeername
 * hooks for IPv4 and IPv6) compiled and loaded through `@datapath/loader` and attached to the cgroup,
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
    let writer: ServiceWriter | undefined;
    try {
      for (const [hook, prog] of SOCKET_LB_HOOKS)
        links.push(
          await cgroupAttachAsync(coll.program(prog), { cgroupPath: options.cgroupPath, attachType: hook }),
        );
      writer = ServiceWriter.fromCollection(coll, table);
      return new SocketLb(coll, writer, links);
    } catch (err) {
      writer?.close();
      for (const l of links.reverse()) l.close();
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

  /** Detaches the programs and closes the maps (pinned maps stay pinned). */
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
