// Map-in-map clients: an outer map (array or hash of maps) whose values are other maps. The kernel takes
// an inner map's fd on update and hands back its id on lookup; every inner map must have the shape of
// the template the outer map was created with, which this file checks before each update.
import { BpfError, fdClose, MapFlags, type MapInfo, mapCreate, mapFdById, mapInfo } from '@datapath/libbpf';
import type { Codec } from './codec.js';
import { u32 } from './codec.js';
import { type AnyMap, construct } from './kinds.js';
import { BpfMap, MAP_KIND_TYPES, type MapParts, type PlainMapKind, type UpdateFlag } from './map.js';

/** The kinds a map-in-map can hold (the kernel refuses nested map-in-maps and program arrays). */
export type InnerMapKind = Exclude<PlainMapKind, 'progArray'>;

/** The shape every inner map of a map-in-map must have, with the codecs its typed clients use. */
export type InnerMapSpec<K, V> =
  | {
      /** The inner map kind. */
      type: 'hash' | 'lruHash' | 'lpmTrie' | 'perCpuHash' | 'lruPerCpuHash';
      /** Key codec: its size is the inner key size. */
      key: Codec<K>;
      /** Value codec (of one CPU's value for per-CPU kinds): its size is the inner value size. */
      value: Codec<V>;
      /** Max entries every inner map must have. */
      maxEntries: number;
      /** `BPF_F_*` flags every inner map must have (LPM tries always get `NoPrealloc`). */
      flags?: number;
    }
  | {
      /** The inner map kind. */
      type: 'array' | 'perCpuArray';
      /** Value codec (of one CPU's value for per-CPU arrays). */
      value: Codec<V>;
      /** Max entries every inner map must have. */
      maxEntries: number;
      /** `BPF_F_*` flags every inner map must have. */
      flags?: number;
    };

/** An inner map as {@link ArrayOfMaps.set} / {@link HashOfMaps.set} take it: an fd, or any map object with one. */
export type InnerMapRef =
  | number
  | {
      /** The map's file descriptor. */
      readonly fd: number;
    };

/** What the kernel compares (and this package checks) between an inner map and the template. */
export interface InnerMapShape {
  /** `bpf_map_type`. */
  readonly type: number;
  /** Key size in bytes. */
  readonly keySize: number;
  /** Value size in bytes. */
  readonly valueSize: number;
  /** Max entries. */
  readonly maxEntries: number;
  /** `BPF_F_*` flags. */
  readonly flags: number;
}

const INNER_KINDS: readonly InnerMapKind[] = [
  'hash',
  'lruHash',
  'array',
  'lpmTrie',
  'perCpuHash',
  'lruPerCpuHash',
  'perCpuArray',
];
const KIND_NAME = new Map<number, string>(Object.entries(MAP_KIND_TYPES).map(([k, t]) => [t, k]));
const kindName = (type: number) => KIND_NAME.get(type) ?? `type ${type}`;

interface ResolvedInner {
  kind: InnerMapKind;
  shape: InnerMapShape;
  key: Codec<unknown>;
  value: Codec<unknown>;
}

function isCodec(c: unknown): c is Codec<unknown> {
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof (c as Codec<unknown>).size === 'number' &&
    typeof (c as Codec<unknown>).encode === 'function' &&
    typeof (c as Codec<unknown>).decode === 'function'
  );
}

/** Validates an inner spec (before any syscall) and resolves its shape. */
function resolveInner(inner: InnerMapSpec<unknown, unknown>, op: string): ResolvedInner {
  const bad = (what: string) =>
    new BpfError('InvalidArgument', `${op}: inner map spec: ${what}`, { op, reason: 'InnerMapSpec' });
  if (typeof inner !== 'object' || inner === null) throw bad('missing (pass { inner: { type, … } })');
  const kind = inner.type;
  if (!(INNER_KINDS as readonly string[]).includes(kind)) {
    throw bad(`type must be one of ${INNER_KINDS.join(', ')}, got ${String(kind)}`);
  }
  const indexed = kind === 'array' || kind === 'perCpuArray';
  const key = indexed ? u32 : (inner as { key: Codec<unknown> }).key;
  if (!isCodec(key)) throw bad('key must be a codec');
  if (!isCodec(inner.value)) throw bad('value must be a codec');
  const { maxEntries } = inner;
  if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > 0xffff_ffff) {
    throw bad(`maxEntries must be a positive 32-bit integer, got ${String(maxEntries)}`);
  }
  let flags = inner.flags ?? 0;
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff_ffff) {
    throw bad(`flags must be a 32-bit unsigned integer, got ${String(flags)}`);
  }
  if (kind === 'lpmTrie') flags |= MapFlags.NoPrealloc;
  return {
    kind,
    key,
    value: inner.value,
    shape: { type: MAP_KIND_TYPES[kind], keySize: key.size, valueSize: inner.value.size, maxEntries, flags },
  };
}

