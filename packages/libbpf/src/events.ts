// The kernel-facing half of the event readers (the ring buffer and perf buffer readers live in
// @datapath/bpf-maps): shared memory of a ring, readiness of its fd on the event loop, and the perf
// events a BPF_MAP_TYPE_PERF_EVENT_ARRAY writes into.
import { BpfError, errnoError } from './errors.js';
import {
  nativePoll,
  type SysMapping,
  sysDup,
  sysMmap,
  sysMunmap,
  sysPageSize,
  sysPerfEventOpen,
} from './sys/events.js';
import { pinnedAlloc } from './sys/libc.js';

let pageSizeCache = 0;

/**
 * The system page size in bytes (the unit of ring buffer and perf buffer mappings).
 *
 * @example
 * ```ts
 * import { pageSize } from '@datapath/libbpf';
 * console.log(pageSize()); // 4096
 * ```
 */
export function pageSize(): number {
  if (pageSizeCache === 0) pageSizeCache = sysPageSize();
  return pageSizeCache;
}

/** A shared memory mapping of a BPF ring buffer or perf event fd. */
export interface Mapping {
  /** The mapped bytes. Never touch it (or a view of it) after {@link Mapping.close}. */
  readonly buffer: ArrayBuffer;
  /** Unmaps the memory (idempotent). */
  close(): void;
}

/** Options of {@link mmapFd}. */
export interface MmapOptions {
  /** Offset in the file, a multiple of the page size. */
  offset: number;
  /** Length in bytes, a positive multiple of the page size. */
  length: number;
  /** Map read-write (default read-only). */
  writable?: boolean;
}

/**
 * Maps `length` bytes of `fd` at `offset` into this process (`mmap(MAP_SHARED)`).
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad fd, offset or length (before any syscall);
 * `PermissionDenied` when the kernel refuses the protection (a ring buffer's data pages are read-only);
 * `BadFd`, `OutOfMemory`.
 * @example Mapping a ring buffer's consumer page
 * ```ts
 * import { mmapFd, pageSize } from '@datapath/libbpf';
 * declare const ringFd: number;
 * const consumer = mmapFd(ringFd, { offset: 0, length: pageSize(), writable: true });
 * consumer.close();
 * ```
 */
export function mmapFd(fd: number, options: MmapOptions): Mapping {
  const op = 'mmapFd';
  const page = pageSize();
  const { offset, length } = options;
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('InvalidArgument', `${op}: fd must be a non-negative integer, got ${fd}`, { op });
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % page !== 0)
    throw new BpfError('InvalidArgument', `${op}: offset must be a multiple of ${page}, got ${offset}`, {
      op,
    });
  if (!Number.isSafeInteger(length) || length <= 0 || length % page !== 0)
    throw new BpfError(
      'InvalidArgument',
      `${op}: length must be a positive multiple of ${page}, got ${length}`,
      {
        op,
      },
    );
  const r = sysMmap(fd, offset, length, options.writable ?? false);
  if (typeof r === 'number') throw errnoError(-r, { op, syscall: 'mmap', target: `fd ${fd}` });
  let m: SysMapping | undefined = r;
  return {
    buffer: r.buffer,
    close() {
      if (m === undefined) return;
      sysMunmap(m);
      m = undefined;
    },
  };
}

/**
 * Duplicates `fd` (close-on-exec): the copy keeps the kernel object alive after the original is closed.
 *
 * @throws {@link BpfError} `BadFd` when `fd` is not open, `InvalidArgument` for a non-integer.
 * @example
 * ```ts
 * import { fdDup, fdClose } from '@datapath/libbpf';
 * declare const fd: number;
 * const mine = fdDup(fd);
 * fdClose(mine);
 * ```
 */
export function fdDup(fd: number): number {
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('InvalidArgument', `fdDup: fd must be a non-negative integer, got ${fd}`, {
      op: 'fdDup',
    });
  const r = sysDup(fd);
  if (r < 0) throw errnoError(-r, { op: 'fdDup', syscall: 'fcntl(F_DUPFD_CLOEXEC)', target: `fd ${fd}` });
  return r;
}

