import { BpfError, type MapInfo, mapInfo } from '@datapath/libbpf';
import { type Codec, u32 } from './codec.js';
import {
  BpfMap,
  MAP_KIND_TYPES,
  type MapKind,
  type MapParts,
  PLAIN_MAP_KINDS,
  type PlainMapKind,
} from './map.js';

/** Codecs for a map's key and value. */
export interface MapCodecs<K, V> {
  /** The key codec; its size must equal the map's key size. */
  key: Codec<K>;
  /** The value codec (of one CPU's value for per-CPU maps); its size must equal the map's value size. */
  value: Codec<V>;
}

/**
 * Codecs for {@link openMapFd} (and the loader's `Collection.map`): as {@link MapCodecs}, but the key
 * codec may be left out for index-keyed kinds (array, per-CPU array, prog array), whose keys are
 * always `u32` indexes; when given there, it must be a 4-byte codec.
 */
export interface OpenMapCodecs<K, V> {
  /** The key codec; required for keyed kinds (hash, LRU, LPM trie, per-CPU hash), optional for arrays. */
  key?: Codec<K>;
  /** The value codec (of one CPU's value for per-CPU maps); its size must equal the map's value size. */
  value: Codec<V>;
}

/** Options when wrapping an existing fd. */
export interface FromFdOptions {
  /** Close the fd when the map object is closed (default false: the caller keeps owning it). */
  owned?: boolean;
}

const KIND_BY_TYPE = new Map<number, MapKind>(
  Object.entries(MAP_KIND_TYPES).map(([k, t]) => [t, k as MapKind]),
);

/** @internal Validates that `info` matches `kinds` and the codec sizes; returns the kind. */
export function checkShape(
  info: MapInfo,
  kinds: readonly MapKind[],
  keySize: number,
  valueSize: number,
  op: string,
  target: string,
): MapKind {
  const kind = KIND_BY_TYPE.get(info.type);
  const diffs: string[] = [];
  if (kind === undefined || !kinds.includes(kind)) {
    diffs.push(`type: map is ${kind ?? `type ${info.type}`}, expected ${kinds.join(' or ')}`);
  }
  if (info.keySize !== keySize) diffs.push(`keySize: map has ${info.keySize}, codec has ${keySize}`);
  if (info.valueSize !== valueSize)
    diffs.push(`valueSize: map has ${info.valueSize}, codec has ${valueSize}`);
  if (diffs.length > 0) {
    throw new BpfError('Incompatible', `${op}: ${target} is incompatible: ${diffs.join('; ')}`, {
      op,
      target,
    });
  }
  return kind!;
}

function parts<K, V>(fd: number, owned: boolean, info: MapInfo, codecs: MapCodecs<K, V>, perCpu: boolean) {
  return { fd, owned, info, key: codecs.key, value: codecs.value, perCpu } as MapParts<K, unknown>;
}

function describe(fd: number, op: string): MapInfo {
  try {
    return mapInfo(fd);
  } catch (err) {
    if (err instanceof BpfError)
      throw new BpfError(err.code, `${op}: fd ${fd} is not a BPF map`, { op, cause: err });
    throw err;
  }
}

abstract class PlainMap<K, V> extends BpfMap<K, V> {
  protected readValue(view: DataView, off: number): V {
    return this.valueCodec.decode(view, off) as V;
  }
  protected writeValue(value: V, view: DataView, off: number): void {
    this.valueCodec.encode(value, view, off);
  }
}

abstract class PerCpuMap<K, V> extends BpfMap<K, V[]> {
  /** Number of possible CPUs: the length of every value array. */
  get cpus(): number {
    return this.io.cpus;
  }
  protected readValue(view: DataView, off: number): V[] {
    const n = this.io.cpus;
    const stride = this.io.cpuStride;
    const out = new Array<V>(n);
    for (let i = 0; i < n; i++) out[i] = this.valueCodec.decode(view, off + i * stride) as V;
    return out;
  }
  protected writeValue(value: V[], view: DataView, off: number): void {
    const n = this.io.cpus;
    if (!Array.isArray(value) || value.length !== n) {
      throw new BpfError(
        'InvalidArgument',
        `set: a per-CPU value needs one element per possible CPU (${n}), got ${Array.isArray(value) ? value.length : typeof value}`,
        { op: 'set', target: this.name },
      );
    }
    const stride = this.io.cpuStride;
    new Uint8Array(view.buffer, view.byteOffset + off, n * stride).fill(0);
    for (let i = 0; i < n; i++) this.valueCodec.encode(value[i], view, off + i * stride);
  }
}

