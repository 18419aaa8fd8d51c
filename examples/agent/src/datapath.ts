/**
 * The BPF side of the agent: compiles bpf/datapath.c through the loader's object cache, loads one
 * copy per endpoint (its own constants and policy map, every other map shared through pins),
 * attaches it to the endpoint's host-side veth, and keeps the maps in sync by diffing against
 * what the kernel holds.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bytes,
  type Codec,
  type CodecType,
  type HashMap,
  type LpmTrieMap,
  type LruHashMap,
  openPinned,
  type PerCpuHashMap,
  type ProgArrayMap,
} from '@datapath/bpf-maps';
import { BpfError } from '@datapath/libbpf';
import { attach, compile, load, type ObjectSpec, openObject, openPinnedLink } from '@datapath/loader';
import type { Netns } from '@datapath/netlink';
import { IPCACHE_KEY_SIZE, IPCACHE_VALUE_SIZE, POLICY_KEY_SIZE, POLICY_VALUE_SIZE } from '@datapath/policy';
import { AgentError } from './errors.js';
import { ctEntry, ctKey, endpointInfo, endpointKey, metricsKey, metricsValue } from './maps.js';

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

/** The agent's datapath: shared maps open, the compiled object ready to load per endpoint. */
export class Datapath {
  readonly pinDir: string;
  readonly objectPath: string;
  readonly objectCached: boolean;
  readonly endpoints: HashMap<string, EndpointInfo>;
  readonly ipcache: LpmTrieMap<Uint8Array, Uint8Array>;
  readonly ct: LruHashMap<CodecType<typeof ctKey>, CodecType<typeof ctEntry>>;
  readonly metrics: PerCpuHashMap<CodecType<typeof metricsKey>, CodecType<typeof metricsValue>>;
  readonly policyProgs: ProgArrayMap;
  readonly #template: ObjectSpec | undefined;
  /** What this process last wrote to each policy map (by endpoint id) and to the ipcache. */
  readonly #written = new Map<number | 'ipcache', Map<string, string>>();

  private constructor(pinDir: string, objectPath: string, cached: boolean, template: ObjectSpec | undefined) {
    this.pinDir = pinDir;
    this.objectPath = objectPath;
    this.objectCached = cached;
    this.#template = template;
    this.endpoints = openPinned(join(pinDir, 'endpoints'), {
      type: 'hash',
      key: endpointKey,
      value: endpointInfo,
    });
    this.ipcache = openPinned(join(pinDir, 'ipcache'), {
      type: 'lpmTrie',
      key: raw(LAYOUT.ipcacheKey),
      value: raw(LAYOUT.ipcacheValue),
    });
    this.ct = openPinned(join(pinDir, 'ct4'), { type: 'lruHash', key: ctKey, value: ctEntry });
    this.metrics = openPinned(join(pinDir, 'metrics'), {
      type: 'perCpuHash',
      key: metricsKey,
      value: metricsValue,
    });
    this.policyProgs = openPinned(join(pinDir, 'policy_progs'), { type: 'progArray' });
  }

  /**
   * Compiles (or takes from the cache) the datapath object and opens its shared maps under `pinDir`,
   * creating them on first use.
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
    const template = openObject(compiled.path, 'datapath');
    mkdirSync(paths.pinDir, { recursive: true });
    // Load once without programs so every shared map exists (and is pinned) before any endpoint.
    const seed = template.copy();
    for (const p of Object.values(seed.programs)) p.autoload = false;
    seed.maps.policy!.pinning = 'none';
    load(seed, { pinDir: paths.pinDir }).close();
    return new Datapath(paths.pinDir, compiled.path, compiled.cached, template);
  }

  /**
   * Opens the shared maps of a running agent without compiling or loading anything (status commands).
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

  /**
   * Loads the datapath for one endpoint and attaches it to its host-side veth (inside `node`):
   * from_container on ingress, to_container on egress, lxc_policy into `policy_progs[lxcId]`.
   * Loading again for the same endpoint replaces the programs atomically and keeps its maps.
   * @throws AgentError `DatapathFailed`.
   */
  loadEndpoint(
    node: Netns,
    ep: { lxcId: number; ip: string; hostIfindex: number },
    prefer: 'auto' | AttachKind = 'auto',
  ): AttachKind {
    if (this.#template === undefined) throw new AgentError('NotRunning', 'datapath opened read-only');
    const spec = this.#template.copy();
    spec.setConstant('LXC_ID', ep.lxcId);
    spec.setConstant('LXC_IPV4', ipv4ToNetworkU32(ep.ip));
    spec.maps.policy!.pinning = { path: this.policyPin(ep.lxcId) };
    mkdirSync(join(this.pinDir, 'links'), { recursive: true });
    const coll = load(spec, { pinDir: this.pinDir });
    try {
      this.policyProgs.set(ep.lxcId, coll.program('lxc_policy').fd);
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
    } finally {
      coll.close();
    }
  }

  /**
   * Detaches an endpoint's programs and removes its policy map, program-array slot and counters.
   * Idempotent; the veth going away detaches legacy tc filters by itself.
   */
  unloadEndpoint(node: Netns, lxcId: number): void {
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
    this.policyProgs.delete(lxcId);
    rmSync(this.policyPin(lxcId), { force: true });
    this.#written.delete(lxcId);
    const stale = [...this.metrics.keys()].filter((k) => k.lxcId === lxcId);
    for (const k of stale) this.metrics.delete(k);
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

  /** Closes every map fd; pins, links and programs stay in the kernel. */
  close(): void {
    for (const m of [this.endpoints, this.ipcache, this.ct, this.metrics, this.policyProgs]) m.close();
  }
}
