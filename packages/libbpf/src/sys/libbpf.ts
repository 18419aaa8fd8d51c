// koffi bindings to libbpf.so.1 (Debian libbpf1 1.1.x): the object, map, program, BTF, link and tc/XDP
// entry points the package uses, and the helpers that turn their returns into BpfErrors.
// Raw pointers never leave this file's callers inside the package: every opaque pointer is a bigint, NULL is null.
// Struct layouts are the x86_64 ones of libbpf 1.1.2 headers (checked with offsetof()).
// Its siblings: libc.ts (bpf(2), close, if_nametoindex), log.ts (libbpf's log ring), rtnetlink.ts (tc filter dump).
import koffi from 'koffi';
import { errnoError } from '../errors.js';

/** An opaque libbpf pointer (`struct bpf_object *`, `struct bpf_map *`, …); null is NULL. */
export type Ptr = bigint | null;

const lib = koffi.load('libbpf.so.1');

type Fn<A extends unknown[], R> = (...args: A) => R;
/** Declares one libbpf.so.1 function (for the log ring's `libbpf_set_print`, declared beside its callback). */
export const libbpfFn = <A extends unknown[], R>(decl: string): Fn<A, R> => lib.func(decl) as Fn<A, R>;
const fn = libbpfFn;

export const objectOpenMem = fn<[Uint8Array, number, Uint8Array | null], Ptr>(
  'void *bpf_object__open_mem(const void *buf, size_t sz, const void *opts)',
);
export const objectLoad = fn<[bigint], number>('int bpf_object__load(void *obj)');
const objectLoadFn = lib.func('int bpf_object__load(void *obj)') as unknown as {
  async(obj: bigint, done: (err: unknown, r: number) => void): void;
};
const objectOpenMemFn = lib.func(
  'void *bpf_object__open_mem(const void *buf, size_t sz, const void *opts)',
) as unknown as {
  async(buf: Uint8Array, sz: number, opts: Uint8Array | null, done: (err: unknown, r: Ptr) => void): void;
};
/**
 * `bpf_object__open_mem` on libuv's threadpool (the ELF and BTF parse of a large object takes milliseconds):
 * the object, or null when it failed (the caller opens again synchronously for the typed error).
 */
export function objectOpenMemAsync(buf: Uint8Array, sz: number, opts: Uint8Array | null): Promise<Ptr> {
  return new Promise((resolve, reject) => {
    objectOpenMemFn.async(buf, sz, opts, (err, r) => {
      if (err !== null && err !== undefined) reject(err);
      else resolve(r);
    });
  });
}

/**
 * `bpf_object__load` on libuv's threadpool (koffi's async call): map creation and the verifier run there.
 * libbpf's log callback still runs on the event loop thread (koffi queues it there while the pool thread waits).
 */
export function objectLoadAsync(obj: bigint): Promise<number> {
  return new Promise((resolve, reject) => {
    objectLoadFn.async(obj, (err, r) => {
      if (err !== null && err !== undefined) reject(err);
      else resolve(r);
    });
  });
}
export const objectClose = fn<[bigint], void>('void bpf_object__close(void *obj)');
export const objectNextMap = fn<[bigint, Ptr], Ptr>('void *bpf_object__next_map(void *obj, void *prev)');
export const objectNextProgram = fn<[bigint, Ptr], Ptr>(
  'void *bpf_object__next_program(void *obj, void *prev)',
);
export const objectBtf = fn<[bigint], Ptr>('void *bpf_object__btf(void *obj)');

export const mapName = fn<[bigint], string>('const char *bpf_map__name(void *map)');
export const mapType = fn<[bigint], number>('int bpf_map__type(void *map)');
export const mapKeySize = fn<[bigint], number>('uint32_t bpf_map__key_size(void *map)');
export const mapValueSize = fn<[bigint], number>('uint32_t bpf_map__value_size(void *map)');
export const mapMaxEntries = fn<[bigint], number>('uint32_t bpf_map__max_entries(void *map)');
export const mapFlags = fn<[bigint], number>('uint32_t bpf_map__map_flags(void *map)');
export const mapSetMaxEntries = fn<[bigint, number], number>(
  'int bpf_map__set_max_entries(void *map, uint32_t n)',
);
export const mapPinPath = fn<[bigint], string | null>('const char *bpf_map__pin_path(void *map)');
export const mapSetPinPath = fn<[bigint, string | null], number>(
  'int bpf_map__set_pin_path(void *map, const char *path)',
);
export const mapIsInternal = fn<[bigint], boolean>('bool bpf_map__is_internal(void *map)');
export const mapInitialValue = fn<[bigint, BigUint64Array], Ptr>(
  'void *bpf_map__initial_value(void *map, _Out_ size_t *psize)',
);
export const mapSetInitialValue = fn<[bigint, Uint8Array, number], number>(
  'int bpf_map__set_initial_value(void *map, const void *data, size_t size)',
);
export const mapFd = fn<[bigint], number>('int bpf_map__fd(void *map)');

