// A typed rtnetlink handle bound to one network namespace for its whole life.

import { type AddressMessage, decodeAddress, encodeAddress } from './codec/addr.js';
import type { Writer } from './codec/bytes.js';
import { attrMap, getI32 } from './codec/bytes.js';
import { decodeLink, encodeLink, type LinkMessage } from './codec/link.js';
import { Flag, Msg } from './codec/message.js';
import { decodeNeigh, encodeNeigh, type NeighMessage } from './codec/neigh.js';
import { decodeQdisc, encodeQdisc, type QdiscMessage } from './codec/qdisc.js';
import { decodeRoute, encodeRoute, type RouteMessage } from './codec/route.js';
import { type BatchItem, Conn, type RequestOptions, type Transport } from './conn.js';
import { NetlinkError } from './errors.js';
import type { Netns } from './netns.js';
import { netnsFd } from './netns-fd.js';
import { checkSubscribe, type SubscribeOptions, type Subscription, subscribeOn } from './subscribe.js';
import type { SubscribeKind } from './subscribe-events.js';
import { openRouteSocket, openRouteSocketAsync } from './sys/socket.js';

/** How a `*New` request treats an existing object: `create` = `NLM_F_CREATE|NLM_F_EXCL` (fail if it exists), `replace` = `NLM_F_CREATE|NLM_F_REPLACE`, `append` = `NLM_F_CREATE|NLM_F_APPEND`, `change` = no flags (modify an existing one). */
export type NewMode = 'create' | 'replace' | 'append' | 'change';

const MODE_FLAGS: Record<NewMode, number> = {
  create: Flag.CREATE | Flag.EXCL,
  replace: Flag.CREATE | Flag.REPLACE,
  append: Flag.CREATE | Flag.APPEND,
  change: 0,
};

/**
 * One request of {@link Handle.batch}: the same messages as the single calls (`linkNew`, `linkSet`,
 * `linkGet`, `addrNew`, `routeNew`, `routeDelete`).
 */
export type BatchRequest =
  | {
      /** `RTM_NEWLINK`, as {@link Handle.linkNew}. */
      op: 'linkNew';
      /** The link to create. */
      link: LinkMessage;
      /** How an existing link is treated (default `create`). */
      mode?: NewMode | undefined;
    }
  | {
      /** `RTM_SETLINK`, as {@link Handle.linkSet}. */
      op: 'linkSet';
      /** The link (by `index` or `name`) and what to change. */
      link: LinkMessage;
    }
  | {
      /** `RTM_GETLINK`, as {@link Handle.linkGet}: the link comes back in the reply. */
      op: 'linkGet';
      /** The link, by `index` or `name`. */
      link: LinkMessage;
    }
  | {
      /** `RTM_NEWADDR`, as {@link Handle.addrNew}. */
      op: 'addrNew';
      /** The address. */
      addr: AddressMessage;
      /** How an existing address is treated (default `create`). */
      mode?: NewMode | undefined;
    }
  | {
      /** `RTM_NEWROUTE`, as {@link Handle.routeNew}. */
      op: 'routeNew';
      /** The route. */
      route: RouteMessage;
      /** How an existing route is treated (default `create`). */
      mode?: NewMode | undefined;
    }
  | {
      /** `RTM_DELROUTE`, as {@link Handle.routeDelete}. */
      op: 'routeDelete';
      /** The route. */
      route: RouteMessage;
    };

/** What one request of a batch did: the link a `linkGet` found, or the kernel's error. */
export interface BatchReply {
  /** The kernel's error for this request (the requests after it still ran). */
  error: NetlinkError | undefined;
  /** `linkGet`: the link. */
  link: LinkMessage | undefined;
}

