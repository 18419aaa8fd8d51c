// koffi bindings to libbpf.so.1 (Debian libbpf1 1.1.x) and the few libc helpers the object/link code needs.
// Raw pointers never leave this file's callers inside the package: every opaque pointer is a bigint, NULL is null.
// Struct layouts are the x86_64 ones of libbpf 1.1.2 headers (checked with offsetof()).
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { BpfError, errnoError, SETNS_PRIVILEGE } from '../errors.js';

/** An opaque libbpf pointer (`struct bpf_object *`, `struct bpf_map *`, …); null is NULL. */
export type Ptr = bigint | null;

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

type Fn<A extends unknown[], R> = (...args: A) => R;
const fn = <A extends unknown[], R>(decl: string): Fn<A, R> => lib.func(decl) as Fn<A, R>;

export const objectOpenMem = fn<[Uint8Array, number, Uint8Array | null], Ptr>(
  'void *bpf_object__open_mem(const void *buf, size_t sz, const void *opts)',
);
export const objectLoad = fn<[bigint], number>('int bpf_object__load(void *obj)');
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

const ifNameToIndexFn = libc.func('unsigned int if_nametoindex(const char *name)') as Fn<[string], number>;
const ifIndexToNameFn = libc.func('char *if_indextoname(unsigned int ifindex, _Out_ uint8_t *name)') as Fn<
  [number, Uint8Array],
  Ptr
>;
const closeFn = libc.func('int close(int fd)') as Fn<[number], number>;

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

/** if_nametoindex(3) in the calling thread's network namespace; 0 when there is no such device. */
export function ifNameToIndex(name: string): number {
  return ifNameToIndexFn(name);
}

/** if_indextoname(3) in the calling thread's network namespace; undefined when there is no such device. */
export function ifIndexToName(index: number): string | undefined {
  const buf = new Uint8Array(16);
  if (ifIndexToNameFn(index, buf) === null) return undefined;
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? 16 : end));
}

/** close(2) of a descriptor libbpf or the kernel handed out. */
export function closeDescriptor(fd: number, op: string): void {
  if (closeFn(fd) < 0) throw errnoError(koffi.errno(), { op, syscall: 'close' });
}

// libbpf's own log lines: kept in a small ring so errors can quote them, never printed.
const LOG_LINES = 64;
const logRing: string[] = [];
const vsnprintf = libc.func(
  'int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)',
) as Fn<[Uint8Array, number, string, unknown], number>;
const PrintFn = koffi.proto('int libbpf_print_fn_t(int level, const char *fmt, void *ap)');
const setPrint = fn<[unknown], unknown>('void *libbpf_set_print(libbpf_print_fn_t *fn)');
const scratch = new Uint8Array(4096);
setPrint(
  koffi.register((_level: number, fmt: string, ap: unknown) => {
    const n = vsnprintf(scratch, scratch.length, fmt, ap);
    const text = new TextDecoder().decode(scratch.subarray(0, Math.min(Math.max(n, 0), scratch.length - 1)));
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      logRing.push(line.replace(/^libbpf: /, ''));
      if (logRing.length > LOG_LINES) logRing.shift();
    }
    return 0;
  }, koffi.pointer(PrintFn)),
);

/** Marks the current end of libbpf's log; pass it to {@link libbpfLogSince}. */
export function libbpfLogMark(): number {
  logRing.push('\u0000mark');
  if (logRing.length > LOG_LINES) logRing.shift();
  return logRing.length;
}

/** libbpf's log lines written since the last {@link libbpfLogMark} (at most 64). */
export function libbpfLogSince(): string[] {
  const at = logRing.lastIndexOf('\u0000mark');
  return logRing.slice(at + 1).filter((l) => l !== '\u0000mark');
}

// rtnetlink, only for listing tc filters (libbpf 1.1 can query a filter only by handle and priority).
const socketFn = libc.func('int socket(int domain, int type, int protocol)') as Fn<
  [number, number, number],
  number
