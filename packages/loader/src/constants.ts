import { BpfError, type ObjectConstantDecl } from '@datapath/libbpf';

/** A value a `.rodata` constant accepts: integers as number or bigint, bool, string for `char[]`, bytes otherwise. */
export type ConstantValue = number | bigint | boolean | string | Uint8Array;

function fail(name: string, message: string): BpfError {
  return new BpfError('InvalidArgument', `setConstant: ${name}: ${message}`, {
    op: 'setConstant',
    target: name,
  });
}

/** Encodes `value` into `out` (the constant's bytes, little-endian) after checking it against the BTF type. */
export function encodeConstant(decl: ObjectConstantDecl, value: ConstantValue, out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  switch (decl.kind) {
    case 'bool':
      if (typeof value !== 'boolean') throw fail(decl.name, `expects a boolean, got ${typeof value}`);
      out.fill(0);
      out[0] = value ? 1 : 0;
      return;
    case 'int':
    case 'enum': {
      if (typeof value !== 'number' && typeof value !== 'bigint') {
        throw fail(decl.name, `expects an integer, got ${typeof value}`);
      }
      if (typeof value === 'number' && !Number.isSafeInteger(value))
        throw fail(decl.name, `${value} is not a safe integer`);
      const v = BigInt(value);
      const bits = BigInt(decl.size * 8);
      const min = decl.signed ? -(1n << (bits - 1n)) : 0n;
      const max = decl.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
      if (v < min || v > max) {
        throw fail(
          decl.name,
          `${v} is out of range for a ${decl.signed ? 'signed' : 'unsigned'} ${decl.size * 8}-bit value`,
        );
      }
      const u = BigInt.asUintN(Number(bits), v);
      for (let i = 0; i < decl.size; i++) view.setUint8(i, Number((u >> BigInt(i * 8)) & 0xffn));
      return;
    }
    case 'chars': {
      if (typeof value !== 'string') throw fail(decl.name, `expects a string, got ${typeof value}`);
      const bytes = new TextEncoder().encode(value);
      if (bytes.length >= decl.size)
        throw fail(decl.name, `string of ${bytes.length} bytes does not fit char[${decl.size}] with its NUL`);
      out.fill(0);
      out.set(bytes);
      return;
    }
    default:
      if (!(value instanceof Uint8Array)) throw fail(decl.name, `expects a Uint8Array of ${decl.size} bytes`);
      if (value.byteLength !== decl.size)
        throw fail(decl.name, `expects exactly ${decl.size} bytes, got ${value.byteLength}`);
      out.set(value);
  }
}

/** Decodes a constant's bytes according to its BTF type (the inverse of {@link encodeConstant}). */
export function decodeConstant(decl: ObjectConstantDecl, bytes: Uint8Array): ConstantValue {
  switch (decl.kind) {
    case 'bool':
      return bytes[0] !== 0;
    case 'int':
    case 'enum': {
      let u = 0n;
      for (let i = decl.size - 1; i >= 0; i--) u = (u << 8n) | BigInt(bytes[i]!);
      const v = decl.signed ? BigInt.asIntN(decl.size * 8, u) : u;
      return decl.size <= 4 ? Number(v) : v;
    }
    case 'chars': {
      const end = bytes.indexOf(0);
      return new TextDecoder().decode(bytes.subarray(0, end < 0 ? bytes.length : end));
    }
    default:
      return bytes.slice();
  }
}