/** How an {@link FdWatcher} learns that its fd is readable. */
export type FdWatchMode = 'epoll' | 'timer';

/** Options of {@link watchFd}. */
export interface WatchFdOptions {
  /**
   * Period of the timer used when the native addon is missing for this Node (default 10 ms); see
   * {@link watchFd}. Ignored in `epoll` mode.
   */
  fallbackIntervalMs?: number;
}

/** Calls back on the event loop when a fd is readable; see {@link watchFd}. */
export interface FdWatcher {
  /** `epoll`: a libuv poll handle on the fd; `timer`: the documented fallback. */
  readonly mode: FdWatchMode;
  /** Starts watching (idempotent). While started, a readable fd calls back once per loop iteration. */
  start(): void;
  /** Stops watching (idempotent); the watcher can be started again. */
  stop(): void;
  /** Whether an active watcher keeps the process alive (default true). */
  ref(keepAlive: boolean): void;
  /** Releases the watcher (idempotent). The fd is not closed. */
  close(): void;
}

/**
 * Watches `fd` for readability from Node's event loop and calls `onReadable` on the loop thread.
 *
 * With the package's native addon (built per Node ABI into `prebuilds/`) this is a libuv poll handle
 * (`uv_poll_t`): the fd joins the loop's own `epoll` set, so an idle watcher costs nothing and a ready
 * one calls back in the same loop iteration. Level-triggered: stop the watcher while you do not drain.
 * An error pending on the fd (`POLLERR`, e.g. a socket's `ENOBUFS` after its receive queue overflowed)
 * calls `onReadable` too: the read that follows reports it.
 *
 * **Fallback** (mode `timer`, when the addon is missing for the running Node, or with
 * `DATAPATH_BPF_BACKEND=koffi`): a `setInterval` every `fallbackIntervalMs` (10 ms) calls `onReadable`
 * unconditionally while started; callers check their ring's positions in shared memory (no syscall),
 * so an idle reader costs one timer tick, never a blocked or spinning main thread. Latency is up to one
 * period. `onReadable` must not throw.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad fd (before any syscall), `BadFd` when the fd is
 * not open (epoll mode).
 * @example Waking up when a ring buffer has records
 * ```ts
 * import { watchFd } from '@datapath/libbpf';
 * declare const ringFd: number;
 * const w = watchFd(ringFd, () => console.log('records waiting'));
 * w.start();
 * w.close();
 * ```
 */
