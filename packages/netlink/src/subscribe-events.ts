// Subscription events and the pure part of a subscription: which groups a kind joins, how a
// notification decodes into a typed event, and how a listing (dump) merges with the notifications that
// arrived while it ran, so that nothing is missed and nothing is reported twice.
import { type AddressMessage, decodeAddress } from './codec/addr.js';
import { decodeLink, type LinkMessage } from './codec/link.js';
import { Msg, type RawMessage } from './codec/message.js';
import { decodeNeigh, type NeighMessage } from './codec/neigh.js';
import { decodeRoute, type RouteMessage } from './codec/route.js';

/** What a subscription can watch: links, addresses, routes, neighbours. */
export type SubscribeKind = 'link' | 'addr' | 'route' | 'neigh';

/**
 * Where an object event comes from: `list` (the initial listing of `list: true`), `resync` (the listing
 * after an {@link OverrunEvent}), `notify` (a change the kernel announced).
 */
export type EventSource = 'list' | 'resync' | 'notify';

interface ObjectEventBase {
  /** `new` (`RTM_NEW*`: created, changed, or listed) or `del` (`RTM_DEL*`). */
  action: 'new' | 'del';
  /** Whether the event comes from a listing or a notification. */
  source: EventSource;
}

/** A link was created, changed or deleted (`RTM_NEWLINK`/`RTM_DELLINK`). */
export interface LinkEvent extends ObjectEventBase {
  /** Discriminant. */
  kind: 'link';
  /** The link, as {@link Handle.linkDump} returns it. */
  link: LinkMessage;
}

/** An address was added, changed or removed (`RTM_NEWADDR`/`RTM_DELADDR`). */
export interface AddrEvent extends ObjectEventBase {
  /** Discriminant. */
  kind: 'addr';
  /** The address, as {@link Handle.addrDump} returns it. */
  addr: AddressMessage;
}

/** A route was added, replaced or removed (`RTM_NEWROUTE`/`RTM_DELROUTE`). */
export interface RouteEvent extends ObjectEventBase {
  /** Discriminant. */
  kind: 'route';
  /** The route, as {@link Handle.routeDump} returns it. */
  route: RouteMessage;
}

/** A neighbour entry was added, changed or removed (`RTM_NEWNEIGH`/`RTM_DELNEIGH`). */
export interface NeighEvent extends ObjectEventBase {
  /** Discriminant. */
  kind: 'neigh';
  /** The neighbour, as {@link Handle.neighDump} returns it. */
  neigh: NeighMessage;
}

/**
 * The socket's receive queue overflowed (`ENOBUFS`): notifications were lost. Discard what you built
 * from earlier events; a `resync` listing of the whole state follows, closed by a {@link SyncedEvent}.
 */
export interface OverrunEvent {
  /** Discriminant. */
  kind: 'overrun';
}

/** A listing is complete: every object of the subscribed kinds was reported before this event. */
export interface SyncedEvent {
  /** Discriminant. */
  kind: 'synced';
  /** Which listing ended: the initial one (`list: true`) or the resync after an overrun. */
  source: 'list' | 'resync';
}

/** An object event: a link, address, route or neighbour. */
export type ObjectEvent = LinkEvent | AddrEvent | RouteEvent | NeighEvent;

/** What a subscription yields: object events, overruns and end-of-listing markers. */
export type NetlinkEvent = ObjectEvent | OverrunEvent | SyncedEvent;

/** The subscription kinds, in listing order. */
export const KINDS: readonly SubscribeKind[] = ['link', 'addr', 'route', 'neigh'];

/** The rtnetlink multicast groups (`RTNLGRP_*`) a kind joins. */
export const GROUPS: Record<SubscribeKind, readonly number[]> = {
  link: [1], // RTNLGRP_LINK
  addr: [5, 9], // RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR
  route: [7, 11], // RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE
  neigh: [3], // RTNLGRP_NEIGH
};

/** The dump request (`RTM_GET*`) of a kind. */
export const DUMP_TYPE: Record<SubscribeKind, number> = {
  link: Msg.GETLINK,
  addr: Msg.GETADDR,
  route: Msg.GETROUTE,
  neigh: Msg.GETNEIGH,
};

