export type { LbConfigOptions } from './datapath/config.js';
export { LB_BPF_DIR, LB_HEADER, lbConfig } from './datapath/config.js';
export type { SocketLbOptions } from './datapath/socket.js';
export { SOCKET_LB_HOOKS, SocketLb } from './datapath/socket.js';
export type { LbMapFds } from './datapath/writer.js';
export { ServiceWriter } from './datapath/writer.js';
export type { Constants as NetdevConstants } from './netdev.gen.js';
export type {
  NatEntry,
  NatFlowHalf,
  NatKey,
  NetdevStats,
  NetdevTarget,
  NetnsHandle,
} from './netdev.js';
export { monotonicSeconds, NatDirection, NodeNetdev, natClosing, natPeerKey } from './netdev.js';
export type {
  FlowTimeouts,
  MasqueradeOptions,
  NetdevConfig,
  PortRange,
} from './netdev-config.js';
export { DEFAULT_NAT_PORT_RANGE, netdevConstants } from './netdev-config.js';
export type { PodDevice, PodLbOptions } from './pod-lb.js';
export { PodLb } from './pod-lb.js';
