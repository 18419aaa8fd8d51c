// The `koffi` of the datapath-cni bundle (scripts/bundle.mjs redirects `koffi` here): koffi's native addon,
// opened directly. koffi's own loader costs a 40 ms plugin process ≈8 ms: it imports node:util (cold, that
// pulls in streams, net and worker_threads) only to wrap deprecated functions, resolves its platform
// package through node_modules and reads the node binary's ELF header to tell glibc from musl on every
// start. install.mjs makes that choice once and copies the matching addon next to the bundle as
// koffi.node. The addon exports the whole API (load, func, errno, struct, …); the JS layer adds nothing
// the bundled packages use.
import { join } from 'node:path';

// biome-ignore lint/suspicious/noExplicitAny: the addon is untyped here; callers keep koffi's own types.
const mod = { exports: {} as any };
process.dlopen(mod, join(__dirname, 'koffi.node'));

export default mod.exports;