export function watchFd(fd: number, onReadable: () => void, options: WatchFdOptions = {}): FdWatcher {
  const op = 'watchFd';
  if (!Number.isInteger(fd) || fd < 0)
    throw new BpfError('InvalidArgument', `${op}: fd must be a non-negative integer, got ${fd}`, { op });
  const period = options.fallbackIntervalMs ?? 10;
  if (!(period > 0))
    throw new BpfError('InvalidArgument', `${op}: fallbackIntervalMs must be positive, got ${period}`, {
      op,
    });
  const np = nativePoll;
  if (np !== undefined) {
    let open = true;
    let started = false;
    const id = np.pollOpen(fd, (status) => {
      onReadable();
      // libuv stops a poll handle after POLLERR (status UV_EBADF): re-arm it, unless the callback
      // stopped or closed the watcher; reading the fd consumed (or will report) the error.
      if (status < 0 && open && started) np.pollStart(id);
    });
    if (id < 0) throw errnoError(-id, { op, syscall: 'uv_poll_init', target: `fd ${fd}` });
    return {
      mode: 'epoll',
      start() {
        if (!open) return;
        const r = np.pollStart(id);
        if (r < 0) throw errnoError(-r, { op, syscall: 'uv_poll_start', target: `fd ${fd}` });
        started = true;
      },
      stop() {
        started = false;
        if (open) np.pollStop(id);
      },
      ref(keepAlive) {
        if (open) np.pollRef(id, keepAlive);
      },
      close() {
        if (!open) return;
        open = false;
        np.pollClose(id);
      },
    };
  }
  let timer: NodeJS.Timeout | undefined;
  let keep = true;
  let open = true;
  return {
    mode: 'timer',
    start() {
      if (!open || timer !== undefined) return;
      timer = setInterval(onReadable, period);
      if (!keep) timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
    ref(keepAlive) {
      keep = keepAlive;
      if (timer !== undefined) keepAlive ? timer.ref() : timer.unref();
    },
    close() {
      open = false;
      this.stop();
    },
  };
}

/** Options of {@link perfEventOpenBpfOutput}. */
export interface PerfOutputOptions {
  /**
   * Wake the reader once this many bytes are waiting (the `watermark` mode). Default 1: on any record.
   * Mutually exclusive with `wakeupEvents`.
   */
  watermarkBytes?: number;
  /** Wake the reader every N samples instead of by bytes. */
  wakeupEvents?: number;
}

const PERF_TYPE_SOFTWARE = 1;
const PERF_COUNT_SW_BPF_OUTPUT = 10;
const PERF_SAMPLE_RAW = 1 << 10;
const ATTR_SIZE = 128;
const attr = pinnedAlloc(ATTR_SIZE);

/**
 * Opens the perf event a `BPF_MAP_TYPE_PERF_EVENT_ARRAY` slot needs on `cpu`:
 * `perf_event_open({PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, sample_type PERF_SAMPLE_RAW}, -1, cpu)`.
 * Returns its fd (close-on-exec), enabled. Store it at index `cpu` of the array and mmap it.
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad CPU or wake-up option (before any syscall),
 * `NotFound` for an offline CPU (`ENODEV`), `PermissionDenied` without CAP_PERFMON.
 * @example
 * ```ts
 * import { fdClose, perfEventOpenBpfOutput } from '@datapath/libbpf';
 * const fd = perfEventOpenBpfOutput(0);
 * fdClose(fd);
 * ```
 */
export function perfEventOpenBpfOutput(cpu: number, options: PerfOutputOptions = {}): number {
  const op = 'perfEventOpenBpfOutput';
  if (!Number.isInteger(cpu) || cpu < 0)
    throw new BpfError('InvalidArgument', `${op}: cpu must be a non-negative integer, got ${cpu}`, { op });
  if (options.watermarkBytes !== undefined && options.wakeupEvents !== undefined)
    throw new BpfError('InvalidArgument', `${op}: watermarkBytes and wakeupEvents are exclusive`, { op });
  const wake = options.wakeupEvents ?? options.watermarkBytes ?? 1;
  if (!Number.isInteger(wake) || wake < 1 || wake > 0xffffffff)
    throw new BpfError(
      'InvalidArgument',
      `${op}: wake-up threshold must be a positive integer, got ${wake}`,
      {
        op,
      },
    );
  const v = attr.view;
  attr.bytes.fill(0);
  v.setUint32(0, PERF_TYPE_SOFTWARE, true); // type
  v.setUint32(4, ATTR_SIZE, true); // size
  v.setBigUint64(8, BigInt(PERF_COUNT_SW_BPF_OUTPUT), true); // config
  v.setBigUint64(16, 1n, true); // sample_period
  v.setBigUint64(24, BigInt(PERF_SAMPLE_RAW), true); // sample_type
  // flags @40: bit 14 watermark (wake-up by bytes rather than by events)
  v.setUint32(40, options.wakeupEvents === undefined ? 1 << 14 : 0, true);
  v.setUint32(48, wake, true); // wakeup_events / wakeup_watermark
  const fd = sysPerfEventOpen(attr.addr, -1, cpu, -1);
  if (fd < 0) throw errnoError(-fd, { op, syscall: 'perf_event_open', target: `cpu ${cpu}` });
  return fd;
}