/**
 * A `BPF_MAP_TYPE_HASH` map with typed keys and values.
 *
 * @example Counting packets per IPv4 address
 * ```ts
 * import { HashMap, createMap, ipv4, u64 } from '@datapath/bpf-maps';
 * const map: HashMap<string, bigint> = createMap({ type: 'hash', key: ipv4, value: u64, maxEntries: 1024 });
 * map.set('10.0.0.1', 1n);
 * map.close();
 * ```
 */
export class HashMap<K, V> extends PlainMap<K, V> {
  /** `hash` or `lruHash`. */
  readonly kind: 'hash' | 'lruHash';

  /** @internal */
  constructor(p: MapParts<K, unknown>) {
    super(p);
    this.kind = p.info.type === MAP_KIND_TYPES.lruHash ? 'lruHash' : 'hash';
  }

  /**
   * Wraps an existing hash (or LRU hash) map fd, checking the codec sizes against the map.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field, `BadFd` / `InvalidArgument`
   * when `fd` is not a map.
   * @example
   * ```ts
   * import { HashMap, u32, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = HashMap.fromFd(fd, { key: u32, value: u64 });
   * ```
   */
  static fromFd<K, V>(fd: number, codecs: MapCodecs<K, V>, options: FromFdOptions = {}): HashMap<K, V> {
    const info = describe(fd, 'HashMap.fromFd');
    checkShape(info, ['hash', 'lruHash'], codecs.key.size, codecs.value.size, 'HashMap.fromFd', `fd ${fd}`);
    return new HashMap(parts(fd, options.owned ?? false, info, codecs, false));
  }
}

/**
 * A `BPF_MAP_TYPE_LRU_HASH` map: when full, inserting evicts the least recently used entry instead of
 * failing with `Exhausted` (reason `Full`).
 *
 * @example
 * ```ts
 * import { LruHashMap, createMap, u32, u64 } from '@datapath/bpf-maps';
 * const map: LruHashMap<number, bigint> = createMap({ type: 'lruHash', key: u32, value: u64, maxEntries: 1024 });
 * map.close();
 * ```
 */
export class LruHashMap<K, V> extends HashMap<K, V> {
  /**
   * Wraps an existing LRU hash map fd, checking the codec sizes against the map.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field.
   * @example
   * ```ts
   * import { LruHashMap, u32, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = LruHashMap.fromFd(fd, { key: u32, value: u64 });
   * ```
   */
  static override fromFd<K, V>(
    fd: number,
    codecs: MapCodecs<K, V>,
    options: FromFdOptions = {},
  ): LruHashMap<K, V> {
    const info = describe(fd, 'LruHashMap.fromFd');
    checkShape(info, ['lruHash'], codecs.key.size, codecs.value.size, 'LruHashMap.fromFd', `fd ${fd}`);
    return new LruHashMap(parts(fd, options.owned ?? false, info, codecs, false));
  }
}

/**
 * A `BPF_MAP_TYPE_ARRAY` map indexed by `0 … maxEntries-1`; every element exists (zeroed at creation)
 * and cannot be deleted; {@link BpfMap.clear} zeroes them.
 *
 * @example
 * ```ts
 * import { ArrayMap, createMap, u64 } from '@datapath/bpf-maps';
 * const counters: ArrayMap<bigint> = createMap({ type: 'array', value: u64, maxEntries: 4 });
 * counters.set(0, 5n);
 * counters.close();
 * ```
 */
export class ArrayMap<V> extends PlainMap<number, V> {
  /** Always `array`. */
  readonly kind = 'array' as const;

