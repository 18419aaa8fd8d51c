import { BpfError } from '@datapath/libbpf';

/** `BTF_KIND_*` numbers. */
export const BtfKind = {
  Int: 1,
  Ptr: 2,
  Array: 3,
  Struct: 4,
  Union: 5,
  Enum: 6,
  Fwd: 7,
  Typedef: 8,
  Volatile: 9,
  Const: 10,
  Restrict: 11,
  Func: 12,
  FuncProto: 13,
  Var: 14,
  Datasec: 15,
  Float: 16,
  DeclTag: 17,
  TypeTag: 18,
  Enum64: 19,
} as const;

/** A struct or union member. */
export interface BtfMember {
  /** Member name ('' for an anonymous member). */
  name: string;
  /** Type id. */
  type: number;
  /** Offset in bits from the start of the struct. */
  bitOffset: number;
  /** Bitfield size in bits, 0 when the member is not a bitfield. */
  bitSize: number;
}

/** One BTF type, decoded. Type ids start at 1 (0 is `void`). */
export type BtfType =
  | {
      kind: 'int';
      id: number;
      name: string;
      size: number;
      signed: boolean;
      bool: boolean;
      char: boolean;
      bits: number;
      bitOffset: number;
    }
  | { kind: 'ptr'; id: number; name: string; type: number }
  | { kind: 'array'; id: number; name: string; type: number; nelems: number }
  | { kind: 'struct' | 'union'; id: number; name: string; size: number; members: BtfMember[] }
  | {
      kind: 'enum';
      id: number;
      name: string;
      size: number;
      signed: boolean;
      values: Array<{ name: string; value: bigint }>;
    }
  | { kind: 'fwd'; id: number; name: string }
  | {
      kind: 'typedef' | 'volatile' | 'const' | 'restrict' | 'typeTag';
      id: number;
      name: string;
      type: number;
    }
  | { kind: 'func'; id: number; name: string; type: number }
  | { kind: 'funcProto'; id: number; name: string }
  | { kind: 'var'; id: number; name: string; type: number; linkage: number }
  | {
      kind: 'datasec';
      id: number;
      name: string;
      size: number;
      vars: Array<{ type: number; offset: number; size: number }>;
    }
  | { kind: 'float'; id: number; name: string; size: number }
  | { kind: 'declTag'; id: number; name: string; type: number };

/** A parsed `.BTF` section. */
export interface Btf {
  /** Types by id; index 0 is a placeholder for `void`. */
  types: BtfType[];
}

function bad(message: string): BpfError {
  return new BpfError('InvalidArgument', `parseBtf: ${message}`, { op: 'parseBtf' });
}

/**
 * Parses a raw `.BTF` section (pure; the format of the kernel's `Documentation/bpf/btf.rst`).
 *
 * @throws {@link BpfError} `InvalidArgument` for a bad magic, version or a truncated type.
 */
