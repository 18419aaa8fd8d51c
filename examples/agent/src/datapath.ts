/**
 * The BPF side of the agent: compiles bpf/datapath.c through the loader's object cache, loads it once
 * per agent process (maps pinned by name, reused by the next process), attaches the same two
 * programs to every endpoint's host-side veth, gives each endpoint its own policy map through the
 * `policy_maps` array of maps, and keeps the maps in sync by diffing against what it last wrote.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ArrayMap,
  bytes,
  type Codec,
  type CodecType,
  createMap,
  type HashMap,
  type LpmTrieMap,
  type LruHashMap,
  openPinned,
  type PerCpuHashMap,
  u32,
} from '@datapath/bpf-maps';
import { BpfCmd, BpfError, bpfSyscall, fdClose, mapLookup, mapUpdate, objGet } from '@datapath/libbpf';
import { attach, type Collection, compile, load, openObject, openPinnedLink } from '@datapath/loader';
import type { Netns } from '@datapath/netlink';
import { IPCACHE_KEY_SIZE, IPCACHE_VALUE_SIZE, POLICY_KEY_SIZE, POLICY_VALUE_SIZE } from '@datapath/policy';
import { AgentError } from './errors.js';
import { ctEntry, ctKey, dpConfig, endpointInfo, endpointKey, metricsKey, metricsValue } from './maps.js';

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
/** max_entries of every endpoint's policy map (struct policy_inner in datapath.c). */
const POLICY_MAX_ENTRIES = 16384;

function u32Bytes(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/** Empties one slot of an array-of-maps (BPF_MAP_DELETE_ELEM; bpf-maps has no map-in-map kind). */
function deleteSlot(fd: number, index: number): void {
  const attr = new Uint8Array(32);
  new DataView(attr.buffer).setUint32(0, fd, true);
  try {
    bpfSyscall(BpfCmd.MapDeleteElem, attr, {
      op: 'policyMapsDelete',
      pointers: [{ offset: 8, buffer: u32Bytes(index) }],
    });
  } catch (err) {
    if (!(err instanceof BpfError && err.code === 'NotFound')) throw err;
  }
}
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** The IPv4 address as the u32 whose little-endian bytes are the address (network order in memory). */
export function ipv4ToNetworkU32(ip: string): number {
  const p = ip.split('.').map(Number);
  return ((p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0) as number;
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
  readonly metrics: PerCpuHashMap<CodecType<typeof metricsKey>, CodecType<typeof metricsValue>>;
  readonly config: ArrayMap<CodecType<typeof dpConfig>>;
  /** The loaded object (absent when opened read-only). */
  readonly #coll: Collection | undefined;
  /** fd of `policy_maps` (array of maps: endpoint id → policy map). */
  readonly #policyMapsFd: number;
  readonly #ownsPolicyMapsFd: boolean;
  /** What this process last wrote to each policy map (by endpoint id) and to the ipcache. */
  readonly #written = new Map<number | 'ipcache', Map<string, string>>();
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
      this.config = open(openPinned(join(pinDir, 'config'), { type: 'array', value: dpConfig }));
      if (coll !== undefined) {
        this.#policyMapsFd = coll.maps.policy_maps!.fd;
        this.#ownsPolicyMapsFd = false;
      } else {
        this.#policyMapsFd = objGet(join(pinDir, 'policy_maps'));
        this.#ownsPolicyMapsFd = true;
      }
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
      coll = load(openObject(compiled.path, 'datapath'), { pinDir: paths.pinDir });
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

  /** Pin path of an endpoint's policy map. */
  policyPin(lxcId: number): string {
    return join(this.pinDir, `policy_${lxcId}`);
  }

  /** Pin path of an endpoint's tcx link for one direction. */
  linkPin(lxcId: number, dir: 'ingress' | 'egress'): string {
    return join(this.pinDir, 'links', `ep${lxcId}_${dir}`);
  }

  /** The policy map id in `policy_maps[lxcId]`, or undefined for an empty slot. */
  policyMapId(lxcId: number): number | undefined {
    const value = new Uint8Array(4);
    if (!mapLookup(this.#policyMapsFd, u32Bytes(lxcId), value)) return undefined;
    return new DataView(value.buffer).getUint32(0, true);
  }

  /**
   * Sets up one endpoint's datapath: creates and pins its policy map (empty: default deny), puts it
   * into `policy_maps[lxcId]`, and attaches the agent's programs to its host-side veth (inside `node`):
   * from_container on ingress, to_container on egress. Nothing is loaded.
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
      if (!existsSync(this.policyPin(ep.lxcId))) {
        const map = createMap({
          type: 'lpmTrie',
          key: raw(LAYOUT.policyKey),
          value: raw(LAYOUT.policyValue),
          maxEntries: POLICY_MAX_ENTRIES,
          name: `policy_${ep.lxcId}`,
        });
        try {
          map.pin(this.policyPin(ep.lxcId));
          mapUpdate(this.#policyMapsFd, u32Bytes(ep.lxcId), u32Bytes(map.fd));
        } finally {
          map.close();
        }
        this.#written.set(ep.lxcId, new Map());
      }
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
   * Detaches an endpoint's programs and removes its policy map, `policy_maps` slot and counters.
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
    deleteSlot(this.#policyMapsFd, lxcId);
    rmSync(this.policyPin(lxcId), { force: true });
    this.#written.delete(lxcId);
    const stale = [...this.metrics.keys()].filter((k) => k.lxcId === lxcId);
    for (const k of stale) this.metrics.delete(k);
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
    const rev = (this.policyRevision() + 1) >>> 0;
    this.config.set(0, { policyRev: rev });
    return rev;
  }

  /** Opens an endpoint's pinned policy map (raw key and value bytes). */
  policyMap(lxcId: number): LpmTrieMap<Uint8Array, Uint8Array> {
    return openPinned(this.policyPin(lxcId), {
      type: 'lpmTrie',
      key: raw(LAYOUT.policyKey),
      value: raw(LAYOUT.policyValue),
    });
  }

  /** Brings an endpoint's policy map to `desired`, touching only the entries that differ. */
  syncPolicy(lxcId: number, desired: readonly RawEntry[]): MapDiff {
    const known = this.#written.get(lxcId);
    const want = new Map(desired.map((e) => [hex(e.key), hex(e.value)]));
    if (known !== undefined && known.size === want.size && [...want].every(([k, v]) => known.get(k) === v)) {
      return { added: 0, removed: 0, changed: 0, unchanged: want.size };
    }
    const map = this.policyMap(lxcId);
    try {
      const { content, ...diff } = syncRawMap(map, desired, known);
      this.#written.set(lxcId, content);
      return diff;
    } finally {
      map.close();
    }
  }

  /** Brings the ipcache to `desired`. */
  syncIpcache(desired: readonly RawEntry[]): MapDiff {
    const { content, ...diff } = syncRawMap(this.ipcache, desired, this.#written.get('ipcache'));
    this.#written.set('ipcache', content);
    return diff;
  }

  /** Endpoint ids that have a policy map pinned. */
  pinnedEndpointIds(): number[] {
    return readdirSync(this.pinDir)
      .map((n) => /^policy_(\d+)$/.exec(n)?.[1])
      .filter((x): x is string => x !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Closes every map and program fd; pins, links and attached programs stay in the kernel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of [this.endpoints, this.lxc, this.ipcache, this.ct, this.metrics, this.config]) m.close();
    if (this.#ownsPolicyMapsFd) fdClose(this.#policyMapsFd);
    this.#coll?.close();
  }
}
