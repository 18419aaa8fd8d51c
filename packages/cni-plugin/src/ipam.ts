// The plugin's IPAM: host-local in-process (no exec), any other type delegated to its binary in CNI_PATH.
import { join } from 'node:path';
import type { Attachment, BaseArgs, CniIpConfig, CniResult, CniRoute, DelArgs } from '@datapath/cni';
import { CniError, CniErrorCode, delegate } from '@datapath/cni';
import { tryParseCidr, tryParseIp } from '@datapath/ip';
import { hostLocalOwner } from '@datapath/ipam';
import type { PluginConfig } from './config.js';
import { HostLocalIpam, type HostLocalRange, type Released } from './host-local.js';

/** What IPAM handed out for one attachment. */
export interface IpamLease {
  /** Addresses (`ip/prefix`) with their gateway. */
  ips: CniIpConfig[];
  /** Routes to add in the container. */
  routes: CniRoute[];
  /** DNS settings, when IPAM returned some. */
  dns?: CniResult['dns'];
}

/** One IPAM backend, bound to one invocation. */
export interface IpamBackend {
  /** Allocates for the container. */
  add(): Promise<IpamLease>;
  /** Undoes `add` after a later failure (only what `add` reserved). */
  undo(lease: IpamLease): Promise<void>;
  /** Releases everything of the container; idempotent. */
  del(): Promise<void>;
  /** Verifies the container's reservations. */
  check(addresses: readonly string[]): Promise<void>;
  /** Releases everything not in `keep`; returns what was released (when known). */
  gc(keep: readonly Attachment[]): Promise<Released[]>;
  /** Throws code 50 when an ADD could not get an address. */
  status(): Promise<void>;
  /** Releases local resources (lock file). */
  close(): void;
}

/** Default host-local store directory, as the reference plugin. */
export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

type HostLocalConf = {
  type: 'host-local';
  ranges?: HostLocalRange[][] | undefined;
  subnet?: string | undefined;
  rangeStart?: string | undefined;
  rangeEnd?: string | undefined;
  gateway?: string | undefined;
  routes?: { dst: string; gw?: string | undefined }[] | undefined;
  dataDir?: string | undefined;
};

const stripPrefix = (cidr: string) => (cidr.includes('/') ? cidr.slice(0, cidr.indexOf('/')) : cidr);

/** Picks the backend for a config: in-process host-local, or the delegated binary. */
export function ipamFor(args: BaseArgs<PluginConfig> & Partial<DelArgs<PluginConfig>>): IpamBackend {
  const ipam = args.config.ipam;
  if (ipam.type === 'host-local') return hostLocal(args, ipam as HostLocalConf);
  return delegated(args, ipam.type);
}

function hostLocal(
  args: BaseArgs<PluginConfig> & Partial<DelArgs<PluginConfig>>,
  conf: HostLocalConf,
): IpamBackend {
  const sets: HostLocalRange[][] = conf.ranges?.map((set, i) =>
    set.map((r, j) => ({ ...r, path: `ipam.ranges[${i}][${j}]` })),
  ) ?? [
    [
      {
        subnet: conf.subnet ?? '',
        rangeStart: conf.rangeStart,
        rangeEnd: conf.rangeEnd,
        gateway: conf.gateway,
        path: 'ipam',
      },
    ],
  ];
  // The ranges are checked now, so ADD and STATUS both report a bad one as a config error (7).
  HostLocalIpam.check(sets);
  const dir = join(conf.dataDir ?? DEFAULT_DATA_DIR, args.config.name);
  let store: HostLocalIpam | undefined;
  const open = () => {
    store ??= new HostLocalIpam(dir, sets);
    return store;
  };
  const id = args.containerId ?? '';
  const ifname = args.ifname ?? '';
  const routes: CniRoute[] = (conf.routes ?? []).map((r) =>
    r.gw === undefined ? { dst: r.dst } : { dst: r.dst, gw: r.gw },
  );
  return {
    add: async () => {
      const leases = open().allocate(id, ifname, requestedIps(args));
      return { ips: leases.map((l) => ({ address: l.address, gateway: l.gateway })), routes };
    },
    undo: async (lease) => {
      open().releaseLeases(
        id,
        ifname,
        lease.ips.map((i) => ({ address: i.address, gateway: i.gateway ?? '' })),
      );
    },
    del: async () => {
      open().release(id, ifname);
    },
    check: async (addresses) => {
      const owned = open().owned(id, ifname);
      for (const a of addresses) {
        if (!owned.includes(stripPrefix(a))) {
          throw new CniError(CniErrorCode.Internal, `host-local: ${a} is not reserved for ${id}/${ifname}`);
        }
      }
    },
    gc: async (keep) => open().gc(new Set(keep.map((a) => hostLocalOwner(a.containerID, a.ifname).trim()))),
    status: async () => {
      let free: number[];
      try {
        free = open().freePerSet();
      } catch (err) {
        if (err instanceof CniError) throw err;
        throw new CniError(
          CniErrorCode.PluginNotAvailable,
          `host-local store ${dir} is not usable: ${(err as Error).message}`,
        );
      }
      const empty = free.indexOf(0);
      if (empty >= 0) {
        throw new CniError(CniErrorCode.PluginNotAvailable, `no free addresses in IPAM range set ${empty}`);
      }
    },
    close: () => store?.close(),
  };
}

