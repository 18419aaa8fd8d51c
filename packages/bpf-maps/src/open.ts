import { BpfError, fdClose, MapFlags, mapCreate, mapInfo, objGet } from '@datapath/libbpf';
import { checkPinPath } from './bpffs.js';
import { type Codec, u32 } from './codec.js';
import {
  type AnyMap,
  type ArrayMap,
  checkShape,
  construct,
  type HashMap,
  type LpmTrieMap,
  type LruHashMap,
  type PerCpuArrayMap,
  type PerCpuHashMap,
  type ProgArrayMap,
} from './kinds.js';
import { MAP_KIND_TYPES, type MapKind, type PlainMapKind } from './map.js';
import {
  type ArrayOfMaps,
  type ArrayOfMapsSpec,
  createMapOfMaps,
  type HashOfMaps,
  type HashOfMapsSpec,
} from './of-maps.js';

/** Fields every map spec shares. */
export interface BaseMapSpec {
  /** Maximum number of entries. */
  maxEntries: number;
  /** Object name shown by bpftool, at most 15 bytes of `[A-Za-z0-9_.]`. */
  name?: string;
  /** Extra `BPF_F_*` flags (`MapFlags` from `@datapath/libbpf`); LPM tries always get `NoPrealloc`. */
  flags?: number;
}

/** Map kinds whose keys are typed by a key codec. */
export type KeyedMapKind = 'hash' | 'lruHash' | 'lpmTrie' | 'perCpuHash' | 'lruPerCpuHash';

/** Map kinds keyed by an index `0 … maxEntries-1` (a `u32`). */
export type IndexedMapKind = 'array' | 'perCpuArray';

/** Spec of a map with typed keys. */
export interface KeyedMapSpec<T extends MapKind, K, V> extends BaseMapSpec {
  /** The map kind. */
  type: T;
  /** Key codec. */
  key: Codec<K>;
  /** Value codec (of one CPU's value for per-CPU kinds). */
  value: Codec<V>;
}

/** Spec of an array map (keys are indexes). */
export interface IndexedMapSpec<T extends MapKind, V> extends BaseMapSpec {
  /** The map kind. */
  type: T;
  /**
   * Optional key codec: the index is always a `u32`, so this may only be a 4-byte number codec (`u32`).
   * Accepted so that a spec written for the loader's `map()` (which names both codecs) works here too.
   */
  key?: Codec<number>;
  /** Value codec (of one CPU's value for per-CPU kinds). */
  value: Codec<V>;
}

/** Spec of a prog array. */
export interface ProgArraySpec extends BaseMapSpec {
  /** Always `progArray`. */
  type: 'progArray';
  /** Optional key codec; only a 4-byte number codec (`u32`) fits. */
  key?: Codec<number>;
  /** Optional value codec; only a 4-byte number codec (`u32`, program ids on read) fits. */
  value?: Codec<number>;
}

/**
 * The spec {@link createMap} accepts for map kind `T` (every kind when `T` is left open): keyed kinds
 * need `key` and `value` codecs, array kinds a `value` codec, a prog array neither.
 */
export type CreateMapSpec<
  T extends PlainMapKind = PlainMapKind,
  K = unknown,
  V = unknown,
> = T extends KeyedMapKind
  ? KeyedMapSpec<T, K, V>
  : T extends IndexedMapKind
    ? IndexedMapSpec<T, V>
    : ProgArraySpec;

/**
 * @deprecated Use {@link CreateMapSpec} (renamed so it does not collide with `@datapath/loader`'s
 * object `MapSpec`); this alias goes in the next minor version.
 */
export type MapSpec<K, V> = CreateMapSpec<PlainMapKind, K, V>;

/** The typed client {@link createMap} and {@link openPinned} return for each map kind. */
export interface MapOfKind<K, V> {
  /** `BPF_MAP_TYPE_HASH` */
  hash: HashMap<K, V>;
  /** `BPF_MAP_TYPE_LRU_HASH` */
  lruHash: LruHashMap<K, V>;
  /** `BPF_MAP_TYPE_LPM_TRIE` */
  lpmTrie: LpmTrieMap<K, V>;
  /** `BPF_MAP_TYPE_PERCPU_HASH` */
  perCpuHash: PerCpuHashMap<K, V>;
  /** `BPF_MAP_TYPE_LRU_PERCPU_HASH` */
  lruPerCpuHash: PerCpuHashMap<K, V>;
  /** `BPF_MAP_TYPE_ARRAY` */
  array: ArrayMap<V>;
  /** `BPF_MAP_TYPE_PERCPU_ARRAY` */
  perCpuArray: PerCpuArrayMap<V>;
  /** `BPF_MAP_TYPE_PROG_ARRAY` */
  progArray: ProgArrayMap;
}

const INDEXED: ReadonlySet<MapKind> = new Set(['array', 'perCpuArray', 'progArray']);

/**
 * The codecs of a spec, validated before any syscall: keyed kinds need both; index-keyed kinds take an
 * optional 4-byte key codec (always read as `u32`), a prog array an optional 4-byte value codec.
 */