/** Decodes a `RTM_NEW*`/`RTM_DEL*` message of a subscribed kind; undefined for anything else. */
export function toEvent(
  m: RawMessage,
  source: EventSource,
  kinds: ReadonlySet<SubscribeKind>,
  op: string,
): ObjectEvent | undefined {
  switch (m.type) {
    case Msg.NEWLINK:
    case Msg.DELLINK:
      if (!kinds.has('link')) return undefined;
      return {
        kind: 'link',
        action: m.type === Msg.NEWLINK ? 'new' : 'del',
        source,
        link: decodeLink(m.payload, op),
      };
    case Msg.NEWADDR:
    case Msg.DELADDR:
      if (!kinds.has('addr')) return undefined;
      return {
        kind: 'addr',
        action: m.type === Msg.NEWADDR ? 'new' : 'del',
        source,
        addr: decodeAddress(m.payload, op),
      };
    case Msg.NEWROUTE:
    case Msg.DELROUTE:
      if (!kinds.has('route')) return undefined;
      return {
        kind: 'route',
        action: m.type === Msg.NEWROUTE ? 'new' : 'del',
        source,
        route: decodeRoute(m.payload, op),
      };
    case Msg.NEWNEIGH:
    case Msg.DELNEIGH:
      if (!kinds.has('neigh')) return undefined;
      return {
        kind: 'neigh',
        action: m.type === Msg.NEWNEIGH ? 'new' : 'del',
        source,
        neigh: decodeNeigh(m.payload, op),
      };
    default:
      return undefined;
  }
}

/** The identity of the object an event is about (what the kernel keys it by). */
export function objectKey(e: ObjectEvent): string {
  switch (e.kind) {
    case 'link':
      return `link|${e.link.family}|${e.link.index}`;
    case 'addr':
      return `addr|${e.addr.family}|${e.addr.index}|${e.addr.prefixLen}|${e.addr.local ?? e.addr.address}`;
    case 'route': {
      const r = e.route;
      return `route|${r.family}|${r.table}|${r.dst}/${r.dstLen}|${r.src}/${r.srcLen}|${r.tos}|${r.priority}|${r.type}|${r.oif}|${r.gateway}`;
    }
    case 'neigh': {
      const n = e.neigh;
      return `neigh|${n.family}|${n.index}|${n.dst ?? ''}|${n.dst === undefined ? n.lladdr : ''}|${n.vni}|${n.master}`;
    }
  }
}

/** The object's state as reported (a link's `change` mask says why it was sent, not what it is). */
export function objectState(e: ObjectEvent): string {
  if (e.kind === 'link') {
    const { change: _change, ...rest } = e.link;
    return JSON.stringify(rest);
  }
  return JSON.stringify(e.kind === 'addr' ? e.addr : e.kind === 'route' ? e.route : e.neigh);
}

/**
 * Merges one listing with the notifications received while it ran.
 *
 * The socket joined its groups before the dump request, so every change after that point is among the
 * notifications; a change may also already show in the dump (it happened before the dump reached its
 * object). The listing is reported first, then each buffered notification only if it changes what the
 * consumer knows at that point (a `new` whose object and state the consumer already has, or a `del` of
 * an object it never saw, is dropped). The consumer's final view equals the kernel's; a change made
 * concurrently with the dump is reported exactly once. The same rule filters the notifications that
 * were already queued when the listing ended ({@link Listing.filter}), then the listing is forgotten.
 */
export class Listing {
  private readonly dumped = new Map<SubscribeKind, ObjectEvent[]>();
  private readonly buffered: ObjectEvent[] = [];
  private known: Map<string, string> | undefined;

  constructor(readonly source: 'list' | 'resync') {}

  /** Starts (or restarts, after `NLM_F_DUMP_INTR`) the dump of a kind: forgets what it returned so far. */
  startKind(kind: SubscribeKind): void {
    this.dumped.set(kind, []);
  }

  /** One object of a dump. */
  addDumped(kind: SubscribeKind, e: ObjectEvent): void {
    const list = this.dumped.get(kind);
    if (list === undefined) this.dumped.set(kind, [e]);
    else list.push(e);
  }

  /** One notification received while the listing runs. */
  addNotification(e: ObjectEvent): void {
    this.buffered.push(e);
  }

  /** The events to report when every dump is done: the listing, a `synced` marker, then the buffered notifications that still say something new. */
  finish(): NetlinkEvent[] {
    const out: NetlinkEvent[] = [];
    this.known = new Map();
    for (const kind of KINDS) {
      for (const e of this.dumped.get(kind) ?? []) {
        if (e.action !== 'new') continue;
        this.known.set(objectKey(e), objectState(e));
        out.push(e);
      }
    }
    out.push({ kind: 'synced', source: this.source });
    for (const e of this.buffered) if (this.filter(e)) out.push(e);
    this.buffered.length = 0;
    this.dumped.clear();
    return out;
  }

  /** Whether a notification after {@link Listing.finish} tells the consumer something new (and records it). */
  filter(e: ObjectEvent): boolean {
    const known = this.known;
    if (known === undefined) return true;
    const key = objectKey(e);
    if (e.action === 'del') return known.delete(key);
    const state = objectState(e);
    if (known.get(key) === state) return false;
    known.set(key, state);
    return true;
  }
}
