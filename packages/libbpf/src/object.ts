import type { ErrorCode } from '@datapath/errors';
import { BpfError, errnoError } from './errors.js';
import { progTypeName } from './prog.js';
import {
  addressOf,
  btfFindByNameKind,
  btfNameByOffset,
  btfResolveType,
  btfTypeById,
  checked,
  checkedPtr,
  mapFd,
  mapFlags,
  mapInitialValue,
  mapIsInternal,
  mapKeySize,
  mapMaxEntries,
  mapName,
  mapPinPath,
  mapSetInitialValue,
  mapSetMaxEntries,
  mapSetPinPath,
  mapType,
  mapValueSize,
  objectBtf,
  objectClose,
  objectLoad as objectLoadRaw,
  objectLoadAsync as objectLoadRawAsync,
  objectNextMap,
  objectNextProgram,
  objectOpenMem,
  objectOpenMemAsync,
  objGet,
  objGetInfoByFd,
  progAutoload,
  progExpectedAttachType,
  progFd,
  progName,
  progSection,
  progSetAutoload,
  progType,
  readMemory,
} from './sys/libbpf.js';
import { closeDescriptor, type SharedMapping, sysMmapShared } from './sys/libc.js';
import { libbpfLogMark, libbpfLogSince } from './sys/log.js';

/** A map as declared in an ELF object, before loading. */
export interface ObjectMapDecl {
  /** Map name (internal maps are named `<object>.rodata`, `.data`, `.bss`). */
  name: string;
  /** `bpf_map_type` number. */
  type: number;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes. */
  valueSize: number;
  /** Maximum number of entries. */
  maxEntries: number;
  /** `BPF_F_*` map flags. */
  flags: number;
  /** Declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)`. */
  pinByName: boolean;
  /** A libbpf-made map for global variables (`.rodata`, `.data`, `.bss`, `.kconfig`). */
  internal: boolean;
}

/** A program as declared in an ELF object, before loading. */
export interface ObjectProgramDecl {
  /** Function name. */
  name: string;
  /** ELF section, e.g. `tc`, `xdp`, `cgroup/connect4`. */
  section: string;
  /** `bpf_prog_type` number libbpf derived from the section. */
  type: number;
  /** bpftool name of the type (`sched_cls`, `xdp`, …). */
  typeName: string;
  /** `bpf_attach_type` libbpf derived from the section. */
  expectedAttachType: number;
  /** Whether libbpf loads it by default. */
  autoload: boolean;
}

/** How a `.rodata` variable's bytes are to be read, from its BTF type. */
export type ConstantKind =
  | {
      /** A C integer of 1, 2, 4 or 8 bytes. */
      kind: 'int';
      /** Signed (`int`, `__s32`) or unsigned (`__u16`, …). */
      signed: boolean;
    }
  | {
      /** A C `bool`. */
      kind: 'bool';
    }
  | {
      /** A C `enum`. */
      kind: 'enum';
      /** Whether the enum has negative values. */
      signed: boolean;
    }
  | {
      /** A `char[N]`, set from a string. */
      kind: 'chars';
      /** N, the array length (including the NUL). */
      length: number;
    }
  | {
      /** Anything else (structs, other arrays): set as exact-size bytes. */
      kind: 'bytes';
    };

/** A `const volatile` global in `.rodata`: settable before load. */
export type ObjectConstantDecl = {
  /** Variable name in the C source. */
  name: string;
  /** Byte offset inside `.rodata`. */
  offset: number;
  /** Size in bytes. */
  size: number;
} & ConstantKind;

/** Everything an ELF object declares: the raw material of a loader spec. */
export interface ObjectDescription {
  /** Maps in ELF order, internal ones included. */
  maps: ObjectMapDecl[];
  /** Programs in ELF order. */
  programs: ObjectProgramDecl[];
  /** `.rodata` variables with their BTF-derived kinds. */
  constants: ObjectConstantDecl[];
  /** Initial bytes of `.rodata` (empty when the object has none). */
  rodata: Uint8Array;
}