function batchItem(r: BatchRequest): BatchItem {
  switch (r.op) {
    case 'linkNew':
      return {
        type: Msg.NEWLINK,
        flags: MODE_FLAGS[r.mode ?? 'create'],
        body: (w) => encodeLink(w, r.link, 'linkNew'),
        op: 'linkNew',
        target: r.link.name,
      };
    case 'linkSet':
      return {
        type: Msg.SETLINK,
        flags: 0,
        body: (w) => encodeLink(w, r.link, 'linkSet'),
        op: 'linkSet',
        target: r.link.name ?? String(r.link.index),
      };
    case 'linkGet':
      return {
        type: Msg.GETLINK,
        flags: 0,
        body: (w) => encodeLink(w, r.link, 'linkGet'),
        op: 'linkGet',
        target: r.link.name ?? String(r.link.index),
      };
    case 'addrNew':
      return {
        type: Msg.NEWADDR,
        flags: MODE_FLAGS[r.mode ?? 'create'],
        body: (w) => encodeAddress(w, r.addr, 'addrNew'),
        op: 'addrNew',
        target: r.addr.local ?? r.addr.address,
      };
    case 'routeNew':
      return {
        type: Msg.NEWROUTE,
        flags: MODE_FLAGS[r.mode ?? 'create'],
        body: (w) => encodeRoute(w, r.route, 'routeNew'),
        op: 'routeNew',
        target: r.route.dst ?? 'default',
      };
    case 'routeDelete':
      return {
        type: Msg.DELROUTE,
        flags: 0,
        body: (w) => encodeRoute(w, r.route, 'routeDelete'),
        op: 'routeDelete',
        target: r.route.dst ?? 'default',
      };
    default:
      throw new NetlinkError(
        'InvalidArgument',
        `batch: unknown request ${JSON.stringify((r as { op?: unknown }).op)}`,
        {
          op: 'batch',
        },
      );
  }
}

function batchReplies(
  requests: readonly BatchRequest[],
  outcomes: { replies: { type: number; payload: Uint8Array }[]; error: NetlinkError | undefined }[],
): BatchReply[] {
  return outcomes.map((o, i) => {
    let link: LinkMessage | undefined;
    if (o.error === undefined && requests[i]!.op === 'linkGet') {
      const first = o.replies.find((r) => r.type === Msg.NEWLINK);
      if (!first)
        return {
          error: new NetlinkError('Protocol', 'linkGet: no RTM_NEWLINK in the reply', { op: 'linkGet' }),
          link,
        };
      link = decodeLink(first.payload, 'linkGet');
    }
    return { error: o.error, link };
  });
}

/** Address family filter for dumps: 0 = all, 2 = IPv4, 10 = IPv6, 7 = bridge. */
export type Family = 0 | 2 | 7 | 10;

const NETNSA_NSID = 1;
const NETNSA_FD = 3;

/**
 * A NETLINK_ROUTE socket bound to one network namespace: every request acts in that namespace, with no
 * further `setns`. Requests are synchronous (the kernel answers immediately). Close it when done, or
 * use `using`.
 *
 * @example Listing the links of a named namespace
 * ```ts
 * import { Handle, Netns } from '@datapath/netlink';
 * using ns = Netns.open({ name: 'blue' });
 * using h = Handle.open(ns);
 * console.log(h.linkDump().map((l) => l.name));
 * ```
 */
export class Handle implements Disposable {
  private readonly conn: Conn;
  private readonly socketFd: number | undefined;

  private constructor(transport: Transport) {
    this.conn = new Conn(transport);
    this.socketFd = transport.fd;
  }

  /**
   * Opens a handle in `netns` (default: the namespace the calling thread is in now). The socket is
   * created inside the namespace and stays bound to it.
   *
   * Equivalent to: `ip -n NAME …` (one socket for many commands).
   *
   * @throws {@link NetlinkError} `PermissionDenied`, `BadFd` (closed `netns`).
   * @example A handle in the current namespace
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.linkGet({ name: 'lo' }).index); // 1
   * ```
   */
  static open(netns?: Netns): Handle {
    const op = 'handleOpen';
    if (netns === undefined) return new Handle(openRouteSocket(op));
    // The socket is made on a short-lived thread inside the namespace (the native addon); without the
    // addon, inside a synchronous Netns.run window on this thread.
    const transport = openRouteSocket(op, netnsFd(netns, op)) ?? netns.run(() => openRouteSocket(op));
    return new Handle(transport);
  }

  /**
   * The async form of {@link Handle.open}: for another namespace, the thread that creates the socket inside it
   * is started and awaited on libuv's threadpool (entering a namespace can take milliseconds on a loaded
   * machine), so the event loop goes on meanwhile. Same result and errors.
   *
   * Equivalent to: `ip -n NAME …` (one socket for many commands).
   *
   * @throws {@link NetlinkError} `PermissionDenied`, `BadFd` (closed `netns`), as a rejection.
   * @example A handle in another namespace, opened without blocking
   * ```ts
   * import { Handle, Netns } from '@datapath/netlink';
   * using ns = Netns.open({ name: 'blue' });
   * using h = await Handle.openAsync(ns);
   * console.log(h.linkGet({ name: 'lo' }).index); // 1
   * ```
   */
  static async openAsync(netns?: Netns): Promise<Handle> {
    const op = 'handleOpen';
    if (netns === undefined) return new Handle(openRouteSocket(op));
    const transport = await openRouteSocketAsync(op, netnsFd(netns, op));
    return transport === undefined ? Handle.open(netns) : new Handle(transport);
  }