export const progName = fn<[bigint], string>('const char *bpf_program__name(void *prog)');
export const progSection = fn<[bigint], string>('const char *bpf_program__section_name(void *prog)');
export const progType = fn<[bigint], number>('int bpf_program__type(void *prog)');
export const progExpectedAttachType = fn<[bigint], number>(
  'int bpf_program__expected_attach_type(void *prog)',
);
export const progAutoload = fn<[bigint], boolean>('bool bpf_program__autoload(void *prog)');
export const progSetAutoload = fn<[bigint, boolean], number>(
  'int bpf_program__set_autoload(void *prog, bool autoload)',
);
export const progFd = fn<[bigint], number>('int bpf_program__fd(void *prog)');

export const btfFindByNameKind = fn<[bigint, string, number], number>(
  'int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)',
);
export const btfTypeById = fn<[bigint, number], Ptr>('const void *btf__type_by_id(void *btf, uint32_t id)');
export const btfNameByOffset = fn<[bigint, number], string | null>(
  'const char *btf__name_by_offset(void *btf, uint32_t off)',
);
export const btfResolveType = fn<[bigint, number], number>('int btf__resolve_type(void *btf, uint32_t id)');

export const objGetInfoByFd = fn<[number, Uint8Array, Uint32Array], number>(
  'int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)',
);
export const objPin = fn<[number, string], number>('int bpf_obj_pin(int fd, const char *path)');
export const objGet = fn<[string], number>('int bpf_obj_get(const char *path)');
export const progGetFdById = fn<[number], number>('int bpf_prog_get_fd_by_id(uint32_t id)');
export const linkGetFdById = fn<[number], number>('int bpf_link_get_fd_by_id(uint32_t id)');
export const linkCreate = fn<[number, number, number, Uint8Array | null], number>(
  'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)',
);
export const linkUpdate = fn<[number, number, Uint8Array | null], number>(
  'int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)',
);
export const linkDetach = fn<[number], number>('int bpf_link_detach(int link_fd)');
export const progQuery = fn<[number, number, number, Uint32Array, Uint32Array, Uint32Array], number>(
  'int bpf_prog_query(int target_fd, int type, uint32_t query_flags, _Out_ uint32_t *attach_flags, uint32_t *prog_ids, _Inout_ uint32_t *prog_cnt)',
);

export const tcHookCreate = fn<[Uint8Array], number>('int bpf_tc_hook_create(void *hook)');
export const tcHookDestroyRaw = fn<[Uint8Array], number>('int bpf_tc_hook_destroy(void *hook)');
export const tcAttachRaw = fn<[Uint8Array, Uint8Array], number>(
  'int bpf_tc_attach(const void *hook, void *opts)',
);
export const tcDetachRaw = fn<[Uint8Array, Uint8Array], number>(
  'int bpf_tc_detach(const void *hook, const void *opts)',
);
export const tcQueryRaw = fn<[Uint8Array, Uint8Array], number>(
  'int bpf_tc_query(const void *hook, void *opts)',
);
export const xdpQueryRaw = fn<[number, number, Uint8Array], number>(
  'int bpf_xdp_query(int ifindex, int flags, void *opts)',
);

/** Throws the BpfError for a libbpf call that returned `-errno`; returns non-negative results unchanged. */
export function checked(ret: number, op: string, syscall: string, target?: string): number {
  if (ret >= 0) return ret;
  throw errnoError(-ret, target === undefined ? { op, syscall } : { op, syscall, target });
}

/** Throws the BpfError for a libbpf call that returned NULL and set errno; returns the pointer. */
export function checkedPtr(ptr: Ptr, op: string, syscall: string, target?: string): bigint {
  if (ptr !== null) return ptr;
  const errno = koffi.errno() || 22;
  throw errnoError(errno, target === undefined ? { op, syscall } : { op, syscall, target });
}

/** The calling thread's errno (valid right after a failed call). */
export function lastErrno(): number {
  return koffi.errno();
}

/** Copies `len` bytes of libbpf-owned memory at `ptr`. */
export function readMemory(ptr: bigint, len: number): Uint8Array {
  return new Uint8Array(koffi.view(ptr, len)).slice();
}

/** The address of a buffer's first byte, for pointer fields inside option structs. */
export function addressOf(buf: Uint8Array): bigint {
  void buf.buffer; // moves a small on-heap typed array off-heap, so the address stays put
  return koffi.address(buf) + BigInt(buf.byteOffset);
}