/** Per-load edits applied to a freshly opened object before `bpf_object__load`. */
export interface ObjectLoadOptions {
  /** Directory for `LIBBPF_PIN_BY_NAME` maps (libbpf's `pin_root_path`); must be on bpffs. */
  pinRoot?: string;
  /** New `max_entries` by map name. */
  maxEntries?: Readonly<Record<string, number>>;
  /** Explicit pin path by map name; null unpins a map declared pinned. */
  pinPaths?: Readonly<Record<string, string | null>>;
  /** Autoload override by program name. */
  autoload?: Readonly<Record<string, boolean>>;
  /** Replacement initial value of `.rodata` (same size as the original). */
  rodata?: Uint8Array;
  /** Object name (libbpf names internal maps `<first 8 chars>.rodata`); default `obj`. */
  name?: string;
  /** First verifier log buffer size in bytes (default 1 MiB); grown up to 64 MiB when the log does not fit. */
  logSize?: number;
}

/** A loaded program: its fd stays valid until {@link LoadedObject.close}. */
export interface LoadedProgram {
  /** Function name. */
  name: string;
  /** Program fd owned by the object. */
  fd: number;
  /** `bpf_prog_type` number. */
  type: number;
}

/** A created (or reused pinned) map: its fd stays valid until {@link LoadedObject.close}. */
export interface LoadedMap extends ObjectMapDecl {
  /** Map fd owned by the object. */
  fd: number;
  /** Where it is pinned, if anywhere. */
  pinPath: string | undefined;
}

/**
 * A program the kernel verifier refused, with its complete log: code `InvalidArgument` (the program is
 * what is wrong, not the caller's privileges), reason `VerifierRejected`.
 *
 * @example Printing the verifier's log
 * ```ts
 * import { VerifierError } from '@datapath/libbpf';
 * function report(e: unknown): void {
 *   if (e instanceof VerifierError) console.error(e.program, e.reason, e.log);
 * }
 * ```
 */
export class VerifierError extends BpfError {
  /** Always `'VerifierError'`. */
  override readonly name: string = 'VerifierError';
  /** The verifier's complete log for the failing program. */
  readonly log: string;
  /** Name of the program that failed, when libbpf said which. */
  readonly program: string | undefined;
  /** True only when the log still did not fit the 64 MiB maximum buffer. */
  readonly truncated: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      op: string;
      errno: number;
      errnoName?: string | undefined;
      program: string | undefined;
      log: string;
      truncated: boolean;
    },
  ) {
    super(code, message, {
      op: options.op,
      errno: options.errno,
      errnoName: options.errnoName,
      reason: 'VerifierRejected',
      syscall: 'bpf(BPF_PROG_LOAD)',
      ...(options.program === undefined ? {} : { target: options.program }),
    });
    this.log = options.log;
    this.program = options.program;
    this.truncated = options.truncated;
  }
}

const BTF_KIND_INT = 1;
const BTF_KIND_ARRAY = 3;
const BTF_KIND_ENUM = 6;
const BTF_KIND_VAR = 14;
const BTF_KIND_DATASEC = 15;
const BTF_KIND_ENUM64 = 19;
const MAX_LOG = 64 << 20;
const LOAD_MEANING = {
  EACCES: { code: 'InvalidArgument', reason: 'VerifierRejected' },
  ENOSPC: { code: 'Exhausted', reason: 'LogFull' },
} as const;

// Buffers whose addresses went into option structs must not be collected before the native call returns.
const keepAliveSink: unknown[] = [];
function keepAlive(...values: unknown[]): void {
  keepAliveSink[0] = values;
}

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

function isRodata(map: bigint): boolean {
  return mapIsInternal(map) && mapName(map).endsWith('.rodata');
}

function* eachMap(obj: bigint): Generator<bigint> {
  for (let m = objectNextMap(obj, null); m !== null; m = objectNextMap(obj, m)) yield m;
}

function* eachProgram(obj: bigint): Generator<bigint> {
  for (let p = objectNextProgram(obj, null); p !== null; p = objectNextProgram(obj, p)) yield p;
}

