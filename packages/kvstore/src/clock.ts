// Time source and timers, injectable so lease expiry and grace periods can be tested in virtual time.
// The same clock as @datapath/ipam's (one implementation, re-exported so a kvstore user needs one import).
export type { Clock } from '@datapath/ipam';
export { ManualClock, systemClock } from '@datapath/ipam';