function specCodecs(
  spec: { type: MapKind; key?: unknown; value?: unknown },
  op: string,
): { key: Codec<unknown>; value: Codec<unknown> } {
  const isCodec = (c: unknown): c is Codec<unknown> =>
    typeof c === 'object' &&
    c !== null &&
    typeof (c as Codec<unknown>).size === 'number' &&
    typeof (c as Codec<unknown>).encode === 'function';
  const field = (what: 'key' | 'value', required: boolean, size?: number): Codec<unknown> | undefined => {
    const c = spec[what];
    if (c === undefined) {
      if (!required) return undefined;
      throw new BpfError('InvalidArgument', `${op}: a ${spec.type} map needs spec.${what} (a codec)`, {
        op,
        target: what,
      });
    }
    if (!isCodec(c)) {
      throw new BpfError('InvalidArgument', `${op}: spec.${what} must be a codec`, { op, target: what });
    }
    if (size !== undefined && c.size !== size) {
      throw new BpfError(
        'InvalidArgument',
        `${op}: spec.${what} of a ${spec.type} map must be a ${size}-byte codec (u32), got ${c.size} bytes`,
        { op, target: what },
      );
    }
    return c;
  };
  if (spec.type === 'progArray') {
    field('key', false, 4);
    field('value', false, 4);
    return { key: u32, value: u32 };
  }
  if (INDEXED.has(spec.type)) {
    field('key', false, 4);
    return { key: u32, value: field('value', true) as Codec<unknown> };
  }
  return { key: field('key', true) as Codec<unknown>, value: field('value', true) as Codec<unknown> };
}

function isPerCpu(kind: MapKind): boolean {
  return kind === 'perCpuHash' || kind === 'lruPerCpuHash' || kind === 'perCpuArray';
}

/**
 * Creates a map from a spec and returns its typed client; key and value sizes come from the codecs.
 * The client owns the fd: close it (or pin the map first to keep it).
 *
 * Equivalent to: `bpftool map create PATH type hash key 4 value 8 entries N name NAME`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad spec (unknown type, missing codec, bad name,
 * before any syscall), `PermissionDenied` without CAP_BPF, `NotSupported`, `OutOfMemory`.
 * @example A hash map of u32 → u64
 * ```ts
 * import { createMap, u32, u64 } from '@datapath/bpf-maps';
 * using map = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 1024, name: 'counters' });
 * map.set(1, 10n);
 * ```
 */
// The plain kinds' generic overload comes first: it is the one editors complete `type` from.
export function createMap<T extends PlainMapKind, K = unknown, V = unknown>(
  spec: CreateMapSpec<T, K, V>,
): MapOfKind<K, V>[T];
export function createMap<IK, IV>(spec: ArrayOfMapsSpec<IK, IV>): ArrayOfMaps<IK, IV>;
export function createMap<K, IK, IV>(spec: HashOfMapsSpec<K, IK, IV>): HashOfMaps<K, IK, IV>;
export function createMap<K, V>(
  spec:
    | CreateMapSpec<PlainMapKind, K, V>
    | ArrayOfMapsSpec<unknown, unknown>
    | HashOfMapsSpec<K, unknown, unknown>,
): AnyMap<K, V> | ArrayOfMaps<unknown, unknown> | HashOfMaps<K, unknown, unknown> {
  const op = 'createMap';
  const kind = spec?.type;
  if (typeof kind !== 'string' || !(kind in MAP_KIND_TYPES)) {
    throw new BpfError('InvalidArgument', `${op}: unknown map type ${String(kind)}`, { op, target: 'type' });
  }
  if (spec.type === 'arrayOfMaps' || spec.type === 'hashOfMaps') {
    return createMapOfMaps(spec as ArrayOfMapsSpec<unknown, unknown>) as HashOfMaps<K, unknown, unknown>;
  }
  const codecs = specCodecs(spec, op);
  let flags = spec.flags ?? 0;
  if (kind === 'lpmTrie') flags |= MapFlags.NoPrealloc;
  const createSpec = {
    type: MAP_KIND_TYPES[kind],
    keySize: codecs.key.size,
    valueSize: codecs.value.size,
    maxEntries: spec.maxEntries,
    flags,
    ...(spec.name === undefined ? {} : { name: spec.name }),
  };
  const fd = mapCreate(createSpec);
  try {
    const info = mapInfo(fd);
    return construct<K, V>(kind as PlainMapKind, {
      fd,
      owned: true,
      info,
      key: codecs.key as Codec<K>,
      value: codecs.value,
      perCpu: isPerCpu(kind),
    });
  } catch (err) {
    fdClose(fd);
    throw err;
  }
}

/** Checks {@link openPinned} makes besides type and codec sizes, and how it opens the map. */
export interface PinnedOptions {
  /** Expected max entries (checked when given). */
  maxEntries?: number;
  /** Expected extra `BPF_F_*` flags (checked when given). */
  flags?: number;
  /** Open the fd read-only: every write then fails with `PermissionDenied`. */
  readOnly?: boolean;
}

