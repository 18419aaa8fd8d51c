export type { AddressMessage } from './codec/addr.js';
export { AddrFlag } from './codec/addr.js';
export type { LinkInfo, LinkMessage } from './codec/link.js';
export { IfFlag, Inet6AddrGenMode } from './codec/link.js';
export type { NeighMessage } from './codec/neigh.js';
export { NeighState } from './codec/neigh.js';
export type { QdiscMessage } from './codec/qdisc.js';
export { TcHandle } from './codec/qdisc.js';
export type { RouteMessage } from './codec/route.js';
export { RouteProtocol, RouteScope, RouteTable, RouteType } from './codec/route.js';
export type { RequestOptions, Transport } from './conn.js';
export type { NetlinkErrnoOptions, NetlinkErrorCode, NetlinkErrorOptions } from './errors.js';
export { errnoError, fsCall, NetlinkError } from './errors.js';
export type { BatchReply, BatchRequest, Family, NewMode } from './handle.js';
export { Handle } from './handle.js';
export type { FileLock } from './lock.js';
export { lockFile } from './lock.js';
export type { NetnsId, NetnsRef } from './netns.js';
export { NETNS_RUN_DIR, Netns, netnsAdd, netnsDelete, netnsList } from './netns.js';
export type { SubscribeOptions } from './subscribe.js';
export { Subscription } from './subscribe.js';
export type {
  AddrEvent,
  EventSource,
  LinkEvent,
  NeighEvent,
  NetlinkEvent,
  ObjectEvent,
  OverrunEvent,
  RouteEvent,
  SubscribeKind,
  SyncedEvent,
} from './subscribe-events.js';
export type { NsConnectOptions, NsListenOptions } from './sys/inet.js';
