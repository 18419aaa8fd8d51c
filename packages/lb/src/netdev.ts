/**
 * The programs of bpf/netdev.c attached to a node's outward device: masquerade of pod traffic (and,
 * with services, NodePort). One handle owns the loaded object and its two attachments.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HashMap } from '@datapath/bpf-maps';
import {
  attachAsync,
  type Collection,
  compile,
  type DeviceRef,
  type Link,
  load,
  openObject,
} from '@datapath/loader';
import { type LbConfigOptions, lbConfig } from './datapath/config.js';
import { ServiceWriter } from './datapath/writer.js';
import { LbError } from './errors.js';
import {
  CtFlag,
  type Maps,
  type Nat4Entry,
  type Nat4Key,
  type Nat6Entry,
  type Nat6Key,
  NatDir,
  NatStat,
  openMaps,
  openPrograms,
  setConstants,
} from './netdev.gen.js';
import { type NetdevConfig, netdevConstants } from './netdev-config.js';
import { NETDEV_SOURCES } from './netdev-layout.js';
import { ServiceTable } from './plan.js';

/** A `Netns` handle of `@datapath/netlink` (`Netns.open({ name })`), as the loader takes it. */
export type NetnsHandle = Exclude<DeviceRef['netns'], string | undefined>;

/** Where the programs go and how they are loaded. */
export interface NetdevTarget {
  /** The node's outward device (the one facing the world). */
  ifname: string;
  /** The namespace the device lives in (default: the caller's). */
  netns?: NetnsHandle;
  /**
   * bpffs directory the maps are pinned in by name (`nat4`, `nat6`, `nat_stats`, and the service maps once
   * NodePort is on), shared with other objects loaded from the same directory. Default: not pinned.
   */
  pinDir?: string;
  /** The loader's object cache (default: the loader's). */
  cacheDir?: string;
  /** `tcx` (Linux ≥ 6.6), legacy `tc`, or `auto` (default): tcx when the kernel has it. */
  prefer?: 'auto' | 'tcx' | 'tc';
  /** Sizes of the service maps (they must match the writer's, e.g. the Maglev table size). */
  lb?: Omit<LbConfigOptions, 'pinByName'>;
}

/** A flow half's key: the tuple as the packet carries it, and which half this is. */
export interface NatKey {
  /** Source address (IPv4 or IPv6 text). */
  saddr: string;
  /** Destination address. */
  daddr: string;
  /** Source port (the ICMP echo identifier of a request). */
  sport: number;
  /** Destination port (the ICMP echo identifier of a reply). */
  dport: number;
  /** IP protocol number: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6. */
  proto: number;
  /** Which half: a {@link NatDirection} value. */
  dir: number;
}

/** A flow half's value: what the packet is rewritten to, and the flow's state. */
export interface NatEntry {
  /** The address the packet gets (source for `Out`/`ServiceReply`, destination for `In`/`Service`). */
  toAddr: string;
  /** The port (or ICMP echo identifier) it gets. */
  toPort: number;
  /** Flow state bits: 1 reply seen, 2 FIN from the opener, 4 FIN from the peer, 8 reset. */
  flags: number;
  /** When the flow expires, in CLOCK_MONOTONIC seconds ({@link monotonicSeconds}). */
  expires: number;
  /** When the flow was recorded, in CLOCK_MONOTONIC seconds. */
  created: number;
}

/** One half of a translated flow, decoded. */
export interface NatFlowHalf {
  /** The tuple as the packet carries it, and which half this is. */
  key: NatKey;
  /** What the packet is rewritten to, its flow state and expiry. */
  entry: NatEntry;
}

/** The halves of a translated flow (`NatKey.dir`), as bpf/nat.h numbers them. */
export const NatDirection: Readonly<{
  /** Masquerade, on the way out: the source becomes the node's address and port. */
  Out: number;
  /** Masquerade, the reply: the destination becomes the pod's address and port. */
  In: number;
  /** Service flow, client to frontend: the destination becomes the backend. */
  Service: number;
  /** Service flow, the backend's reply: the source becomes the frontend. */
  ServiceReply: number;
}> = Object.freeze({
  Out: NatDir.NAT_DIR_OUT,
  In: NatDir.NAT_DIR_IN,
  Service: NatDir.NAT_DIR_SVC,
  ServiceReply: NatDir.NAT_DIR_RSVC,
});

