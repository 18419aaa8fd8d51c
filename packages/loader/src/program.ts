import { BpfError, type ProgInfo, progInfo, progTypeName } from '@datapath/libbpf';
import { type RunOptions, type RunResult, runProgram } from './run.js';

/** A loaded program. Its fd belongs to the {@link Collection} that loaded it and closes with it. */
export class Program {
  /** Function name. */
  readonly name: string;
  /** `bpf_prog_type` number. */
  readonly type: number;
  readonly #fd: number;
  readonly #alive: () => boolean;

  /** @internal created by {@link load} */
  constructor(name: string, fd: number, type: number, alive: () => boolean) {
    this.name = name;
    this.#fd = fd;
    this.type = type;
    this.#alive = alive;
  }

  /** bpftool name of the type (`sched_cls`, `xdp`, `cgroup_sock_addr`, …). */
  get typeName(): string {
    return progTypeName(this.type);
  }

  /**
   * The program fd, for raw libbpf calls.
   *
   * @throws {@link BpfError} `BadFd` once its collection is closed.
   */
  get fd(): number {
    if (!this.#alive()) {
      throw new BpfError('BadFd', `program ${this.name}: its collection is closed`, {
        op: 'program',
        target: this.name,
      });
    }
    return this.#fd;
  }

  /**
   * Kernel info: id, tag, name, type.
   * Equivalent to: `bpftool prog show id ID`.
   *
   * @throws {@link BpfError} `BadFd` once its collection is closed.
   * @example Printing a program's id and tag
   * ```ts
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * const { id, tag } = coll.program('count_drop').info();
   * console.log(id, tag);
   * ```
   */
  info(): ProgInfo {
    return progInfo(this.fd);
  }

  /**
   * Runs the program in the kernel on a packet and/or context without attaching it
   * (`BPF_PROG_TEST_RUN`): its verdict (`TC_ACT_*`, `XDP_*`), the output packet and context, and the
   * mean run time. Map side effects are real: counters, conntrack entries and so on are written.
   * Equivalent to: `bpftool prog run id ID data_in FILE data_out FILE repeat N`.
   *
   * @throws {@link BpfError} `NotSupported` for a program type the kernel cannot test-run (naming the type
   * and the minimum kernel), `InvalidArgument` for an empty or short packet or a context of the wrong
   * size (before the syscall), `BadFd` once the collection is closed.
   * @example Checking that a tc program drops a packet
   * ```ts
   * import { type Collection } from '@datapath/loader';
   * declare const coll: Collection;
   * declare const packet: Uint8Array;
   * const r = coll.program('count_drop').run({ data: packet });
   * console.log(r.verdict, r.durationNs);
   * ```
   */
  run(options: RunOptions): RunResult {
    return runProgram(this.fd, this.type, options);
  }
}
