import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { InnerMapShape } from '@datapath/bpf-maps';
import { BpfError, type ObjectConstantDecl, objectDescribe } from '@datapath/libbpf';
import { sizeOf } from './btf/btf.js';
import { readObjectBtf } from './btf/object.js';
import { type ConstantValue, decodeConstant, encodeConstant } from './constants.js';

/** An editable description of one map in an object. */
export interface MapSpec {
  /** Map name from the ELF. */
  readonly name: string;
  /** `bpf_map_type` number. */
  readonly type: number;
  /** Key size in bytes. */
  readonly keySize: number;
  /** Value size in bytes. */
  readonly valueSize: number;
  /** Maximum entries: editable before load. */
  maxEntries: number;
  /** `BPF_F_*` flags. */
  readonly flags: number;
  /**
   * For a map-in-map (array or hash of maps): the shape every inner map must have, from the object's
   * `__array(values, struct inner)` declaration; undefined for other maps.
   */
  readonly inner?: InnerMapShape | undefined;
  /**
   * Where the map is pinned and reused from: `byName` pins at `<pinDir>/<name>` (the ELF's
   * `LIBBPF_PIN_BY_NAME`), a path pins exactly there, `none` does not pin. Editable before load.
   */
  pinning:
    | 'none'
    | 'byName'
    | {
        /** Absolute bpffs path of the pin. */
        path: string;
      };
}

/** An editable description of one program in an object. */
export interface ProgramSpec {
  /** Function name. */
  readonly name: string;
  /** ELF section (`tc`, `xdp`, `cgroup/connect4`, …). */
  readonly section: string;
  /** `bpf_prog_type` number. */
  readonly type: number;
  /** bpftool name of the type. */
  readonly typeName: string;
  /** Whether {@link load} loads it: editable. */
  autoload: boolean;
}

/** A `const volatile` global in `.rodata`, typed from BTF. */
export type ConstantSpec = Readonly<ObjectConstantDecl>;

/**
 * A parsed ELF object you can inspect and edit before {@link load}: maps (max entries, pinning), programs
 * (autoload) and `.rodata` constants. Plain data: nothing is in the kernel until it is loaded, and
 * {@link ObjectSpec.copy} gives an independent spec (cheap to hand out one per endpoint).
 */
export class ObjectSpec {
  /** Object name (file name without extension). */
  readonly name: string;
  /** Maps by name (internal `.rodata`/`.data`/`.bss` maps excluded). */
  readonly maps: Readonly<Record<string, MapSpec>>;
  /** Programs by name. */
  readonly programs: Readonly<Record<string, ProgramSpec>>;
  /** `.rodata` constants by name. */
  readonly constants: Readonly<Record<string, ConstantSpec>>;
  /** @internal the ELF bytes */
  readonly elf: Uint8Array;
  /** @internal current `.rodata` bytes */
  readonly rodata: Uint8Array;

  /** @internal use {@link openObject} */
  constructor(
    name: string,
    elf: Uint8Array,
    maps: Record<string, MapSpec>,
    programs: Record<string, ProgramSpec>,
    constants: Record<string, ConstantSpec>,
    rodata: Uint8Array,
  ) {
    this.name = name;
    this.elf = elf;
    this.maps = maps;
    this.programs = programs;
    this.constants = constants;
    this.rodata = rodata;
  }

  /**
   * Sets a `.rodata` constant before load, checked against its BTF type (range for integers, boolean for
   * `bool`, string that fits for `char[]`, exact-size bytes otherwise).
   *
   * @throws {@link BpfError} `NotFound` for an unknown name, `InvalidArgument` for a value of the wrong type or range.
   * @example Setting the port a program filters
   * ```ts
   * import { openObject } from '@datapath/loader';
   * const spec = openObject('counter.bpf.o');
   * spec.setConstant('port', 9000);
   * ```
   */
  setConstant(name: string, value: ConstantValue): void {
    const decl = this.#decl(name, 'setConstant');
    encodeConstant(decl, value, this.rodata.subarray(decl.offset, decl.offset + decl.size));
  }

  /**
   * Reads a `.rodata` constant's current value (as compiled, or as last set).
   *
   * @throws {@link BpfError} `NotFound` for an unknown name.
   * @example Reading a compiled-in default
   * ```ts
   * import { openObject } from '@datapath/loader';
   * console.log(openObject('counter.bpf.o').getConstant('port'));
   * ```
   */
  getConstant(name: string): ConstantValue {
    const decl = this.#decl(name, 'getConstant');
    return decodeConstant(decl, this.rodata.subarray(decl.offset, decl.offset + decl.size));
  }