const half = (key: Nat4Key | Nat6Key, entry: Nat4Entry | Nat6Entry): NatFlowHalf => ({
  key: {
    saddr: key.saddr,
    daddr: key.daddr,
    sport: key.sport,
    dport: key.dport,
    proto: key.proto,
    dir: key.dir,
  },
  entry: {
    toAddr: entry.toAddr,
    toPort: entry.toPort,
    flags: entry.flags,
    expires: entry.expires,
    created: entry.created,
  },
});

/** Counters of the outward-device programs, summed over CPUs. */
export interface NetdevStats {
  /** Packets source-translated on the way out. */
  snatOut: bigint;
  /** Replies translated back on the way in. */
  snatIn: bigint;
  /** SNAT pairs created. */
  snatNew: bigint;
  /** Port candidates found taken while allocating. */
  collisions: bigint;
  /** Expired pairs whose port a new flow took over. */
  reclaimed: bigint;
  /** Packets dropped: no free port after the configured retries. */
  dropExhausted: bigint;
  /** Packets dropped: the NAT map is full. */
  dropMapFull: bigint;
  /** Packets dropped: an IPv4 fragment of a flow that must be translated. */
  dropFragment: bigint;
  /** Service flows opened (a backend chosen). */
  svcNew: bigint;
  /** Packets to a service rewritten to their backend. */
  svcForward: bigint;
  /** Backend replies rewritten back to the service address. */
  svcReply: bigint;
  /** New flows to a service without a backend that takes new flows (passed on untouched). */
  noBackend: bigint;
}

/** CLOCK_MONOTONIC in whole seconds: the clock of `nat4_entry.expires`. */
export function monotonicSeconds(): number {
  return Number(process.hrtime.bigint() / 1_000_000_000n);
}

/** The key of the other half of a pair (the C's `nat4_peer_key` / `nat6_peer_key`). */
export function natPeerKey<K extends NatKey>(key: K, entry: Pick<NatEntry, 'toAddr' | 'toPort'>): K {
  const base = { proto: key.proto };
  if (key.dir === NatDir.NAT_DIR_OUT || key.dir === NatDir.NAT_DIR_RSVC) {
    return {
      ...base,
      saddr: key.daddr,
      daddr: entry.toAddr,
      sport: key.dport,
      dport: entry.toPort,
      dir: key.dir === NatDir.NAT_DIR_OUT ? NatDir.NAT_DIR_IN : NatDir.NAT_DIR_SVC,
    } as K;
  }
  return {
    ...base,
    saddr: entry.toAddr,
    daddr: key.saddr,
    sport: entry.toPort,
    dport: key.sport,
    dir: key.dir === NatDir.NAT_DIR_IN ? NatDir.NAT_DIR_OUT : NatDir.NAT_DIR_RSVC,
  } as K;
}

const keyText = (k: NatKey) => `${k.dir}/${k.proto}/${k.saddr}:${k.sport}>${k.daddr}:${k.dport}`;
const expiredAt = (e: { expires: number }, now: number) => ((e.expires - now) | 0) < 0;

/** Deletes the expired pairs of one NAT map; returns the halves deleted. */
async function gcMap<K extends NatKey, E extends { toAddr: string; toPort: number; expires: number }>(
  map: HashMap<K, E>,
  now: number,
): Promise<number> {
  const all = await map.dumpAsync();
  const byKey = new Map(all.map(([k, e]) => [keyText(k), e]));
  const dead: K[] = [];
  for (const [k, e] of all) {
    if (!expiredAt(e, now)) continue;
    const peer = byKey.get(keyText(natPeerKey(k, e)));
    if (peer === undefined || expiredAt(peer, now)) dead.push(k);
  }
  return dead.length === 0 ? 0 : map.deleteMany(dead);
}

/** Whether a flow half is closing (a reset, or a FIN from both sides). */
export function natClosing(entry: { flags: number }): boolean {
  return (
    (entry.flags & CtFlag.CT_F_RST) !== 0 ||
    (entry.flags & (CtFlag.CT_F_FIN_IN | CtFlag.CT_F_FIN_OUT)) === (CtFlag.CT_F_FIN_IN | CtFlag.CT_F_FIN_OUT)
  );
}

