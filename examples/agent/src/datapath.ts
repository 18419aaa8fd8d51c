/**
 * The BPF side of the agent: compiles bpf/datapath.c through the loader's object cache, loads it once
 * per agent process (maps pinned by name, reused by the next process), attaches the same two
 * programs to every endpoint's host-side veth, keeps every endpoint's policy in one trie under its
 * endpoint id, and writes the policy engine's map changes, one write per change (`writeChanges`); a full
 * comparison against a dump of the maps runs only when an agent restarts (`reconcilePolicy`).
 */

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  type ArrayMap,
  type CodecType,
  type HashMap,
  type LpmTrieMap,
  type LruHashMap,
  openPinned,
  type PerCpuArrayMap,
  type PerCpuHashMap,
  RingBuf,
  u32,
  u64,
} from '@datapath/bpf-maps';
import { ipToBytes } from '@datapath/ip';
import { BpfError, fdClose, objGet } from '@datapath/libbpf';
import {
  attach,
  attachAsync,
  type Collection,
  compile,
  type FdLink,
  loadAsync,
  openObject,
  openPinnedLink,
  tcxAttach,
  tcxAttachAsync,
} from '@datapath/loader';
import type { Netns } from '@datapath/netlink';
import {
  type IpcacheChange,
  type IpcacheValue,
  keyString,
  type MapChange,
  type MapState,
  type PolicyKey,
  type PolicyMapChange,
  type PolicyValue,
} from '@datapath/policy';
import { setConstants } from './datapath.gen.js';
import { AgentError } from './errors.js';
import { GATEWAY, ipv4HostU32 } from './gateway.js';
import { datapathCompileOptions } from './layout.js';
import {
  ctEntry,
  ctKey,
  DpFlags,
  dpConfig,
  endpointInfo,
  endpointKey,
  fwdValue,
  IpcacheFlags,
  metricsKey,
  metricsValue,
} from './maps.js';
import {
  type EndpointPolicyKey,
  type IpcacheEntry,
  ipcacheKey,
  ipcacheValue,
  policyTrieKey,
  policyTrieValue,
} from './policy-map.js';

/** How the datapath hands a packet to a local pod (see {@link Datapath.delivery}). */
export type Delivery = 'peer' | 'egress';

/** The agent's own maps; every other map of the object is @datapath/lb's, pinned in `<pinDir>/lb`. */
const OWN_MAPS = new Set([
  'endpoints',
  'lxc',
  'ipcache',
  'ct4',
  'metrics',
  'fwd',
  'config',
  'policy',
  'events',
  'events_lost',
]);

/**
 * The ports NodePort flows to a backend on another node get as their source on this node's address: above
 * the kernel's default ephemeral range (32768–60999), so a connection the node opens itself never holds a
 * port a NodePort flow is given (Cilium tracks the node's own connections in its NAT map instead).
 */
export const NODEPORT_SNAT_PORTS = { min: 61000, max: 65535 } as const;

/** Decoded `struct endpoint_info`. */
export type EndpointInfo = CodecType<typeof endpointInfo>;

/** Map writes of one batch of changes (or of a reconcile), by map. */
export interface MapWrites {
  /** Policy trie writes (updates + deletes) by endpoint id. */
  policy: Map<number, { updated: number; deleted: number }>;
  ipcache: { updated: number; deleted: number };
}

/** One packet counter of an endpoint, summed over the CPUs (see {@link Datapath.counters}). */
export interface Counter {
  /** Endpoint id. */
  lxcId: number;
  /** `enum metric_reason` code (0 forwarded, 1 ARP reply, the rest drops; see `REASONS`). */
  reason: number;
  /** `enum metric_dir`: 1 ingress (towards the endpoint), 2 egress (from it). */
  dir: number;
  packets: bigint;
  bytes: bigint;
}

/** How an endpoint's programs are attached. */
export type AttachKind = 'tcx' | 'tc';

/** Where the datapath keeps its programs and maps. */
export interface DatapathPaths {
  /** bpffs directory of the shared maps, per-endpoint policy maps and tcx link pins. */
  pinDir: string;
  /**
   * Seed of the Maglev flow hash of from_world's service lookups (`lb_hash_seed`, as `@datapath/lb`'s programs):
   * the agent's `lbHashSeed`. Default 0.
   */
  lbHashSeed?: number;
  /** Object cache of the loader (default: the loader's). */
  cacheDir?: string;
  /**
   * Emit drop, policy-verdict and trace records into the `events` ring buffer (default true); false
   * compiles every emission out (`DATAPATH_EVENTS=0`: the benchmarks' baseline).
   */
  events?: boolean;
  /**
   * The node's address (IPv4): the NodePort frontend from_world translates and the source NodePort flows to
   * a backend on another node get. Absent: from_world and the NodePort replies do nothing.
   */
  nodeAddress?: string;
}