  /**
   * Wraps an existing array map fd (4-byte index keys), checking the value codec size.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field.
   * @example
   * ```ts
   * import { ArrayMap, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = ArrayMap.fromFd(fd, { value: u64 });
   * ```
   */
  static fromFd<V>(fd: number, codecs: { value: Codec<V> }, options: FromFdOptions = {}): ArrayMap<V> {
    const info = describe(fd, 'ArrayMap.fromFd');
    checkShape(info, ['array'], 4, codecs.value.size, 'ArrayMap.fromFd', `fd ${fd}`);
    return new ArrayMap(parts(fd, options.owned ?? false, info, { key: u32, value: codecs.value }, false));
  }

  /**
   * Zeroes every element (array elements cannot be deleted); returns max entries.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a read-only map.
   * @example
   * ```ts
   * import { ArrayMap } from '@datapath/bpf-maps';
   * declare const map: ArrayMap<bigint>;
   * map.clear();
   * ```
   */
  override clear(): number {
    const zero = this.valueCodec.decode(new DataView(new ArrayBuffer(this.io.valueStride)), 0) as V;
    const all: [number, V][] = [];
    for (let i = 0; i < this.maxEntries; i++) all.push([i, zero]);
    this.setMany(all);
    return this.maxEntries;
  }

  /**
   * Always max entries: every array element exists.
   *
   * @example
   * ```ts
   * import { ArrayMap } from '@datapath/bpf-maps';
   * declare const map: ArrayMap<bigint>;
   * map.count();
   * ```
   */
  override count(): number {
    return this.maxEntries;
  }
}

/**
 * A `BPF_MAP_TYPE_LPM_TRIE` map: lookups return the entry with the longest matching prefix. Build keys
 * with {@link lpmKeyCodec} and {@link lpmKey}.
 *
 * @example An ipcache-style trie
 * ```ts
 * import { LpmTrieMap, createMap, lpmKey, lpmKeyCodec, u32 } from '@datapath/bpf-maps';
 * const key = lpmKeyCodec({ family: 'ipv4' });
 * const trie = createMap({ type: 'lpmTrie', key, value: u32, maxEntries: 1024 });
 * trie.set(lpmKey.fromCidr('10.0.0.0/8'), 1);
 * trie.get(lpmKey.fromCidr('10.1.2.3/32')); // 1
 * trie.close();
 * ```
 */
export class LpmTrieMap<K, V> extends PlainMap<K, V> {
  /** Always `lpmTrie`. */
  readonly kind = 'lpmTrie' as const;

  /**
   * Wraps an existing LPM trie fd, checking the codec sizes against the map.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field.
   * @example
   * ```ts
   * import { LpmTrieMap, lpmKeyCodec, u32 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = LpmTrieMap.fromFd(fd, { key: lpmKeyCodec({ family: 'ipv4' }), value: u32 });
   * ```
   */
  static fromFd<K, V>(fd: number, codecs: MapCodecs<K, V>, options: FromFdOptions = {}): LpmTrieMap<K, V> {
    const info = describe(fd, 'LpmTrieMap.fromFd');
    checkShape(info, ['lpmTrie'], codecs.key.size, codecs.value.size, 'LpmTrieMap.fromFd', `fd ${fd}`);
    return new LpmTrieMap(parts(fd, options.owned ?? false, info, codecs, false));
  }
}

/**
 * A `BPF_MAP_TYPE_PERCPU_HASH` (or LRU per-CPU hash) map: every value is an array with one element per
 * possible CPU, sized from `/sys/devices/system/cpu/possible`.
 *
 * @example Summing a per-CPU counter
 * ```ts
 * import { PerCpuHashMap, u32, u64 } from '@datapath/bpf-maps';
 * declare const map: PerCpuHashMap<number, bigint>;
 * const total = (map.get(0) ?? []).reduce((a, b) => a + b, 0n);
 * ```
 */
export class PerCpuHashMap<K, V> extends PerCpuMap<K, V> {
  /** `perCpuHash` or `lruPerCpuHash`. */
  readonly kind: 'perCpuHash' | 'lruPerCpuHash';

  /** @internal */
  constructor(p: MapParts<K, unknown>) {
    super(p);
    this.kind = p.info.type === MAP_KIND_TYPES.lruPerCpuHash ? 'lruPerCpuHash' : 'perCpuHash';
  }