>;
const sendFn = libc.func('long send(int fd, const void *buf, size_t len, int flags)') as Fn<
  [number, Uint8Array, number, number],
  number
>;
const recvFn = libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)') as Fn<
  [number, Uint8Array, number, number],
  number
>;
const AF_NETLINK = 16;
const NETLINK_PRIVILEGE = 'CAP_NET_ADMIN, or root';
const SOCK_RAW_CLOEXEC = 3 | 0x80000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;

/**
 * Sends one rtnetlink dump request (a complete nlmsghdr + payload) and returns every reply message
 * (header included) until NLMSG_DONE. A kernel error reply throws the matching BpfError.
 */
export function rtnetlinkDump(request: Uint8Array, op: string, target: string): Uint8Array[] {
  const fd = socketFn(AF_NETLINK, SOCK_RAW_CLOEXEC, 0);
  if (fd < 0)
    throw errnoError(koffi.errno(), {
      op,
      syscall: 'socket(AF_NETLINK)',
      target,
      privilege: NETLINK_PRIVILEGE,
    });
  try {
    if (sendFn(fd, request, request.byteLength, 0) < 0)
      throw errnoError(koffi.errno(), { op, syscall: 'send(netlink)', target, privilege: NETLINK_PRIVILEGE });
    const out: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = recvFn(fd, buf, buf.byteLength, 0);
      if (n < 0)
        throw errnoError(koffi.errno(), {
          op,
          syscall: 'recv(netlink)',
          target,
          privilege: NETLINK_PRIVILEGE,
        });
      const view = new DataView(buf.buffer, 0, n);
      for (let at = 0; at + 16 <= n; ) {
        const len = view.getUint32(at, true);
        const type = view.getUint16(at + 4, true);
        if (len < 16 || at + len > n) return out;
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const err = -view.getInt32(at + 16, true);
          if (err === 0) return out;
          throw errnoError(err, { op, syscall: 'netlink', target, privilege: NETLINK_PRIVILEGE });
        }
        out.push(buf.slice(at, at + len));
        at += (len + 3) & ~3;
      }
    }
  } finally {
    closeFn(fd);
  }
}

// Network namespace switching for the calling thread (the JS thread): only around synchronous calls.
const setnsFn = libc.func('int setns(int fd, int nstype)') as Fn<[number, number], number>;
const CLONE_NEWNET = 0x40000000;

/**
 * Runs `fn` with the calling thread in the network namespace at `path` (an nsfs file such as
 * `/run/netns/X`), then moves it back, even when `fn` throws. `fn` must be synchronous: no other JS runs on
 * this thread meanwhile, so nothing else observes the switch.
 */
export function inNetnsSync<T>(path: string, fn: () => T, op: string): T {
  const openNs = (p: string): number => {
    try {
      return openSync(p, 'r');
    } catch (err) {
      throw errnoError(
        (err as NodeJS.ErrnoException).errno === undefined
          ? 2
          : -((err as NodeJS.ErrnoException).errno as number),
        { op, syscall: 'open(netns)', target: p, privilege: SETNS_PRIVILEGE },
      );
    }
  };
  const home = openNs('/proc/thread-self/ns/net');
  let target: number | undefined;
  try {
    target = openNs(path);
    if (setnsFn(target, CLONE_NEWNET) < 0)
      throw errnoError(koffi.errno(), { op, syscall: 'setns', target: path, privilege: SETNS_PRIVILEGE });
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      const value = fn();
      outcome =
        value instanceof Promise
          ? {
              ok: false,
              error: new BpfError(
                'InvalidArgument',
                `${op}: the function run in a namespace must be synchronous`,
                {
                  op,
                },
              ),
            }
          : { ok: true, value };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (setnsFn(home, CLONE_NEWNET) < 0) {
      // Staying in the wrong namespace would silently misdirect every later call: fail loudly.
      throw errnoError(koffi.errno(), {
        op,
        syscall: 'setns (restore)',
        target: '/proc/thread-self/ns/net',
        privilege: SETNS_PRIVILEGE,
      });
    }
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(home);
  }
}
