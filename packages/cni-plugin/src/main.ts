// Entry point of the datapath-cni binary (bundled into one file by scripts/bundle.mjs). The handlers are
// imported on first use: VERSION and argument errors never load the netlink FFI, and a failure to load it
// is reported as CNI error JSON like any other error.
import { runPlugin } from '@datapath/cni';
import { pluginInfo } from './info.js';

const impl = async () => (await import('./plugin.js')).handlers;

void runPlugin({
  ...pluginInfo(),
  add: async (a) => (await impl()).add(a),
  del: async (a) => (await impl()).del(a),
  check: async (a) => (await impl()).check(a),
  gc: async (a) => (await impl()).gc(a),
  status: async (a) => (await impl()).status(a),
});
