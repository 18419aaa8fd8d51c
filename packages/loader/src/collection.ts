import { existsSync, mkdirSync, renameSync, rmdirSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import {
  type AnyMap,
  ArrayOfMaps,
  bytes,
  type Codec,
  HashOfMaps,
  type InnerMapShape,
  type InnerMapSpec,
  type OpenMapCodecs,
  openMapFd,
  PerfEventArray,
  RingBuf,
  u32,
} from '@datapath/bpf-maps';
import { BpfError, type LoadedObject, objectLoad, objectLoadAsync, pinnedMapInfo } from '@datapath/libbpf';
import { forget, watch } from './leak.js';
import { Program } from './program.js';
import type { MapSpec, ObjectSpec } from './spec.js';

const BPF_FS_MAGIC = 0xcafe4a11;

/** Options of {@link load}. */
export interface LoadOptions {
  /** bpffs directory for maps pinned `byName` (created if missing; must be on bpffs). */
  pinDir?: string;
  /**
   * Replace pinned maps that do not match the spec instead of failing: `true` for all, or the map names.
   * The old pin is kept aside as `<path>:pending` during the load and removed after it succeeds (restored
   * if it fails). Without this, an incompatible pin is an `Incompatible` error listing the differences.
   */
  replaceIncompatible?: boolean | readonly string[];
  /** First verifier log buffer size in bytes (grows automatically up to 64 MiB). */
  logSize?: number;
}

/** Typed access to a global-variable section of a loaded collection (see {@link Collection.globals}). */
export interface GlobalSection {
  /** Decodes the variable at `offset` with `codec`. */
  read<T>(codec: Codec<T>, offset: number): T;
  /** Encodes `value` with `codec` at `offset` (the programs see it on their next access). */
  write<T>(codec: Codec<T>, offset: number, value: T): void;
}

/** A map of a loaded collection. Its fd belongs to the collection. */
export interface CollectionMap {
  /** Map name. */
  readonly name: string;
  /** Map fd (valid until the collection is closed). */
  readonly fd: number;
  /** `bpf_map_type` number. */
  readonly type: number;
  /** Key size in bytes. */
  readonly keySize: number;
  /** Value size in bytes. */
  readonly valueSize: number;
  /** Maximum entries. */
  readonly maxEntries: number;
  /** Where it is pinned, if anywhere. */
  readonly pinPath: string | undefined;
  /** For a map-in-map: the shape every inner map must have (from the object's BTF). */
  readonly inner?: InnerMapShape | undefined;
}

/** Codecs of a map-in-map for {@link Collection.mapOfMaps}: the shapes come from the object. */
export interface MapOfMapsCodecs<K, IK, IV> {
  /** Outer key codec of a hash of maps (default: raw bytes); an array of maps always takes indexes. */
  key?: Codec<K>;
  /** Codecs of the inner maps' keys and values (an inner array's key is always its index). */
  inner?: {
    /** Inner key codec (hash-like inner maps; default: raw bytes). */
    key?: Codec<IK>;
    /** Inner value codec (default: raw bytes). */
    value?: Codec<IV>;
  };
}

const INNER_KIND: Readonly<Record<number, InnerMapSpec<unknown, unknown>['type']>> = {
  1: 'hash',
  2: 'array',
  5: 'perCpuHash',
  6: 'perCpuArray',
  9: 'lruHash',
  10: 'lruPerCpuHash',
  11: 'lpmTrie',
};
const ARRAY_OF_MAPS = 12;
const HASH_OF_MAPS = 13;

/** Loaded programs and maps of one object. Close it when done (links and pins keep their objects alive). */
export class Collection {
  /** Programs by name (autoload-disabled ones are absent). */
  readonly programs: Readonly<Record<string, Program>>;
  /** Maps by name (internal `.rodata`/`.data`/`.bss` maps excluded). */
  readonly maps: Readonly<Record<string, CollectionMap>>;
  readonly #obj: LoadedObject;
  readonly #token = {};

  /** @internal created by {@link load} */
  constructor(obj: LoadedObject, specMaps: Readonly<Record<string, MapSpec>>) {
    this.#obj = obj;
    watch(this, 'a loader Collection', this.#token);
    const alive = () => obj.open;
    const programs: Record<string, Program> = {};
    for (const p of obj.programs) programs[p.name] = new Program(p.name, p.fd, p.type, alive);
    const maps: Record<string, CollectionMap> = {};
    for (const m of obj.maps) {
      if (!Object.hasOwn(specMaps, m.name)) continue;
      const inner = specMaps[m.name]?.inner;
      maps[m.name] = {
        name: m.name,
        fd: m.fd,
        type: m.type,
        keySize: m.keySize,
        valueSize: m.valueSize,
        maxEntries: m.maxEntries,
        pinPath: m.pinPath,
        ...(inner === undefined ? {} : { inner }),
      };
    }
    this.programs = programs;
    this.maps = maps;
  }

  /**
   * The loaded program named `name`.
   *
   * @throws {@link BpfError} `NotFound` when the collection has no such program.
   * @example Picking a program to attach
   * ```ts
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * console.log(coll.program('count_drop').info().id);
   * ```
   */
  program(name: string): Program {
    const p = Object.hasOwn(this.programs, name) ? this.programs[name] : undefined;
    if (p === undefined) {
      throw new BpfError('NotFound', `collection has no loaded program named ${name}`, {
        op: 'program',
        target: name,
      });
    }
    return p;
  }

  /**
   * The map named `name` as a `@datapath/bpf-maps` object (narrow it on `kind`): with raw byte keys (index
   * numbers for array kinds) and byte values, or typed by `codecs` (their sizes are checked against the map;
   * `key` may be left out for array kinds, as with `createMap`). The object borrows the collection's fd: it
   * stays valid until the collection is closed. A ring buffer map (no key, no value)
   * comes back as a {@link RingBuf} reader (kind `ringBuf`), an array or hash of maps as an
   * `ArrayOfMaps` / `HashOfMaps` with raw bytes (see {@link Collection.mapOfMaps}), a perf event array as a
   * {@link PerfEventArray} reader (kind `perfEventArray`); they map memory only when read and read
   * through their own fd, so they outlive the collection until closed.
   * Equivalent to: `bpftool map dump id ID`.
   *
   * @throws {@link BpfError} `NotFound` when the collection has no such map, `Incompatible` when the codec
   * sizes differ from the map's or the map type has no bpf-maps class, `InvalidArgument` when a keyed map
   * gets no key codec, `BadFd` once the collection is closed.
   * @example Reading a counter array with typed codecs
   * ```ts
   * import { u32, u64 } from '@datapath/bpf-maps';
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * const counters = coll.map('counters', { value: u64 }); // an array: keys are indexes
   * if (counters.kind === 'array') console.log(counters.get(0));
   * const byPort = coll.map('by_port', { key: u32, value: u64 }); // a hash map needs its key codec
   * if (byPort.kind === 'hash') console.log(byPort.get(53));
   * ```
   */
  map(
    name: string,
  ):
    | AnyMap<Uint8Array, Uint8Array>
    | ArrayOfMaps<Uint8Array, Uint8Array>
    | HashOfMaps<Uint8Array, Uint8Array, Uint8Array>
    | RingBuf
    | PerfEventArray;
  map<K, V>(name: string, codecs: OpenMapCodecs<K, V>): AnyMap<K, V>;
  map<K, V>(
    name: string,
    codecs?: OpenMapCodecs<K, V>,
  ):
    | AnyMap<K, V>
    | AnyMap<Uint8Array, Uint8Array>
    | ArrayOfMaps<Uint8Array, Uint8Array>
    | HashOfMaps<Uint8Array, Uint8Array, Uint8Array>
    | RingBuf
    | PerfEventArray {
    const m = this.#mapEntry(name, 'map');
    if (codecs !== undefined) return openMapFd(m.fd, codecs);
    if (m.type === ARRAY_OF_MAPS || m.type === HASH_OF_MAPS) return this.mapOfMaps(name);
    if (m.type === 27) return RingBuf.fromFd(m.fd);
    if (m.type === 4) return PerfEventArray.fromFd(m.fd);
    // Index-keyed kinds (array, per-CPU array, prog array) take numbers; everything else raw key bytes.
    const indexed = m.type === 2 || m.type === 3 || m.type === 6;
    return openMapFd(m.fd, { key: indexed ? (u32 as never) : bytes(m.keySize), value: bytes(m.valueSize) });
  }

  #mapEntry(name: string, op: string): CollectionMap {
    const m = Object.hasOwn(this.maps, name) ? this.maps[name] : undefined;
    if (m === undefined)
      throw new BpfError('NotFound', `collection has no map named ${name}`, { op, target: name });
    if (!this.#obj.open)
      throw new BpfError('BadFd', `map ${name}: the collection is closed`, { op, target: name });
    return m;
  }

  /**
   * The array-of-maps or hash-of-maps named `name` as a `@datapath/bpf-maps` client (narrow it on `kind`):
   * the inner maps' shape (type, key and value size, max entries, flags) comes from the object's
   * `__array(values, struct inner)` declaration and is checked on every `set`; the codecs type the keys
   * and the clients `open` returns (raw bytes where left out; their sizes are checked). It borrows the
   * collection's fd.
   * Equivalent to: `bpftool map dump id ID` (inner map ids).
   *
   * @throws {@link BpfError} `NotFound` when the collection has no such map, `Incompatible` when it is not a
   * map-in-map or a codec's size differs from the object's, `BadFd` once the collection is closed.
   * @example Swapping the inner map a program reads
   * ```ts
   * import { createMap, u32 } from '@datapath/bpf-maps';
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * const outer = coll.mapOfMaps('outer', { inner: { value: u32 } });
   * using next = createMap({ type: 'array', value: u32, maxEntries: 2 });
   * outer.set(0, next);
   * ```
   */
  mapOfMaps<K = Uint8Array, IK = Uint8Array, IV = Uint8Array>(
    name: string,
    codecs: MapOfMapsCodecs<K, IK, IV> = {},
  ): ArrayOfMaps<IK, IV> | HashOfMaps<K, IK, IV> {
    const op = 'mapOfMaps';
    const m = this.#mapEntry(name, op);
    const shape = m.inner;
    if ((m.type !== ARRAY_OF_MAPS && m.type !== HASH_OF_MAPS) || shape === undefined) {
      throw new BpfError('Incompatible', `${op}: map ${name} is not an array or hash of maps`, {
        op,
        target: name,
      });
    }
    const kind = INNER_KIND[shape.type];
    if (kind === undefined) {
      throw new BpfError(
        'NotSupported',
        `${op}: map ${name} holds maps of type ${shape.type}, which bpf-maps has no client for`,
        {
          op,
          target: name,
        },
      );
    }
    const innerKey = codecs.inner?.key ?? (bytes(shape.keySize) as unknown as Codec<IK>);
    const innerValue = codecs.inner?.value ?? (bytes(shape.valueSize) as unknown as Codec<IV>);
    const outerKey = codecs.key ?? (bytes(m.keySize) as unknown as Codec<K>);
    const diffs: string[] = [];
    const indexed = kind === 'array' || kind === 'perCpuArray';
    if (!indexed && innerKey.size !== shape.keySize)
      diffs.push(`inner key: codec has ${innerKey.size} bytes, the object ${shape.keySize}`);
    if (innerValue.size !== shape.valueSize)
      diffs.push(`inner value: codec has ${innerValue.size} bytes, the object ${shape.valueSize}`);
    if (diffs.length > 0) {
      throw new BpfError('Incompatible', `${op}: map ${name}: ${diffs.join('; ')}`, { op, target: name });
    }
    const inner = {
      type: kind,
      ...(indexed ? {} : { key: innerKey }),
      value: innerValue,
      maxEntries: shape.maxEntries,
      flags: shape.flags,
    } as InnerMapSpec<IK, IV>;
    return m.type === ARRAY_OF_MAPS
      ? ArrayOfMaps.fromFd(m.fd, { inner })
      : HashOfMaps.fromFd(m.fd, { key: outerKey, inner });
  }

  /**
   * The `.data` or `.bss` globals of the collection, read and written in place while programs run (the
   * mmap-able array map libbpf made for the section: no system call per access). Typed accessors come
   * from the generator (`openGlobals`).
   * Equivalent to: `bpftool map dump name OBJ.bss`.
   *
   * @throws {@link BpfError} `NotFound` when the object has no such section, `NotSupported` for `.rodata`.
   * @example Reading a counter at offset 0 of .bss
   * ```ts
   * import { u64 } from '@datapath/bpf-maps';
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * console.log(coll.globals('.bss').read(u64, 0));
   * ```
   */
  globals(section: string): GlobalSection {
    this.#obj.globalMemory(section); // checks now: the section exists and is mapped
    const obj = this.#obj;
    const view = () => {
      const mem = obj.globalMemory(section);
      return new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
    };
    const bounds = (codec: Codec<unknown>, offset: number, size: number) => {
      if (!Number.isInteger(offset) || offset < 0 || offset + codec.size > size) {
        throw new BpfError(
          'InvalidArgument',
          `globals: ${section}+${offset} (${codec.size} bytes) is outside the section`,
          {
            op: 'globals',
            target: section,
          },
        );
      }
    };
    return {
      read<T>(codec: Codec<T>, offset: number): T {
        const v = view();
        bounds(codec, offset, v.byteLength);
        return codec.decode(v, offset);
      },
      write<T>(codec: Codec<T>, offset: number, value: T): void {
        const v = view();
        bounds(codec, offset, v.byteLength);
        codec.encode(value, v, offset);
      },
    };
  }

  /**
   * Closes every program and map fd of the collection. Attached links, pinned maps and pinned links live on.
   *
   * @example Closing a collection
   * ```ts
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * coll.close();
   * ```
   */
  close(): void {
    forget(this.#token);
    this.#obj.close();
  }

  /** Same as {@link Collection.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function onBpffs(path: string): boolean {
  try {
    return Number(statfsSync(path).type) === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Creates `dir` (and parents) after checking its nearest existing ancestor is on bpffs; returns the
 * directories it created, deepest first (so a failed load can remove them again).
 */
function ensurePinDir(dir: string, op: string): string[] {
  if (!isAbsolute(dir))
    throw new BpfError('InvalidArgument', `${op}: pinDir must be absolute, got ${dir}`, { op, target: dir });
  let probe = dir;
  while (!existsSync(probe)) probe = dirname(probe);
  if (!onBpffs(probe)) {
    throw new BpfError(
      'InvalidArgument',
      `${op}: ${dir} is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)`,
      {
        op,
        target: dir,
      },
    );
  }
  const created: string[] = [];
  for (let d = dir; d !== probe; d = dirname(d)) created.push(d);
  mkdirSync(dir, { recursive: true });
  return created;
}

function pinPathOf(m: MapSpec, pinDir: string | undefined, op: string): string | null {
  if (m.pinning === 'none') return null;
  if (m.pinning === 'byName') {
    if (pinDir === undefined) {
      throw new BpfError('InvalidArgument', `${op}: map ${m.name} is pinned by name: pass { pinDir }`, {
        op,
        target: m.name,
      });
    }
    return join(pinDir, m.name);
  }
  if (!isAbsolute(m.pinning.path)) {
    throw new BpfError('InvalidArgument', `${op}: pin path of map ${m.name} must be absolute`, {
      op,
      target: m.name,
    });
  }
  return m.pinning.path;
}

/** Lists how a pinned map differs from the spec (empty when libbpf can reuse it). */
function differences(m: MapSpec, path: string): string[] | undefined {
  const pinned = pinnedMapInfo(path);
  if (pinned === undefined) return undefined;
  const diff: string[] = [];
  const cmp = (what: string, have: number, want: number) => {
    if (have !== want) diff.push(`${what} ${have} (pinned) ≠ ${want} (spec)`);
  };
  cmp('type', pinned.type, m.type);
  cmp('key_size', pinned.keySize, m.keySize);
  cmp('value_size', pinned.valueSize, m.valueSize);
  cmp('max_entries', pinned.maxEntries, m.maxEntries);
  cmp('flags', pinned.flags, m.flags);
  return diff;
}

/**
 * Loads a spec into the kernel: creates its maps (reusing compatible pinned ones), applies constants, max
 * entries and autoload settings, and verifies every autoloaded program.
 * Equivalent to: `bpftool prog loadall OBJ DIR pinmaps DIR`.
 *
 * @throws {@link VerifierError} with the complete verifier log when a program is rejected;
 * {@link BpfError} `Incompatible` when a pinned map differs from the spec (the message lists every
 * difference) unless `replaceIncompatible` allows it, `InvalidArgument` for a pinned map without `pinDir`
 * or a pin directory off bpffs, `PermissionDenied` without CAP_BPF.
 * @example Loading with pinned maps
 * ```ts
 * import { load, openObject } from '@datapath/loader';
 * const spec = openObject('counter.bpf.o');
 * spec.setConstant('port', 9000);
 * using coll = load(spec, { pinDir: '/sys/fs/bpf/demo' });
 * console.log(Object.keys(coll.programs));
 * ```
 */
export function load(spec: ObjectSpec, options: LoadOptions = {}): Collection {
  const prep = prepareLoad(spec, options, 'load');
  let obj: LoadedObject;
  try {
    obj = objectLoad(spec.elf, prep.loadOptions);
  } catch (err) {
    prep.undo();
    throw err;
  }
  prep.commit();
  return new Collection(obj, spec.maps);
}

/** Options of {@link loadAsync} besides {@link LoadOptions}. */
export interface LoadAsyncOptions extends LoadOptions {
  /** Cancels the load while it has not reached the kernel (`BpfError` `Interrupted`, reason `Aborted`). */
  signal?: AbortSignal;
}

/**
 * The async form of {@link load}: the map creation and every program's verification (`bpf_object__load`,
 * milliseconds to seconds for a large program) run on libuv's threadpool, so the event loop goes on
 * meanwhile. The pinned-map checks before it are quick calls made as {@link load} makes them. Same options,
 * result and errors (the verifier log included); async loads take turns, and `signal` cancels one that has
 * not reached the kernel yet.
 * Equivalent to: `bpftool prog loadall OBJ DIR pinmaps DIR`.
 *
 * @throws {@link VerifierError} and {@link BpfError} as {@link load}; `Interrupted` (reason `Aborted`) when
 * `signal` fired before the load started.
 * @example Loading while a server keeps answering
 * ```ts
 * import { loadAsync, openObject } from '@datapath/loader';
 * const spec = openObject('counter.bpf.o');
 * using coll = await loadAsync(spec, { pinDir: '/sys/fs/bpf/demo' });
 * console.log(Object.keys(coll.programs));
 * ```
 */
export async function loadAsync(spec: ObjectSpec, options: LoadAsyncOptions = {}): Promise<Collection> {
  const op = 'load';
  if (options.signal?.aborted) {
    throw new BpfError('Interrupted', `${op}: aborted before the kernel call`, {
      op,
      reason: 'Aborted',
      cause: options.signal.reason,
    });
  }
  const prep = prepareLoad(spec, options, op);
  let obj: LoadedObject;
  try {
    obj = await objectLoadAsync(spec.elf, {
      ...prep.loadOptions,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (err) {
    prep.undo();
    throw err;
  }
  prep.commit();
  return new Collection(obj, spec.maps);
}

/**
 * Everything {@link load} does before `bpf_object__load`: pin paths and the pin directory, the check of
 * pinned maps against the spec, incompatible pins moved aside. `undo` puts things back after a failed load,
 * `commit` drops the old pins after a successful one.
 */
function prepareLoad(spec: ObjectSpec, options: LoadOptions, op: string) {
  const pinPaths: Record<string, string | null> = {};
  const maxEntries: Record<string, number> = {};
  const pending: Array<{ path: string; aside: string }> = [];
  const replace = options.replaceIncompatible ?? false;
  const problems: string[] = [];
  const madeDirs: string[] = [];
  const cleanDirs = () => {
    for (const d of madeDirs) {
      try {
        rmdirSync(d); // only succeeds when empty
      } catch {
        // not empty or already gone: keep it
      }
    }
  };
  for (const m of Object.values(spec.maps)) {
    maxEntries[m.name] = m.maxEntries;
    const path = pinPathOf(m, options.pinDir, op);
    pinPaths[m.name] = path;
    if (path === null) continue;
    madeDirs.push(...ensurePinDir(dirname(path), op));
    const diff = differences(m, path);
    if (diff === undefined || diff.length === 0) continue;
    if (replace === true || (Array.isArray(replace) && replace.includes(m.name))) {
      pending.push({ path, aside: `${path}:pending` });
    } else {
      problems.push(`${m.name} at ${path}: ${diff.join(', ')}`);
    }
  }
  if (problems.length > 0) {
    cleanDirs();
    throw new BpfError('Incompatible', `${op}: pinned maps do not match the spec: ${problems.join('; ')}`, {
      op,
      target: problems.map((p) => p.split(' at ')[0]).join(','),
    });
  }
  const autoload: Record<string, boolean> = {};
  for (const p of Object.values(spec.programs)) autoload[p.name] = p.autoload;

  for (const p of pending) {
    if (existsSync(p.aside)) unlinkSync(p.aside);
    renameSync(p.path, p.aside);
  }
  return {
    loadOptions: {
      name: spec.name,
      pinPaths,
      maxEntries,
      autoload,
      ...(spec.rodata.byteLength > 0 ? { rodata: spec.rodata } : {}),
      ...(options.logSize === undefined ? {} : { logSize: options.logSize }),
    },
    undo(): void {
      for (const p of pending) {
        if (existsSync(p.path)) unlinkSync(p.path);
        renameSync(p.aside, p.path);
      }
      cleanDirs();
    },
    commit(): void {
      for (const p of pending) unlinkSync(p.aside);
    },
  };
}
