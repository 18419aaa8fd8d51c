/**
 * How src/datapath.gen.ts is generated from bpf/datapath.c: the C is the one definition of every map
 * layout, enum and constant; `pnpm --filter @datapath/example-agent run gen` rewrites the module and a
 * test fails when the checked-in one is stale.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LB_BPF_DIR, lbConfig } from '@datapath/lb/datapath';
import { type CompileOptions, compile, type GenerateOptions, generate } from '@datapath/loader';

const BPF_DIR = fileURLToPath(new URL('../bpf/', import.meta.url));

/** The generated module's path. */
export const GENERATED = fileURLToPath(new URL('./datapath.gen.ts', import.meta.url));

/** What C types cannot say (addresses and MACs), and the records and flag enums no map carries. */
export const GEN_OPTIONS: GenerateOptions = {
  source: 'bpf/datapath.c',
  codecs: {
    'endpoint_info.ip': 'ipv4',
    'endpoint_info.mac': 'mac',
    'endpoint_info.node_mac': 'mac',
    'ct_key.saddr': 'ipv4',
    'ct_key.daddr': 'ipv4',
    'remote_endpoint_info.tunnel_endpoint': 'ipv4',
  },
  types: ['dp_event', 'trace_event', 'ct_flags', 'dp_flags', 'ipcache_flags', 'lxc_policy_prefix'],
};

/** The Maglev table size of the agent's services (Cilium offers these sizes; small keeps the maps small). */
export const AGENT_MAGLEV_TABLE = 1021;

/**
 * How bpf/datapath.c is compiled: with @datapath/lb's bpf/ directory as include directory (its NodePort
 * steps include svc.h) and the lb maps' sizes as defines, the ones the agent's socket LB and NodePort
 * objects use, so all of them share the pinned maps.
 */
export function datapathCompileOptions(options: { cacheDir?: string | undefined; events?: boolean } = {}) {
  return {
    files: [join(BPF_DIR, 'datapath.c'), join(BPF_DIR, 'datapath.h')],
    includeDirs: [LB_BPF_DIR],
    config: lbConfig({ maglevTableSize: AGENT_MAGLEV_TABLE, pinByName: true }),
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    ...(options.events === false ? { defines: { DATAPATH_EVENTS: 0 } } : {}),
  } satisfies CompileOptions;
}

/** Compiles bpf/datapath.c (through the loader's cache) and returns the object path and the module it generates. */
export async function generateDatapathModule(cacheDir?: string): Promise<{ object: string; text: string }> {
  const { path } = await compile(datapathCompileOptions({ cacheDir }));
  return { object: path, text: generate(readFileSync(path), GEN_OPTIONS) };
}
