/**
 * The BPF side of the agent: compiles bpf/datapath.c through the loader's object cache, loads it once
 * per agent process (maps pinned by name, reused by the next process), attaches the same two
 * programs to every endpoint's host-side veth, keeps every endpoint's policy in one trie under its
 * endpoint id, and keeps the maps in sync by diffing against what it last wrote.
 */

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ArrayMap,
  bytes,
  type Codec,
  type CodecType,
  type HashMap,
  type LpmTrieMap,
  type LruHashMap,
  openPinned,
  type PerCpuArrayMap,
  type PerCpuHashMap,
  u32,
} from '@datapath/bpf-maps';
import { ipToBytes } from '@datapath/ip';
import { BpfError } from '@datapath/libbpf';
import { attach, type Collection, compile, load, openObject, openPinnedLink } from '@datapath/loader';
import type { Netns } from '@datapath/netlink';
import { IPCACHE_KEY_SIZE, IPCACHE_VALUE_SIZE, POLICY_KEY_SIZE, POLICY_VALUE_SIZE } from '@datapath/policy';
import { setConstants } from './datapath.gen.js';
import { AgentError } from './errors.js';
import { GATEWAY, ipv4HostU32 } from './gateway.js';
import {
  ctEntry,
  ctKey,
  DP_F_DELIVER_EGRESS,
  dpConfig,
  endpointInfo,
  endpointKey,
  fwdValue,
  metricsKey,
  metricsValue,
} from './maps.js';

/** How the datapath hands a packet to a local pod (see {@link Datapath.delivery}). */
export type Delivery = 'peer' | 'egress';

const BPF_DIR = fileURLToPath(new URL('../bpf/', import.meta.url));

/** Sizes of the policy key and value and the ipcache key and value (bpf/datapath.h = @datapath/policy's codecs). */
export const LAYOUT = {
  policyKey: POLICY_KEY_SIZE,
  policyValue: POLICY_VALUE_SIZE,
  ipcacheKey: IPCACHE_KEY_SIZE,
  ipcacheValue: IPCACHE_VALUE_SIZE,
} as const;

/** Decoded `struct endpoint_info`. */
export type EndpointInfo = CodecType<typeof endpointInfo>;

/** A raw map entry: encoded key and value bytes (from @datapath/policy's codecs). */
export interface RawEntry {
  key: Uint8Array;
  value: Uint8Array;
}

/** What a map sync changed. */
export interface MapDiff {
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
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
  /** Object cache of the loader (default: the loader's). */
  cacheDir?: string;
}

const raw = (n: number): Codec<Uint8Array> => bytes(n);
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Bytes in front of Cilium's policy key in the shared `policy` trie: the endpoint id (struct lxc_policy_key). */
const LXC_KEY_BYTES = 4;

/** Cilium's policy key (from @datapath/policy) → the shared trie's key: prefix + 32 bits, endpoint id, the rest. */
export function lxcPolicyKey(lxcId: number, ciliumKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(ciliumKey.byteLength + LXC_KEY_BYTES);
  const view = new DataView(out.buffer);
  const prefix = new DataView(ciliumKey.buffer, ciliumKey.byteOffset, 4).getUint32(0, true);
  view.setUint32(0, prefix + 32, true);
  view.setUint32(4, lxcId, true);
  out.set(ciliumKey.subarray(4), 8);
  return out;
}

/** The shared trie's key → endpoint id and Cilium's policy key. */
export function splitLxcPolicyKey(key: Uint8Array): { lxcId: number; ciliumKey: Uint8Array } {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const ciliumKey = new Uint8Array(key.byteLength - LXC_KEY_BYTES);
  new DataView(ciliumKey.buffer).setUint32(0, view.getUint32(0, true) - 32, true);
  ciliumKey.set(key.subarray(8), 4);
  return { lxcId: view.getUint32(4, true), ciliumKey };
}

/** The IPv4 address as the u32 whose little-endian bytes are the address (network order in memory). */
export function ipv4ToNetworkU32(ip: string): number {
  return new DataView(ipToBytes(ip, 4).buffer).getUint32(0, true);
}

/** The map operations {@link syncRawMap} needs. */
export interface RawMap {
  dump(): [Uint8Array, Uint8Array][];
  set(key: Uint8Array, value: Uint8Array): void;
  delete(key: Uint8Array): boolean;
}

/**
 * Brings a map to `desired` with the fewest writes: deletes, overwrites changed values, adds. `known`
 * is what this process last wrote (key hex → value hex); without it the map is dumped first.
 * Returns the diff and the new known content.
 */