function delegated(args: BaseArgs<PluginConfig>, type: string): IpamBackend {
  const ctx = { stdin: args.stdin, env: args.env, path: args.path, cniVersion: args.cniVersion };
  return {
    add: async () => {
      const r = (await delegate('ADD', type, ctx)) ?? {};
      const lease: IpamLease = { ips: r.ips ?? [], routes: r.routes ?? [] };
      if (r.dns !== undefined) lease.dns = r.dns;
      if (lease.ips.length === 0)
        throw new CniError(CniErrorCode.Internal, `IPAM plugin ${type} returned no IP`);
      return lease;
    },
    undo: async () => {
      await delegate('DEL', type, ctx);
    },
    del: async () => {
      await delegate('DEL', type, ctx);
    },
    check: async () => {
      await delegate('CHECK', type, ctx);
    },
    gc: async () => {
      await delegate('GC', type, ctx);
      return []; // the delegate does not say what it released
    },
    status: async () => {
      await delegate('STATUS', type, ctx);
    },
    close: () => {},
  };
}

/**
 * The addresses the runtime asks for, as host-local reads them: the `ips` capability
 * (`runtimeConfig.ips`), `args.cni.ips` and `CNI_ARGS` `IP=` (comma-separated). A value that is not an
 * address is an error, never dropped.
 *
 * @throws {@link CniError} 7 for a bad `args.cni.ips`, 4 for a bad `CNI_ARGS` `IP`.
 */
export function requestedIps(args: BaseArgs<PluginConfig> & Partial<DelArgs<PluginConfig>>): string[] {
  const out: string[] = [];
  for (const ip of args.config.runtimeConfig?.ips ?? []) out.push(stripPrefix(ip));
  const cni = (args.config.args as { cni?: { ips?: unknown } } | undefined)?.cni;
  if (cni?.ips !== undefined) {
    if (!Array.isArray(cni.ips)) {
      throw new CniError(CniErrorCode.InvalidNetworkConfig, 'args.cni.ips must be a list of IP addresses');
    }
    cni.ips.forEach((ip: unknown, i) => {
      if (typeof ip !== 'string' || (tryParseIp(ip) === undefined && tryParseCidr(ip) === undefined)) {
        throw new CniError(
          CniErrorCode.InvalidNetworkConfig,
          `args.cni.ips[${i}]: ${JSON.stringify(ip)} is not an IP address`,
        );
      }
      out.push(stripPrefix(ip));
    });
  }
  const env = args.args?.IP;
  if (env !== undefined && env !== '') {
    for (const ip of env.split(',')) {
      if (tryParseIp(ip) === undefined) {
        throw new CniError(
          CniErrorCode.InvalidEnvironmentVariables,
          `CNI_ARGS IP: ${JSON.stringify(ip)} is not an IP address`,
        );
      }
      out.push(ip);
    }
  }
  return out;
}