  /**
   * A handle over a custom transport (a fake in unit tests).
   *
   * @example Wrapping a transport
   * ```ts
   * import { Handle, type Transport } from '@datapath/netlink';
   * declare const fake: Transport;
   * const h = Handle.fromTransport(fake);
   * h.close();
   * ```
   */
  static fromTransport(transport: Transport): Handle {
    return new Handle(transport);
  }

  /**
   * Closes the socket; idempotent.
   *
   * @example Closing a handle
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * Handle.open().close();
   * ```
   */
  close(): void {
    this.conn.close();
  }

  /** Same as {@link Handle.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  private send(type: number, flags: number, body: (w: Writer) => void, op: string, target?: string): void {
    this.conn.request(type, flags, body, op, target);
  }

  private async sendAsync(
    type: number,
    flags: number,
    body: (w: Writer) => void,
    op: string,
    target: string | undefined,
    options: RequestOptions | undefined,
  ): Promise<void> {
    await this.conn.requestAsync(type, flags, body, op, target, options);
  }

  /**
   * Sends several requests in one datagram and waits once for all their answers: the kernel runs them in
   * order, each as its single call would, and acknowledges each. A failing request does not stop the ones
   * after it; every request's outcome is returned in order (nothing is thrown for a kernel error).
   *
   * Equivalent to: `ip -batch FILE` (with `-force`: every line runs), one system call for all lines.
   *
   * @throws {@link NetlinkError} `InvalidArgument` (no request, an unknown one, a bad message), `Busy`
   * (async requests in flight on this handle), `BadFd`.
   * @example Addressing and routing an interface in one round trip
   * ```ts
   * import { Handle, IfFlag, RouteScope } from '@datapath/netlink';
   * using h = Handle.open();
   * const replies = h.batch([
   *   { op: 'linkSet', link: { index: 1, flags: IfFlag.UP, change: IfFlag.UP } },
   *   { op: 'addrNew', addr: { index: 1, prefixLen: 32, local: '10.244.0.1', address: '10.244.0.1' } },
   *   { op: 'routeNew', route: { dst: '10.244.9.0', dstLen: 24, oif: 1, scope: RouteScope.LINK, type: 1, protocol: 4 } },
   * ]);
   * const failed = replies.find((r) => r.error !== undefined);
   * if (failed) throw failed.error;
   * ```
   */
  batch(requests: readonly BatchRequest[]): BatchReply[] {
    return batchReplies(requests, this.conn.requestBatch(requests.map(batchItem)));
  }

  /**
   * The async form of {@link Handle.batch}: the one exchange waits on libuv's threadpool, not on the event
   * loop. `options.signal` cancels it while it is queued (code `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.batch}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle, IfFlag } from '@datapath/netlink';
   * using h = Handle.open();
   * const [lo] = await h.batchAsync([
   *   { op: 'linkSet', link: { index: 1, flags: IfFlag.UP, change: IfFlag.UP } },
   *   { op: 'linkGet', link: { index: 1 } },
   * ]);
   * console.log(lo?.error, (await h.batchAsync([{ op: 'linkGet', link: { name: 'lo' } }]))[0]?.link?.mtu);
   * ```
   */
  async batchAsync(requests: readonly BatchRequest[], options?: RequestOptions): Promise<BatchReply[]> {
    return batchReplies(requests, await this.conn.requestBatchAsync(requests.map(batchItem), options));
  }

  /**
   * Sends `RTM_NEWLINK`: creates a link (`mode` `create`, the default) or changes one.
   *
   * Equivalent to: `ip link add NAME type KIND …`.
   *
   * @throws {@link NetlinkError} `AlreadyExists`, `InvalidArgument` (with the kernel's message),
   * `NotSupported` (unknown kind), `PermissionDenied`.
   * @example Creating a veth pair
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.linkNew({ name: 'v0', info: { kind: 'veth', peer: { name: 'v1' } } });
   * ```
   */
  linkNew(m: LinkMessage, mode: NewMode = 'create'): void {
    this.send(Msg.NEWLINK, MODE_FLAGS[mode], (w) => encodeLink(w, m, 'linkNew'), 'linkNew', m.name);
  }