  /**
   * Wraps an existing per-CPU hash map fd; `value` is the codec of one CPU's value.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field.
   * @example
   * ```ts
   * import { PerCpuHashMap, u32, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = PerCpuHashMap.fromFd(fd, { key: u32, value: u64 });
   * ```
   */
  static fromFd<K, V>(fd: number, codecs: MapCodecs<K, V>, options: FromFdOptions = {}): PerCpuHashMap<K, V> {
    const info = describe(fd, 'PerCpuHashMap.fromFd');
    checkShape(
      info,
      ['perCpuHash', 'lruPerCpuHash'],
      codecs.key.size,
      codecs.value.size,
      'PerCpuHashMap.fromFd',
      `fd ${fd}`,
    );
    return new PerCpuHashMap(parts(fd, options.owned ?? false, info, codecs, true));
  }
}

/**
 * A `BPF_MAP_TYPE_PERCPU_ARRAY` map: index keys, one value element per possible CPU.
 *
 * @example
 * ```ts
 * import { PerCpuArrayMap, createMap, u64 } from '@datapath/bpf-maps';
 * const stats: PerCpuArrayMap<bigint> = createMap({ type: 'perCpuArray', value: u64, maxEntries: 1 });
 * console.log(stats.get(0)); // [0n, 0n, …] one per CPU
 * stats.close();
 * ```
 */
export class PerCpuArrayMap<V> extends PerCpuMap<number, V> {
  /** Always `perCpuArray`. */
  readonly kind = 'perCpuArray' as const;

  /**
   * Wraps an existing per-CPU array fd; `value` is the codec of one CPU's value.
   *
   * @throws {@link BpfError} `Incompatible` listing every differing field.
   * @example
   * ```ts
   * import { PerCpuArrayMap, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = PerCpuArrayMap.fromFd(fd, { value: u64 });
   * ```
   */
  static fromFd<V>(fd: number, codecs: { value: Codec<V> }, options: FromFdOptions = {}): PerCpuArrayMap<V> {
    const info = describe(fd, 'PerCpuArrayMap.fromFd');
    checkShape(info, ['perCpuArray'], 4, codecs.value.size, 'PerCpuArrayMap.fromFd', `fd ${fd}`);
    return new PerCpuArrayMap(
      parts(fd, options.owned ?? false, info, { key: u32, value: codecs.value }, true),
    );
  }

  /**
   * Zeroes every element on every CPU (array elements cannot be deleted); returns max entries.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied` on a read-only map.
   * @example
   * ```ts
   * import { PerCpuArrayMap } from '@datapath/bpf-maps';
   * declare const map: PerCpuArrayMap<bigint>;
   * map.clear();
   * ```
   */
  override clear(): number {
    const zero = this.readValue(new DataView(new ArrayBuffer(this.io.valueStride)), 0);
    const all: [number, V[]][] = [];
    for (let i = 0; i < this.maxEntries; i++) all.push([i, zero]);
    this.setMany(all);
    return this.maxEntries;
  }

  /**
   * Always max entries: every array element exists.
   *
   * @example
   * ```ts
   * import { PerCpuArrayMap } from '@datapath/bpf-maps';
   * declare const map: PerCpuArrayMap<bigint>;
   * map.count();
   * ```
   */
  override count(): number {
    return this.maxEntries;
  }
}

/**
 * A `BPF_MAP_TYPE_PROG_ARRAY` (tail-call table): `set(index, progFd)` stores a program, `get(index)`
 * returns that program's kernel id (the kernel never hands fds back). Keep the map referenced or
 * pinned: the kernel empties it when the last user reference goes away.
 *
 * @example
 * ```ts
 * import { ProgArrayMap, createMap } from '@datapath/bpf-maps';
 * declare const progFd: number;
 * const jumps: ProgArrayMap = createMap({ type: 'progArray', maxEntries: 8 });
 * jumps.set(0, progFd);
 * console.log(jumps.get(0)); // the program id
 * ```
 */
export class ProgArrayMap extends PlainMap<number, number> {
  /** Always `progArray`. */
  readonly kind = 'progArray' as const;

