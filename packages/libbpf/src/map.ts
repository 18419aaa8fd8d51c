import { BpfError } from './errors.js';
import { addressOf, bpf, closeFd } from './sys/libc.js';

const BPF_MAP_CREATE = 0;
const BPF_MAP_LOOKUP_ELEM = 1;
const BPF_MAP_UPDATE_ELEM = 2;
const BPF_OBJ_NAME_LEN = 16;

/** Map types understood by {@link mapCreate} (values of `enum bpf_map_type`). */
export const MapType = {
  /** `BPF_MAP_TYPE_HASH` */
  Hash: 1,
  /** `BPF_MAP_TYPE_ARRAY` */
  Array: 2,
  /** `BPF_MAP_TYPE_PROG_ARRAY` */
  ProgArray: 3,
  /** `BPF_MAP_TYPE_PERCPU_HASH` */
  PerCpuHash: 5,
  /** `BPF_MAP_TYPE_PERCPU_ARRAY` */
  PerCpuArray: 6,
  /** `BPF_MAP_TYPE_LRU_HASH` */
  LruHash: 9,
  /** `BPF_MAP_TYPE_LPM_TRIE` */
  LpmTrie: 11,
} as const;

/** A `bpf_map_type` number from {@link MapType}. */
export type MapTypeId = (typeof MapType)[keyof typeof MapType];

/** What {@link mapCreate} needs to create a map. */
export interface MapCreateSpec {
  /** The kernel map type. */
  type: MapTypeId;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes. */
  valueSize: number;
  /** Maximum number of entries. */
  maxEntries: number;
  /** `BPF_F_*` map flags. */
  flags?: number;
  /** Object name shown by bpftool, at most 15 bytes of `[A-Za-z0-9_.]`. */
  name?: string;
}

const NAME_RE = /^[A-Za-z0-9_.]{0,15}$/;

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
 * Equivalent to: `bpftool map create … type hash key 4 value 8 entries 1024 name NAME`.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad spec (before any syscall), `PermissionDenied` without
 * CAP_BPF, `NotSupported` for a map type this kernel lacks, `OutOfMemory`.
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
  const attr = new Uint8Array(72);
  const view = new DataView(attr.buffer);
  view.setUint32(0, u32(spec.type, 'type', op), true);
  view.setUint32(4, u32(spec.keySize, 'keySize', op), true);
  view.setUint32(8, u32(spec.valueSize, 'valueSize', op), true);
  view.setUint32(12, u32(spec.maxEntries, 'maxEntries', op), true);
  view.setUint32(16, u32(spec.flags ?? 0, 'flags', op), true);
  // map_name lives after inner_map_fd (20) and numa_node (24), at offset 28.
  const nameBytes = new TextEncoder().encode(name);
  attr.set(nameBytes.subarray(0, BPF_OBJ_NAME_LEN - 1), 28);
  return bpf(BPF_MAP_CREATE, attr, op, 'bpf(BPF_MAP_CREATE)', name || undefined);
}

function elemAttr(fd: number, key: Uint8Array, value: Uint8Array, flags: bigint): Uint8Array {
  // union bpf_attr for *_ELEM: u32 map_fd; (pad); u64 key; u64 value; u64 flags.
  const attr = new Uint8Array(32);
  const view = new DataView(attr.buffer);
  view.setUint32(0, fd, true);
  view.setBigUint64(8, addressOf(key), true);
  view.setBigUint64(16, addressOf(value), true);
  view.setBigUint64(24, flags, true);
  return attr;
}

/**
 * Writes one element. Equivalent to: `bpftool map update id ID key … value …`.
 *
 * @throws {@link BpfError} `NoSpace` when the map is full, `AlreadyExists` / `NotFound` for the
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
  bpf(BPF_MAP_UPDATE_ELEM, elemAttr(fd, key, value, flags), 'mapUpdate', 'bpf(BPF_MAP_UPDATE_ELEM)');
}

/**
 * Reads one element into `value`; returns false when the key is absent.
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
    bpf(BPF_MAP_LOOKUP_ELEM, elemAttr(fd, key, value, 0n), 'mapLookup', 'bpf(BPF_MAP_LOOKUP_ELEM)');
    return true;
  } catch (err) {
    if (err instanceof BpfError && err.code === 'NotFound') return false;
    throw err;
  }
}

/**
 * Closes a file descriptor returned by this package.
 *
 * @throws {@link BpfError} `BadFd` when `fd` is not open.
 * @example Closing a map
 * ```ts
 * import { MapType, mapCreate, fdClose } from '@datapath/libbpf';
 * fdClose(mapCreate({ type: MapType.Array, keySize: 4, valueSize: 4, maxEntries: 1 }));
 * ```
 */
export function fdClose(fd: number): void {
  closeFd(fd, 'fdClose');
}
