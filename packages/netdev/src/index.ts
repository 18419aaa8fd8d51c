export type { AddrAddOptions, Address } from './addr.js';
export { addrAdd, addrDel, addrList } from './addr.js';
export type { LinkRef, NetdevOptions } from './common.js';
export type {
  ApplyAsyncOptions,
  ApplyOptions,
  EndpointInterface,
  EndpointRef,
  EndpointResult,
  EndpointStep,
  RemoveOptions,
} from './endpoint/apply.js';
export { applyEndpoint, applyEndpointAsync, removeEndpoint, removeEndpointAsync } from './endpoint/apply.js';
export type {
  ContainerSidePlan,
  EndpointMode,
  EndpointPlan,
  EndpointSpec,
  HostSidePlan,
  PlannedAddress,
  PlannedRoute,
  PlannedRouteDelete,
  PlannedSysctl,
} from './endpoint/plan.js';
export { hostIfname, planEndpoint } from './endpoint/plan.js';
export type { Link, LinkBase, LinkSpec, NetdevLink, VethPeer } from './link.js';
export {
  linkAdd,
  linkDel,
  linkGet,
  linkList,
  linkSetDown,
  linkSetMac,
  linkSetMtu,
  linkSetName,
  linkSetNs,
  linkSetUp,
} from './link.js';
export type { Neigh, NeighStateName } from './neigh.js';
export { neighAdd, neighDel, neighList } from './neigh.js';
export type { Route, RouteSpec, RouteTypeName } from './route.js';
export { routeAdd, routeDel, routeList, routeReplace } from './route.js';
export type {
  NetdevAddrEvent,
  NetdevEvent,
  NetdevLinkEvent,
  NetdevNeighEvent,
  NetdevRouteEvent,
  NetdevSubscribeOptions,
} from './subscribe.js';
export { NetdevSubscription, subscribe } from './subscribe.js';
export type { SysctlOptions } from './sysctl.js';
export { sysctlGet, sysctlSet, sysctlSetAsync } from './sysctl.js';
