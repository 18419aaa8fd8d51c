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
  /** Value codec (of one CPU's value for per-CPU kinds). */
  value: Codec<V>;
}

/** Spec of a prog array. */
export interface ProgArraySpec extends BaseMapSpec {
  /** Always `progArray`. */
  type: 'progArray';
}

/** Any spec {@link createMap} accepts. */
export type MapSpec<K, V> =
  | KeyedMapSpec<'hash' | 'lruHash' | 'lpmTrie' | 'perCpuHash' | 'lruPerCpuHash', K, V>
  | IndexedMapSpec<'array' | 'perCpuArray', V>
  | ProgArraySpec;

function specCodecs(spec: MapSpec<unknown, unknown>): { key: Codec<unknown>; value: Codec<unknown> } {
  if (spec.type === 'progArray') return { key: u32, value: u32 };
  if (spec.type === 'array' || spec.type === 'perCpuArray') return { key: u32, value: spec.value };
  return { key: (spec as KeyedMapSpec<MapKind, unknown, unknown>).key, value: spec.value };
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
export function createMap<K, V>(spec: KeyedMapSpec<'hash', K, V>): HashMap<K, V>;
export function createMap<K, V>(spec: KeyedMapSpec<'lruHash', K, V>): LruHashMap<K, V>;
export function createMap<K, V>(spec: KeyedMapSpec<'lpmTrie', K, V>): LpmTrieMap<K, V>;
export function createMap<K, V>(
  spec: KeyedMapSpec<'perCpuHash' | 'lruPerCpuHash', K, V>,
): PerCpuHashMap<K, V>;
export function createMap<V>(spec: IndexedMapSpec<'array', V>): ArrayMap<V>;
export function createMap<V>(spec: IndexedMapSpec<'perCpuArray', V>): PerCpuArrayMap<V>;
export function createMap(spec: ProgArraySpec): ProgArrayMap;
export function createMap<IK, IV>(spec: ArrayOfMapsSpec<IK, IV>): ArrayOfMaps<IK, IV>;
export function createMap<K, IK, IV>(spec: HashOfMapsSpec<K, IK, IV>): HashOfMaps<K, IK, IV>;
export function createMap<K, V>(
  spec: MapSpec<K, V> | ArrayOfMapsSpec<unknown, unknown> | HashOfMapsSpec<K, unknown, unknown>,
): AnyMap<K, V> | ArrayOfMaps<unknown, unknown> | HashOfMaps<K, unknown, unknown> {
  const op = 'createMap';
  const kind = spec?.type;
  if (typeof kind !== 'string' || !(kind in MAP_KIND_TYPES)) {
    throw new BpfError('InvalidArgument', `${op}: unknown map type ${String(kind)}`, { op });
  }
  if (spec.type === 'arrayOfMaps' || spec.type === 'hashOfMaps') {
    return createMapOfMaps(spec as ArrayOfMapsSpec<unknown, unknown>) as HashOfMaps<K, unknown, unknown>;
  }
  const codecs = specCodecs(spec as MapSpec<unknown, unknown>);
  for (const [what, c] of Object.entries(codecs)) {
    if (c === undefined || typeof c.size !== 'number' || typeof c.encode !== 'function') {
      throw new BpfError('InvalidArgument', `${op}: spec.${what} must be a codec`, { op });
    }
  }
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

/** What {@link openPinned} checks the pinned map against. */
export type PinnedSpec<K, V> = (
  | Omit<
      KeyedMapSpec<'hash' | 'lruHash' | 'lpmTrie' | 'perCpuHash' | 'lruPerCpuHash', K, V>,
      'maxEntries' | 'name'
    >
  | Omit<IndexedMapSpec<'array' | 'perCpuArray', V>, 'maxEntries' | 'name'>
  | Omit<ProgArraySpec, 'maxEntries' | 'name'>
) & {
  /** Expected max entries (checked when given). */
  maxEntries?: number;
  /** Open the fd read-only: every write then fails with `PermissionDenied`. */
  readOnly?: boolean;
};

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
export function openPinned<K, V>(path: string, spec: PinnedSpec<K, V> & { type: 'hash' }): HashMap<K, V>;
export function openPinned<K, V>(
  path: string,
  spec: PinnedSpec<K, V> & { type: 'lruHash' },
): LruHashMap<K, V>;
export function openPinned<K, V>(
  path: string,
  spec: PinnedSpec<K, V> & { type: 'lpmTrie' },
): LpmTrieMap<K, V>;
export function openPinned<K, V>(
  path: string,
  spec: PinnedSpec<K, V> & { type: 'perCpuHash' | 'lruPerCpuHash' },
): PerCpuHashMap<K, V>;
export function openPinned<V>(path: string, spec: PinnedSpec<number, V> & { type: 'array' }): ArrayMap<V>;
export function openPinned<V>(
  path: string,
  spec: PinnedSpec<number, V> & { type: 'perCpuArray' },
): PerCpuArrayMap<V>;
export function openPinned(
  path: string,
  spec: PinnedSpec<number, number> & { type: 'progArray' },
): ProgArrayMap;
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
  const codecs = specCodecs(spec as unknown as MapSpec<unknown, unknown>);
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