/** The IPv4 address as the u32 whose little-endian bytes are the address (network order in memory). */
export function ipv4ToNetworkU32(ip: string): number {
  return new DataView(ipToBytes(ip, 4).buffer).getUint32(0, true);
}

const sameValue = (a: PolicyValue, b: PolicyValue) =>
  a.deny === b.deny &&
  a.prefixLen === b.prefixLen &&
  a.proxyPort === b.proxyPort &&
  a.authType === b.authType;

/** The agent's datapath: the object loaded once, its maps open, programs ready to attach to endpoints. */
export class Datapath {
  readonly pinDir: string;
  readonly objectPath: string;
  readonly objectCached: boolean;
  /** Pod IP → endpoint (destination lookups). */
  readonly endpoints: HashMap<string, EndpointInfo>;
  /** Host-side ifindex → endpoint (how a program finds the endpoint it runs for). */
  readonly lxc: HashMap<number, EndpointInfo>;
  /**
   * Prefix → identity, flags and tunnel endpoint (codecs of policy-map.ts). The policy engine writes the node's
   * own entries through {@link writeChanges}; the cluster's entries (`IPCACHE_F_REMOTE`) go through ipcache.ts.
   */
  readonly ipcache: LpmTrieMap<string, IpcacheEntry>;
  readonly ct: LruHashMap<CodecType<typeof ctKey>, CodecType<typeof ctEntry>>;
  /** Counters of every reason but `forwarded`, by (endpoint, reason, direction); {@link counters} merges both. */
  readonly metrics: PerCpuHashMap<CodecType<typeof metricsKey>, CodecType<typeof metricsValue>>;
  /** Forwarded counters by endpoint id (both directions): the per-packet counters. */
  readonly fwd: PerCpuArrayMap<CodecType<typeof fwdValue>>;
  readonly config: ArrayMap<CodecType<typeof dpConfig>>;
  /** Event records the `events` ring buffer had no room for, per CPU. */
  readonly eventsLost: PerCpuArrayMap<bigint>;
  /** Every endpoint's policy: `struct lxc_policy_key` → `struct policy_entry` (generated codecs, typed by policy-map.ts). */
  readonly policy: LpmTrieMap<EndpointPolicyKey, PolicyValue>;
  /** The loaded object (absent when opened read-only). */
  readonly #coll: Collection | undefined;
  #closed = false;

  private constructor(pinDir: string, objectPath: string, cached: boolean, coll: Collection | undefined) {
    this.pinDir = pinDir;
    this.objectPath = objectPath;
    this.objectCached = cached;
    this.#coll = coll;
    const opened: { close(): void }[] = [];
    const open = <T extends { close(): void }>(m: T): T => {
      opened.push(m);
      return m;
    };
    try {
      this.endpoints = open(
        openPinned(join(pinDir, 'endpoints'), { type: 'hash', key: endpointKey, value: endpointInfo }),
      );
      this.lxc = open(openPinned(join(pinDir, 'lxc'), { type: 'hash', key: u32, value: endpointInfo }));
      this.ipcache = open(
        openPinned(join(pinDir, 'ipcache'), { type: 'lpmTrie', key: ipcacheKey, value: ipcacheValue }),
      );
      this.ct = open(openPinned(join(pinDir, 'ct4'), { type: 'lruHash', key: ctKey, value: ctEntry }));
      this.metrics = open(
        openPinned(join(pinDir, 'metrics'), { type: 'perCpuHash', key: metricsKey, value: metricsValue }),
      );
      this.fwd = open(openPinned(join(pinDir, 'fwd'), { type: 'perCpuArray', value: fwdValue }));
      this.config = open(openPinned(join(pinDir, 'config'), { type: 'array', value: dpConfig }));
      this.eventsLost = open(openPinned(join(pinDir, 'events_lost'), { type: 'perCpuArray', value: u64 }));
      this.policy = open(
        openPinned(join(pinDir, 'policy'), { type: 'lpmTrie', key: policyTrieKey, value: policyTrieValue }),
      );
    } catch (err) {
      for (const m of opened) m.close();
      throw err;
    }
  }

