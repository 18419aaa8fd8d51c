import { BpfError } from './errors.js';
import { progInfo, progTypeName } from './prog.js';
import { Cmd, TestRunAttr } from './sys/bpf-attr.js';
import { syscallError } from './sys/call.js';
import { pinnedAlloc, sysBpf } from './sys/libc.js';

/**
 * Program types the kernel can test-run (`BPF_PROG_TEST_RUN`), by `bpf_prog_type` number, with the
 * first kernel that runs them and the context struct size (0: the type takes no packet).
 */
const RUNNABLE: Readonly<Record<number, { since: string; ctx: number; packet: boolean }>> = {
  1: { since: '4.12', ctx: 192, packet: true }, // socket_filter
  3: { since: '4.12', ctx: 192, packet: true }, // sched_cls
  4: { since: '4.12', ctx: 192, packet: true }, // sched_act
  6: { since: '4.12', ctx: 24, packet: true }, // xdp
  8: { since: '4.12', ctx: 192, packet: true }, // cgroup_skb
  10: { since: '4.12', ctx: 192, packet: true }, // lwt_in
  11: { since: '4.12', ctx: 192, packet: true }, // lwt_out
  12: { since: '4.12', ctx: 192, packet: true }, // lwt_xmit
  17: { since: '5.10', ctx: 0, packet: false }, // raw_tracepoint (ctx = u64 args)
  22: { since: '5.0', ctx: 0, packet: true }, // flow_dissector (ctx = struct bpf_flow_keys)
  26: { since: '5.5', ctx: 0, packet: false }, // tracing (fentry/fexit)
  30: { since: '5.14', ctx: 0, packet: false }, // sk_lookup
  31: { since: '5.14', ctx: 0, packet: false }, // syscall
  32: { since: '6.4', ctx: 0, packet: false }, // netfilter
};

/** Context struct sizes of the packet program types: `struct __sk_buff` and `struct xdp_md` (Linux 6.x). */
export const TestRunCtxSize = {
  /** `sizeof(struct __sk_buff)`: tc, socket filter, cgroup skb and lwt programs. */
  skb: 192,
  /** `sizeof(struct xdp_md)`: XDP programs. */
  xdp: 24,
} as const;

/** `BPF_F_TEST_*` flags of {@link progTestRun}. */
export const TestRunFlags = {
  /** `BPF_F_TEST_RUN_ON_CPU`: run on the CPU named by `cpu` (raw tracepoints only). */
  runOnCpu: 1,
  /** `BPF_F_TEST_XDP_LIVE_FRAMES`: XDP frames are really transmitted (never used by this SDK's tests). */
  xdpLiveFrames: 2,
  /** `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`: the skb carries `CHECKSUM_COMPLETE` over the packet. */
  skbChecksumComplete: 4,
} as const;

/** Input of {@link progTestRun}. */
export interface ProgTestRunOptions {
  /** The packet (starting at the Ethernet header for tc and XDP programs). Required for packet program types. */
  data?: Uint8Array;
  /**
   * The context passed in (`struct __sk_buff`, `struct xdp_md`, tracepoint args …), at most the type's size.
   * An `xdp_md` must say where the packet is: `data` 0 and `data_end` the packet length.
   */
  ctx?: Uint8Array;
  /** How many times the kernel runs the program (default 1); `durationNs` is the mean per run. */
  repeat?: number;
  /** `BPF_F_TEST_*` flags ({@link TestRunFlags}). */
  flags?: number;
  /** CPU for `BPF_F_TEST_RUN_ON_CPU`. */
  cpu?: number;
  /** Room for the output packet beyond the input length (default 4096; programs can grow packets). */
  dataOutHeadroom?: number;
}

/** What one {@link progTestRun} returned. */
export interface ProgTestRunResult {
  /** The program's return value (the last run's). */
  retval: number;
  /** The packet after the program ran (empty for types without a packet). */
  data: Uint8Array;
  /** The context after the program ran (empty when none was passed and the type returns none). */
  ctx: Uint8Array;
  /** Mean time per run in nanoseconds, as the kernel measured it. */
  durationNs: number;
}

const MAX_REPEAT = 0xffffffff;
const ETH_HLEN = 14;

function bad(message: string, target: string): BpfError {
  return new BpfError('InvalidArgument', `progTestRun: ${message}`, { op: 'progTestRun', target });
}

/**
 * Runs a loaded program once (or `repeat` times) on a packet and/or context inside the kernel, without
 * attaching it anywhere, and returns its verdict, the output packet and context, and the mean run time.
 * Equivalent to: `bpftool prog run id ID data_in FILE data_out FILE repeat N`.
 *
 * @throws {@link BpfError} `NotSupported` for a program type the kernel cannot test-run (the message names
 * the type, and the minimum kernel when a newer one could); `InvalidArgument` before any system call for an
 * empty or short packet, a context larger than the type's, or a bad `repeat`; `BadFd`; `NoSpace` when the
 * output packet outgrows `dataOutHeadroom`.
 * @example Running a tc program on a packet
 * ```ts
 * import { progTestRun } from '@datapath/libbpf';
 * declare const progFd: number;
 * declare const packet: Uint8Array;
 * const { retval, durationNs } = progTestRun(progFd, { data: packet, repeat: 1000 });
 * console.log(retval, durationNs);
 * ```
 */
