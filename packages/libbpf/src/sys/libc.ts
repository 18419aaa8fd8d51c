import { close as fsClose } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import koffi from 'koffi';
import { BpfError, errnoError } from '../errors.js';

// x86_64 syscall number for bpf(2).
const SYS_bpf = 321;

/** libc.so.6, for this package's other sys modules (log ring, rtnetlink dump). */
export const libc = koffi.load('libc.so.6');
// bpf(2) through syscall(): declared non-variadic (the x86_64 ABI passes these integer arguments the same way),
// which lets koffi take its fast path. The attr is passed as an address (a plain number): cheaper than
// letting koffi resolve a typed array on every call, and every attr lives in memory that never moves.
const syscallBpf = libc.func('long syscall(long nr, int cmd, uintptr_t attr, unsigned int size)') as (
  nr: number,
  cmd: number,
  attr: number,
  size: number,
) => number;
const closeFn = libc.func('int close(int fd)') as (fd: number) => number;
const mmapFn = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as (
  addr: null,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => unknown;
const munmapFn = libc.func('int munmap(void *addr, size_t len)') as (addr: unknown, len: number) => number;

/** A shared read-write mapping of a BPF map's memory (an mmap-able array's values). */
export interface SharedMapping {
  /** The mapped bytes, live: the kernel's and the programs' view of the same memory. */
  readonly bytes: Uint8Array;
  /** Unmaps it; `bytes` must not be touched afterwards. */
  unmap(): void;
}

/**
 * mmap(2)s `len` bytes of the map `fd` shared and read-write (`BPF_F_MMAPABLE` arrays); returns the
 * mapping, or `-errno`.
 */
export function sysMmapShared(fd: number, len: number): SharedMapping | number {
  const PROT_READ_WRITE = 3;
  const MAP_SHARED = 1;
  const size = (len + 4095) & ~4095;
  const ptr = mmapFn(null, size, PROT_READ_WRITE, MAP_SHARED, fd, 0);
  if (ptr === null || ptr === -1n || ptr === 0xffffffffffffffffn) return -koffi.errno();
  let live = true;
  return {
    bytes: new Uint8Array(koffi.view(ptr, len)),
    unmap() {
      if (!live) return;
      live = false;
      munmapFn(ptr, size);
    },
  };
}

/** Which implementation carries the package's bpf(2) calls; see {@link bpfBackend}. */
export type BpfBackend = 'native' | 'koffi';

type NativeBpf = (op: number, addr: number) => number;

/** @internal The addon's exports (native/bpf.cc and native/poll.cc). */
export interface NativeAddon {
  bpf: NativeBpf;
  bpfAsync?(op: number, addr: number, nsFd: number, callback: (result: number) => void): number;
  pollOpen(fd: number, callback: (status: number, events: number) => void): number;
  pollStart(id: number): number;
  pollStop(id: number): number;
  pollClose(id: number): number;
  pollRef(id: number, ref: boolean): number;
}

/**
 * The native addon (native/bpf.cc + poll.cc, built per Node module ABI into prebuilds/), or undefined
 * when it was not built for this Node or platform, or DATAPATH_BPF_BACKEND=koffi asks for koffi.
 * DATAPATH_BPF_BACKEND=native makes a missing backend an error instead.
 */
function loadNative(): NativeAddon | undefined {
  const want = process.env.DATAPATH_BPF_BACKEND;
  if (want === 'koffi') return undefined;
  const file = `bpf.abi${process.versions.modules}.node`;
  try {
    const req = createRequire(import.meta.url);
    const root = dirname(req.resolve('@datapath/libbpf/package.json'));
    const mod = req(
      join(root, 'prebuilds', `${process.platform}-${process.arch}`, file),
    ) as Partial<NativeAddon>;
    if (typeof mod.bpf !== 'function') throw new Error(`${file} has no bpf() export`);
    return mod as NativeAddon;
  } catch (e) {
    if (want !== 'native') return undefined;
    throw new BpfError(
      'NotSupported',
      `DATAPATH_BPF_BACKEND=native, but the native bpf(2) backend (${file}) does not load: ${(e as Error).message}`,
      { op: 'loadNative', cause: e },
    );
  }
}

/** @internal The loaded addon, or undefined (koffi fallback). */
export const nativeAddon = loadNative();

const nativeBpf = nativeAddon?.bpf;

/**
 * Calls bpf(2) with the attr at `addr`; returns the non-negative result, or `-errno` on failure.
 * The native backend where it loads, koffi otherwise (the same syscall; koffi's per-call overhead is larger: BENCHMARKS.md).
 */
const rawBpf: (cmd: number, addr: number, size: number) => number =
  nativeBpf === undefined
    ? (cmd, addr, size) => {
        const r = syscallBpf(SYS_bpf, cmd, addr, size);
        return r < 0 ? -koffi.errno() : r;
      }
    : (cmd, addr, size) => nativeBpf(cmd | (size << 8), addr);

/**
 * Which implementation carries bpf(2) calls in this process: `native` (the package's own addon, built
 * for this Node by the package build) or `koffi` (the fallback, and the FFI for libbpf.so itself).
 *
 * Set `DATAPATH_BPF_BACKEND=koffi` to force the fallback, `=native` to fail when the addon is missing.
 *
 * @example Reporting the backend
 * ```ts
 * import { bpfBackend } from '@datapath/libbpf';
 * console.log(`bpf(2) through ${bpfBackend()}`);
 * ```
 */
export function bpfBackend(): BpfBackend {
  return nativeBpf === undefined ? 'koffi' : 'native';
}

/**
 * Memory the kernel may read or write during a bpf(2) call: a typed array over an ArrayBuffer of its
 * own (V8 never moves an ArrayBuffer's backing store) plus its address. The address never leaves
 * `@datapath/libbpf`; callers only ever see the bytes.
 */
export interface Pinned {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly addr: number;
}

/** Allocates zeroed, address-stable memory of `size` bytes (at least 8, 8-aligned). */
export function pinnedAlloc(size: number): Pinned {
  const ab = new ArrayBuffer(Math.max(8, (size + 7) & ~7));
  const bytes = new Uint8Array(ab, 0, size);
  return { bytes, view: new DataView(ab), addr: Number(koffi.address(bytes)) };
}

/**
 * Calls bpf(2) with the attr at `attr`; returns the non-negative result, or `-errno` on failure.
 * Never throws: the caller maps the errno with `errnoError` (the only place errno is interpreted).
 */
export function sysBpf(cmd: number, attr: Pinned, size: number): number {
  return rawBpf(cmd, attr.addr, size);
}

/**
 * {@link sysBpf} on libuv's threadpool (the native addon): resolves with the result or `-errno`, never rejects
 * for a kernel error. The attr, and all memory it points to, belongs to the kernel until the promise settles.
 * Without the addon the call runs on this thread.
 */
export function sysBpfAsync(cmd: number, attr: Pinned, size: number): Promise<number> {
  const call = nativeAddon?.bpfAsync;
  if (call === undefined) return Promise.resolve(rawBpf(cmd, attr.addr, size));
  return new Promise((resolve) => {
    // `attr` stays referenced by this closure until the pool thread is done with it.
    const queued = call(cmd | (size << 8), attr.addr, -1, (r) => {
      void attr;
      resolve(r);
    });
    if (queued < 0) resolve(queued);
  });
}

/** close(2); returns 0 or `-errno`. */
export function sysClose(fd: number): number {
  return closeFn(fd) < 0 ? -koffi.errno() : 0;
}

/** The address of a caller-owned buffer's first byte, for the legacy one-shot calls. */
export function addressOf(buf: Uint8Array): number {
  // Touching .buffer makes V8 move a small on-heap typed array off-heap, so its address stays put.
  void buf.buffer;
  return Number(koffi.address(buf)) + buf.byteOffset;
}

const legacyAttr = pinnedAlloc(256);

/**
 * Calls bpf(2) with a caller-built attr (copied in, and back out so kernel writes are visible); returns
 * the non-negative result or throws the mapped BpfError. Kept for raw commands built elsewhere in the package.
 */
export function bpf(cmd: number, attr: Uint8Array, op: string, syscall: string, target?: string): number {
  if (attr.byteLength > 256) throw errnoError(7, { op, syscall });
  legacyAttr.bytes.fill(0);
  legacyAttr.bytes.set(attr);
  const r = rawBpf(cmd, legacyAttr.addr, attr.byteLength);
  attr.set(legacyAttr.bytes.subarray(0, attr.byteLength));
  if (r < 0) throw errnoError(-r, target === undefined ? { op, syscall } : { op, syscall, target });
  return r;
}

/**
 * {@link bpf} on libuv's threadpool (the native addon): the event loop goes on while a pool thread waits
 * in the kernel. The attr is copied into memory of its own that stays alive until the call returns, and
 * the kernel's writes are copied back into `attr`. With `nsFd` (an open network namespace) the pool
 * thread makes the call inside that namespace. Without the addon the call runs on this thread.
 */
export function bpfAsync(
  cmd: number,
  attr: Uint8Array,
  op: string,
  syscall: string,
  target?: string,
  nsFd = -1,
): Promise<number> {
  const addon = nativeAddon;
  if (addon?.bpfAsync === undefined) {
    if (nsFd >= 0)
      return Promise.reject(
        new BpfError('NotSupported', `${op}: a call inside another namespace needs the native addon`, { op }),
      );
    try {
      return Promise.resolve(bpf(cmd, attr, op, syscall, target));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const mem = pinnedAlloc(attr.byteLength);
  mem.bytes.set(attr);
  const fail = (errno: number) =>
    errnoError(errno, target === undefined ? { op, syscall } : { op, syscall, target });
  return new Promise((resolve, reject) => {
    const queued = addon.bpfAsync?.(cmd | (attr.byteLength << 8), mem.addr, nsFd, (r) => {
      attr.set(mem.bytes); // `mem` is referenced here until the kernel is done with it
      if (r < 0) reject(fail(-r));
      else resolve(r);
    });
    if (queued !== undefined && queued < 0) reject(fail(-queued));
  });
}

/** close(2) on libuv's threadpool (closing the last fd of a tcx link waits for an RCU grace period). */
export function closeAsync(fd: number, op: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fsClose(fd, (err) => {
      if (err === null) resolve();
      else reject(errnoError(-(err.errno ?? -5), { op, syscall: 'close', target: `fd ${fd}` }));
    });
  });
}

const ifNameToIndexFn = libc.func('unsigned int if_nametoindex(const char *name)') as (
  name: string,
) => number;
const ifIndexToNameFn = libc.func('char *if_indextoname(unsigned int ifindex, _Out_ uint8_t *name)') as (
  ifindex: number,
  name: Uint8Array,
) => bigint | null;

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