  /**
   * Compiles (or takes from the cache) the datapath object, loads it once (maps pinned by name under
   * `pinDir`, reused when they exist) and opens its maps.
   * @throws AgentError `DatapathFailed` with the loader's error as cause.
   */
  static async open(paths: DatapathPaths): Promise<Datapath> {
    let compiled: { path: string; cached: boolean };
    try {
      compiled = await compile(
        datapathCompileOptions({ cacheDir: paths.cacheDir, events: paths.events !== false }),
      );
    } catch (err) {
      throw new AgentError('DatapathFailed', `compiling bpf/datapath.c: ${(err as Error).message}`, {
        cause: err,
      });
    }
    mkdirSync(paths.pinDir, { recursive: true });
    let coll: Collection;
    try {
      const spec = openObject(compiled.path, 'datapath');
      setConstants(spec, {
        gateway_ipv4: ipv4HostU32(GATEWAY),
        ...(paths.nodeAddress === undefined ? {} : { nat_ipv4: ipv4ToNetworkU32(paths.nodeAddress) }),
        nat_port_min: NODEPORT_SNAT_PORTS.min,
        nat_port_max: NODEPORT_SNAT_PORTS.max,
        lb_hash_seed: paths.lbHashSeed ?? 0,
      });
      // @datapath/lb's maps (service maps, nat4): where the socket LB and the NodePort programs pin them.
      for (const m of Object.values(spec.maps))
        if (!OWN_MAPS.has(m.name) && m.pinning !== 'none')
          m.pinning = { path: join(paths.pinDir, 'lb', m.name) };
      // The verifier runs on libuv's threadpool: an agent that already serves (a restart under load) keeps answering.
      coll = await loadAsync(spec, { pinDir: paths.pinDir });
    } catch (err) {
      throw new AgentError('DatapathFailed', `loading bpf/datapath.c: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      return new Datapath(paths.pinDir, compiled.path, compiled.cached, coll);
    } catch (err) {
      coll.close();
      throw err;
    }
  }

  /**
   * Opens the maps of a running agent without compiling or loading anything (status commands).
   * @throws BpfError `NotFound` when the agent's maps are not pinned.
   */
  static attachPinned(pinDir: string): Datapath {
    return new Datapath(pinDir, '', true, undefined);
  }

  /**
   * A reader of the pinned `events` ring buffer (records: `struct dp_event`, `struct trace_event`; see
   * events.ts). A ring has one consumer position: two readers of the same agent share the records.
   * @throws BpfError `NotFound` when the agent's ring is not pinned.
   */
  openEvents(): RingBuf {
    const fd = objGet(join(this.pinDir, 'events'));
    try {
      return RingBuf.fromFd(fd, { owned: true });
    } catch (err) {
      fdClose(fd);
      throw err;
    }
  }

  /** Event records lost so far (the ring was full), summed over the CPUs. */
  eventsLostTotal(): bigint {
    return (this.eventsLost.get(0) ?? []).reduce((a, b) => a + b, 0n);
  }

  /**
   * Trace events: 0 = off (the default), N = about one forwarded packet in N. Kept in the pinned
   * `config` map; takes effect on the next packet.
   */
  get traceRate(): number {
    return this.config.get(0)?.traceRate ?? 0;
  }

  set traceRate(rate: number) {
    if (!Number.isInteger(rate) || rate < 0 || rate > 0xffffffff)
      throw new AgentError('InvalidArgument', `trace rate must be an integer ≥ 0, got ${rate}`);
    this.config.set(0, { ...this.#configNow(), traceRate: rate });
  }

  #configNow(): CodecType<typeof dpConfig> {
    return this.config.get(0) ?? { policyRev: 0, flags: 0, traceRate: 0, tunnelIfindex: 0, netdevIfindex: 0 };
  }

  /** Pin path of an endpoint's tcx link for one direction. */
  linkPin(lxcId: number, dir: 'ingress' | 'egress'): string {
    return join(this.pinDir, 'links', `ep${lxcId}_${dir}`);
  }

  /**
   * Attaches the agent's programs to an endpoint's host-side veth (inside `node`): from_container on
   * ingress, to_container on egress. Nothing is loaded; until its policy is synced the endpoint has
   * no policy entries (default deny).
   * @throws AgentError `DatapathFailed`.
   */
  attachEndpoint(
    node: Netns,
    ep: { lxcId: number; hostIfindex: number; fresh?: boolean },
    prefer: 'auto' | AttachKind = 'auto',
  ): AttachKind {
    const coll = this.#coll;
    if (coll === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    try {
      this.#linksDir();
      if (this.#freshTcx(ep, prefer)) {
        try {
          node.run(() => {
            for (const direction of ['ingress', 'egress'] as const)
              this.#pinFresh(
                tcxAttach(this.#endpointProgram(direction), { ifindex: ep.hostIfindex, direction }),
                ep.lxcId,
                direction,
              );
          });
          this.#tcxWorks = true;
          return 'tcx';
        } catch {
          this.#freshFailed(ep.lxcId);
        }
      }
      const kinds = node.run(() =>
        (['ingress', 'egress'] as const).map((direction) => {
          const link = attach(this.#endpointProgram(direction), {
            ifindex: ep.hostIfindex,
            direction,
            pinPath: this.linkPin(ep.lxcId, direction),
            prefer,
          });
          const kind = link.kind;
          link.close();
          return kind;
        }),
      );
      if (kinds[0] === 'tcx') this.#tcxWorks = true;
      return kinds[0] === 'tcx' ? 'tcx' : 'tc';
    } catch (err) {
      throw new AgentError('DatapathFailed', `endpoint ${ep.lxcId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Pin path of the tcx link of from_overlay on the node's tunnel device. */
  get overlayLinkPin(): string {
    return join(this.pinDir, 'links', 'overlay_ingress');
  }

  /** Pin path of the tcx link of from_netdev on the node's underlay device. */
  get netdevLinkPin(): string {
    return join(this.pinDir, 'links', 'netdev_ingress');
  }

  /** Attaches one of the node-side programs to a device's ingress inside `node` (the pinned link is replaced). */
  #attachNodeProgram(
    node: Netns,
    program: 'from_overlay' | 'from_netdev',
    ifindex: number,
    pinPath: string,
    prefer: 'auto' | AttachKind,
    what: string,
  ): AttachKind {
    const coll = this.#coll;
    if (coll === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    try {
      mkdirSync(join(this.pinDir, 'links'), { recursive: true });
      return node.run(() => {
        const link = attach(coll.program(program), { ifindex, direction: 'ingress', pinPath, prefer });
        const k = link.kind;
        link.close();
        return k === 'tcx' ? 'tcx' : 'tc';
      });
    } catch (err) {
      throw new AgentError('DatapathFailed', `${what} ${ifindex}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Detaches a pinned node-side link; a missing one is fine. */
  #detachNodeProgram(node: Netns, pin: string): void {
    if (!existsSync(pin)) return;
    try {
      node.run(() => openPinnedLink(pin).detach());
    } catch (err) {
      if (!(err instanceof BpfError && err.code === 'NotFound')) throw err;
      rmSync(pin, { force: true });
    }
  }

  /**
   * Tunnel mode: attaches from_overlay to the ingress of the node's VXLAN device (inside `node`) and records
   * the device in `config.tunnel_ifindex`, so from_container encapsulates towards remote pods from the next
   * packet on. Idempotent (the pinned link is replaced).
   * @throws AgentError `DatapathFailed`, `NotRunning` (opened read-only).
   */
  attachTunnel(node: Netns, tunnelIfindex: number, prefer: 'auto' | AttachKind = 'auto'): AttachKind {
    const kind = this.#attachNodeProgram(
      node,
      'from_overlay',
      tunnelIfindex,
      this.overlayLinkPin,
      prefer,
      'tunnel device',
    );
    this.config.set(0, { ...this.#configNow(), tunnelIfindex });
    return kind;
  }

  /**
   * Back to native routing: clears `config.tunnel_ifindex` (from the next packet on, nothing is encapsulated)
   * and detaches from_overlay. Idempotent.
   */
  detachTunnel(node: Netns): void {
    this.config.set(0, { ...this.#configNow(), tunnelIfindex: 0 });
    this.#detachNodeProgram(node, this.overlayLinkPin);
  }

  /**
   * Native mode with host routing: attaches from_netdev to the ingress of the node's underlay device (inside
   * `node`), then records the device in `config.netdev_ifindex` and sets `DP_F_HOST_ROUTING`, so from_container
   * sends packets for remote pods straight out of that device to the remote node's underlay address (the
   * ipcache's tunnel endpoint, a neighbour on the device's link; no FIB lookup, no pass through the node's IP
   * stack) and from_netdev delivers packets for local pods straight into them. Idempotent (the pinned link is
   * replaced).
   * @throws AgentError `DatapathFailed`, `NotRunning` (opened read-only).
   */
  attachNetdev(node: Netns, ifindex: number, prefer: 'auto' | AttachKind = 'auto'): AttachKind {
    const kind = this.#attachNodeProgram(
      node,
      'from_netdev',
      ifindex,
      this.netdevLinkPin,
      prefer,
      'underlay device',
    );
    const c = this.#configNow();
    this.config.set(0, { ...c, netdevIfindex: ifindex, flags: c.flags | DpFlags.DP_F_HOST_ROUTING });
    return kind;
  }

  /**
   * Back to routing through the node's stack: clears `DP_F_HOST_ROUTING` and `config.netdev_ifindex`, detaches
   * from_netdev. Idempotent.
   */
  detachNetdev(node: Netns): void {
    const c = this.#configNow();
    this.config.set(0, { ...c, netdevIfindex: 0, flags: c.flags & ~DpFlags.DP_F_HOST_ROUTING });
    this.#detachNodeProgram(node, this.netdevLinkPin);
  }

  /** Pin path of the tcx link of from_world on the node's world-facing device. */
  get worldLinkPin(): string {
    return join(this.pinDir, 'links', 'world_ingress');
  }

  /**
   * NodePort to backends on other nodes: attaches from_world to the ingress of the node's world-facing device
   * (inside `node`) at the head of its tcx chain, before `@datapath/lb`'s from_netdev, which still handles
   * whatever from_world passes on (TC_ACT_UNSPEC). A pinned link from an earlier run is updated in place (its
   * position kept). Needs tcx (Linux ≥ 6.6): the program runs before another one on the same hook.
   *
   * Equivalent to: `bpftool net attach tcx_ingress … dev <prefix>w` with BPF_F_BEFORE (first in the chain).
   * @throws AgentError `DatapathFailed` (`NotSupported` from the loader as cause without tcx), `NotRunning`.
   */
  attachWorld(node: Netns, ifindex: number): void {
    const coll = this.#coll;
    if (coll === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    const pin = this.worldLinkPin;
    try {
      mkdirSync(join(this.pinDir, 'links'), { recursive: true });
      node.run(() => {
        if (existsSync(pin)) {
          attach(coll.program('from_world'), {
            ifindex,
            direction: 'ingress',
            pinPath: pin,
            prefer: 'tcx',
          }).close();
          return;
        }
        const link = tcxAttach(coll.program('from_world'), {
          ifindex,
          direction: 'ingress',
          anchor: { kind: 'head' },
        });
        try {
          link.pin(pin);
        } catch (err) {
          link.detach();
          throw err;
        } finally {
          link.close();
        }
      });
    } catch (err) {
      throw new AgentError('DatapathFailed', `world device ${ifindex}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Detaches from_world (NodePort to remote backends stops; local ones go on through @datapath/lb). Idempotent. */
  detachWorld(node: Netns): void {
    this.#detachNodeProgram(node, this.worldLinkPin);
  }

  /** Whether host routing is on (`DP_F_HOST_ROUTING`: from_netdev attached, native mode). */
  get hostRouting(): boolean {
    return ((this.config.get(0)?.flags ?? 0) & DpFlags.DP_F_HOST_ROUTING) !== 0;
  }

  /** The node's VXLAN device in tunnel mode (`config.tunnel_ifindex`), 0 in native mode. */
  get tunnelIfindex(): number {
    return this.config.get(0)?.tunnelIfindex ?? 0;
  }

  /**
   * The async form of {@link Datapath.attachEndpoint}: both tcx links are created on libuv's threadpool inside
   * the node namespace (each waits for an RCU grace period in the kernel), so the event loop goes on.
   */
  async attachEndpointAsync(
    node: Netns,
    ep: { lxcId: number; hostIfindex: number; fresh?: boolean },
    prefer: 'auto' | AttachKind = 'auto',
  ): Promise<AttachKind> {
    const coll = this.#coll;
    if (coll === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    try {
      this.#linksDir();
      if (this.#freshTcx(ep, prefer)) {
        const made = await Promise.allSettled(
          (['ingress', 'egress'] as const).map(async (direction) =>
            this.#pinFresh(
              await tcxAttachAsync(this.#endpointProgram(direction), {
                ifindex: ep.hostIfindex,
                direction,
                netns: node,
              }),
              ep.lxcId,
              direction,
            ),
          ),
        );
        const failed = made.find((m) => m.status === 'rejected');
        if (failed === undefined) {
          this.#tcxWorks = true;
          return 'tcx';
        }
        await this.detachEndpointAsync(ep.lxcId).catch(() => undefined);
        this.#freshFailed(ep.lxcId);
      }
      const kinds = await Promise.all(
        (['ingress', 'egress'] as const).map(async (direction) => {
          const link = await attachAsync(this.#endpointProgram(direction), {
            ifindex: ep.hostIfindex,
            direction,
            netns: node,
            pinPath: this.linkPin(ep.lxcId, direction),
            prefer,
          });
          const kind = link.kind;
          link.close();
          return kind;
        }),
      );
      if (kinds[0] === 'tcx') this.#tcxWorks = true;
      return kinds[0] === 'tcx' ? 'tcx' : 'tc';
    } catch (err) {
      throw new AgentError('DatapathFailed', `endpoint ${ep.lxcId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Whether an endpoint attach was seen to give tcx links (the fresh-device path is tried only then). */
  #tcxWorks = false;
  #linksReady = false;

  #linksDir(): void {
    if (this.#linksReady) return;
    mkdirSync(join(this.pinDir, 'links'), { recursive: true });
    this.#linksReady = true;
  }

  #endpointProgram(direction: 'ingress' | 'egress') {
    return this.#coll!.program(direction === 'ingress' ? 'from_container' : 'to_container');
  }

  /**
   * A device made just now (`fresh`), on a kernel that gave tcx links before, with no pin of an earlier
   * endpoint at its paths: a plain tcx link per direction, pinned, is all an attach does (no pinned link to
   * update, no legacy filter of an earlier run to look for and remove: two netlink queries saved).
   */
  #freshTcx(ep: { lxcId: number; fresh?: boolean }, prefer: 'auto' | AttachKind): boolean {
    return (
      ep.fresh === true &&
      prefer !== 'tc' &&
      this.#tcxWorks &&
      !existsSync(this.linkPin(ep.lxcId, 'ingress')) &&
      !existsSync(this.linkPin(ep.lxcId, 'egress'))
    );
  }

  #pinFresh(link: FdLink, lxcId: number, direction: 'ingress' | 'egress'): void {
    try {
      link.pin(this.linkPin(lxcId, direction));
    } catch (err) {
      link.close(); // the fd was the link's only holder: closing it detaches the program
      throw err;
    }
    link.close();
  }

  /** The fresh-device path failed: what it made is undone and the general path tries again. */
  #freshFailed(lxcId: number): void {
    for (const dir of ['ingress', 'egress'] as const) rmSync(this.linkPin(lxcId, dir), { force: true });
    this.#tcxWorks = false;
  }

  /** The async form of {@link Datapath.detachEndpoint}: the link detaches wait on libuv's threadpool. */
  async detachEndpointAsync(lxcId: number): Promise<void> {
    await Promise.all(
      (['ingress', 'egress'] as const).map(async (dir) => {
        const pin = this.linkPin(lxcId, dir);
        if (!existsSync(pin)) return;
        try {
          // A pinned link is opened by path (no namespace needed); its detach waits in the kernel.
          const link = openPinnedLink(pin);
          try {
            await link.detachAsync();
          } finally {
            link.close();
          }
        } catch (err) {
          if (!(err instanceof BpfError && err.code === 'NotFound')) throw err;
          rmSync(pin, { force: true });
        }
      }),
    );
    this.#forgetCounters(lxcId);
  }

  /**
   * Detaches an endpoint's programs and removes its counters (its policy entries go with the policy engine's
   * changes for the pod's removal). Idempotent; the veth going away detaches legacy tc filters by itself.
   */
  detachEndpoint(node: Netns, lxcId: number): void {
    for (const dir of ['ingress', 'egress'] as const) this.#detachNodeProgram(node, this.linkPin(lxcId, dir));
    this.#forgetCounters(lxcId);
  }

  #forgetCounters(lxcId: number): void {
    const stale = [...this.metrics.keys()].filter((k) => k.lxcId === lxcId);
    for (const k of stale) this.metrics.delete(k);
    const zero = { packets: 0n, bytes: 0n };
    this.fwd.set(
      lxcId,
      Array.from({ length: this.fwd.cpus }, () => ({ ingress: zero, egress: zero })),
    );
  }

  /**
   * Every non-zero packet counter, summed over the CPUs: forwarded packets from the `fwd` array (one
   * row per endpoint and direction) and every other reason from the `metrics` hash.
   */
  counters(): Counter[] {
    const out: Counter[] = [];
    const sum = (per: { packets: bigint; bytes: bigint }[]) =>
      per.reduce((a, v) => ({ packets: a.packets + v.packets, bytes: a.bytes + v.bytes }), {
        packets: 0n,
        bytes: 0n,
      });
    for (const [lxcId, per] of this.fwd.dump()) {
      for (const [dir, side] of [
        [1, 'ingress'],
        [2, 'egress'],
      ] as const) {
        const s = sum(per.map((v) => v[side]));
        if (s.packets > 0n) out.push({ lxcId, reason: 0, dir, ...s });
      }
    }
    for (const [k, per] of this.metrics.dump()) {
      out.push({ lxcId: k.lxcId, reason: k.reason, dir: k.dir, ...sum(per) });
    }
    return out;
  }

  /** Writes an endpoint into both `endpoints` (by IP) and `lxc` (by host ifindex). */
  setEndpoint(info: EndpointInfo): void {
    this.lxc.set(info.ifindex, info);
    this.endpoints.set(info.ip, info);
  }

  /** Removes an endpoint from `endpoints` and `lxc`. */
  deleteEndpoint(ip: string, ifindex: number): void {
    this.endpoints.delete(ip);
    this.lxc.delete(ifindex);
  }

  /** The current policy revision (conntrack entries stamped with an older one are checked again). */
  policyRevision(): number {
    return this.config.get(0)?.policyRev ?? 0;
  }

  /**
   * Bumps the policy revision: call after writing policy maps, identities or the ipcache, so every
   * established flow is checked once against the new state.
   */
  bumpPolicyRevision(): number {
    const c = this.#configNow();
    const rev = (c.policyRev + 1) >>> 0;
    this.config.set(0, { ...c, policyRev: rev });
    return rev;
  }

  /**
   * How a packet reaches a local pod: `peer` (bpf_redirect_peer straight into the pod's eth0, the
   * default) or `egress` (bpf_redirect out of the pod's host-side veth). Kept in the pinned `config`
   * map, so a restarted agent keeps it; takes effect on the next packet.
   */
  get delivery(): Delivery {
    return (this.config.get(0)?.flags ?? 0) & DpFlags.DP_F_DELIVER_EGRESS ? 'egress' : 'peer';
  }

  set delivery(mode: Delivery) {
    const c = this.#configNow();
    const flags =
      mode === 'egress' ? c.flags | DpFlags.DP_F_DELIVER_EGRESS : c.flags & ~DpFlags.DP_F_DELIVER_EGRESS;
    this.config.set(0, { ...c, flags });
  }

  /** An endpoint's policy entries (read from the kernel). */
  policyEntries(lxcId: number): { key: PolicyKey; value: PolicyValue }[] {
    return this.policy
      .dump()
      .filter(([k]) => k.lxcId === lxcId)
      .map(([k, value]) => ({ key: k.key, value }));
  }

  /**
   * Writes the policy engine's map changes: one `bpf_map_update_elem` or `bpf_map_delete_elem` per change, with
   * the engine's endpoint id as the key's endpoint id. Returns the writes by map.
   * @throws BpfError from the kernel (e.g. `Exhausted` when the trie is full).
   */
  writeChanges(changes: readonly MapChange[]): MapWrites {
    const out = countWrites(changes);
    for (const c of changes) {
      if (c.map === 'policy') {
        const key = { lxcId: c.endpointId, key: c.key };
        if (c.op === 'update') this.policy.set(key, c.value!);
        else this.policy.delete(key);
      } else if (c.op === 'update') this.ipcache.set(c.prefix, c.value!);
      else this.ipcache.delete(c.prefix);
    }
    // Async writes still queued were computed before these changes: the entries written here are dropped from
    // them, so the maps follow the engine's order whichever form reaches the kernel first.
    if (this.#writesPending > 0) for (const c of changes) this.#syncWritten.set(changeId(c), this.#enqueued);
    return out;
  }

  /**
   * The async form of {@link Datapath.writeChanges}: each run of consecutive changes to one map of one kind is one
   * `setManyAsync` / `deleteManyAsync` (batch calls on libuv's threadpool). Writes of this datapath apply in
   * call order, sync ones included.
   * @throws BpfError from the kernel (as a rejection).
   */
  writeChangesAsync(changes: readonly MapChange[]): Promise<MapWrites> {
    return this.#enqueue(changes);
  }

  #writeTail: Promise<void> = Promise.resolve();
  #writesPending = 0;
  /** Async write jobs queued so far (each job's sequence number). */
  #enqueued = 0;
  /** Entries a sync write made while async jobs were queued: entry → the last job queued before it. */
  readonly #syncWritten = new Map<string, number>();

  #enqueue(changes: readonly MapChange[]): Promise<MapWrites> {
    this.#writesPending++;
    const seq = ++this.#enqueued;
    const result = this.#writeTail.then(async () => {
      // Entries a later sync write made already hold the newer value: skip them.
      const live = changes.filter((c) => (this.#syncWritten.get(changeId(c)) ?? 0) < seq);
      await this.#applyAsync(live);
      return countWrites(changes);
    });
    const done = () => {
      if (--this.#writesPending === 0) this.#syncWritten.clear();
    };
    this.#writeTail = result.then(done, done);
    return result;
  }

  async #applyAsync(changes: readonly MapChange[]): Promise<void> {
    for (let i = 0; i < changes.length; ) {
      const first = changes[i]!;
      let j = i + 1;
      while (j < changes.length && changes[j]!.map === first.map && changes[j]!.op === first.op) j++;
      if (first.map === 'policy') {
        const run = changes.slice(i, j) as PolicyMapChange[];
        const keys = run.map((c) => ({ lxcId: c.endpointId, key: c.key }));
        if (first.op === 'update')
          await this.policy.setManyAsync(keys.map((k, n) => [k, run[n]!.value!] as const));
        else await this.policy.deleteManyAsync(keys);
      } else {
        const run = changes.slice(i, j) as IpcacheChange[];
        if (first.op === 'update')
          await this.ipcache.setManyAsync(run.map((c) => [c.prefix, c.value!] as const));
        else await this.ipcache.deleteManyAsync(run.map((c) => c.prefix));
      }
      i = j;
    }
  }

  /**
   * Brings the policy trie and the ipcache to the compiled state by comparing with a dump of both maps: the
   * restart path (what a previous process wrote is unknown). Entries of endpoint ids not in `endpoints` go;
   * the cluster's ipcache entries (`IPCACHE_F_REMOTE`, ipcache.ts) stay unless the engine states the prefix.
   */
  reconcilePolicy(
    endpoints: Iterable<{ endpointId: number; policy: MapState }>,
    ipcache: ReadonlyMap<string, IpcacheValue>,
  ): MapWrites {
    const out: MapWrites = { policy: new Map(), ipcache: { updated: 0, deleted: 0 } };
    const count = (lxcId: number) => {
      const n = out.policy.get(lxcId) ?? { updated: 0, deleted: 0 };
      out.policy.set(lxcId, n);
      return n;
    };
    const want = new Map<string, { key: EndpointPolicyKey; value: PolicyValue }>();
    for (const ep of endpoints)
      for (const e of ep.policy.values())
        want.set(`${ep.endpointId} ${keyString(e.key)}`, {
          key: { lxcId: ep.endpointId, key: e.key },
          value: e.value,
        });
    const have = new Map(
      this.policy.dump().map(([k, v]) => [`${k.lxcId} ${keyString(k.key)}`, { key: k, value: v }]),
    );
    for (const [k, e] of have)
      if (!want.has(k)) {
        this.policy.delete(e.key);
        count(e.key.lxcId).deleted++;
      }
    for (const [k, e] of want) {
      const old = have.get(k);
      if (old !== undefined && sameValue(old.value, e.value)) continue;
      this.policy.set(e.key, e.value);
      count(e.key.lxcId).updated++;
    }
    const cached = new Map(this.ipcache.dump());
    for (const [prefix, v] of cached)
      if (!ipcache.has(prefix) && (v.flags & IpcacheFlags.IPCACHE_F_REMOTE) === 0) {
        this.ipcache.delete(prefix);
        out.ipcache.deleted++;
      }
    for (const [prefix, v] of ipcache) {
      const old = cached.get(prefix);
      if (
        old !== undefined &&
        old.identity === v.identity &&
        old.flags === v.flags &&
        old.tunnelEndpoint === undefined
      )
        continue;
      this.ipcache.set(prefix, v);
      out.ipcache.updated++;
    }
    return out;
  }

  /** Closes every map and program fd (as {@link close}), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes every map and program fd (as {@link close}), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Closes every map and program fd; pins, links and attached programs stay in the kernel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of [
      this.endpoints,
      this.lxc,
      this.ipcache,
      this.ct,
      this.metrics,
      this.fwd,
      this.config,
      this.eventsLost,
      this.policy,
    ])
      m.close();
    this.#coll?.close();
  }
}

/** One map entry a change writes, as text. */
function changeId(c: MapChange): string {
  return c.map === 'policy' ? `policy ${c.endpointId} ${keyString(c.key)}` : `ipcache ${c.prefix}`;
}

/** The writes a list of changes makes, by map (and, for the policy trie, by endpoint). */
function countWrites(changes: readonly MapChange[]): MapWrites {
  const out: MapWrites = { policy: new Map(), ipcache: { updated: 0, deleted: 0 } };
  for (const c of changes) {
    let n = out.ipcache;
    if (c.map === 'policy') {
      n = out.policy.get(c.endpointId) ?? { updated: 0, deleted: 0 };
      out.policy.set(c.endpointId, n);
    }
    if (c.op === 'update') n.updated++;
    else n.deleted++;
  }
  return out;
}