export function progTestRun(fd: number, options: ProgTestRunOptions = {}): ProgTestRunResult {
  const op = 'progTestRun';
  if (!Number.isInteger(fd) || fd < 0) {
    throw new BpfError('BadFd', `${op}: ${fd} is not a file descriptor`, { op });
  }
  const info = progInfo(fd);
  const type = info.typeName;
  const kind = RUNNABLE[info.type];
  if (kind === undefined) {
    const names = Object.keys(RUNNABLE)
      .map((t) => progTypeName(Number(t)))
      .join(', ');
    throw new BpfError(
      'NotSupported',
      `${op}: the kernel cannot test-run ${type} programs (BPF_PROG_TEST_RUN runs ${names})`,
      { op, target: info.name },
    );
  }
  const { data, ctx } = options;
  const repeat = options.repeat ?? 1;
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > MAX_REPEAT)
    throw bad(`repeat must be an integer in 1…${MAX_REPEAT}, got ${repeat}`, info.name);
  if (data !== undefined && !(data instanceof Uint8Array)) throw bad('data must be a Uint8Array', info.name);
  if (ctx !== undefined && !(ctx instanceof Uint8Array)) throw bad('ctx must be a Uint8Array', info.name);
  if (kind.packet) {
    if (data === undefined || data.byteLength === 0)
      throw bad(`a ${type} program needs a packet: data is empty`, info.name);
    if (data.byteLength < ETH_HLEN && info.type !== 22)
      throw bad(
        `a ${type} packet starts with a 14-byte Ethernet header: got ${data.byteLength} bytes`,
        info.name,
      );
  }
  if (ctx !== undefined && kind.ctx > 0 && (ctx.byteLength === 0 || ctx.byteLength > kind.ctx))
    throw bad(`ctx of a ${type} program is 1…${kind.ctx} bytes, got ${ctx.byteLength}`, info.name);
  if (ctx !== undefined && ctx.byteLength % 4 !== 0)
    throw bad(`ctx must be a whole number of 32-bit words, got ${ctx.byteLength} bytes`, info.name);
  const headroom = options.dataOutHeadroom ?? 4096;
  if (!Number.isInteger(headroom) || headroom < 0)
    throw bad(`dataOutHeadroom must be a non-negative integer, got ${headroom}`, info.name);

  const attr = pinnedAlloc(TestRunAttr.size);
  const v = attr.view;
  v.setUint32(TestRunAttr.progFd, fd, true);
  v.setUint32(TestRunAttr.repeat, repeat, true);
  v.setUint32(TestRunAttr.flags, options.flags ?? 0, true);
  v.setUint32(TestRunAttr.cpu, options.cpu ?? 0, true);
  const inLen = data?.byteLength ?? 0;
  const dataIn = pinnedAlloc(inLen);
  const dataOut = pinnedAlloc(inLen === 0 ? 0 : inLen + headroom);
  if (data !== undefined && inLen > 0) {
    dataIn.bytes.set(data);
    v.setUint32(TestRunAttr.dataSizeIn, inLen, true);
    v.setBigUint64(TestRunAttr.dataIn, BigInt(dataIn.addr), true);
    v.setUint32(TestRunAttr.dataSizeOut, dataOut.bytes.byteLength, true);
    v.setBigUint64(TestRunAttr.dataOut, BigInt(dataOut.addr), true);
  }
  const ctxLen = ctx?.byteLength ?? 0;
  const ctxOutLen = Math.max(ctxLen, kind.ctx);
  const ctxIn = pinnedAlloc(ctxLen);
  const ctxOut = pinnedAlloc(ctxOutLen);
  if (ctx !== undefined && ctxLen > 0) {
    ctxIn.bytes.set(ctx);
    v.setUint32(TestRunAttr.ctxSizeIn, ctxLen, true);
    v.setBigUint64(TestRunAttr.ctxIn, BigInt(ctxIn.addr), true);
  }
  // An skb context is optional both ways; an XDP one read back without one passed in would make the
  // kernel build a zeroed xdp_md (data_end 0) and show the program an empty packet.
  const ctxBack = ctx !== undefined || (kind.packet && kind.ctx === TestRunCtxSize.skb);
  if (ctxOutLen > 0 && ctxBack) {
    v.setUint32(TestRunAttr.ctxSizeOut, ctxOutLen, true);
    v.setBigUint64(TestRunAttr.ctxOut, BigInt(ctxOut.addr), true);
  }
  const r = sysBpf(Cmd.ProgTestRun, attr, TestRunAttr.size);
  if (r < 0) {
    const errno = -r;
    if (errno === 524 || errno === 95) {
      throw new BpfError(
        'NotSupported',
        `${op}: this kernel cannot test-run ${type} programs with these inputs (test runs of ${type} need Linux ≥ ${kind.since})`,
        { op, errno, syscall: 'bpf(BPF_PROG_TEST_RUN)', target: info.name },
      );
    }
    throw syscallError(errno, Cmd.ProgTestRun, op, info.name);
  }
  const outLen = v.getUint32(TestRunAttr.dataSizeOut, true);
  const ctxOutSize = v.getUint32(TestRunAttr.ctxSizeOut, true);
  return {
    retval: v.getUint32(TestRunAttr.retval, true) | 0,
    data: dataOut.bytes.slice(0, inLen === 0 ? 0 : outLen),
    ctx: ctxOut.bytes.slice(0, ctxBack ? ctxOutSize : 0),
    durationNs: v.getUint32(TestRunAttr.duration, true),
  };
}