/** How `info` differs from `shape`, field by field (empty when it matches). */
export function innerDifferences(info: MapInfo | InnerMapShape, shape: InnerMapShape): string[] {
  const diffs: string[] = [];
  if (info.type !== shape.type)
    diffs.push(`type: map is ${kindName(info.type)}, expected ${kindName(shape.type)}`);
  if (info.keySize !== shape.keySize)
    diffs.push(`keySize: map has ${info.keySize}, expected ${shape.keySize}`);
  if (info.valueSize !== shape.valueSize)
    diffs.push(`valueSize: map has ${info.valueSize}, expected ${shape.valueSize}`);
  if (info.maxEntries !== shape.maxEntries)
    diffs.push(`maxEntries: map has ${info.maxEntries}, expected ${shape.maxEntries}`);
  if (info.flags !== shape.flags)
    diffs.push(`flags: map has 0x${info.flags.toString(16)}, expected 0x${shape.flags.toString(16)}`);
  return diffs;
}

function fdOf(ref: InnerMapRef, op: string, target: string): number {
  const fd = typeof ref === 'number' ? ref : typeof ref === 'object' && ref !== null ? ref.fd : undefined;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new BpfError(
      'InvalidArgument',
      `${op}: an inner map is an fd or an object with one (a map), got ${String(ref)}`,
      {
        op,
        target,
      },
    );
  }
  return fd;
}

/**
 * The outer map's value codec: encoding an inner map checks its shape against the template (one
 * `BPF_OBJ_GET_INFO_BY_FD`) and writes its fd; decoding reads the inner map's id (what lookups return).
 */
function innerRefCodec(shape: InnerMapShape, outer: () => string): Codec<number> {
  return {
    size: 4,
    align: 4,
    encode(value, view, off) {
      const op = 'set';
      const target = outer();
      const fd = fdOf(value as InnerMapRef, op, target);
      let info: MapInfo;
      try {
        info = mapInfo(fd);
      } catch (err) {
        if (err instanceof BpfError)
          throw new BpfError(err.code, `${op}: fd ${fd} is not a BPF map (inner map of ${target})`, {
            op,
            target,
            cause: err,
          });
        throw err;
      }
      const diffs = innerDifferences(info, shape);
      if (diffs.length > 0) {
        throw new BpfError(
          'Incompatible',
          `${op}: map ${info.name || `id ${info.id}`} does not fit ${target} as an inner map: ${diffs.join('; ')}`,
          { op, target, reason: 'InnerMapMismatch' },
        );
      }
      view.setUint32(off, fd, true);
    },
    decode(view, off) {
      return view.getUint32(off, true);
    },
  };
}

/**
 * What map-in-map clients share: `set` takes an inner map (fd or map object) after checking its shape,
 * `get` returns the inner map's kernel id, `open` a typed client of the inner map.
 *
 * An update or delete of a slot is a pointer swap the programs see at once, but the kernel then waits for
 * an RCU grace period (`synchronize_rcu()`, so no program still runs on the old inner map when the call
 * returns), blocking the calling thread: an order of magnitude or more above a plain map update, growing
 * with the machine's CPU count and load (BENCHMARKS.md, section "map-in-map updates"). Fill a fresh inner
 * map, then swap it in with one `set`; do not churn slots on a latency-sensitive event loop.
 *
 * @typeParam K - the outer key type (`number` for {@link ArrayOfMaps}).
 * @typeParam IK - the inner maps' key type.
 * @typeParam IV - the inner maps' value type.
 */
export abstract class MapOfMaps<K, IK, IV> extends BpfMap<K, number> {
  /** `arrayOfMaps` or `hashOfMaps`. */
  abstract override readonly kind: 'arrayOfMaps' | 'hashOfMaps';
  /** The shape every inner map must have (the template's). */
  readonly inner: InnerMapShape;
  readonly #innerKind: InnerMapKind;
  readonly #innerKey: Codec<IK>;
  readonly #innerValue: Codec<IV>;

  /** @internal */
  constructor(p: MapParts<K, unknown>, inner: ResolvedInner) {
    super(p);
    this.inner = inner.shape;
    this.#innerKind = inner.kind;
    this.#innerKey = inner.key as Codec<IK>;
    this.#innerValue = inner.value as Codec<IV>;
    // BpfMap installs its own `set` per instance: use this class's (typed for inner maps).
    this.set = MapOfMaps.prototype.set;
  }