/** What {@link openPinned} checks a pinned keyed map against. */
export interface PinnedKeyedSpec<T extends KeyedMapKind, K, V> extends PinnedOptions {
  /** The map kind. */
  type: T;
  /** Key codec. */
  key: Codec<K>;
  /** Value codec (of one CPU's value for per-CPU kinds). */
  value: Codec<V>;
}

/** What {@link openPinned} checks a pinned array map against. */
export interface PinnedIndexedSpec<T extends IndexedMapKind, V> extends PinnedOptions {
  /** The map kind. */
  type: T;
  /** Optional key codec; only a 4-byte number codec (`u32`) fits. */
  key?: Codec<number>;
  /** Value codec (of one CPU's value for per-CPU kinds). */
  value: Codec<V>;
}

/** What {@link openPinned} checks a pinned prog array against. */
export interface PinnedProgArraySpec extends PinnedOptions {
  /** Always `progArray`. */
  type: 'progArray';
  /** Optional key codec; only a 4-byte number codec (`u32`) fits. */
  key?: Codec<number>;
  /** Optional value codec; only a 4-byte number codec (`u32`) fits. */
  value?: Codec<number>;
}

/** What {@link openPinned} checks the pinned map against (for kind `T`; every kind when left open). */
export type PinnedSpec<K, V, T extends PlainMapKind = PlainMapKind> = T extends KeyedMapKind
  ? PinnedKeyedSpec<T, K, V>
  : T extends IndexedMapKind
    ? PinnedIndexedSpec<T, V>
    : PinnedProgArraySpec;

/**
 * Opens a pinned map and returns its typed client, after checking type, key size, value size and
 * (when given) max entries and flags; a mismatch lists every differing field. The client owns its fd.
 *
 * Equivalent to: `bpftool map show pinned PATH`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a path outside bpffs or with `..` (before any
 * syscall), `NotFound` when nothing is pinned there, `Incompatible` with the list of differing fields,
 * `PermissionDenied`.
 * @example Opening an ipcache trie another process pinned
 * ```ts
 * import { lpmKeyCodec, openPinned, u32 } from '@datapath/bpf-maps';
 * const trie = openPinned('/sys/fs/bpf/ipcache', {
 *   type: 'lpmTrie',
 *   key: lpmKeyCodec({ family: 'ipv4' }),
 *   value: u32,
 *   readOnly: true,
 * });
 * trie.close();
 * ```
 */
export function openPinned<T extends PlainMapKind, K = unknown, V = unknown>(
  path: string,
  spec: PinnedSpec<K, V, T>,
): MapOfKind<K, V>[T];
export function openPinned<K, V>(path: string, spec: PinnedSpec<K, V>): AnyMap<K, V> {
  const op = 'openPinned';
  checkPinPath(path, op);
  const kind = spec?.type;
  if (typeof kind !== 'string' || !(kind in MAP_KIND_TYPES)) {
    throw new BpfError('InvalidArgument', `${op}: unknown map type ${String(kind)}`, { op });
  }
  const k: string = kind;
  if (k === 'arrayOfMaps' || k === 'hashOfMaps') {
    throw new BpfError(
      'InvalidArgument',
      `${op}: a ${k} needs its inner map spec: ${k === 'arrayOfMaps' ? 'ArrayOfMaps' : 'HashOfMaps'}.fromFd(objGet(path), { inner, … })`,
      { op, target: path },
    );
  }
  const codecs = specCodecs(spec as { type: PlainMapKind }, op);
  const fd = objGet(path, spec.readOnly ? { readOnly: true } : {});
  try {
    const info = mapInfo(fd);
    const diffs: string[] = [];
    try {
      checkShape(info, [kind], codecs.key.size, codecs.value.size, op, path);
    } catch (err) {
      if (!(err instanceof BpfError)) throw err;
      diffs.push(err.message.slice(err.message.indexOf('incompatible: ') + 'incompatible: '.length));
    }
    if (spec.maxEntries !== undefined && spec.maxEntries !== info.maxEntries) {
      diffs.push(`maxEntries: map has ${info.maxEntries}, expected ${spec.maxEntries}`);
    }
    if (spec.flags !== undefined) {
      const want = kind === 'lpmTrie' ? spec.flags | MapFlags.NoPrealloc : spec.flags;
      if (want !== info.flags)
        diffs.push(`flags: map has 0x${info.flags.toString(16)}, expected 0x${want.toString(16)}`);
    }
    if (diffs.length > 0) {
      throw new BpfError('Incompatible', `${op}: ${path} is incompatible: ${diffs.join('; ')}`, {
        op,
        target: path,
      });
    }
    const map = construct<K, V>(kind as PlainMapKind, {
      fd,
      owned: true,
      info,
      key: codecs.key as Codec<K>,
      value: codecs.value,
      perCpu: isPerCpu(kind),
    });
    map.setPinnedPath(path);
    return map;
  } catch (err) {
    fdClose(fd);
    throw err;
  }
}
