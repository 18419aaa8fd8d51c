import { BpfError, type ProgInfo, progInfo, progTypeName } from '@datapath/libbpf';

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
}
