// Where the package's C lives, and the load-time constants the C and the TypeScript share.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LbError } from '../errors.js';
import { DEFAULT_MAGLEV_TABLE_SIZE, isMaglevTableSize, type MaglevTableSize } from '../maglev.js';

/**
 * The package's `bpf/` directory (`lb.h` and the socket-LB program): pass it as an include directory
 * to `compile` of `@datapath/loader` so a program can `#include "lb.h"`.
 */
export const LB_BPF_DIR: string = bpfDir();

// dist/*.js (bundled) and src/datapath/config.ts (workspace tests) sit at different depths below bpf/.
function bpfDir(): string {
  for (const rel of ['../bpf/', '../../bpf/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url)).replace(/\/$/, '');
    if (existsSync(`${dir}/lb.h`)) return dir;
  }
  return fileURLToPath(new URL('../bpf/', import.meta.url)).replace(/\/$/, '');
}

/** Path of `bpf/lb.h`. */
export const LB_HEADER: string = `${LB_BPF_DIR}/lb.h`;

/** Sizes of the shared maps, passed to the C as load-time constants by {@link lbConfig}. */
export interface LbConfigOptions {
  /** Maglev table size (default 16381): must match the `ServiceTable`'s. */
  maglevTableSize?: MaglevTableSize | undefined;
  /** Service map entries (default 65536): one per frontend plus one per frontend and backend slot. */
  serviceMapMax?: number | undefined;
  /** Backend map entries (default 65536). */
  backendMapMax?: number | undefined;
  /** Reverse-NAT map entries (default 65536). */
  revNatMapMax?: number | undefined;
  /** Affinity map entries (default 65536). */
  affinityMapMax?: number | undefined;
  /** Most Maglev tables, one per Maglev frontend (default 8192). */
  maglevMapMax?: number | undefined;
  /** Pin every shared map by name (load with `pinDir`), so programs of several objects share them. */
  pinByName?: boolean | undefined;
}

/**
 * The `config` of `compile` (`@datapath/loader`) for a program that includes `lb.h`: the map sizes and
 * the Maglev table size as `#define`s, so C and TypeScript use one value.
 *
 * @throws `LbError` (of `@datapath/lb`) `InvalidTableSize` for a Maglev size not in `MAGLEV_TABLE_SIZES`,
 * `InvalidService` for a map size that is not a positive integer.
 * @example Compiling a program that includes lb.h
 * ```ts
 * import { compile } from '@datapath/loader';
 * import { LB_BPF_DIR, lbConfig } from '@datapath/lb/datapath';
 * const obj = await compile({
 *   source: '#include "lb.h"\nchar _license[] SEC("license") = "GPL";\n',
 *   includeDirs: [LB_BPF_DIR],
 *   config: lbConfig({ maglevTableSize: 251 }),
 * });
 * console.log(obj.path);
 * ```
 */
export function lbConfig(options: LbConfigOptions = {}): Record<string, number | boolean> {
  const op = 'lbConfig';
  const size = options.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE;
  if (!isMaglevTableSize(size))
    throw new LbError('InvalidTableSize', `Maglev table size ${String(size)} is not offered`, { op });
  const out: Record<string, number | boolean> = { LB_MAGLEV_TABLE_SIZE: size };
  const sizes: [string, number | undefined][] = [
    ['LB_SERVICE_MAP_MAX', options.serviceMapMax],
    ['LB_BACKEND_MAP_MAX', options.backendMapMax],
    ['LB_REV_NAT_MAP_MAX', options.revNatMapMax],
    ['LB_AFFINITY_MAP_MAX', options.affinityMapMax],
    ['LB_MAGLEV_MAP_MAX', options.maglevMapMax],
  ];
  for (const [name, v] of sizes) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1 || v > 0x7fff_ffff)
      throw new LbError('InvalidService', `${name}: ${String(v)} is not a positive map size`, { op });
    out[name] = v;
  }
  if (options.pinByName) out.LB_PIN_BY_NAME = true;
  return out;
}
