import { BpfError } from './errors.js';
import { Cmd, ElemAttr, MapCreateAttr, OBJ_NAME_LEN } from './sys/bpf-attr.js';
import { bpfOrThrow } from './sys/call.js';
import { addressOf, pinnedAlloc } from './sys/libc.js';

/** Map types (values of `enum bpf_map_type`). */
export const MapType = {
  /** `BPF_MAP_TYPE_HASH` */
  Hash: 1,
  /** `BPF_MAP_TYPE_ARRAY` */
  Array: 2,
  /** `BPF_MAP_TYPE_PROG_ARRAY` */
  ProgArray: 3,
  /** `BPF_MAP_TYPE_PERF_EVENT_ARRAY` */
  PerfEventArray: 4,
  /** `BPF_MAP_TYPE_PERCPU_HASH` */
  PerCpuHash: 5,
  /** `BPF_MAP_TYPE_PERCPU_ARRAY` */
  PerCpuArray: 6,
  /** `BPF_MAP_TYPE_LRU_HASH` */
  LruHash: 9,
  /** `BPF_MAP_TYPE_LRU_PERCPU_HASH` */
  LruPerCpuHash: 10,
  /** `BPF_MAP_TYPE_LPM_TRIE` */
  LpmTrie: 11,
  /** `BPF_MAP_TYPE_ARRAY_OF_MAPS` */
  ArrayOfMaps: 12,
  /** `BPF_MAP_TYPE_HASH_OF_MAPS` */
  HashOfMaps: 13,
  /** `BPF_MAP_TYPE_QUEUE` */
  Queue: 22,
  /** `BPF_MAP_TYPE_STACK` */
  Stack: 23,
  /** `BPF_MAP_TYPE_RINGBUF` */
  RingBuf: 27,
} as const;

/** A `bpf_map_type` number from {@link MapType}. */
export type MapTypeId = (typeof MapType)[keyof typeof MapType];

/** `BPF_F_*` map creation flags. */
export const MapFlags = {
  /** `BPF_F_NO_PREALLOC`: allocate hash elements on demand (required for LPM tries). */
  NoPrealloc: 1,
  /** `BPF_F_NO_COMMON_LRU`: per-CPU LRU lists. */
  NoCommonLru: 2,
  /** `BPF_F_RDONLY`: read-only for user space (also an fd open flag). */
  ReadOnly: 1 << 3,
  /** `BPF_F_WRONLY`: write-only for user space (also an fd open flag). */
  WriteOnly: 1 << 4,
  /** `BPF_F_RDONLY_PROG`: read-only for programs. */
  ReadOnlyProg: 1 << 7,
  /** `BPF_F_WRONLY_PROG`: write-only for programs. */
  WriteOnlyProg: 1 << 8,
} as const;

/** What {@link mapCreate} needs to create a map. */
export interface MapCreateSpec {
  /** The kernel map type. */
  type: number;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes. */
  valueSize: number;
  /** Maximum number of entries. */
  maxEntries: number;
  /** `BPF_F_*` map flags ({@link MapFlags}). */
  flags?: number;
  /** Object name shown by bpftool, at most 15 bytes of `[A-Za-z0-9_.]`. */
  name?: string;
  /** For map-in-map types: an fd of a map with the inner map's shape. */
  innerMapFd?: number;
}

const NAME_RE = /^[A-Za-z0-9_.]{0,15}$/;
const createAttr = pinnedAlloc(MapCreateAttr.size);
const encoder = new TextEncoder();

function u32(v: number, what: string, op: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new BpfError('InvalidArgument', `${op}: ${what} must be a 32-bit unsigned integer, got ${v}`, {
      op,
    });
  }
  return v;
}

/**
 * Creates a BPF map and returns its file descriptor; the caller owns it and closes it with {@link fdClose}.
 *
 * Equivalent to: `bpftool map create /sys/fs/bpf/P type hash key 4 value 8 entries 1024 name NAME`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad spec (before any syscall, or from the kernel),
 * `PermissionDenied` without CAP_BPF, `NotSupported` for a map type this kernel lacks, `OutOfMemory`.
 * @example Creating a hash map
 * ```ts
 * import { MapType, mapCreate, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 8, maxEntries: 1024, name: 'demo' });
 * fdClose(fd);
 * ```
 */
