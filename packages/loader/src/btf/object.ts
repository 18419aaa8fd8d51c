import { BpfError } from '@datapath/libbpf';
import { type Btf, parseBtf, resolve } from './btf.js';
import { type ElfFile, readElf } from './elf.js';

/** A map declared in an object's `.maps` section, read from BTF. */
export interface BtfMapDef {
  /** Map name. */
  name: string;
  /** `bpf_map_type` number. */
  type: number;
  /** BTF type id of the key (0 when declared by size only, or absent). */
  keyType: number;
  /** BTF type id of the value (0 when declared by size only, or absent). */
  valueType: number;
  /** `key_size` when declared by size. */
  keySize: number;
  /** `value_size` when declared by size. */
  valueSize: number;
  /** `max_entries`. */
  maxEntries: number;
  /** `map_flags`. */
  flags: number;
  /** For map-in-map: the inner map's definition (from `__array(values, …)`). */
  inner: BtfMapDef | undefined;
}

/** A global variable of `.rodata`, `.data` or `.bss` with its place in the section. */
export interface BtfGlobal {
  /** Variable name. */
  name: string;
  /** Section (`.rodata`, `.data`, `.bss`, `.rodata.str1.1` …). */
  section: string;
  /** BTF type id. */
  type: number;
  /** Offset in the section. */
  offset: number;
  /** Size in bytes. */
  size: number;
  /** Initial bytes (zeros for `.bss`). */
  initial: Uint8Array;
}

/** A program of the object: a global function in an executable section. */
export interface BtfProgram {
  /** Function name. */
  name: string;
  /** ELF section (`tc`, `xdp`, …). */
  section: string;
}

/** What the generator reads from a BPF object: BTF, maps, globals, programs. */
export interface ObjectBtf {
  /** The parsed `.BTF`. */
  btf: Btf;
  /** Maps of `.maps`, in declaration order. */
  maps: BtfMapDef[];
  /** Globals of the data sections, by section then offset. */
  globals: BtfGlobal[];
  /** Programs in ELF order. */
  programs: BtfProgram[];
  /** The ELF file. */
  elf: ElfFile;
}

const SHF_EXECINSTR = 0x4;

function bad(message: string): BpfError {
  return new BpfError('InvalidArgument', `readObjectBtf: ${message}`, { op: 'readObjectBtf' });
}

/** The `N` of a `__uint(field, N)` member: a pointer to an array of N ints. */
function uintField(btf: Btf, typeId: number): number {
  const p = resolve(btf, typeId);
  if (p.kind !== 'ptr') return 0;
  const a = resolve(btf, p.type);
  return a.kind === 'array' ? a.nelems : 0;
}

function mapDef(btf: Btf, name: string, structId: number): BtfMapDef {
  const s = resolve(btf, structId);
  if (s.kind !== 'struct') throw bad(`map ${name} is not a BTF-defined map (struct)`);
  const def: BtfMapDef = {
    name,
    type: 0,
    keyType: 0,
    valueType: 0,
    keySize: 0,
    valueSize: 0,
    maxEntries: 0,
    flags: 0,
    inner: undefined,
  };
  for (const m of s.members) {
    switch (m.name) {
      case 'type':
        def.type = uintField(btf, m.type);
        break;
      case 'max_entries':
        def.maxEntries = uintField(btf, m.type);
        break;
      case 'map_flags':
        def.flags = uintField(btf, m.type);
        break;
      case 'key_size':
        def.keySize = uintField(btf, m.type);
        break;
      case 'value_size':
        def.valueSize = uintField(btf, m.type);
        break;
      case 'key':
      case 'value': {
        const p = resolve(btf, m.type);
        if (p.kind !== 'ptr') throw bad(`map ${name}: ${m.name} is not declared with __type()`);
        if (m.name === 'key') def.keyType = p.type;
        else def.valueType = p.type;
        break;
      }
      case 'values': {
        // __array(values, struct inner): an array of pointers to the inner map's definition.
        const a = resolve(btf, m.type);
        if (a.kind === 'array') {
          const p = resolve(btf, a.type);
          if (p.kind === 'ptr') def.inner = mapDef(btf, `${name}.inner`, p.type);
        }
        break;
      }
      default:
        break;
    }
  }
  return def;
}

/**
 * Reads the BTF, map definitions, data-section globals and programs of a BPF ELF object (pure: no
 * libbpf). Section sizes and variable offsets, which clang leaves zero in the object's BTF, come from
 * the ELF section and symbol tables, as libbpf fills them in at load.
 *
 * @throws {@link BpfError} `InvalidArgument` when the bytes are not an ELF object with a `.BTF` section.
 */
export function readObjectBtf(bytes: Uint8Array): ObjectBtf {
  const elf = readElf(bytes);
  const sec = elf.sections.find((s) => s.name === '.BTF');
  if (sec === undefined) throw bad('the object has no .BTF section (compile with -g)');
  const btf = parseBtf(sec.data);
  const byName = new Map(elf.sections.map((s) => [s.name, s]));
  const symbolOf = (section: string, name: string) => {
    const idx = byName.get(section)?.index;
    return elf.symbols.find((s) => s.section === idx && s.name === name && s.type === 1);
  };
  const maps: Array<BtfMapDef & { at: number }> = [];
  const globals: BtfGlobal[] = [];
  for (const t of btf.types) {
    if (t.kind !== 'datasec') continue;
    for (const v of t.vars) {
      const variable = btf.types[v.type];
      if (variable?.kind !== 'var') continue;
      if (t.name === '.maps') {
        const at = symbolOf('.maps', variable.name)?.value ?? 0;
        maps.push(Object.assign(mapDef(btf, variable.name, variable.type), { at }));
        continue;
      }
      if (!/^\.(rodata|data|bss)(\.|$)/.test(t.name)) continue;
      const section = byName.get(t.name);
      const sym = symbolOf(t.name, variable.name);
      const offset = v.offset !== 0 ? v.offset : (sym?.value ?? 0);
      const size = v.size;
      const initial =
        section === undefined || section.data.length === 0
          ? new Uint8Array(size)
          : section.data.slice(offset, offset + size);
      globals.push({ name: variable.name, section: t.name, type: variable.type, offset, size, initial });
    }
  }
  // Declaration order: clang's DATASEC order is not the source order, the symbols' offsets are.
  maps.sort((a, b) => a.at - b.at);
  globals.sort((a, b) => (a.section === b.section ? a.offset - b.offset : a.section < b.section ? -1 : 1));
  const programs: BtfProgram[] = [];
  for (const s of elf.symbols) {
    const section = elf.sections[s.section];
    if (s.type !== 2 || s.bind !== 1 || section === undefined) continue;
    if ((section.flags & SHF_EXECINSTR) === 0 || section.name === '.text') continue;
    programs.push({ name: s.name, section: section.name });
  }
  return { btf, maps: maps.map(({ at: _, ...m }) => m), globals, programs, elf };
}