  protected readValue(view: DataView, off: number): number {
    return view.getUint32(off, true);
  }
  protected writeValue(value: number, view: DataView, off: number): void {
    this.valueCodec.encode(value, view, off);
  }

  /**
   * Puts `inner` (an fd, or a map object such as one from `createMap`) in slot `key`, after checking its
   * type, key size, value size, max entries and flags against the template: a mismatch is refused
   * before the update, and the slot keeps what it had. The kernel takes its own reference: closing
   * `inner` afterwards leaves it in place. Waits for an RCU grace period (see {@link MapOfMaps}).
   *
   * Equivalent to: `bpftool map update id ID key … value id INNER_ID`.
   *
   * @throws {@link BpfError} `Incompatible` (reason `InnerMapMismatch`) listing every differing field,
   * `InvalidArgument` for something that is not an fd or map, `BadFd` when it is not an open map,
   * `Exhausted` (reason `Full`) when a hash of maps is full, `TooBig` for an array index past the end.
   * @example Swapping in a freshly filled inner map
   * ```ts
   * import { type ArrayOfMaps, createMap, u32 } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * using next = createMap({ type: 'array', value: u32, maxEntries: 4 });
   * next.set(0, 42);
   * outer.set(0, next);
   * ```
   */
  override set(key: K, inner: InnerMapRef, flag?: UpdateFlag): void {
    super.set(key, inner as number, flag);
  }

  /**
   * Puts many inner maps in place; every one is checked before the first is written.
   *
   * @throws {@link BpfError} as {@link MapOfMaps.set}; a mismatch anywhere writes nothing.
   * @example
   * ```ts
   * import type { ArrayOfMaps, ArrayMap } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * declare const a: ArrayMap<number>;
   * declare const b: ArrayMap<number>;
   * outer.setMany([[0, a], [1, b]]);
   * ```
   */
  override setMany(
    entries: Iterable<readonly [K, InnerMapRef]>,
    flag: UpdateFlag = 'any',
    options: Parameters<BpfMap<K, number>['setMany']>[2] = {},
  ): void {
    super.setMany(entries as Iterable<readonly [K, number]>, flag, options);
  }

  /**
   * Opens the inner map in slot `key` as a typed client with the template's codecs (a new fd this
   * client owns: close it); undefined when the slot is empty.
   *
   * Equivalent to: `bpftool map lookup id ID key …`, then `bpftool map show id INNER_ID`.
   *
   * @throws {@link BpfError} `BadFd` after close, `PermissionDenied`.
   * @example Reading the value a program would see
   * ```ts
   * import type { ArrayOfMaps } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * using inner = outer.open(0);
   * console.log(inner?.get(0));
   * ```
   */
  open(key: K): AnyMap<IK, IV> | undefined {
    const id = this.get(key);
    if (id === undefined) return undefined;
    let fd: number;
    try {
      fd = mapFdById(id);
    } catch (err) {
      // Replaced and freed between the lookup and the open.
      if (err instanceof BpfError && err.code === 'NotFound') return undefined;
      throw err;
    }
    try {
      const info = mapInfo(fd);
      const kind = this.#innerKind;
      const indexed = kind === 'array' || kind === 'perCpuArray';
      return construct<IK, IV>(kind, {
        fd,
        owned: true,
        info,
        key: indexed ? (u32 as unknown as Codec<IK>) : this.#innerKey,
        value: this.#innerValue,
        perCpu: kind === 'perCpuHash' || kind === 'lruPerCpuHash' || kind === 'perCpuArray',
      });
    } catch (err) {
      fdClose(fd);
      throw err;
    }
  }
}

/**
 * A `BPF_MAP_TYPE_ARRAY_OF_MAPS`: slots `0 … maxEntries-1`, each empty or holding an inner map of the
 * template's shape. A program finds the inner map with `bpf_map_lookup_elem(&outer, &index)`.
 *
 * @example Two generations of a table, swapped atomically for the programs
 * ```ts
 * import { createMap, u32 } from '@datapath/bpf-maps';
 * using outer = createMap({
 *   type: 'arrayOfMaps',
 *   maxEntries: 1,
 *   inner: { type: 'array', value: u32, maxEntries: 4 },
 * });
 * using gen1 = createMap({ type: 'array', value: u32, maxEntries: 4 });
 * gen1.set(0, 1);
 * outer.set(0, gen1);
 * ```
 */
export class ArrayOfMaps<IK, IV> extends MapOfMaps<number, IK, IV> {
  /** Always `arrayOfMaps`. */
  readonly kind = 'arrayOfMaps' as const;

