// The pure packages (STYLE.md rule 2, issue 16): importing their main entry point loads no native code,
// FFI, sockets or child processes, and they depend on no kernel package. One list for both checks:
//   - scripts/check-graph.mjs: statically, over the import graph of each package's src/index.ts;
//   - scripts/purity.test.ts: at run time, importing each built entry point in a fresh process and reading
//     the process's loaded modules and /proc/self/maps.
// To add a package, append its name here (and build it before the tests).

/** Packages whose main entry point must stay pure. */
export const PURE_PACKAGES = ['@datapath/policy', '@datapath/ipam', '@datapath/cni', '@datapath/http'];

/**
 * Packages whose main entry point must stay pure although the package also has kernel subpaths (and so
 * may depend on kernel packages): `@datapath/lb` (its model, Maglev and layouts at `.`; the map writer
 * and the socket-LB programs at `@datapath/lb/datapath`).
 */
export const PURE_ENTRY_PACKAGES = ['@datapath/lb'];

/** Further workspace packages one pure package may not depend on (the CNI spec library: not its plugin). */
export const EXTRA_BANNED_DEPS = { '@datapath/cni': ['@datapath/ipam', '@datapath/cni-plugin'] };

/** Workspace packages that reach the kernel: a pure package may not depend on them. */
export const KERNEL_PACKAGES = [
  '@datapath/libbpf',
  '@datapath/netlink',
  '@datapath/bpf-maps',
  '@datapath/loader',
  '@datapath/netdev',
];

/** Modules a pure entry point's import graph may not import (statically, or by require anywhere outside src/sys/). */
export const IMPURE_MODULES = [
  'koffi',
  'net',
  'node:net',
  'child_process',
  'node:child_process',
  'dgram',
  'node:dgram',
  'worker_threads',
  'node:worker_threads',
  'bindings',
  'node-gyp-build',
];

/** Node built-in modules and internal bindings whose presence in process.moduleLoadList means impure. */
export const IMPURE_RUNTIME = [
  'NativeModule net',
  'NativeModule child_process',
  'NativeModule dgram',
  'NativeModule worker_threads',
  'Internal Binding tcp_wrap',
  'Internal Binding pipe_wrap',
  'Internal Binding udp_wrap',
  'Internal Binding process_wrap',
  'Internal Binding spawn_sync',
];
