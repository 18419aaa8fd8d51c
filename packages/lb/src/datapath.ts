export type { LbConfigOptions } from './datapath/config.js';
export { LB_BPF_DIR, LB_HEADER, lbConfig } from './datapath/config.js';