  /**
   * Wraps an existing array-of-maps fd; `inner` is the shape its inner maps have (the kernel does not
   * report it), checked on every `set`.
   *
   * @throws {@link BpfError} `Incompatible` when `fd` is not an array of maps, `InvalidArgument` for a bad
   * inner spec, `BadFd` when `fd` is not a map.
   * @example
   * ```ts
   * import { ArrayOfMaps, u32 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const outer = ArrayOfMaps.fromFd(fd, { inner: { type: 'array', value: u32, maxEntries: 4 } });
   * ```
   */
  static fromFd<IK, IV>(
    fd: number,
    spec: { inner: InnerMapSpec<IK, IV> },
    options: { owned?: boolean } = {},
  ): ArrayOfMaps<IK, IV> {
    const op = 'ArrayOfMaps.fromFd';
    const inner = resolveInner(spec?.inner as InnerMapSpec<unknown, unknown>, op);
    const info = outerInfo(fd, 'arrayOfMaps', 4, op);
    return new ArrayOfMaps(outerParts(fd, options.owned ?? false, info, u32, inner.shape), inner);
  }

  /**
   * Empties every slot (array-of-maps slots can be deleted); returns max entries.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import type { ArrayOfMaps } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * outer.clear();
   * ```
   */
  override clear(): number {
    for (let i = 0; i < this.maxEntries; i++) this.delete(i);
    return this.maxEntries;
  }

  /**
   * The indexes of the filled slots (the kernel's key walk lists every index of an array, empty or not).
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import type { ArrayOfMaps } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * console.log([...outer.keys()]);
   * ```
   */
  override *keys(): IterableIterator<number> {
    for (let i = 0; i < this.maxEntries; i++) if (this.has(i)) yield i;
  }

  /**
   * `[index, inner map id]` of the filled slots.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import type { ArrayOfMaps } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * for (const [index, id] of outer.entries()) console.log(index, id);
   * ```
   */
  override *entries(): IterableIterator<[number, number]> {
    for (let i = 0; i < this.maxEntries; i++) {
      const id = this.get(i);
      if (id !== undefined) yield [i, id];
    }
  }

  /**
   * The number of filled slots.
   *
   * @throws {@link BpfError} `BadFd` after close.
   * @example
   * ```ts
   * import type { ArrayOfMaps } from '@datapath/bpf-maps';
   * declare const outer: ArrayOfMaps<number, number>;
   * console.log(outer.count());
   * ```
   */
  override count(): number {
    let n = 0;
    for (let i = 0; i < this.maxEntries; i++) if (this.has(i)) n++;
    return n;
  }
}

/**
 * A `BPF_MAP_TYPE_HASH_OF_MAPS`: keys of the outer key codec, each holding an inner map of the
 * template's shape (per-tenant or per-namespace tables).
 *
 * @example A table per namespace
 * ```ts
 * import { createMap, u32, u64 } from '@datapath/bpf-maps';
 * using byNs = createMap({
 *   type: 'hashOfMaps',
 *   key: u32,
 *   maxEntries: 64,
 *   inner: { type: 'hash', key: u32, value: u64, maxEntries: 1024 },
 * });
 * using ns7 = createMap({ type: 'hash', key: u32, value: u64, maxEntries: 1024 });
 * byNs.set(7, ns7);
 * ```
 */
export class HashOfMaps<K, IK, IV> extends MapOfMaps<K, IK, IV> {
  /** Always `hashOfMaps`. */
  readonly kind = 'hashOfMaps' as const;

  /**
   * Wraps an existing hash-of-maps fd; `key` is the outer key codec, `inner` the shape its inner maps
   * have (checked on every `set`).
   *
   * @throws {@link BpfError} `Incompatible` when `fd` is not a hash of maps or the key size differs,
   * `InvalidArgument` for a bad inner spec, `BadFd` when `fd` is not a map.
   * @example
   * ```ts
   * import { HashOfMaps, u32, u64 } from '@datapath/bpf-maps';
   * declare const fd: number;
   * const outer = HashOfMaps.fromFd(fd, {
   *   key: u32,
   *   inner: { type: 'hash', key: u32, value: u64, maxEntries: 1024 },
   * });
   * ```
   */
  static fromFd<K, IK, IV>(
    fd: number,
    spec: { key: Codec<K>; inner: InnerMapSpec<IK, IV> },
    options: { owned?: boolean } = {},
  ): HashOfMaps<K, IK, IV> {
    const op = 'HashOfMaps.fromFd';
    const inner = resolveInner(spec?.inner as InnerMapSpec<unknown, unknown>, op);
    if (!isCodec(spec.key)) throw new BpfError('InvalidArgument', `${op}: key must be a codec`, { op });
    const info = outerInfo(fd, 'hashOfMaps', spec.key.size, op);
    return new HashOfMaps(outerParts(fd, options.owned ?? false, info, spec.key, inner.shape), inner);
  }
}