/**
 * bpf/netdev.c loaded and attached to a node's outward device: `to_netdev` at egress, `from_netdev`
 * at ingress. `close()` detaches both and releases the object (pinned maps stay in `pinDir`).
 */
export class NodeNetdev implements Disposable {
  readonly #coll: Collection;
  readonly #links: Link[];
  readonly #maps: Maps;
  readonly #lb: Omit<LbConfigOptions, 'pinByName'> | undefined;
  #closed = false;

  private constructor(coll: Collection, links: Link[], maps: Maps, lb: NetdevTarget['lb']) {
    this.#coll = coll;
    this.#links = links;
    this.#maps = maps;
    this.#lb = lb;
  }

  /**
   * Validates `config`, compiles bpf/netdev.c (cached), loads it with the config as load-time
   * constants and attaches its programs to the device (tcx link creation off the event loop). On any failure nothing stays attached and no
   * map is pinned by this call.
   * Equivalent to: `tc filter add dev DEV egress bpf da obj netdev.o sec tc` (and ingress), with tcx.
   *
   * @throws `LbError` (of `@datapath/lb`) `InvalidArgument` for a bad config (before any system call);
   * `BpfError`/`CompileError` from the loader (`NotFound` for an unknown device, …).
   * @example Masquerading a node's pods behind its address
   * ```ts
   * import { NodeNetdev } from '@datapath/lb/datapath';
   * using dev = await NodeNetdev.attach(
   *   { nodeAddress: '198.18.0.1', masquerade: { podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16' } },
   *   { ifname: 'eth0' },
   * );
   * console.log(dev.stats().snatOut);
   * ```
   */
  static async attach(config: NetdevConfig, target: NetdevTarget): Promise<NodeNetdev> {
    const constants = netdevConstants(config);
    if (config.nodePort === true && target.pinDir === undefined) {
      throw new LbError(
        'InvalidNatConfig',
        'nodePort needs target.pinDir: the service maps are shared there',
        {
          op: 'NodeNetdev.attach',
          problems: [{ path: 'pinDir', message: 'is required with nodePort', reason: 'InvalidNatConfig' }],
        },
      );
    }
    const compiled = await compile({
      files: NETDEV_SOURCES,
      config: lbConfig({ ...target.lb, pinByName: target.pinDir !== undefined }),
      ...(target.cacheDir === undefined ? {} : { cacheDir: target.cacheDir }),
    });
    const spec = openObject(compiled.path, 'netdev');
    setConstants(spec, constants);
    if (target.pinDir === undefined) for (const m of Object.values(spec.maps)) m.pinning = 'none';
    // the pins this call creates (not those it reuses) go again if it fails
    const newPins =
      target.pinDir === undefined
        ? []
        : Object.values(spec.maps)
            .filter((m) => m.pinning === 'byName')
            .map((m) => join(target.pinDir!, m.name))
            .filter((p) => !existsSync(p));
    const coll = load(spec, target.pinDir === undefined ? {} : { pinDir: target.pinDir });
    const links: Link[] = [];
    try {
      const progs = openPrograms(coll);
      const dev = {
        ifname: target.ifname,
        ...(target.netns === undefined ? {} : { netns: target.netns }),
        prefer: target.prefer ?? 'auto',
      } as const;
      links.push(await attachAsync(progs.to_netdev, { ...dev, direction: 'egress' }));
      links.push(await attachAsync(progs.from_netdev, { ...dev, direction: 'ingress' }));
      return new NodeNetdev(coll, links, openMaps(coll), target.lb);
    } catch (err) {
      for (const l of links.reverse()) await l.detachAsync();
      coll.close();
      for (const p of newPins) rmSync(p, { force: true });
      throw err;
    }
  }

