// Kernel entry for the event readers: mmap/munmap of ring memory, fd duplication, perf_event_open(2)
// page size, and fd readiness (the native addon's libuv poll handles). Every call returns
// a non-negative result or `-errno`; events.ts maps errno (through errnoError) and owns the semantics.
import koffi from 'koffi';
import { nativeAddon } from './libc.js';

const libc = koffi.load('libc.so.6');
const mmapFn = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as (
  addr: null,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => bigint;
const munmapFn = libc.func('int munmap(void *addr, size_t len)') as (addr: bigint, len: number) => number;
const fcntlInt = libc.func('int fcntl(int fd, int cmd, int arg)') as (
  fd: number,
  cmd: number,
  arg: number,
) => number;
const syscall5 = libc.func('long syscall(long nr, uintptr_t a, long b, long c, long d, unsigned long e)') as (
  nr: number,
  a: number,
  b: number,
  c: number,
  d: number,
  e: number,
) => number;
const sysconfFn = libc.func('long sysconf(int name)') as (name: number) => number;

const SYS_perf_event_open = 298; // x86_64
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const F_DUPFD_CLOEXEC = 1030;
const PERF_FLAG_FD_CLOEXEC = 8;
const MAP_FAILED = (1n << 64n) - 1n;

/** @internal A mapping made by {@link sysMmap}: its bytes and what munmap needs. */
export interface SysMapping {
  readonly buffer: ArrayBuffer;
  readonly addr: bigint;
  readonly length: number;
}

/** mmap(2) of `length` bytes of `fd` at `offset`, shared; a mapping, or `-errno`. */
export function sysMmap(fd: number, offset: number, length: number, writable: boolean): SysMapping | number {
  const addr = mmapFn(null, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, offset);
  if (addr === MAP_FAILED) return -koffi.errno();
  return { buffer: koffi.view(addr, length) as ArrayBuffer, addr, length };
}

/** munmap(2); 0 or `-errno`. The mapping's buffer must never be touched again. */
export function sysMunmap(m: SysMapping): number {
  return munmapFn(m.addr, m.length) < 0 ? -koffi.errno() : 0;
}

/** fcntl(F_DUPFD_CLOEXEC): a new fd (≥ 3) for the same file, or `-errno`. */
export function sysDup(fd: number): number {
  const r = fcntlInt(fd, F_DUPFD_CLOEXEC, 3);
  return r < 0 ? -koffi.errno() : r;
}

/** perf_event_open(2) with a prepared attr (address-stable memory), CLOEXEC; a fd or `-errno`. */
export function sysPerfEventOpen(attrAddr: number, pid: number, cpu: number, groupFd: number): number {
  const r = syscall5(SYS_perf_event_open, attrAddr, pid, cpu, groupFd, PERF_FLAG_FD_CLOEXEC);
  return r < 0 ? -koffi.errno() : r;
}

/** The system page size. */
export function sysPageSize(): number {
  return sysconfFn(30 /* _SC_PAGESIZE */);
}

/** @internal The addon's poll functions, or undefined when the addon (or this part of it) is missing. */
export type NativePoll = Pick<
  NonNullable<typeof nativeAddon>,
  'pollOpen' | 'pollStart' | 'pollStop' | 'pollClose' | 'pollRef'
>;

/** The native readiness watcher (a libuv poll handle per fd), or undefined. */
export const nativePoll: NativePoll | undefined =
  typeof nativeAddon?.pollOpen === 'function' ? nativeAddon : undefined;