function btfType(btf: bigint, id: number): DataView {
  const ptr = btfTypeById(btf, id);
  if (ptr === null)
    throw new BpfError('InvalidArgument', `objectDescribe: bad BTF type id ${id}`, { op: 'objectDescribe' });
  const head = new DataView(readMemory(ptr, 12).buffer);
  const vlen = head.getUint32(4, true) & 0xffff;
  const kind = (head.getUint32(4, true) >>> 24) & 0x1f;
  // Trailing data: INT has one u32, ARRAY one btf_array (12), DATASEC vlen × btf_var_secinfo (12).
  const extra =
    kind === BTF_KIND_INT ? 4 : kind === BTF_KIND_ARRAY ? 12 : kind === BTF_KIND_DATASEC ? vlen * 12 : 0;
  return new DataView(readMemory(ptr, 12 + extra).buffer);
}

const kindOf = (t: DataView) => (t.getUint32(4, true) >>> 24) & 0x1f;

function constantKind(btf: bigint, typeId: number, size: number): ConstantKind {
  const resolved = btfResolveType(btf, typeId);
  if (resolved < 0) return { kind: 'bytes' };
  const t = btfType(btf, resolved);
  const kind = kindOf(t);
  if (kind === BTF_KIND_INT) {
    const enc = t.getUint32(12, true);
    const encoding = (enc >>> 24) & 0xf;
    if (encoding & 4) return { kind: 'bool' };
    if (size <= 8) return { kind: 'int', signed: (encoding & 1) !== 0 };
    return { kind: 'bytes' };
  }
  if (kind === BTF_KIND_ENUM || kind === BTF_KIND_ENUM64) {
    return { kind: 'enum', signed: t.getUint32(4, true) >>> 31 === 1 };
  }
  if (kind === BTF_KIND_ARRAY) {
    const elem = btfResolveType(btf, t.getUint32(12, true));
    if (elem >= 0) {
      const e = btfType(btf, elem);
      // `char name[N]` reads as a string; `__u8 mac[6]` and other arrays stay bytes.
      if (
        kindOf(e) === BTF_KIND_INT &&
        e.getUint32(8, true) === 1 &&
        btfNameByOffset(btf, e.getUint32(0, true)) === 'char'
      ) {
        return { kind: 'chars', length: t.getUint32(20, true) };
      }
    }
  }
  return { kind: 'bytes' };
}

function describeConstants(obj: bigint): ObjectConstantDecl[] {
  const btf = objectBtf(obj);
  if (btf === null) return [];
  const sec = btfFindByNameKind(btf, '.rodata', BTF_KIND_DATASEC);
  if (sec < 0) return [];
  const ds = btfType(btf, sec);
  const vlen = ds.getUint32(4, true) & 0xffff;
  const out: ObjectConstantDecl[] = [];
  for (let i = 0; i < vlen; i++) {
    const at = 12 + i * 12;
    const varId = ds.getUint32(at, true);
    const offset = ds.getUint32(at + 4, true);
    const size = ds.getUint32(at + 8, true);
    const v = btfType(btf, varId);
    if (kindOf(v) !== BTF_KIND_VAR) continue;
    const name = btfNameByOffset(btf, v.getUint32(0, true)) ?? '';
    if (name === '') continue;
    out.push({ name, offset, size, ...constantKind(btf, v.getUint32(8, true), size) });
  }
  return out;
}

function openMem(bytes: Uint8Array, op: string, openOpts: Uint8Array | null): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 64) {
    throw new BpfError('InvalidArgument', `${op}: expected the bytes of an ELF object`, { op });
  }
  libbpfLogMark();
  const obj = objectOpenMem(bytes, bytes.byteLength, openOpts);
  if (obj === null) {
    const lines = libbpfLogSince();
    try {
      checkedPtr(obj, op, 'bpf_object__open_mem');
    } catch (err) {
      if (err instanceof BpfError && lines.length > 0) {
        throw new BpfError(err.code, `${err.message}: ${lines.join('; ')}`, {
          op,
          errno: err.errno ?? 22,
          syscall: 'bpf_object__open_mem',
          cause: err,
        });
      }
      throw err;
    }
  }
  return obj as bigint;
}