export function mapCreate(spec: MapCreateSpec): number {
  const op = 'mapCreate';
  const name = spec.name ?? '';
  if (!NAME_RE.test(name)) {
    throw new BpfError(
      'InvalidArgument',
      `${op}: map name ${JSON.stringify(name)} must match [A-Za-z0-9_.]{0,15}`,
      {
        op,
      },
    );
  }
  const v = createAttr.view;
  createAttr.bytes.fill(0);
  v.setUint32(MapCreateAttr.mapType, u32(spec.type, 'type', op), true);
  v.setUint32(MapCreateAttr.keySize, u32(spec.keySize, 'keySize', op), true);
  v.setUint32(MapCreateAttr.valueSize, u32(spec.valueSize, 'valueSize', op), true);
  v.setUint32(MapCreateAttr.maxEntries, u32(spec.maxEntries, 'maxEntries', op), true);
  v.setUint32(MapCreateAttr.mapFlags, u32(spec.flags ?? 0, 'flags', op), true);
  v.setUint32(MapCreateAttr.innerMapFd, u32(spec.innerMapFd ?? 0, 'innerMapFd', op), true);
  createAttr.bytes.set(encoder.encode(name).subarray(0, OBJ_NAME_LEN - 1), MapCreateAttr.mapName);
  return bpfOrThrow(Cmd.MapCreate, createAttr, MapCreateAttr.size, op, name || undefined);
}

const elemAttr = pinnedAlloc(ElemAttr.size);

function oneShot(
  cmd: number,
  fd: number,
  key: Uint8Array,
  value: Uint8Array,
  flags: bigint,
  op: string,
): number {
  const v = elemAttr.view;
  v.setUint32(ElemAttr.mapFd, u32(fd, 'fd', op), true);
  v.setBigUint64(ElemAttr.key, BigInt(addressOf(key)), true);
  v.setBigUint64(ElemAttr.value, BigInt(addressOf(value)), true);
  v.setBigUint64(ElemAttr.flags, flags, true);
  return bpfOrThrow(cmd, elemAttr, ElemAttr.size, op);
}

/**
 * Writes one element. Prefer {@link MapIo} (or `@datapath/bpf-maps`) on hot paths.
 *
 * Equivalent to: `bpftool map update id ID key … value …`.
 *
 * @throws {@link BpfError} `Exhausted` (reason `Full`) when the map is full, `AlreadyExists` / `NotFound` for the
 * `noExist` / `exist` flags, `InvalidArgument`, `BadFd`.
 * @example Writing an element
 * ```ts
 * import { MapType, mapCreate, mapUpdate, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Hash, keySize: 4, valueSize: 4, maxEntries: 8 });
 * mapUpdate(fd, new Uint8Array([1, 0, 0, 0]), new Uint8Array([2, 0, 0, 0]));
 * fdClose(fd);
 * ```
 */
export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags = 0n): void {
  oneShot(Cmd.MapUpdateElem, fd, key, value, flags, 'mapUpdate');
}

/**
 * Reads one element into `value` (which must hold the map's value size); returns false when the key is
 * absent. Prefer {@link MapIo} (or `@datapath/bpf-maps`) on hot paths.
 *
 * Equivalent to: `bpftool map lookup id ID key …`.
 *
 * @throws {@link BpfError} `InvalidArgument`, `BadFd`.
 * @example Reading an element
 * ```ts
 * import { MapType, mapCreate, mapLookup, fdClose } from '@datapath/libbpf';
 * const fd = mapCreate({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 8 });
 * const value = new Uint8Array(4);
 * mapLookup(fd, new Uint8Array(4), value);
 * fdClose(fd);
 * ```
 */
export function mapLookup(fd: number, key: Uint8Array, value: Uint8Array): boolean {
  try {
    oneShot(Cmd.MapLookupElem, fd, key, value, 0n, 'mapLookup');
    return true;
  } catch (err) {
    if (err instanceof BpfError && err.code === 'NotFound') return false;
    throw err;
  }
}
