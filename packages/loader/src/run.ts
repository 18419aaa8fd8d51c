import { BpfError, type ProgTestRunOptions, progTestRun } from '@datapath/libbpf';

/**
 * tc return codes (`TC_ACT_*` of linux/pkt_cls.h), by name.
 *
 * @example Expecting a drop
 * ```ts
 * import { TcAct } from '@datapath/loader';
 * console.log(TcAct.SHOT); // 2
 * ```
 */
export const TcAct = {
  /** `TC_ACT_UNSPEC` */
  UNSPEC: -1,
  /** `TC_ACT_OK` */
  OK: 0,
  /** `TC_ACT_RECLASSIFY` */
  RECLASSIFY: 1,
  /** `TC_ACT_SHOT` */
  SHOT: 2,
  /** `TC_ACT_PIPE` */
  PIPE: 3,
  /** `TC_ACT_STOLEN` */
  STOLEN: 4,
  /** `TC_ACT_QUEUED` */
  QUEUED: 5,
  /** `TC_ACT_REPEAT` */
  REPEAT: 6,
  /** `TC_ACT_REDIRECT` */
  REDIRECT: 7,
  /** `TC_ACT_TRAP` */
  TRAP: 8,
} as const;

/**
 * XDP return codes (`enum xdp_action`), by name.
 *
 * @example Expecting a pass
 * ```ts
 * import { XdpAct } from '@datapath/loader';
 * console.log(XdpAct.PASS); // 2
 * ```
 */
export const XdpAct = {
  /** `XDP_ABORTED` */
  ABORTED: 0,
  /** `XDP_DROP` */
  DROP: 1,
  /** `XDP_PASS` */
  PASS: 2,
  /** `XDP_TX` */
  TX: 3,
  /** `XDP_REDIRECT` */
  REDIRECT: 4,
} as const;

/** A tc verdict by its C name (`TC_ACT_SHOT`, …). */
export type TcVerdict = `TC_ACT_${keyof typeof TcAct}`;
/** An XDP verdict by its C name (`XDP_PASS`, …). */
export type XdpVerdict = `XDP_${keyof typeof XdpAct}`;

/** Input of {@link Program.run}. */
export interface RunOptions {
  /** The packet, from the Ethernet header (tc, XDP, socket filter, cgroup skb programs). */
  data?: Uint8Array;
  /**
   * The context (`struct __sk_buff` for tc, `struct xdp_md` for XDP), at most its C size
   * (`TestRunCtxSize` of `@datapath/libbpf`); e.g. `ifindex` at offset 40 of `__sk_buff`.
   */
  ctx?: Uint8Array;
  /** Runs in the kernel (default 1); `durationNs` is the mean. */
  repeat?: number;
  /** `BPF_F_TEST_*` flags (`TestRunFlags` of `@datapath/libbpf`). */
  flags?: number;
}

/** What {@link Program.run} returns. */
export interface RunResult {
  /** The program's raw return value. */
  retval: number;
  /** The return value by its C name for tc (`TC_ACT_*`) and XDP (`XDP_*`) programs; undefined for other types or unknown codes. */
  verdict: TcVerdict | XdpVerdict | undefined;
  /** The packet after the program ran. */
  data: Uint8Array;
  /** The context after the program ran. */
  ctx: Uint8Array;
  /** Mean kernel time per run, in nanoseconds. */
  durationNs: number;
}

const TC_NAMES = new Map<number, TcVerdict>(
  Object.entries(TcAct).map(([k, v]) => [v, `TC_ACT_${k}` as TcVerdict]),
);
const XDP_NAMES = new Map<number, XdpVerdict>(
  Object.entries(XdpAct).map(([k, v]) => [v, `XDP_${k}` as XdpVerdict]),
);

/** The C name of `retval` for a program of bpf_prog_type `type` (sched_cls/sched_act: tc, xdp: XDP). */
export function verdictName(type: number, retval: number): TcVerdict | XdpVerdict | undefined {
  if (type === 3 || type === 4) return TC_NAMES.get(retval);
  if (type === 6) return XDP_NAMES.get(retval);
  return undefined;
}

/** Runs program `fd` of type `type` through BPF_PROG_TEST_RUN (see {@link Program.run}). */
export function runProgram(fd: number, type: number, options: RunOptions): RunResult {
  const opts: ProgTestRunOptions = {};
  if (options.data !== undefined) opts.data = options.data;
  if (options.ctx !== undefined) opts.ctx = options.ctx;
  if (options.repeat !== undefined) opts.repeat = options.repeat;
  if (options.flags !== undefined) opts.flags = options.flags;
  const r = progTestRun(fd, opts);
  return { ...r, verdict: verdictName(type, r.retval) };
}

/** The `struct __sk_buff` fields a test run accepts as input (the kernel rejects the others). */
export interface SkbContextFields {
  /** `mark`. */
  mark?: number;
  /** `priority`. */
  priority?: number;
  /** `ingress_ifindex`. */
  ingressIfindex?: number;
  /** `ifindex`: the device the packet is on (must exist in the caller's namespace; 1, loopback, by default). */
  ifindex?: number;
  /** `cb[0..4]`. */
  cb?: readonly number[];
}

/**
 * A `struct __sk_buff` (192 bytes) for the `ctx` of a tc {@link Program.run}, with the fields the kernel
 * lets a test run set.
 *
 * @throws {@link BpfError} `InvalidArgument` for a field that is not a 32-bit unsigned integer or more than five `cb` words.
 * @example Running as if on the device with ifindex 1
 * ```ts
 * import { skbContext } from '@datapath/loader';
 * const ctx = skbContext({ ifindex: 1, mark: 7 });
 * console.log(ctx.length); // 192
 * ```
 */
export function skbContext(fields: SkbContextFields): Uint8Array {
  const out = new Uint8Array(192);
  const v = new DataView(out.buffer);
  const set = (off: number, x: number | undefined, what: string) => {
    if (x === undefined) return;
    if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) {
      throw new BpfError('InvalidArgument', `skbContext: ${what} must be a u32, got ${x}`, {
        op: 'skbContext',
      });
    }
    v.setUint32(off, x, true);
  };
  set(8, fields.mark, 'mark');
  set(32, fields.priority, 'priority');
  set(36, fields.ingressIfindex, 'ingressIfindex');
  set(40, fields.ifindex, 'ifindex');
  const cb = fields.cb ?? [];
  if (cb.length > 5)
    throw new BpfError('InvalidArgument', 'skbContext: cb has five words', { op: 'skbContext' });
  for (const [i, x] of cb.entries()) set(48 + i * 4, x, `cb[${i}]`);
  return out;
}

/** Reads `mark` (offset 8) of a `struct __sk_buff` returned in {@link RunResult.ctx}. */
export function skbMark(ctx: Uint8Array): number {
  return new DataView(ctx.buffer, ctx.byteOffset, ctx.byteLength).getUint32(8, true);
}
