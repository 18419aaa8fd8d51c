import { BpfError } from '@datapath/libbpf';

/** One ELF section of a BPF object. */
export interface ElfSection {
  /** Section index. */
  index: number;
  /** Section name (`.BTF`, `.maps`, `tc`, …). */
  name: string;
  /** `sh_type`. */
  type: number;
  /** `sh_flags` (as a number: BPF objects use only the low bits). */
  flags: number;
  /** The section's bytes (empty for `SHT_NOBITS`, e.g. `.bss`). */
  data: Uint8Array;
  /** Size in bytes (also for `SHT_NOBITS`). */
  size: number;
}

/** One ELF symbol. */
export interface ElfSymbol {
  /** Name. */
  name: string;
  /** `STT_*` (1 object, 2 func, 3 section). */
  type: number;
  /** `STB_*` (0 local, 1 global, 2 weak). */
  bind: number;
  /** Index of the section it is defined in. */
  section: number;
  /** Offset inside its section. */
  value: number;
  /** Size in bytes. */
  size: number;
}

/** The sections and symbols of a 64-bit little-endian ELF file (what a BPF object is). */
export interface ElfFile {
  /** Sections by index (0 is the null section). */
  sections: ElfSection[];
  /** Symbols of `.symtab`. */
  symbols: ElfSymbol[];
}

const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;

function bad(message: string): BpfError {
  return new BpfError('InvalidArgument', `readElf: ${message}`, { op: 'readElf' });
}

function cstr(bytes: Uint8Array, off: number): string {
  let end = off;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(off, end));
}

/**
 * Reads the section table and symbol table of an ELF64 little-endian object (pure: no libbpf, no libelf).
 *
 * @throws {@link BpfError} `InvalidArgument` when the bytes are not a 64-bit little-endian ELF file.
 */
export function readElf(bytes: Uint8Array): ElfFile {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46)
    throw bad('not an ELF file');
  if (bytes[4] !== 2 || bytes[5] !== 1) throw bad('not a 64-bit little-endian ELF file');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  if (shoff + shnum * shentsize > bytes.length || shentsize < 64) throw bad('section table out of bounds');
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    const type = v.getUint32(o + 4, true);
    const offset = Number(v.getBigUint64(o + 24, true));
    const size = Number(v.getBigUint64(o + 32, true));
    if (type !== SHT_NOBITS && offset + size > bytes.length) throw bad(`section ${i} out of bounds`);
    raw.push({
      nameOff: v.getUint32(o, true),
      type,
      flags: Number(v.getBigUint64(o + 8, true)),
      offset,
      size,
      link: v.getUint32(o + 40, true),
      entsize: Number(v.getBigUint64(o + 56, true)),
    });
  }
  const strtab = raw[shstrndx];
  if (strtab === undefined) throw bad('no section name table');
  const names = bytes.subarray(strtab.offset, strtab.offset + strtab.size);
  const sections: ElfSection[] = raw.map((s, index) => ({
    index,
    name: cstr(names, s.nameOff),
    type: s.type,
    flags: s.flags,
    size: s.size,
    data: s.type === SHT_NOBITS ? new Uint8Array(0) : bytes.subarray(s.offset, s.offset + s.size),
  }));
  const symbols: ElfSymbol[] = [];
  const symtab = raw.find((s) => s.type === SHT_SYMTAB);
  if (symtab !== undefined) {
    const str = raw[symtab.link];
    const strBytes =
      str === undefined ? new Uint8Array(0) : bytes.subarray(str.offset, str.offset + str.size);
    const n = Math.floor(symtab.size / 24);
    for (let i = 1; i < n; i++) {
      const o = symtab.offset + i * 24;
      const info = bytes[o + 4]!;
      symbols.push({
        name: cstr(strBytes, v.getUint32(o, true)),
        type: info & 0xf,
        bind: info >> 4,
        section: v.getUint16(o + 6, true),
        value: Number(v.getBigUint64(o + 8, true)),
        size: Number(v.getBigUint64(o + 16, true)),
      });
    }
  }
  return { sections, symbols };
}