/**
 * Parses an ELF BPF object without loading anything: maps, programs and `.rodata` constants with their
 * BTF-derived types.
 * Equivalent to: `bpftool btf dump file OBJ` plus `llvm-objdump -h OBJ`.
 *
 * @throws {@link BpfError} `InvalidArgument` when the bytes are not a valid BPF ELF object (libbpf's own
 * messages are in the error message).
 * @example Listing an object's programs
 * ```ts
 * import { readFileSync } from 'node:fs';
 * import { objectDescribe } from '@datapath/libbpf';
 * const d = objectDescribe(readFileSync('prog.bpf.o'));
 * console.log(d.programs.map((p) => `${p.name} (${p.section})`));
 * ```
 */
export function objectDescribe(bytes: Uint8Array, name = 'obj'): ObjectDescription {
  const op = 'objectDescribe';
  const objName = cString(name);
  const openOpts = new Uint8Array(80);
  const v = new DataView(openOpts.buffer);
  v.setBigUint64(0, 80n, true);
  v.setBigUint64(8, addressOf(objName), true);
  const obj = openMem(bytes, op, openOpts);
  keepAlive(objName);
  try {
    const maps: ObjectMapDecl[] = [];
    let rodata: Uint8Array = new Uint8Array(0);
    for (const m of eachMap(obj)) {
      const internal = mapIsInternal(m);
      maps.push({
        name: mapName(m),
        type: mapType(m),
        keySize: mapKeySize(m),
        valueSize: mapValueSize(m),
        maxEntries: mapMaxEntries(m),
        flags: mapFlags(m),
        pinByName: mapPinPath(m) !== null,
        internal,
      });
      if (isRodata(m)) {
        const size = new BigUint64Array(1);
        const ptr = mapInitialValue(m, size);
        if (ptr !== null) rodata = readMemory(ptr, Number(size[0]));
      }
    }
    const programs: ObjectProgramDecl[] = [];
    for (const p of eachProgram(obj)) {
      const type = progType(p);
      programs.push({
        name: progName(p),
        section: progSection(p),
        type,
        typeName: progTypeName(type),
        expectedAttachType: progExpectedAttachType(p),
        autoload: progAutoload(p),
      });
    }
    return { maps, programs, constants: describeConstants(obj), rodata };
  } finally {
    objectClose(obj);
  }
}

/** A loaded ELF object: programs verified and JITed, maps created or reused. Close it to release them. */
export class LoadedObject {
  /** Loaded programs (autoload-disabled ones are absent). */
  readonly programs: readonly LoadedProgram[];
  /** Maps, including internal ones. */
  readonly maps: readonly LoadedMap[];
  #obj: bigint | undefined;
  readonly #mappings = new Map<string, SharedMapping>();
  // libbpf reads the ELF bytes until load and keeps pointers into them: they must outlive the object.
  readonly #keep: unknown[];

  /** @internal */
  constructor(obj: bigint, keep: unknown[]) {
    this.#obj = obj;
    this.#keep = keep;
    const programs: LoadedProgram[] = [];
    for (const p of eachProgram(obj)) {
      const fd = progFd(p);
      if (fd >= 0) programs.push({ name: progName(p), fd, type: progType(p) });
    }
    const maps: LoadedMap[] = [];
    for (const m of eachMap(obj)) {
      maps.push({
        name: mapName(m),
        type: mapType(m),
        keySize: mapKeySize(m),
        valueSize: mapValueSize(m),
        maxEntries: mapMaxEntries(m),
        flags: mapFlags(m),
        pinByName: mapPinPath(m) !== null,
        internal: mapIsInternal(m),
        fd: mapFd(m),
        pinPath: mapPinPath(m) ?? undefined,
      });
    }
    this.programs = programs;
    this.maps = maps;
  }

  /** True until {@link LoadedObject.close}. */
  get open(): boolean {
    return this.#obj !== undefined;
  }