  /**
   * An independent deep copy (the ELF bytes are shared; they are never modified).
   *
   * @example One spec per endpoint from a cached template
   * ```ts
   * import { openObject } from '@datapath/loader';
   * const template = openObject('counter.bpf.o');
   * const mine = template.copy();
   * mine.setConstant('port', 53);
   * ```
   */
  copy(): ObjectSpec {
    const clone = <T extends object>(r: Readonly<Record<string, T>>) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k, structuredClone(v)])) as Record<string, T>;
    return new ObjectSpec(
      this.name,
      this.elf,
      clone(this.maps),
      clone(this.programs),
      clone(this.constants),
      this.rodata.slice(),
    );
  }

  #decl(name: string, op: string): ConstantSpec {
    const decl = Object.hasOwn(this.constants, name) ? this.constants[name] : undefined;
    if (decl === undefined) {
      const known = Object.keys(this.constants).join(', ') || 'none';
      throw new BpfError('NotFound', `${op}: no .rodata constant named ${name} (known: ${known})`, {
        op,
        target: name,
      });
    }
    return decl;
  }
}

/**
 * Parses an ELF BPF object (a path or its bytes) into an editable {@link ObjectSpec}; nothing is loaded.
 * Equivalent to: `bpftool btf dump file OBJ` / `llvm-objdump -h OBJ`.
 *
 * @throws {@link BpfError} `NotFound` when the file cannot be read, `InvalidArgument` when it is not a BPF ELF object.
 * @example Inspecting an object
 * ```ts
 * import { openObject } from '@datapath/loader';
 * const spec = openObject('counter.bpf.o');
 * console.log(Object.keys(spec.programs), Object.keys(spec.maps), Object.keys(spec.constants));
 * ```
 */
export function openObject(object: string | Uint8Array, name?: string): ObjectSpec {
  let bytes: Uint8Array;
  let objName = name ?? 'obj';
  if (typeof object === 'string') {
    try {
      bytes = readFileSync(object);
    } catch (err) {
      throw new BpfError('NotFound', `openObject: cannot read ${object}`, {
        op: 'openObject',
        target: object,
        cause: err,
      });
    }
    objName = name ?? basename(object).replace(/\.(bpf\.)?o$/, '');
  } else {
    bytes = object.slice();
  }
  const d = objectDescribe(bytes, objName);
  const maps: Record<string, MapSpec> = {};
  const inners = innerShapes(bytes, d.maps);
  for (const m of d.maps) {
    if (m.internal) continue;
    const inner = inners.get(m.name);
    maps[m.name] = {
      name: m.name,
      type: m.type,
      keySize: m.keySize,
      valueSize: m.valueSize,
      maxEntries: m.maxEntries,
      flags: m.flags,
      ...(inner === undefined ? {} : { inner }),
      pinning: m.pinByName ? 'byName' : 'none',
    };
  }
  const programs: Record<string, ProgramSpec> = {};
  for (const p of d.programs) {
    programs[p.name] = {
      name: p.name,
      section: p.section,
      type: p.type,
      typeName: p.typeName,
      autoload: p.autoload,
    };
  }
  const constants: Record<string, ConstantSpec> = {};
  for (const c of d.constants) constants[c.name] = c;
  return new ObjectSpec(objName, bytes, maps, programs, constants, d.rodata);
}

const ARRAY_OF_MAPS = 12;
const HASH_OF_MAPS = 13;

/** The inner map shapes of the object's map-in-maps, from its BTF map definitions (no BTF read otherwise). */
function innerShapes(bytes: Uint8Array, maps: ReadonlyArray<{ type: number }>): Map<string, InnerMapShape> {
  const out = new Map<string, InnerMapShape>();
  if (!maps.some((m) => m.type === ARRAY_OF_MAPS || m.type === HASH_OF_MAPS)) return out;
  const { btf, maps: defs } = readObjectBtf(bytes);
  for (const def of defs) {
    const inner = def.inner;
    if (inner === undefined) continue;
    const size = (typeId: number, declared: number) => (typeId !== 0 ? sizeOf(btf, typeId) : declared);
    out.set(def.name, {
      type: inner.type,
      keySize: size(inner.keyType, inner.keySize),
      valueSize: size(inner.valueType, inner.valueSize),
      maxEntries: inner.maxEntries,
      flags: inner.flags,
    });
  }
  return out;
}