  /**
   * Wraps an existing prog array fd.
   *
   * @throws {@link BpfError} `Incompatible` when `fd` is not a prog array with 4-byte keys and values.
   * @example
   * ```ts
   * import { ProgArrayMap } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const map = ProgArrayMap.fromFd(fd);
   * ```
   */
  static fromFd(fd: number, options: FromFdOptions = {}): ProgArrayMap {
    const info = describe(fd, 'ProgArrayMap.fromFd');
    checkShape(info, ['progArray'], 4, 4, 'ProgArrayMap.fromFd', `fd ${fd}`);
    return new ProgArrayMap(parts(fd, options.owned ?? false, info, { key: u32, value: u32 }, false));
  }
}

/** Any map this package can wrap, discriminated by `kind`. */
export type AnyMap<K, V> =
  | HashMap<K, V>
  | LpmTrieMap<K, V>
  | PerCpuHashMap<K, V>
  | ArrayMap<V>
  | PerCpuArrayMap<V>
  | ProgArrayMap;

/** @internal Builds the class for `kind`. */
export function construct<K, V>(kind: PlainMapKind, p: MapParts<K, unknown>): AnyMap<K, V> {
  switch (kind) {
    case 'hash':
      return new HashMap<K, V>(p);
    case 'lruHash':
      return new LruHashMap<K, V>(p);
    case 'array':
      return new ArrayMap<V>(p as unknown as MapParts<number, unknown>);
    case 'lpmTrie':
      return new LpmTrieMap<K, V>(p);
    case 'perCpuHash':
    case 'lruPerCpuHash':
      return new PerCpuHashMap<K, V>(p);
    case 'perCpuArray':
      return new PerCpuArrayMap<V>(p as unknown as MapParts<number, unknown>);
    case 'progArray':
      return new ProgArrayMap(p as unknown as MapParts<number, unknown>);
  }
}

/**
 * Wraps an existing map fd (from a loader, `bpf_map__fd`, or `objGet`) into the typed class for its
 * kind, after checking the codec sizes against the map; narrow the result on `kind`. Array kinds are
 * indexed by number (`u32`) whatever key codec is given, and a prog array reads program ids.
 *
 * @throws {@link BpfError} `Incompatible` listing every differing field (including an unsupported map
 * type), `BadFd` / `InvalidArgument` when `fd` is not a map.
 * @example Wrapping a loader's map
 * ```ts
 * import { openMapFd, u32, u64 } from '@datapath/bpf-maps';
 * declare const fd: number;
 * const map = openMapFd(fd, { key: u32, value: u64 });
 * if (map.kind === 'hash') map.set(1, 2n);
 * ```
 */
export function openMapFd<K, V>(
  fd: number,
  codecs: OpenMapCodecs<K, V>,
  options: FromFdOptions = {},
): AnyMap<K, V> {
  const op = 'openMapFd';
  const info = describe(fd, op);
  const found = KIND_BY_TYPE.get(info.type);
  // Index-keyed kinds always take numbers; a prog array always reads program ids.
  const indexed = found === 'array' || found === 'perCpuArray' || found === 'progArray';
  if (codecs?.key === undefined && !indexed && found !== undefined) {
    throw new BpfError('InvalidArgument', `${op}: fd ${fd} is a ${found} map: pass a key codec`, {
      op,
      target: `fd ${fd}`,
    });
  }
  // Map-in-map kinds need their inner map's spec: ArrayOfMaps.fromFd / HashOfMaps.fromFd.
  const kind = checkShape(
    info,
    PLAIN_MAP_KINDS,
    codecs.key?.size ?? 4,
    codecs.value.size,
    op,
    `fd ${fd}`,
  ) as PlainMapKind;
  const perCpu = kind === 'perCpuHash' || kind === 'lruPerCpuHash' || kind === 'perCpuArray';
  const fixed = {
    key: indexed ? (u32 as unknown as Codec<K>) : (codecs.key as Codec<K>),
    value: kind === 'progArray' ? (u32 as unknown as Codec<V>) : codecs.value,
  };
  return construct<K, V>(kind, parts(fd, options.owned ?? false, info, fixed, perCpu));
}