  /**
   * Sends `RTM_SETLINK` for an existing link, found by `index` (or `name` when `index` is 0).
   *
   * Equivalent to: `ip link set DEV …`.
   *
   * @throws {@link NetlinkError} `NotFound`, `InvalidArgument`, `Busy` (rename while up).
   * @example Bringing a link up
   * ```ts
   * import { Handle, IfFlag } from '@datapath/netlink';
   * using h = Handle.open();
   * h.linkSet({ index: 1, flags: IfFlag.UP, change: IfFlag.UP });
   * ```
   */
  linkSet(m: LinkMessage): void {
    this.send(Msg.SETLINK, 0, (w) => encodeLink(w, m, 'linkSet'), 'linkSet', m.name ?? String(m.index));
  }

  /**
   * Sends `RTM_DELLINK` for a link found by `index` or `name`.
   *
   * Equivalent to: `ip link del DEV`.
   *
   * @throws {@link NetlinkError} `NotFound`, `NotSupported` (e.g. deleting `lo`).
   * @example Deleting a link
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.linkDelete({ name: 'v0' });
   * ```
   */
  linkDelete(m: LinkMessage): void {
    this.send(Msg.DELLINK, 0, (w) => encodeLink(w, m, 'linkDelete'), 'linkDelete', m.name ?? String(m.index));
  }

  /**
   * Sends `RTM_GETLINK` for one link by `index` or `name`.
   *
   * Equivalent to: `ip -d link show DEV`.
   *
   * @throws {@link NetlinkError} `NotFound`.
   * @example Looking up loopback
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.linkGet({ name: 'lo' }).mtu);
   * ```
   */
  linkGet(m: LinkMessage): LinkMessage {
    const op = 'linkGet';
    const replies = this.conn.request(
      Msg.GETLINK,
      0,
      (w) => encodeLink(w, m, op),
      op,
      m.name ?? String(m.index),
    );
    const first = replies.find((r) => r.type === Msg.NEWLINK);
    if (!first) throw new NetlinkError('Protocol', `${op}: no RTM_NEWLINK in the reply`, { op });
    return decodeLink(first.payload, op);
  }

  /**
   * Dumps every link of the namespace.
   *
   * Equivalent to: `ip -d link show`.
   *
   * @throws {@link NetlinkError} `Interrupted` (dump kept changing), `PermissionDenied`.
   * @example Listing link names
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.linkDump().map((l) => l.name));
   * ```
   */
  linkDump(): LinkMessage[] {
    return this.conn
      .dump(Msg.GETLINK, (w) => encodeLink(w, {}, 'linkDump'), 'linkDump')
      .filter((r) => r.type === Msg.NEWLINK)
      .map((r) => decodeLink(r.payload, 'linkDump'));
  }

  /**
   * Sends `RTM_NEWADDR`.
   *
   * Equivalent to: `ip addr add ADDR/LEN dev DEV`.
   *
   * @throws {@link NetlinkError} `AlreadyExists`, `NotFound` (no such interface), `InvalidArgument`.
   * @example Adding an address to loopback
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.addrNew({ index: 1, prefixLen: 32, local: '10.244.0.1', address: '10.244.0.1' });
   * ```
   */
  addrNew(m: AddressMessage, mode: NewMode = 'create'): void {
    this.send(
      Msg.NEWADDR,
      MODE_FLAGS[mode],
      (w) => encodeAddress(w, m, 'addrNew'),
      'addrNew',
      m.local ?? m.address,
    );
  }

  /**
   * Sends `RTM_DELADDR`.
   *
   * Equivalent to: `ip addr del ADDR/LEN dev DEV`.
   *
   * @throws {@link NetlinkError} `NotFound` (`EADDRNOTAVAIL`), `InvalidArgument`.
   * @example Removing an address
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.addrDelete({ index: 1, prefixLen: 32, local: '10.244.0.1' });
   * ```
   */
  addrDelete(m: AddressMessage): void {
    this.send(Msg.DELADDR, 0, (w) => encodeAddress(w, m, 'addrDelete'), 'addrDelete', m.local ?? m.address);
  }

  /**
   * Dumps the addresses of the namespace, optionally of one family.
   *
   * Equivalent to: `ip addr show`.
   *
   * @throws {@link NetlinkError} `Interrupted`.
   * @example Listing IPv4 addresses
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.addrDump(2).map((a) => `${a.local}/${a.prefixLen}`));
   * ```
   */
  addrDump(family: Family = 0): AddressMessage[] {
    return this.conn
      .dump(Msg.GETADDR, (w) => w.u8(family).u8(0).u8(0).u8(0).u32(0), 'addrDump')
      .filter((r) => r.type === Msg.NEWADDR)
      .map((r) => decodeAddress(r.payload, 'addrDump'));
  }

