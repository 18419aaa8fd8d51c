/**
 * How src/netdev.gen.ts is generated from bpf/netdev.c: the C is the one definition of the NAT map
 * layouts, enums and load-time constants; `pnpm --filter @datapath/lb run gen` rewrites the module and a
 * test fails when the checked-in one is stale.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compile, type GenerateOptions, generate } from '@datapath/loader';

/** The C sources of the outward-device object (the program and the headers it includes). */
export const NETDEV_SOURCES: readonly [string, ...string[]] = [
  fileURLToPath(new URL('../bpf/netdev.c', import.meta.url)),
  fileURLToPath(new URL('../bpf/nat.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/nat6.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/ct.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/svc.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/refuse.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/lb.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/nat_family.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/svc_family.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/family4.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/family6.h', import.meta.url)),
  fileURLToPath(new URL('../bpf/family_undef.h', import.meta.url)),
];

/** The C sources of the pod-side object (bpf/lxc.c: per-packet ClusterIP for pods without socket LB). */
export const LXC_SOURCES: readonly [string, ...string[]] = [
  fileURLToPath(new URL('../bpf/lxc.c', import.meta.url)),
  ...NETDEV_SOURCES.slice(1),
];

/** The generated module's path. */
export const NETDEV_GENERATED = fileURLToPath(new URL('./netdev.gen.ts', import.meta.url));

/** What C types cannot say: which fields hold addresses and network-order ports. */
export const NETDEV_GEN_OPTIONS: GenerateOptions = {
  source: 'bpf/netdev.c',
  codecs: {
    'nat4_key.saddr': 'ipv4',
    'nat4_key.daddr': 'ipv4',
    'nat4_key.sport': 'be16',
    'nat4_key.dport': 'be16',
    'nat4_entry.to_addr': 'ipv4',
    'nat4_entry.to_port': 'be16',
    'nat6_key.saddr': 'ipv6',
    'nat6_key.daddr': 'ipv6',
    'nat6_key.sport': 'be16',
    'nat6_key.dport': 'be16',
    'nat6_entry.to_addr': 'ipv6',
    'nat6_entry.to_port': 'be16',
  },
  types: ['nat_dir', 'nat_stat', 'ct_flag'],
  // the service maps of lb.h have their codecs in layout.ts (the writer's)
  skipMaps: ['lb_services', 'lb_backends', 'lb_reverse_nat', 'lb_affinity', 'lb_affinity_match', 'lb_maglev'],
};

/** Compiles bpf/netdev.c (through the loader's cache) and returns the object path and the module it generates. */
export async function generateNetdevModule(cacheDir?: string): Promise<{ object: string; text: string }> {
  const { path } = await compile({
    files: [...NETDEV_SOURCES],
    ...(cacheDir === undefined ? {} : { cacheDir }),
  });
  return { object: path, text: generate(readFileSync(path), NETDEV_GEN_OPTIONS) };
}