export function syncRawMap(
  map: RawMap,
  desired: readonly RawEntry[],
  known?: ReadonlyMap<string, string>,
): MapDiff & { content: Map<string, string> } {
  const want = new Map(desired.map((e) => [hex(e.key), e]));
  const have = new Map<string, string>(known ?? map.dump().map(([k, v]) => [hex(k), hex(v)]));
  const diff = { added: 0, removed: 0, changed: 0, unchanged: 0 };
  const content = new Map<string, string>();
  for (const k of have.keys()) {
    if (want.has(k)) continue;
    map.delete(new Uint8Array(Buffer.from(k, 'hex')));
    diff.removed++;
  }
  for (const [k, e] of want) {
    const value = hex(e.value);
    content.set(k, value);
    const old = have.get(k);
    if (old === value) {
      diff.unchanged++;
      continue;
    }
    map.set(e.key, e.value);
    if (old === undefined) diff.added++;
    else diff.changed++;
  }
  return { ...diff, content };
}

/** The agent's datapath: the object loaded once, its maps open, programs ready to attach to endpoints. */
export class Datapath {
  readonly pinDir: string;
  readonly objectPath: string;
  readonly objectCached: boolean;
  /** Pod IP → endpoint (destination lookups). */
  readonly endpoints: HashMap<string, EndpointInfo>;
  /** Host-side ifindex → endpoint (how a program finds the endpoint it runs for). */
  readonly lxc: HashMap<number, EndpointInfo>;
  readonly ipcache: LpmTrieMap<Uint8Array, Uint8Array>;
  readonly ct: LruHashMap<CodecType<typeof ctKey>, CodecType<typeof ctEntry>>;
  /** Counters of every reason but `forwarded`, by (endpoint, reason, direction); {@link counters} merges both. */
  readonly metrics: PerCpuHashMap<CodecType<typeof metricsKey>, CodecType<typeof metricsValue>>;
  /** Forwarded counters by endpoint id (both directions): the per-packet counters. */
  readonly fwd: PerCpuArrayMap<CodecType<typeof fwdValue>>;
  readonly config: ArrayMap<CodecType<typeof dpConfig>>;
  /** Every endpoint's policy: `struct lxc_policy_key` → Cilium's `policy_entry`. */
  readonly policy: LpmTrieMap<Uint8Array, Uint8Array>;
  /** The loaded object (absent when opened read-only). */
  readonly #coll: Collection | undefined;
  /** What this process last wrote to each policy map (by endpoint id) and to the ipcache. */
  readonly #written = new Map<number | 'ipcache', Map<string, string>>();
  #closed = false;
  #policyLoaded = false;

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
        openPinned(join(pinDir, 'ipcache'), {
          type: 'lpmTrie',
          key: raw(LAYOUT.ipcacheKey),
          value: raw(LAYOUT.ipcacheValue),
        }),
      );
      this.ct = open(openPinned(join(pinDir, 'ct4'), { type: 'lruHash', key: ctKey, value: ctEntry }));
      this.metrics = open(
        openPinned(join(pinDir, 'metrics'), { type: 'perCpuHash', key: metricsKey, value: metricsValue }),
      );
      this.fwd = open(openPinned(join(pinDir, 'fwd'), { type: 'perCpuArray', value: fwdValue }));
      this.config = open(openPinned(join(pinDir, 'config'), { type: 'array', value: dpConfig }));
      this.policy = open(
        openPinned(join(pinDir, 'policy'), {
          type: 'lpmTrie',
          key: raw(LAYOUT.policyKey + LXC_KEY_BYTES),
          value: raw(LAYOUT.policyValue),
        }),
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
      compiled = await compile({
        files: [join(BPF_DIR, 'datapath.c'), join(BPF_DIR, 'datapath.h')],
        ...(paths.cacheDir === undefined ? {} : { cacheDir: paths.cacheDir }),
      });
    } catch (err) {
      throw new AgentError('DatapathFailed', `compiling bpf/datapath.c: ${(err as Error).message}`, {
        cause: err,
      });
    }
    mkdirSync(paths.pinDir, { recursive: true });
    let coll: Collection;
    try {
      const spec = openObject(compiled.path, 'datapath');
      setConstants(spec, { gateway_ipv4: ipv4HostU32(GATEWAY) });
      coll = load(spec, { pinDir: paths.pinDir });
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
    ep: { lxcId: number; hostIfindex: number },
    prefer: 'auto' | AttachKind = 'auto',
  ): AttachKind {
    const coll = this.#coll;
    if (coll === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    try {
      mkdirSync(join(this.pinDir, 'links'), { recursive: true });
      const kinds = node.run(() =>
        (['ingress', 'egress'] as const).map((direction) => {
          const link = attach(coll.program(direction === 'ingress' ? 'from_container' : 'to_container'), {
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
      return kinds[0] === 'tcx' ? 'tcx' : 'tc';
    } catch (err) {
      throw new AgentError('DatapathFailed', `endpoint ${ep.lxcId}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /**
   * Detaches an endpoint's programs and removes its policy entries and counters.
   * Idempotent; the veth going away detaches legacy tc filters by itself.
   */
  detachEndpoint(node: Netns, lxcId: number): void {
    for (const dir of ['ingress', 'egress'] as const) {
      const pin = this.linkPin(lxcId, dir);
      if (!existsSync(pin)) continue;
      try {
        node.run(() => openPinnedLink(pin).detach());
      } catch (err) {
        if (!(err instanceof BpfError && err.code === 'NotFound')) throw err;
        rmSync(pin, { force: true });
      }
    }
    this.syncPolicy(lxcId, []);
    this.#written.delete(lxcId);
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
    const c = this.config.get(0) ?? { policyRev: 0, flags: 0 };
    const rev = (c.policyRev + 1) >>> 0;
    this.config.set(0, { policyRev: rev, flags: c.flags });
    return rev;
  }

  /**
   * How a packet reaches a local pod: `peer` (bpf_redirect_peer straight into the pod's eth0, the
   * default) or `egress` (bpf_redirect out of the pod's host-side veth). Kept in the pinned `config`
   * map, so a restarted agent keeps it; takes effect on the next packet.
   */
  get delivery(): Delivery {
    return (this.config.get(0)?.flags ?? 0) & DP_F_DELIVER_EGRESS ? 'egress' : 'peer';
  }

  set delivery(mode: Delivery) {
    const c = this.config.get(0) ?? { policyRev: 0, flags: 0 };
    const flags = mode === 'egress' ? c.flags | DP_F_DELIVER_EGRESS : c.flags & ~DP_F_DELIVER_EGRESS;
    this.config.set(0, { policyRev: c.policyRev, flags });
  }

  /** An endpoint's policy entries as Cilium's key and value bytes. */
  policyEntries(lxcId: number): [Uint8Array, Uint8Array][] {
    return this.#policyView(lxcId)
      .dump()
      .map(([k, v]) => [splitLxcPolicyKey(k).ciliumKey, v]);
  }

  /** Reads the shared trie once (a restarted agent) and remembers each endpoint's entries. */
  #loadPolicyContent(): void {
    if (this.#policyLoaded) return;
    for (const [k, v] of this.policy.dump()) {
      const lxcId = new DataView(k.buffer, k.byteOffset, 8).getUint32(4, true);
      const m = this.#written.get(lxcId) ?? new Map<string, string>();
      m.set(hex(k), hex(v));
      this.#written.set(lxcId, m);
    }
    this.#policyLoaded = true;
  }

  /** The shared trie seen as one endpoint's map (its keys carry the endpoint id). */
  #policyView(lxcId: number): RawMap {
    return {
      dump: () =>
        this.policy
          .dump()
          .filter(([k]) => new DataView(k.buffer, k.byteOffset, 8).getUint32(4, true) === lxcId),
      set: (k, v) => this.policy.set(k, v),
      delete: (k) => this.policy.delete(k),
    };
  }

  /** Brings an endpoint's policy entries (Cilium's keys) to `desired`, touching only the entries that differ. */
  syncPolicy(lxcId: number, desired: readonly RawEntry[]): MapDiff {
    this.#loadPolicyContent();
    const known = this.#written.get(lxcId) ?? new Map<string, string>();
    const mine = desired.map((e) => ({ key: lxcPolicyKey(lxcId, e.key), value: e.value }));
    const want = new Map(mine.map((e) => [hex(e.key), hex(e.value)]));
    if (known.size === want.size && [...want].every(([k, v]) => known.get(k) === v)) {
      return { added: 0, removed: 0, changed: 0, unchanged: want.size };
    }
    const { content, ...diff } = syncRawMap(this.#policyView(lxcId), mine, known);
    this.#written.set(lxcId, content);
    return diff;
  }

  /** Brings the ipcache to `desired`. */
  syncIpcache(desired: readonly RawEntry[]): MapDiff {
    const { content, ...diff } = syncRawMap(this.ipcache, desired, this.#written.get('ipcache'));
    this.#written.set('ipcache', content);
    return diff;
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
      this.policy,
    ])
      m.close();
    this.#coll?.close();
  }
}