  /**
   * Sends `RTM_NEWROUTE`.
   *
   * Equivalent to: `ip route add|replace|append …`.
   *
   * @throws {@link NetlinkError} `AlreadyExists`, `Unreachable` (gateway not on link), `NetworkDown`,
   * `InvalidArgument`.
   * @example Adding a route to loopback
   * ```ts
   * import { Handle, RouteScope } from '@datapath/netlink';
   * using h = Handle.open();
   * h.routeNew({ dst: '10.244.9.0', dstLen: 24, oif: 1, scope: RouteScope.LINK, type: 1, protocol: 4 });
   * ```
   */
  routeNew(m: RouteMessage, mode: NewMode = 'create'): void {
    this.send(
      Msg.NEWROUTE,
      MODE_FLAGS[mode],
      (w) => encodeRoute(w, m, 'routeNew'),
      'routeNew',
      m.dst ?? 'default',
    );
  }

  /**
   * Sends `RTM_DELROUTE`.
   *
   * Equivalent to: `ip route del …`.
   *
   * @throws {@link NetlinkError} `NotFound` (`ESRCH`).
   * @example Deleting a route
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.routeDelete({ dst: '10.244.9.0', dstLen: 24 });
   * ```
   */
  routeDelete(m: RouteMessage): void {
    this.send(Msg.DELROUTE, 0, (w) => encodeRoute(w, m, 'routeDelete'), 'routeDelete', m.dst ?? 'default');
  }

  /**
   * Dumps the routes of every table, optionally of one family.
   *
   * Equivalent to: `ip route show table all`.
   *
   * @throws {@link NetlinkError} `Interrupted`.
   * @example Listing main-table IPv4 routes
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.routeDump(2).filter((r) => r.table === 254));
   * ```
   */
  routeDump(family: Family = 0): RouteMessage[] {
    return this.conn
      .dump(Msg.GETROUTE, (w) => encodeRoute(w, { family, table: 0 }, 'routeDump'), 'routeDump')
      .filter((r) => r.type === Msg.NEWROUTE)
      .map((r) => decodeRoute(r.payload, 'routeDump'));
  }

  /**
   * Sends `RTM_NEWNEIGH`.
   *
   * Equivalent to: `ip neigh add|replace ADDR lladdr MAC dev DEV`.
   *
   * @throws {@link NetlinkError} `AlreadyExists`, `NotFound`, `InvalidArgument`.
   * @example Adding a permanent neighbour
   * ```ts
   * import { Handle, NeighState } from '@datapath/netlink';
   * using h = Handle.open();
   * h.neighNew({ index: 2, dst: '10.244.0.9', lladdr: '02:00:00:00:00:09', state: NeighState.PERMANENT });
   * ```
   */
  neighNew(m: NeighMessage, mode: NewMode = 'create'): void {
    this.send(
      Msg.NEWNEIGH,
      MODE_FLAGS[mode],
      (w) => encodeNeigh(w, m, 'neighNew'),
      'neighNew',
      m.dst ?? m.lladdr,
    );
  }

  /**
   * Sends `RTM_DELNEIGH`.
   *
   * Equivalent to: `ip neigh del ADDR dev DEV`.
   *
   * @throws {@link NetlinkError} `NotFound`.
   * @example Removing a neighbour
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.neighDelete({ index: 2, dst: '10.244.0.9' });
   * ```
   */
  neighDelete(m: NeighMessage): void {
    this.send(Msg.DELNEIGH, 0, (w) => encodeNeigh(w, m, 'neighDelete'), 'neighDelete', m.dst ?? m.lladdr);
  }

  /**
   * Dumps the neighbour tables, optionally of one family.
   *
   * Equivalent to: `ip neigh show`.
   *
   * @throws {@link NetlinkError} `Interrupted`.
   * @example Listing neighbours
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.neighDump(2).map((n) => n.dst));
   * ```
   */
  neighDump(family: Family = 0): NeighMessage[] {
    return this.conn
      .dump(Msg.GETNEIGH, (w) => encodeNeigh(w, { family, index: 0 }, 'neighDump'), 'neighDump')
      .filter((r) => r.type === Msg.NEWNEIGH)
      .map((r) => decodeNeigh(r.payload, 'neighDump'));
  }

  /**
   * Sends `RTM_NEWQDISC` (e.g. a clsact qdisc for BPF programs).
   *
   * Equivalent to: `tc qdisc add dev DEV clsact`.
   *
   * @throws {@link NetlinkError} `AlreadyExists`, `NotFound`, `NotSupported`.
   * @example Adding clsact
   * ```ts
   * import { Handle, TcHandle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.qdiscNew({ index: 2, handle: TcHandle.CLSACT_HANDLE, parent: TcHandle.CLSACT, kind: 'clsact' });
   * ```
   */
  qdiscNew(m: QdiscMessage, mode: NewMode = 'create'): void {
    this.send(Msg.NEWQDISC, MODE_FLAGS[mode], (w) => encodeQdisc(w, m), 'qdiscNew', m.kind);
  }