  /**
   * Closes every program and map fd of the object (pins and links keep their kernel objects alive).
   *
   * @example Releasing an object
   * ```ts
   * import { readFileSync } from 'node:fs';
   * import { objectLoad } from '@datapath/libbpf';
   * const obj = objectLoad(readFileSync('prog.bpf.o'));
   * obj.close();
   * ```
   */
  close(): void {
    if (this.#obj === undefined) return;
    for (const m of this.#mappings.values()) m.unmap();
    this.#mappings.clear();
    objectClose(this.#obj);
    this.#obj = undefined;
    this.#keep.length = 0;
  }

  /**
   * A live view of the memory of a global-variable section (`.data`, `.bss`, `.data.*`): the mmap-able
   * array map libbpf created for it, shared with the running programs (no system call per access).
   * Take a new view for every access: it is unmapped when the object closes.
   *
   * @throws {@link BpfError} `NotFound` when the object has no such section, `NotSupported` for `.rodata`
   * (frozen, read-only) or a section that is not memory-mapped, `BadFd` once the object is closed.
   */
  globalMemory(section: string): Uint8Array {
    const op = 'globalMemory';
    if (this.#obj === undefined)
      throw new BpfError('BadFd', `${op}: the object is closed`, { op, target: section });
    if (!/^\.(data|bss)(\..+)?$/.test(section)) {
      throw new BpfError(
        'NotSupported',
        `${op}: ${section} is not a writable global section (.data, .bss, .data.*)`,
        {
          op,
          target: section,
        },
      );
    }
    const mapped = this.#mappings.get(section);
    if (mapped !== undefined) return mapped.bytes;
    for (const m of eachMap(this.#obj)) {
      if (!mapIsInternal(m) || !mapName(m).endsWith(section)) continue;
      // libbpf 1.1 maps the kernel memory only for skeletons: map the map's fd ourselves.
      const r = sysMmapShared(mapFd(m), mapValueSize(m));
      if (typeof r === 'number') throw errnoError(-r, { op, syscall: 'mmap', target: section });
      this.#mappings.set(section, r);
      return r.bytes;
    }
    throw new BpfError('NotFound', `${op}: the object has no ${section} section`, { op, target: section });
  }

  /** Same as {@link LoadedObject.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function applyOptions(obj: bigint, options: ObjectLoadOptions, op: string): void {
  const byName = new Map<string, bigint>();
  let rodata: bigint | undefined;
  for (const m of eachMap(obj)) {
    byName.set(mapName(m), m);
    if (isRodata(m)) rodata = m;
  }
  const find = (name: string): bigint => {
    const m = byName.get(name);
    if (m === undefined)
      throw new BpfError('NotFound', `${op}: the object has no map named ${name}`, { op, target: name });
    return m;
  };
  for (const [name, n] of Object.entries(options.maxEntries ?? {})) {
    checked(mapSetMaxEntries(find(name), n), op, 'bpf_map__set_max_entries', name);
  }
  for (const [name, path] of Object.entries(options.pinPaths ?? {})) {
    checked(mapSetPinPath(find(name), path), op, 'bpf_map__set_pin_path', name);
  }
  if (options.rodata !== undefined) {
    if (rodata === undefined) throw new BpfError('NotFound', `${op}: the object has no .rodata`, { op });
    checked(
      mapSetInitialValue(rodata, options.rodata, options.rodata.byteLength),
      op,
      'bpf_map__set_initial_value',
      '.rodata',
    );
  }
  const progs = new Map<string, bigint>();
  for (const p of eachProgram(obj)) progs.set(progName(p), p);
  for (const [name, on] of Object.entries(options.autoload ?? {})) {
    const p = progs.get(name);
    if (p === undefined)
      throw new BpfError('NotFound', `${op}: the object has no program named ${name}`, { op, target: name });
    checked(progSetAutoload(p, on), op, 'bpf_program__set_autoload', name);
  }
}

/** One attempt of a load: the opened object, its verifier log buffer and what to keep alive with it. */
interface LoadAttempt {
  obj: bigint;
  log: Buffer;
  logSize: number;
  keep: unknown[];
}

/** Checks the options and copies the ELF once (libbpf keeps pointers into it until load). */
function loadPlan(bytes: Uint8Array, options: ObjectLoadOptions, op: string) {
  const logSize = options.logSize ?? 1 << 20;
  if (!Number.isInteger(logSize) || logSize < 128 || logSize > MAX_LOG) {
    throw new BpfError('InvalidArgument', `${op}: logSize must be 128..${MAX_LOG}, got ${logSize}`, { op });
  }
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 64) {
    throw new BpfError('InvalidArgument', `${op}: expected the bytes of an ELF object`, { op });
  }
  // libbpf keeps pointers into the ELF buffer until load: give it a private, stable copy.
  const elf = Buffer.allocUnsafeSlow(bytes.byteLength);
  elf.set(bytes);
  const objName = cString(options.name ?? 'obj');
  const pinRoot = options.pinRoot === undefined ? undefined : cString(options.pinRoot);
  return { elf, objName, pinRoot, logSize };
}

/** Opens the object with a verifier log buffer of `logSize` bytes and applies `options` (quick, no syscall that waits). */
function openAttempt(
  plan: ReturnType<typeof loadPlan>,
  logSize: number,
  options: ObjectLoadOptions,
  op: string,
): LoadAttempt {
  const { log, openOpts } = attemptOptions(plan, logSize);
  return applied(openMem(plan.elf, op, openOpts), log, logSize, plan, options, op);
}

/** {@link openAttempt} with `bpf_object__open_mem` (the ELF and BTF parse) on libuv's threadpool. */
async function openAttemptAsync(
  plan: ReturnType<typeof loadPlan>,
  logSize: number,
  options: ObjectLoadOptions,
  op: string,
): Promise<LoadAttempt> {
  const { log, openOpts } = attemptOptions(plan, logSize);
  libbpfLogMark();
  const obj = await objectOpenMemAsync(plan.elf, plan.elf.byteLength, openOpts);
  // A failed parse: the sync open fails the same way and gives the typed error with libbpf's messages.
  if (obj === null) return openAttempt(plan, logSize, options, op);
  return applied(obj, log, logSize, plan, options, op);
}

/** The verifier log buffer and `struct bpf_object_open_opts` (libbpf 1.1, 80 bytes) of one attempt. */
function attemptOptions(plan: ReturnType<typeof loadPlan>, logSize: number) {
  const log = Buffer.allocUnsafeSlow(logSize);
  log[0] = 0;
  const openOpts = new Uint8Array(80);
  const v = new DataView(openOpts.buffer);
  v.setBigUint64(0, 80n, true);
  v.setBigUint64(8, addressOf(plan.objName), true);
  if (plan.pinRoot !== undefined) v.setBigUint64(24, addressOf(plan.pinRoot), true);
  v.setBigUint64(56, addressOf(log), true);
  v.setBigUint64(64, BigInt(logSize), true);
  return { log, openOpts };
}

function applied(
  obj: bigint,
  log: Buffer,
  logSize: number,
  plan: ReturnType<typeof loadPlan>,
  options: ObjectLoadOptions,
  op: string,
): LoadAttempt {
  try {
    applyOptions(obj, options, op);
  } catch (err) {
    objectClose(obj);
    throw err;
  }
  return { obj, log, logSize, keep: [plan.elf, plan.pinRoot, plan.objName] };
}

/**
 * What `bpf_object__load`'s result `r` means: the loaded object, a larger log size to retry with (the
 * verifier's log did not fit), or the typed error to throw. Closes the object unless it loaded.
 */
function loadOutcome(a: LoadAttempt, r: number, lines: string[], op: string): LoadedObject | number | Error {
  if (r >= 0) return new LoadedObject(a.obj, a.keep);
  try {
    const errno = -r;
    const end = a.log.indexOf(0);
    const text = a.log.subarray(0, end < 0 ? a.logSize : end).toString('utf8');
    // On a program load, EACCES is the verifier refusing the program (not missing privileges: those are
    // EPERM), and ENOSPC means the verifier log did not fit its buffer.
    const base = errnoError(errno, { op, syscall: 'bpf_object__load', meaning: LOAD_MEANING });
    const failed = lines
      .map((l) => /prog '([^']+)': (?:BPF program load failed|failed to load)/.exec(l)?.[1])
      .find(Boolean);
    if (text.length > 0 && failed !== undefined) {
      if (base.reason === 'LogFull' && a.logSize < MAX_LOG) return Math.min(a.logSize * 8, MAX_LOG);
      const last = text
        .trimEnd()
        .split('\n')
        .filter((l) => !l.startsWith('processed ') && l.trim() !== '')
        .slice(-1)[0];
      const truncated = base.reason === 'LogFull';
      return new VerifierError(
        truncated ? 'InvalidArgument' : base.code,
        `${op}: the verifier rejected program ${failed}: ${last}`,
        { op, errno, errnoName: base.errnoName, program: failed, log: text, truncated },
      );
    }
    return new BpfError(base.code, lines.length > 0 ? `${base.message}: ${lines.join('; ')}` : base.message, {
      op,
      errno,
      errnoName: base.errnoName,
      reason: base.reason,
      syscall: 'bpf_object__load',
    });
  } finally {
    objectClose(a.obj);
  }
}

/**
 * Opens an ELF BPF object from its bytes, applies `options`, and loads it: creates (or reuses pinned) maps
 * and verifies every autoloaded program. A verifier rejection throws {@link VerifierError} with the complete
 * log (the buffer grows until the log fits, up to 64 MiB).
 * Equivalent to: `bpftool prog loadall OBJ DIR`.
 *
 * @throws {@link VerifierError} when the verifier rejects a program; {@link BpfError} `InvalidArgument` for a
 * bad object or a pinned map that does not match the declaration (libbpf's reason in the message),
 * `NotFound` for an option naming a missing map or program, `PermissionDenied` without CAP_BPF.
 * @example Loading an object and finding a program's fd
 * ```ts
 * import { readFileSync } from 'node:fs';
 * import { objectLoad } from '@datapath/libbpf';
 * using obj = objectLoad(readFileSync('prog.bpf.o'), { pinRoot: '/sys/fs/bpf/demo' });
 * console.log(obj.programs.find((p) => p.name === 'count_drop')?.fd);
 * ```
 */
export function objectLoad(bytes: Uint8Array, options: ObjectLoadOptions = {}): LoadedObject {
  const op = 'objectLoad';
  const plan = loadPlan(bytes, options, op);
  for (let logSize = plan.logSize; ; ) {
    const a = openAttempt(plan, logSize, options, op);
    libbpfLogMark();
    const out = loadOutcome(a, objectLoadRaw(a.obj), libbpfLogSince(), op);
    if (out instanceof LoadedObject) return out;
    if (typeof out === 'number') logSize = out;
    else throw out;
  }
}

/** Options of {@link objectLoadAsync} besides {@link ObjectLoadOptions}. */
export interface ObjectLoadAsyncOptions extends ObjectLoadOptions {
  /** Cancels the load while it has not reached the kernel (`BpfError` `Interrupted`, reason `Aborted`). */
  signal?: AbortSignal;
}

// libbpf's log lines are told apart by a mark in one process-wide ring: async loads take turns.
let loadQueue: Promise<unknown> = Promise.resolve();

function checkAborted(signal: AbortSignal | undefined, op: string): void {
  if (signal?.aborted) {
    throw new BpfError('Interrupted', `${op}: aborted before the kernel call`, {
      op,
      reason: 'Aborted',
      cause: signal.reason,
    });
  }
}

/**
 * The async form of {@link objectLoad}: `bpf_object__load` (map creation and every `BPF_PROG_LOAD`, where
 * the verifier runs) executes on libuv's threadpool, so the event loop goes on meanwhile. Parsing the ELF and
 * applying `options` stay on the calling thread (no kernel call). Same options, result and errors as
 * {@link objectLoad}, the verifier log included. Async loads of this process run one at a time, in call
 * order; `signal` cancels a load that is still waiting for its turn.
 * Equivalent to: `bpftool prog loadall OBJ DIR`.
 *
 * @throws {@link VerifierError} and {@link BpfError} as {@link objectLoad}; `Interrupted` (reason `Aborted`)
 * when `signal` fired before the load started.
 * @example Loading without blocking the event loop
 * ```ts
 * import { readFileSync } from 'node:fs';
 * import { objectLoadAsync } from '@datapath/libbpf';
 * using obj = await objectLoadAsync(readFileSync('prog.bpf.o'), { pinRoot: '/sys/fs/bpf/demo' });
 * console.log(obj.programs.map((p) => p.name));
 * ```
 */
export function objectLoadAsync(
  bytes: Uint8Array,
  options: ObjectLoadAsyncOptions = {},
): Promise<LoadedObject> {
  const op = 'objectLoad';
  let plan: ReturnType<typeof loadPlan>;
  try {
    checkAborted(options.signal, op);
    plan = loadPlan(bytes, options, op);
  } catch (err) {
    return Promise.reject(err);
  }
  const run = async (): Promise<LoadedObject> => {
    for (let logSize = plan.logSize; ; ) {
      checkAborted(options.signal, op);
      const a = await openAttemptAsync(plan, logSize, options, op);
      if (options.signal?.aborted) {
        objectClose(a.obj);
        checkAborted(options.signal, op);
      }
      libbpfLogMark();
      let r: number;
      try {
        r = await objectLoadRawAsync(a.obj);
      } catch (err) {
        objectClose(a.obj);
        throw err;
      }
      const out = loadOutcome(a, r, libbpfLogSince(), op);
      if (out instanceof LoadedObject) return out;
      if (typeof out === 'number') logSize = out;
      else throw out;
    }
  };
  const result = loadQueue.then(run, run);
  loadQueue = result.catch(() => undefined);
  return result;
}

/** What a pinned map is, as the kernel reports it: the fields libbpf compares when reusing a pin. */
export interface PinnedMapInfo {
  /** Kernel map id. */
  id: number;
  /** Map name. */
  name: string;
  /** `bpf_map_type` number. */
  type: number;
  /** Key size in bytes. */
  keySize: number;
  /** Value size in bytes. */
  valueSize: number;
  /** Maximum number of entries. */
  maxEntries: number;
  /** `BPF_F_*` map flags. */
  flags: number;
}

/**
 * Reads the kernel info of the map pinned at `path`, or undefined when nothing is pinned there.
 * Equivalent to: `bpftool map show pinned PATH`.
 *
 * @throws {@link BpfError} `InvalidArgument` when the pin is not a map, `PermissionDenied`.
 * @example Checking a pin before reusing it
 * ```ts
 * import { pinnedMapInfo } from '@datapath/libbpf';
 * console.log(pinnedMapInfo('/sys/fs/bpf/demo/counters')?.maxEntries);
 * ```
 */
export function pinnedMapInfo(path: string): PinnedMapInfo | undefined {
  const op = 'pinnedMapInfo';
  let fd: number;
  try {
    fd = checked(objGet(path), op, 'bpf(BPF_OBJ_GET)', path);
  } catch (err) {
    if (err instanceof BpfError && err.code === 'NotFound') return undefined;
    throw err;
  }
  try {
    const buf = new Uint8Array(88);
    const len = new Uint32Array([buf.length]);
    checked(objGetInfoByFd(fd, buf, len), op, 'bpf(BPF_OBJ_GET_INFO_BY_FD)', path);
    const v = new DataView(buf.buffer);
    const name = buf.subarray(24, 40);
    const end = name.indexOf(0);
    return {
      type: v.getUint32(0, true),
      id: v.getUint32(4, true),
      keySize: v.getUint32(8, true),
      valueSize: v.getUint32(12, true),
      maxEntries: v.getUint32(16, true),
      flags: v.getUint32(20, true),
      name: new TextDecoder().decode(name.subarray(0, end < 0 ? 16 : end)),
    };
  } finally {
    closeDescriptor(fd, op);
  }
}
