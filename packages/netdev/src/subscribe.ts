// Subscriptions in netdev's shapes: a thin layer over @datapath/netlink's Handle.subscribe that turns
// its link, address, route and neighbour messages into Link, Address, Route and Neigh.
import type {
  EventSource,
  NetlinkEvent,
  Netns,
  OverrunEvent,
  SubscribeKind,
  Subscription,
  SyncedEvent,
} from '@datapath/netlink';
import type { Address } from './addr.js';
import { bad } from './validate.js';

const KINDS: readonly SubscribeKind[] = ['link', 'addr', 'route', 'neigh'];

import { toAddress } from './addr.js';
import { leaseHandle, leaseHandleIn, type NetdevOptions } from './common.js';
import { type Link, toLink } from './link.js';
import { type Neigh, toNeigh } from './neigh.js';
import { type Route, toRoute } from './route.js';

interface NetdevEventBase {
  /** `new` (created, changed, or listed) or `del`. */
  action: 'new' | 'del';
  /** `list`, `resync` (a listing) or `notify` (a change). */
  source: EventSource;
}

/** A link was created, changed or deleted. */
export interface NetdevLinkEvent extends NetdevEventBase {
  /** Discriminant. */
  kind: 'link';
  /** The link, as {@link linkList} returns it. */
  link: Link;
}

/** An address was added, changed or removed. */
export interface NetdevAddrEvent extends NetdevEventBase {
  /** Discriminant. */
  kind: 'addr';
  /** The address, as {@link addrList} returns it. */
  addr: Address;
}

/** A route was added, replaced or removed (any table; see `table`). */
export interface NetdevRouteEvent extends NetdevEventBase {
  /** Discriminant. */
  kind: 'route';
  /** The route, as {@link routeList} returns it. */
  route: Route;
}

/** A neighbour entry was added, changed or removed. */
export interface NetdevNeighEvent extends NetdevEventBase {
  /** Discriminant. */
  kind: 'neigh';
  /** The neighbour, as {@link neighList} returns it. */
  neigh: Neigh;
}

/**
 * What {@link subscribe} yields: IPv4/IPv6 links, addresses, routes and neighbours, and the overrun and
 * end-of-listing markers of `@datapath/netlink` (bridge-port link messages and bridge FDB entries are
 * left out, as the list functions leave them out).
 */
export type NetdevEvent =
  | NetdevLinkEvent
  | NetdevAddrEvent
  | NetdevRouteEvent
  | NetdevNeighEvent
  | OverrunEvent
  | SyncedEvent;

/** Options of {@link subscribe}. */
export interface NetdevSubscribeOptions extends NetdevOptions {
  /** The namespace to watch (ignored when `handle` is given); default: the caller's. */
  netns?: Netns | undefined;
  /** Report the current objects first, closed by a `synced` event. Default false. */
  list?: boolean | undefined;
  /** Closes the subscription when aborted (the iterator then ends). */
  signal?: AbortSignal | undefined;
  /** The socket's receive buffer in bytes (default 1 MiB); see `SubscribeOptions` of `@datapath/netlink`. */
  receiveBufferSize?: number | undefined;
  /** Events that may wait for the consumer before reading pauses (default 10000). */
  highWaterMark?: number | undefined;
}

function convert(ev: NetlinkEvent): NetdevEvent | undefined {
  switch (ev.kind) {
    case 'link':
      return ev.link.family === 0
        ? { kind: 'link', action: ev.action, source: ev.source, link: toLink(ev.link) }
        : undefined;
    case 'addr':
      return ev.addr.family === 2 || ev.addr.family === 10
        ? { kind: 'addr', action: ev.action, source: ev.source, addr: toAddress(ev.addr) }
        : undefined;
    case 'route':
      return ev.route.family === 2 || ev.route.family === 10
        ? { kind: 'route', action: ev.action, source: ev.source, route: toRoute(ev.route) }
        : undefined;
    case 'neigh':
      return ev.neigh.family === 2 || ev.neigh.family === 10
        ? { kind: 'neigh', action: ev.action, source: ev.source, neigh: toNeigh(ev.neigh) }
        : undefined;
    default:
      return ev;
  }
}

/** A running {@link subscribe}: an async iterator of {@link NetdevEvent}s; `close()` or `await using` ends it. */
export class NetdevSubscription implements AsyncIterableIterator<NetdevEvent>, AsyncDisposable {
  /** @internal */
  constructor(private readonly inner: Subscription) {}

  /** The next event; `done` once closed. */
  async next(): Promise<IteratorResult<NetdevEvent>> {
    for (;;) {
      const r = await this.inner.next();
      if (r.done) return { value: undefined, done: true };
      const ev = convert(r.value);
      if (ev !== undefined) return { value: ev, done: false };
    }
  }

  /** Closes the subscription (what `break` in `for await` calls). */
  async return(): Promise<IteratorResult<NetdevEvent>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** This object (iterate it once). */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Ends the subscription and closes its socket; idempotent. */
  close(): void {
    this.inner.close();
  }

  /** Same as {@link NetdevSubscription.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/**
 * Watches the links, addresses, routes and neighbours of a namespace: an async iterator of
 * {@link NetdevEvent}s in netdev's shapes, driven by the event loop. With `list: true` the current
 * objects come first (closed by a `synced` event), then every change, with no gap and no duplicate; an
 * overrun yields an `overrun` event and a `resync` listing. The subscription has its own socket in the
 * namespace (the handle it was opened with may be closed).
 *
 * Equivalent to: `ip monitor link address route neigh` (with `list: true`: `ip link; ip addr; …` first).
 *
 * @throws `NetlinkError` (`@datapath/netlink`) `InvalidArgument` (bad kinds or options, before any
 * syscall), `BadFd` (closed handle or namespace), `PermissionDenied`.
 * @example Noticing that a pod's veth disappeared
 * ```ts
 * import { subscribe } from '@datapath/netdev';
 * await using sub = subscribe(['link'], { list: true });
 * for await (const ev of sub) {
 *   if (ev.kind === 'link' && ev.action === 'del') console.log(`${ev.link.name} (${ev.link.index}) is gone`);
 * }
 * ```
 */
export function subscribe(
  kinds: readonly SubscribeKind[],
  options: NetdevSubscribeOptions = {},
): NetdevSubscription {
  const op = 'subscribe';
  if (options === null || typeof options !== 'object') bad(op, 'options must be an object');
  if (!Array.isArray(kinds) || kinds.length === 0 || !kinds.every((k) => KINDS.includes(k)))
    bad(op, `kinds must be a non-empty array of ${KINDS.map((k) => `'${k}'`).join(', ')}`);
  const { handle, netns, ...rest } = options;
  using lease = handle !== undefined ? leaseHandle({ handle }) : leaseHandleIn(netns);
  return new NetdevSubscription(lease.handle.subscribe(kinds, rest));
}