function outerInfo(fd: number, kind: 'arrayOfMaps' | 'hashOfMaps', keySize: number, op: string): MapInfo {
  let info: MapInfo;
  try {
    info = mapInfo(fd);
  } catch (err) {
    if (err instanceof BpfError)
      throw new BpfError(err.code, `${op}: fd ${fd} is not a BPF map`, { op, cause: err });
    throw err;
  }
  const diffs: string[] = [];
  if (info.type !== MAP_KIND_TYPES[kind]) diffs.push(`type: map is ${kindName(info.type)}, expected ${kind}`);
  if (info.keySize !== keySize) diffs.push(`keySize: map has ${info.keySize}, codec has ${keySize}`);
  if (diffs.length > 0) {
    throw new BpfError('Incompatible', `${op}: fd ${fd} is incompatible: ${diffs.join('; ')}`, {
      op,
      target: `fd ${fd}`,
    });
  }
  return info;
}

function outerParts<K>(
  fd: number,
  owned: boolean,
  info: MapInfo,
  key: Codec<K>,
  shape: InnerMapShape,
): MapParts<K, unknown> {
  const name = info.name || `id ${info.id}`;
  return { fd, owned, info, key, value: innerRefCodec(shape, () => `map ${name}`), perCpu: false };
}

/** Spec of an array of maps for `createMap`. */
export interface ArrayOfMapsSpec<IK, IV> {
  /** Always `arrayOfMaps`. */
  type: 'arrayOfMaps';
  /** Number of slots. */
  maxEntries: number;
  /** The shape (and codecs) of the inner maps: a template map of this shape is created and closed. */
  inner: InnerMapSpec<IK, IV>;
  /** Object name shown by bpftool, at most 15 bytes of `[A-Za-z0-9_.]`. */
  name?: string;
  /** Extra `BPF_F_*` flags of the outer map. */
  flags?: number;
}

/** Spec of a hash of maps for `createMap`. */
export interface HashOfMapsSpec<K, IK, IV> {
  /** Always `hashOfMaps`. */
  type: 'hashOfMaps';
  /** Outer key codec. */
  key: Codec<K>;
  /** Max number of inner maps. */
  maxEntries: number;
  /** The shape (and codecs) of the inner maps: a template map of this shape is created and closed. */
  inner: InnerMapSpec<IK, IV>;
  /** Object name shown by bpftool, at most 15 bytes of `[A-Za-z0-9_.]`. */
  name?: string;
  /** Extra `BPF_F_*` flags of the outer map. */
  flags?: number;
}

/** @internal createMap's map-in-map branch: a template inner map, the outer map, the template closed. */
export function createMapOfMaps(
  spec: ArrayOfMapsSpec<unknown, unknown> | HashOfMapsSpec<unknown, unknown, unknown>,
): ArrayOfMaps<unknown, unknown> | HashOfMaps<unknown, unknown, unknown> {
  const op = 'createMap';
  const inner = resolveInner(spec.inner, op);
  const key = spec.type === 'arrayOfMaps' ? u32 : spec.key;
  if (!isCodec(key)) throw new BpfError('InvalidArgument', `${op}: spec.key must be a codec`, { op });
  const template = mapCreate({
    type: inner.shape.type,
    keySize: inner.shape.keySize,
    valueSize: inner.shape.valueSize,
    maxEntries: inner.shape.maxEntries,
    flags: inner.shape.flags,
  });
  let fd: number;
  try {
    fd = mapCreate({
      type: MAP_KIND_TYPES[spec.type],
      keySize: key.size,
      valueSize: 4,
      maxEntries: spec.maxEntries,
      flags: spec.flags ?? 0,
      innerMapFd: template,
      ...(spec.name === undefined ? {} : { name: spec.name }),
    });
  } finally {
    fdClose(template); // the outer map keeps only the template's shape
  }
  try {
    const info = mapInfo(fd);
    const parts = outerParts(fd, true, info, key, inner.shape);
    return spec.type === 'arrayOfMaps'
      ? new ArrayOfMaps(parts as MapParts<number, unknown>, inner)
      : new HashOfMaps(parts, inner);
  } catch (err) {
    fdClose(fd);
    throw err;
  }
}
