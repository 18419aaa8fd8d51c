import koffi from 'koffi';
import { errnoError } from '../errors.js';

// x86_64 syscall number for bpf(2).
const SYS_bpf = 321;

const libc = koffi.load('libc.so.6');
// bpf(2) through syscall(): declared non-variadic (the x86_64 ABI passes these integer arguments the same way),
// which lets koffi take its fast path.
const syscallBpf = libc.func('long syscall(long nr, int cmd, void *attr, unsigned int size)') as (
  nr: number,
  cmd: number,
  attr: Uint8Array,
  size: number,
) => number;
const closeFn = libc.func('int close(int fd)') as (fd: number) => number;

/** Calls bpf(2) with `attr`; returns the non-negative result or throws a BpfError built from errno. */
export function bpf(cmd: number, attr: Uint8Array, op: string, syscall: string, target?: string): number {
  const r = syscallBpf(SYS_bpf, cmd, attr, attr.byteLength);
  if (r < 0) {
    throw errnoError(koffi.errno(), target === undefined ? { op, syscall } : { op, syscall, target });
  }
  return r;
}

/** close(2); errors are reported as BpfError. */
export function closeFd(fd: number, op: string): void {
  if (closeFn(fd) < 0) throw errnoError(koffi.errno(), { op, syscall: 'close' });
}

/** The address of a buffer's first byte, for pointer fields inside bpf_attr. Never leaves the package. */
export function addressOf(buf: Uint8Array): bigint {
  // Touching .buffer makes V8 move a small on-heap typed array off-heap, so its address stays put.
  void buf.buffer;
  return koffi.address(buf) + BigInt(buf.byteOffset);
}