  /**
   * Every flow half in the NAT map, read in batches off the event loop.
   *
   * @example Listing masqueraded flows
   * ```ts
   * import { type NodeNetdev } from '@datapath/lb/datapath';
   * declare const dev: NodeNetdev;
   * for (const { key, entry } of await dev.flows()) console.log(key.saddr, '->', entry.toAddr, entry.toPort);
   * ```
   */
  async flows(): Promise<NatFlowHalf[]> {
    return (await this.#maps.nat4.dumpAsync()).map(([key, entry]) => half(key, entry));
  }

  /**
   * Every IPv6 flow half (the `nat6` map: masquerade and service flows), read in batches off the event loop.
   *
   * @example Listing IPv6 masqueraded flows
   * ```ts
   * import { type NodeNetdev } from '@datapath/lb/datapath';
   * declare const dev: NodeNetdev;
   * for (const { key, entry } of await dev.flows6()) console.log(key.saddr, '->', entry.toAddr, entry.toPort);
   * ```
   */
  async flows6(): Promise<NatFlowHalf[]> {
    return (await this.#maps.nat6.dumpAsync()).map(([key, entry]) => half(key, entry));
  }

  /**
   * The programs' counters, summed over CPUs.
   *
   * @example Checking for port exhaustion
   * ```ts
   * import { type NodeNetdev } from '@datapath/lb/datapath';
   * declare const dev: NodeNetdev;
   * if (dev.stats().dropExhausted > 0n) console.warn('masquerade ports exhausted');
   * ```
   */
  stats(): NetdevStats {
    const sum = (i: number) => (this.#maps.nat_stats.get(i) ?? []).reduce((a, b) => a + b, 0n);
    return {
      snatOut: sum(NatStat.NAT_STAT_SNAT_OUT),
      snatIn: sum(NatStat.NAT_STAT_SNAT_IN),
      snatNew: sum(NatStat.NAT_STAT_SNAT_NEW),
      collisions: sum(NatStat.NAT_STAT_COLLISION),
      reclaimed: sum(NatStat.NAT_STAT_RECLAIMED),
      dropExhausted: sum(NatStat.NAT_STAT_DROP_EXHAUSTED),
      dropMapFull: sum(NatStat.NAT_STAT_DROP_MAP_FULL),
      dropFragment: sum(NatStat.NAT_STAT_DROP_FRAGMENT),
      svcNew: sum(NatStat.NAT_STAT_SVC_NEW),
      svcForward: sum(NatStat.NAT_STAT_SVC_FWD),
      svcReply: sum(NatStat.NAT_STAT_SVC_REPLY),
      noBackend: sum(NatStat.NAT_STAT_NO_BACKEND),
    };
  }

  /**
   * Removes the flows that have expired (both halves past their expiry, or a half whose other half is
   * gone) and returns how many halves it deleted. `now` is CLOCK_MONOTONIC seconds (default: now).
   *
   * @example Periodic garbage collection
   * ```ts
   * import { type NodeNetdev } from '@datapath/lb/datapath';
   * declare const dev: NodeNetdev;
   * setInterval(() => void dev.gc(), 30_000).unref();
   * ```
   */
  async gc(now: number = monotonicSeconds()): Promise<number> {
    return (await gcMap(this.#maps.nat4, now)) + (await gcMap(this.#maps.nat6, now));
  }

  /**
   * A {@link ServiceWriter} over the service maps of this object (NodePort frontends; with a
   * `pinDir`, the maps every object loaded from it shares). The writer borrows the object's map
   * descriptors: use it while this handle is open.
   *
   * @param table the service table (default: an empty one with the object's Maglev table size).
   * @example Publishing a NodePort service
   * ```ts
   * import { type NodeNetdev } from '@datapath/lb/datapath';
   * declare const dev: NodeNetdev;
   * using services = dev.serviceWriter();
   * services.upsert({
   *   name: 'web',
   *   protocol: 'TCP',
   *   frontends: [{ kind: 'NodePort', address: '198.18.0.1', port: 30080 }],
   *   backends: [{ address: '10.244.1.5', port: 8080 }],
   * });
   * ```
   */
  serviceWriter(table?: ServiceTable): ServiceWriter {
    return ServiceWriter.fromCollection(
      this.#coll,
      table ?? new ServiceTable({ tableSize: this.#lb?.maglevTableSize }),
    );
  }

  /** Detaches both programs and releases the object (maps pinned in `pinDir` stay). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#links.reverse()) l.detach();
    this.#coll.close();
  }

  /** Same as {@link NodeNetdev.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