  /**
   * Sends `RTM_DELQDISC`.
   *
   * Equivalent to: `tc qdisc del dev DEV clsact`.
   *
   * @throws {@link NetlinkError} `NotFound`, `InvalidArgument`.
   * @example Removing clsact
   * ```ts
   * import { Handle, TcHandle } from '@datapath/netlink';
   * using h = Handle.open();
   * h.qdiscDelete({ index: 2, handle: TcHandle.CLSACT_HANDLE, parent: TcHandle.CLSACT, kind: 'clsact' });
   * ```
   */
  qdiscDelete(m: QdiscMessage): void {
    this.send(Msg.DELQDISC, 0, (w) => encodeQdisc(w, m), 'qdiscDelete', m.kind);
  }

  /**
   * Dumps the qdiscs of every interface.
   *
   * Equivalent to: `tc qdisc show`.
   *
   * @throws {@link NetlinkError} `Interrupted`.
   * @example Finding clsact qdiscs
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log(h.qdiscDump().filter((q) => q.kind === 'clsact'));
   * ```
   */
  qdiscDump(): QdiscMessage[] {
    return this.conn
      .dump(Msg.GETQDISC, (w) => encodeQdisc(w, { index: 0 }), 'qdiscDump')
      .filter((r) => r.type === Msg.NEWQDISC)
      .map((r) => decodeQdisc(r.payload, 'qdiscDump'));
  }

  /**
   * Subscribes to rtnetlink notifications of this handle's namespace: an async iterator of typed
   * events (`new`/`del` with the objects the dump calls return), driven by the event loop. The
   * subscription opens its own socket inside the namespace and joins the multicast groups first; with
   * `list: true` it then lists the current objects (closed by a `synced` event) and streams the changes
   * after, with no gap and no duplicate. A receive-queue overrun (`ENOBUFS`) yields an `overrun` event
   * followed by a `resync` listing and a `synced` event. The subscription outlives the handle.
   *
   * Equivalent to: `ip monitor link address route neigh` (with `list: true`, `ip link show; …` first).
   *
   * @throws {@link NetlinkError} `InvalidArgument` (bad kinds or options, before any syscall), `BadFd`
   * (closed handle), `NotSupported` (a transport without a socket), `PermissionDenied`. Later failures
   * reject the iterator's `next()`.
   * @example Watching addresses, starting from the current ones
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await using sub = h.subscribe(['addr'], { list: true });
   * for await (const ev of sub) {
   *   if (ev.kind === 'addr') console.log(ev.source, ev.action, ev.addr.local, ev.addr.prefixLen);
   *   if (ev.kind === 'synced') break;
   * }
   * ```
   */
  subscribe(kinds: readonly SubscribeKind[], options: SubscribeOptions = {}): Subscription {
    const checked = checkSubscribe(kinds, options, 'subscribe');
    if (this.conn.isClosed)
      throw new NetlinkError('BadFd', 'subscribe: the netlink handle is closed', { op: 'subscribe' });
    return subscribeOn(this.socketFd, checked.kinds, checked.options);
  }

  /**
   * Returns the id this namespace uses for another namespace (`RTM_GETNSID`), or -1 when none is
   * assigned yet.
   *
   * Equivalent to: `ip netns list-id` (for one namespace).
   *
   * @throws {@link NetlinkError} `BadFd`, `InvalidArgument`.
   * @example The id of a peer namespace
   * ```ts
   * import { Handle, Netns } from '@datapath/netlink';
   * using h = Handle.open();
   * using ns = Netns.open({ name: 'blue' });
   * console.log(h.nsidGet(ns));
   * ```
   */
  nsidGet(netns: Netns): number {
    const op = 'nsidGet';
    const replies = this.conn.request(
      Msg.GETNSID,
      0,
      (w) => w.u8(0).u8(0).u16(0).attrU32(NETNSA_FD, netns.fd),
      op,
      netns.path,
    );
    const r = replies.find((x) => x.type === Msg.NEWNSID);
    if (!r) throw new NetlinkError('Protocol', `${op}: no RTM_NEWNSID in the reply`, { op });
    const id = attrMap(r.payload.subarray(4), op).get(NETNSA_NSID);
    return id ? getI32(id) : -1;
  }