export function parseBtf(bytes: Uint8Array): Btf {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || v.getUint16(0, true) !== 0xeb9f) throw bad('bad magic (not little-endian BTF)');
  if (bytes[2] !== 1) throw bad(`unsupported BTF version ${bytes[2]}`);
  const hdrLen = v.getUint32(4, true);
  const typeOff = hdrLen + v.getUint32(8, true);
  const typeEnd = typeOff + v.getUint32(12, true);
  const strOff = hdrLen + v.getUint32(16, true);
  const strEnd = strOff + v.getUint32(20, true);
  if (typeEnd > bytes.length || strEnd > bytes.length) throw bad('sections out of bounds');
  const str = (off: number): string => {
    let end = strOff + off;
    while (end < strEnd && bytes[end] !== 0) end++;
    return new TextDecoder().decode(bytes.subarray(strOff + off, end));
  };
  const types: BtfType[] = [{ kind: 'fwd', id: 0, name: 'void' }];
  let o = typeOff;
  const u32 = (at: number) => {
    if (at + 4 > typeEnd) throw bad('truncated type');
    return v.getUint32(at, true);
  };
  while (o < typeEnd) {
    const id = types.length;
    const name = str(u32(o));
    const info = u32(o + 4);
    const sizeOrType = u32(o + 8);
    const vlen = info & 0xffff;
    const kind = (info >>> 24) & 0x1f;
    const kflag = info >>> 31 === 1;
    o += 12;
    switch (kind) {
      case BtfKind.Int: {
        const enc = u32(o);
        o += 4;
        const e = (enc >>> 24) & 0xf;
        types.push({
          kind: 'int',
          id,
          name,
          size: sizeOrType,
          signed: (e & 1) !== 0,
          char: (e & 2) !== 0,
          bool: (e & 4) !== 0,
          bits: enc & 0xff,
          bitOffset: (enc >>> 16) & 0xff,
        });
        break;
      }
      case BtfKind.Ptr:
        types.push({ kind: 'ptr', id, name, type: sizeOrType });
        break;
      case BtfKind.Array:
        types.push({ kind: 'array', id, name, type: u32(o), nelems: u32(o + 8) });
        o += 12;
        break;
      case BtfKind.Struct:
      case BtfKind.Union: {
        const members: BtfMember[] = [];
        for (let i = 0; i < vlen; i++, o += 12) {
          const off = u32(o + 8);
          members.push({
            name: str(u32(o)),
            type: u32(o + 4),
            bitOffset: kflag ? off & 0xffffff : off,
            bitSize: kflag ? off >>> 24 : 0,
          });
        }
        types.push({
          kind: kind === BtfKind.Struct ? 'struct' : 'union',
          id,
          name,
          size: sizeOrType,
          members,
        });
        break;
      }
      case BtfKind.Enum:
      case BtfKind.Enum64: {
        const values: Array<{ name: string; value: bigint }> = [];
        const wide = kind === BtfKind.Enum64;
        for (let i = 0; i < vlen; i++, o += wide ? 12 : 8) {
          const lo = u32(o + 4);
          const value = wide ? (BigInt(u32(o + 8)) << 32n) | BigInt(lo) : kflag ? BigInt(lo | 0) : BigInt(lo);
          values.push({ name: str(u32(o)), value: wide && kflag ? BigInt.asIntN(64, value) : value });
        }
        types.push({ kind: 'enum', id, name, size: sizeOrType, signed: kflag, values });
        break;
      }
      case BtfKind.Fwd:
        types.push({ kind: 'fwd', id, name });
        break;
      case BtfKind.Typedef:
      case BtfKind.Volatile:
      case BtfKind.Const:
      case BtfKind.Restrict:
      case BtfKind.TypeTag: {
        const k = ({ 8: 'typedef', 9: 'volatile', 10: 'const', 11: 'restrict', 18: 'typeTag' } as const)[
          kind
        ];
        types.push({ kind: k, id, name, type: sizeOrType });
        break;
      }
      case BtfKind.Func:
        types.push({ kind: 'func', id, name, type: sizeOrType });
        break;
      case BtfKind.FuncProto:
        o += vlen * 8;
        types.push({ kind: 'funcProto', id, name });
        break;
      case BtfKind.Var:
        types.push({ kind: 'var', id, name, type: sizeOrType, linkage: u32(o) });
        o += 4;
        break;
      case BtfKind.Datasec: {
        const vars = [];
        for (let i = 0; i < vlen; i++, o += 12)
          vars.push({ type: u32(o), offset: u32(o + 4), size: u32(o + 8) });
        types.push({ kind: 'datasec', id, name, size: sizeOrType, vars });
        break;
      }
      case BtfKind.Float:
        types.push({ kind: 'float', id, name, size: sizeOrType });
        break;
      case BtfKind.DeclTag:
        types.push({ kind: 'declTag', id, name, type: sizeOrType });
        o += 4;
        break;
      default:
        throw bad(`unknown BTF kind ${kind} (type id ${id})`);
    }
  }
  return { types };
}

/** The type `id` with typedefs and qualifiers (`const`, `volatile`, `restrict`, type tags) peeled off. */
export function resolve(btf: Btf, id: number): BtfType {
  let t = btf.types[id];
  for (let guard = 0; t !== undefined && guard < 64; guard++) {
    if (
      t.kind === 'typedef' ||
      t.kind === 'volatile' ||
      t.kind === 'const' ||
      t.kind === 'restrict' ||
      t.kind === 'typeTag'
    )
      t = btf.types[t.type];
    else return t;
  }
  throw bad(`type id ${id} does not resolve`);
}

/** Size in bytes of type `id`. */
export function sizeOf(btf: Btf, id: number): number {
  const t = resolve(btf, id);
  switch (t.kind) {
    case 'int':
    case 'struct':
    case 'union':
    case 'enum':
    case 'float':
    case 'datasec':
      return t.size;
    case 'ptr':
      return 8;
    case 'array':
      return t.nelems * sizeOf(btf, t.type);
    default:
      throw bad(`type id ${id} (${t.kind}) has no size`);
  }
}
