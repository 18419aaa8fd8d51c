import koffi from 'koffi';
import { errnoError } from '../errors.js';

// x86_64 syscall number for bpf(2).
const SYS_bpf = 321;

const libc = koffi.load('libc.so.6');
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
  const r = syscallBpf(SYS_bpf, cmd, attr.addr, size);
  return r < 0 ? -koffi.errno() : r;
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
  const r = syscallBpf(SYS_bpf, cmd, legacyAttr.addr, attr.byteLength);
  const errno = r < 0 ? koffi.errno() : 0;
  attr.set(legacyAttr.bytes.subarray(0, attr.byteLength));
  if (r < 0) throw errnoError(errno, target === undefined ? { op, syscall } : { op, syscall, target });
  return r;
}