  /**
   * The async form of {@link Handle.linkNew}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.linkNew}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.linkNewAsync({ name: 'v0', info: { kind: 'veth', peer: { name: 'v1' } } });
   * ```
   */
  linkNewAsync(m: LinkMessage, mode: NewMode = 'create', options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.NEWLINK,
      MODE_FLAGS[mode],
      (w) => encodeLink(w, m, 'linkNew'),
      'linkNew',
      m.name,
      options,
    );
  }

  /**
   * The async form of {@link Handle.linkSet}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.linkSet}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.linkSetAsync({ index: 1, flags: 1, change: 1 });
   * ```
   */
  linkSetAsync(m: LinkMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.SETLINK,
      0,
      (w) => encodeLink(w, m, 'linkSet'),
      'linkSet',
      m.name ?? String(m.index),
      options,
    );
  }

  /**
   * The async form of {@link Handle.linkDelete}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.linkDelete}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.linkDeleteAsync({ name: 'v0' });
   * ```
   */
  linkDeleteAsync(m: LinkMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.DELLINK,
      0,
      (w) => encodeLink(w, m, 'linkDelete'),
      'linkDelete',
      m.name ?? String(m.index),
      options,
    );
  }

  /**
   * The async form of {@link Handle.addrNew}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.addrNew}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.addrNewAsync({ index: 1, prefixLen: 32, local: '10.244.0.1', address: '10.244.0.1' });
   * ```
   */
  addrNewAsync(m: AddressMessage, mode: NewMode = 'create', options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.NEWADDR,
      MODE_FLAGS[mode],
      (w) => encodeAddress(w, m, 'addrNew'),
      'addrNew',
      m.local ?? m.address,
      options,
    );
  }

  /**
   * The async form of {@link Handle.addrDelete}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.addrDelete}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.addrDeleteAsync({ index: 1, prefixLen: 32, local: '10.244.0.1' });
   * ```
   */
  addrDeleteAsync(m: AddressMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.DELADDR,
      0,
      (w) => encodeAddress(w, m, 'addrDelete'),
      'addrDelete',
      m.local ?? m.address,
      options,
    );
  }

  /**
   * The async form of {@link Handle.routeNew}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.routeNew}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.routeNewAsync({ dst: '10.244.9.0', dstLen: 24, oif: 1, scope: 253, type: 1, protocol: 4 });
   * ```
   */
  routeNewAsync(m: RouteMessage, mode: NewMode = 'create', options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.NEWROUTE,
      MODE_FLAGS[mode],
      (w) => encodeRoute(w, m, 'routeNew'),
      'routeNew',
      m.dst ?? 'default',
      options,
    );
  }

  /**
   * The async form of {@link Handle.routeDelete}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.routeDelete}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.routeDeleteAsync({ dst: '10.244.9.0', dstLen: 24 });
   * ```
   */
  routeDeleteAsync(m: RouteMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.DELROUTE,
      0,
      (w) => encodeRoute(w, m, 'routeDelete'),
      'routeDelete',
      m.dst ?? 'default',
      options,
    );
  }

  /**
   * The async form of {@link Handle.neighNew}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.neighNew}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.neighNewAsync({ index: 2, dst: '10.244.0.9', lladdr: '02:00:00:00:00:09', state: 0x80 });
   * ```
   */
  neighNewAsync(m: NeighMessage, mode: NewMode = 'create', options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.NEWNEIGH,
      MODE_FLAGS[mode],
      (w) => encodeNeigh(w, m, 'neighNew'),
      'neighNew',
      m.dst ?? m.lladdr,
      options,
    );
  }

  /**
   * The async form of {@link Handle.neighDelete}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.neighDelete}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.neighDeleteAsync({ index: 2, dst: '10.244.0.9' });
   * ```
   */
  neighDeleteAsync(m: NeighMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.DELNEIGH,
      0,
      (w) => encodeNeigh(w, m, 'neighDelete'),
      'neighDelete',
      m.dst ?? m.lladdr,
      options,
    );
  }

  /**
   * The async form of {@link Handle.qdiscNew}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.qdiscNew}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.qdiscNewAsync({ index: 2, handle: 0xffff0000, parent: 0xfffffff1, kind: 'clsact' });
   * ```
   */
  qdiscNewAsync(m: QdiscMessage, mode: NewMode = 'create', options?: RequestOptions): Promise<void> {
    return this.sendAsync(
      Msg.NEWQDISC,
      MODE_FLAGS[mode],
      (w) => encodeQdisc(w, m),
      'qdiscNew',
      m.kind,
      options,
    );
  }

  /**
   * The async form of {@link Handle.qdiscDelete}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.qdiscDelete}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * await h.qdiscDeleteAsync({ index: 2, handle: 0xffff0000, parent: 0xfffffff1, kind: 'clsact' });
   * ```
   */
  qdiscDeleteAsync(m: QdiscMessage, options?: RequestOptions): Promise<void> {
    return this.sendAsync(Msg.DELQDISC, 0, (w) => encodeQdisc(w, m), 'qdiscDelete', m.kind, options);
  }

  /**
   * The async form of {@link Handle.linkGet}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.linkGet}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.linkGetAsync({ name: 'lo' })).mtu);
   * ```
   */
  async linkGetAsync(m: LinkMessage, options?: RequestOptions): Promise<LinkMessage> {
    const op = 'linkGet';
    const replies = await this.conn.requestAsync(
      Msg.GETLINK,
      0,
      (w) => encodeLink(w, m, op),
      op,
      m.name ?? String(m.index),
      options,
    );
    const first = replies.find((r) => r.type === Msg.NEWLINK);
    if (!first) throw new NetlinkError('Protocol', `${op}: no RTM_NEWLINK in the reply`, { op });
    return decodeLink(first.payload, op);
  }

  /**
   * The async form of {@link Handle.linkDump}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.linkDump}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.linkDumpAsync()).map((l) => l.name));
   * ```
   */
  async linkDumpAsync(options?: RequestOptions): Promise<LinkMessage[]> {
    const replies = await this.conn.dumpAsync(
      Msg.GETLINK,
      (w) => encodeLink(w, {}, 'linkDump'),
      'linkDump',
      options,
    );
    return replies.filter((r) => r.type === Msg.NEWLINK).map((r) => decodeLink(r.payload, 'linkDump'));
  }

  /**
   * The async form of {@link Handle.addrDump}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.addrDump}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.addrDumpAsync(2)).length);
   * ```
   */
  async addrDumpAsync(family: Family = 0, options?: RequestOptions): Promise<AddressMessage[]> {
    const replies = await this.conn.dumpAsync(
      Msg.GETADDR,
      (w) => w.u8(family).u8(0).u8(0).u8(0).u32(0),
      'addrDump',
      options,
    );
    return replies.filter((r) => r.type === Msg.NEWADDR).map((r) => decodeAddress(r.payload, 'addrDump'));
  }

  /**
   * The async form of {@link Handle.routeDump}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.routeDump}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.routeDumpAsync(2)).length);
   * ```
   */
  async routeDumpAsync(family: Family = 0, options?: RequestOptions): Promise<RouteMessage[]> {
    const replies = await this.conn.dumpAsync(
      Msg.GETROUTE,
      (w) => encodeRoute(w, { family, table: 0 }, 'routeDump'),
      'routeDump',
      options,
    );
    return replies.filter((r) => r.type === Msg.NEWROUTE).map((r) => decodeRoute(r.payload, 'routeDump'));
  }

  /**
   * The async form of {@link Handle.neighDump}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.neighDump}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.neighDumpAsync()).length);
   * ```
   */
  async neighDumpAsync(family: Family = 0, options?: RequestOptions): Promise<NeighMessage[]> {
    const replies = await this.conn.dumpAsync(
      Msg.GETNEIGH,
      (w) => encodeNeigh(w, { family, index: 0 }, 'neighDump'),
      'neighDump',
      options,
    );
    return replies.filter((r) => r.type === Msg.NEWNEIGH).map((r) => decodeNeigh(r.payload, 'neighDump'));
  }

  /**
   * The async form of {@link Handle.qdiscDump}: same arguments and errors; the request waits on libuv's
   * threadpool, not on the event loop. `options.signal` cancels it while it is queued (code
   * `Interrupted`, reason `Aborted`).
   *
   * @throws {@link NetlinkError} as {@link Handle.qdiscDump}; `Interrupted` when aborted.
   * @example The async form
   * ```ts
   * import { Handle } from '@datapath/netlink';
   * using h = Handle.open();
   * console.log((await h.qdiscDumpAsync()).length);
   * ```
   */
  async qdiscDumpAsync(options?: RequestOptions): Promise<QdiscMessage[]> {
    const replies = await this.conn.dumpAsync(
      Msg.GETQDISC,
      (w) => encodeQdisc(w, { index: 0 }),
      'qdiscDump',
      options,
    );
    return replies.filter((r) => r.type === Msg.NEWQDISC).map((r) => decodeQdisc(r.payload, 'qdiscDump'));
  }
}
