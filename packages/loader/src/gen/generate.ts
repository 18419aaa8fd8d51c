import { BpfError } from '@datapath/libbpf';
import { type Btf, type BtfType, resolve, sizeOf } from '../btf/btf.js';
import { readObjectBtf } from '../btf/object.js';

/** A codec the generator can put on a field instead of the one its C type gives. */
export type FieldCodecName = 'ipv4' | 'ipv6' | 'mac' | 'be16' | 'be32' | 'bytes';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** The object's name in the header comment and the regenerate hint (default `object`). */
  source?: string;
  /**
   * More named types to emit codecs for, beyond those of map keys, values and globals: the records a
   * program writes to a ring buffer or perf buffer (`struct event`), by their C name.
   */
  types?: readonly string[];
  /**
   * Codecs by `struct_name.field` or by typedef name, for what C types cannot say (an address in a
   * `__be32`, a MAC in a `__u8[6]`). The codec's size must equal the field's. Fields named `pad`, `pad1`,
   * `__pad` … are padding: written as zeros, left out of the value.
   */
  codecs?: Readonly<Record<string, FieldCodecName>>;
  /** Maps whose key and value get no codec (their clients are left to the caller): e.g. bitfield layouts. */
  skipMaps?: readonly string[];
}

const FIELD_CODECS: Readonly<Record<FieldCodecName, { size: number; align: number } | undefined>> = {
  ipv4: { size: 4, align: 1 },
  ipv6: { size: 16, align: 1 },
  mac: { size: 6, align: 1 },
  be16: { size: 2, align: 2 },
  be32: { size: 4, align: 4 },
  bytes: undefined,
};

const MAP_TYPES: Readonly<Record<number, { name: string; client?: string; indexed?: boolean }>> = {
  1: { name: 'hash', client: 'HashMap' },
  2: { name: 'array', client: 'ArrayMap', indexed: true },
  3: { name: 'prog_array', client: 'ProgArrayMap', indexed: true },
  4: { name: 'perf_event_array' },
  5: { name: 'percpu_hash', client: 'PerCpuHashMap' },
  6: { name: 'percpu_array', client: 'PerCpuArrayMap', indexed: true },
  7: { name: 'stack_trace' },
  8: { name: 'cgroup_array' },
  9: { name: 'lru_hash', client: 'LruHashMap' },
  10: { name: 'lru_percpu_hash', client: 'PerCpuHashMap' },
  11: { name: 'lpm_trie', client: 'LpmTrieMap' },
  12: { name: 'array_of_maps' },
  13: { name: 'hash_of_maps' },
  27: { name: 'ringbuf' },
};

/** The bpf-maps `kind` a map of each `bpf_map_type` opens as. */
const KIND_OF_TYPE: Readonly<Record<number, string>> = {
  1: 'hash',
  2: 'array',
  3: 'progArray',
  5: 'perCpuHash',
  6: 'perCpuArray',
  9: 'lruHash',
  10: 'lruPerCpuHash',
  11: 'lpmTrie',
};

/** Biome's natural import order: letters case-insensitively (upper case first on a tie), digit runs as numbers. */
function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a[i]!;
    const cb = b[j]!;
    if (/\d/.test(ca) && /\d/.test(cb)) {
      const ma = /^\d+/.exec(a.slice(i))![0];
      const mb = /^\d+/.exec(b.slice(j))![0];
      if (Number(ma) !== Number(mb)) return Number(ma) - Number(mb);
      i += ma.length;
      j += mb.length;
      continue;
    }
    const la = ca.toLowerCase();
    const lb = cb.toLowerCase();
    if (la !== lb) return la < lb ? -1 : 1;
    if (ca !== cb) return ca === la ? 1 : -1;
    i++;
    j++;
  }
  return a.length - i - (b.length - j);
}

/** A generated codec: its TS expression, and the size and alignment the bpf-maps codec will have. */
interface Gen {
  expr: string;
  /** The TypeScript type of the decoded value. */
  ts: string;
  size: number;
  align: number;
}

/** A single-quoted TypeScript string literal. */
const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const TS_OF: Readonly<Record<string, string>> = {
  ipv4: 'string',
  ipv6: 'string',
  mac: 'string',
  be16: 'number',
  be32: 'number',
};

function refuse(message: string): BpfError {
  return new BpfError('NotSupported', `generate: ${message}`, { op: 'generate' });
}

const camel = (s: string) => s.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const pascal = (s: string) => {
  const c = camel(s);
  return c.charAt(0).toUpperCase() + c.slice(1);
};
/** Field names that are explicit padding. */
const PAD_FIELD = /^_*pad\d*$/;
const plural = (n: number) => `${n} byte${n === 1 ? '' : 's'}`;
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const prop = (name: string) => (IDENT.test(name) ? name : JSON.stringify(name));
const RESERVED = new Set([
  'mapSpecs',
  'openMaps',
  'openPrograms',
  'programSections',
  'types',
  'constantDefaults',
  'setConstants',
  'narrow',
  'array',
  'bytes',
  'pad',
  'struct',
  'union',
  'enumeration',
]);

class Emitter {
  readonly #btf: Btf;
  readonly #codecs: Readonly<Record<string, FieldCodecName>>;
  readonly #done = new Map<number, Gen>();
  readonly #active = new Set<number>();
  readonly #names = new Map<string, number>();
  readonly imports = new Set<string>();
  readonly decls: string[] = [];
  /** C name → TS const of every emitted struct/union codec (for the `types` table). */
  readonly named: Array<[string, string]> = [];

  constructor(btf: Btf, codecs: Readonly<Record<string, FieldCodecName>>) {
    this.#btf = btf;
    this.#codecs = codecs;
  }

  #use(name: string): string {
    this.imports.add(name);
    return name;
  }

  #constName(cName: string, id: number, what: string): string {
    let n = camel(cName);
    if (RESERVED.has(n) || !IDENT.test(n)) n = `${n}Codec`;
    const prev = this.#names.get(n);
    if (prev !== undefined && prev !== id)
      throw refuse(`${what} ${cName} collides with another type named ${n}`);
    this.#names.set(n, id);
    return n;
  }

  /** The codec of type `id` as used at `where` (for messages), honouring typedef overrides. */
  codec(id: number, where: string): Gen {
    // Typedef names on the way down: `__be16`/`__be32` and user overrides.
    let t: BtfType | undefined = this.#btf.types[id];
    let typedefName: string | undefined;
    for (let guard = 0; t !== undefined && guard < 64; guard++) {
      if (t.kind === 'typedef') {
        const o =
          this.#codecs[t.name] ?? (t.name === '__be16' ? 'be16' : t.name === '__be32' ? 'be32' : undefined);
        if (o !== undefined) return this.#override(o, sizeOf(this.#btf, id), where);
        typedefName ??= t.name;
        t = this.#btf.types[t.type];
      } else if (
        t.kind === 'const' ||
        t.kind === 'volatile' ||
        t.kind === 'restrict' ||
        t.kind === 'typeTag'
      ) {
        t = this.#btf.types[t.type];
      } else break;
    }
    if (t === undefined) throw refuse(`${where}: bad type id ${id}`);
    switch (t.kind) {
      case 'int': {
        if (t.bitOffset !== 0 || t.bits !== t.size * 8)
          throw refuse(`${where} is a bitfield integer: not supported`);
        if (t.size === 16) return { expr: `${this.#use('bytes')}(16)`, ts: 'Uint8Array', size: 16, align: 1 };
        const name = `${t.signed && !t.bool ? 'i' : 'u'}${t.size * 8}`;
        return { expr: this.#use(name), ts: t.size === 8 ? 'bigint' : 'number', size: t.size, align: t.size };
      }
      case 'ptr':
        throw refuse(`${where} is a pointer: pointers have no meaning outside the kernel`);
      case 'float':
        throw refuse(`${where} is a floating-point number: not supported`);
      case 'fwd':
        throw refuse(`${where} is an incomplete type (${t.name}): its layout is unknown`);
      case 'array': {
        if (t.nelems === 0) throw refuse(`${where} is a flexible array member: its size is unknown`);
        const elem = resolve(this.#btf, t.type);
        if (elem.kind === 'int' && elem.size === 1) {
          return { expr: `${this.#use('bytes')}(${t.nelems})`, ts: 'Uint8Array', size: t.nelems, align: 1 };
        }
        const e = this.codec(t.type, `${where}[]`);
        return {
          expr: `${this.#use('array')}(${e.expr}, ${t.nelems})`,
          ts: `${e.ts}[]`,
          size: e.size * t.nelems,
          align: e.align,
        };
      }
      case 'enum':
        return this.#enum(t, typedefName);
      case 'struct':
      case 'union':
        return this.#composite(t, typedefName, where);
      default:
        throw refuse(`${where}: a ${t.kind} has no codec`);
    }
  }

  #override(o: FieldCodecName, size: number, where: string): Gen {
    if (o === 'bytes') return { expr: `${this.#use('bytes')}(${size})`, ts: 'Uint8Array', size, align: 1 };
    const c = FIELD_CODECS[o]!;
    if (c.size !== size) throw refuse(`${where}: codec ${o} is ${c.size} bytes, the field ${size}`);
    return { expr: this.#use(o), ts: TS_OF[o]!, size: c.size, align: c.align };
  }

  #enum(t: Extract<BtfType, { kind: 'enum' }>, typedefName: string | undefined): Gen {
    const cached = this.#done.get(t.id);
    if (cached !== undefined) return cached;
    // Older clang leaves BTF's signedness flag unset: a 4-byte enum whose values only fit an `int` is one.
    const signed =
      t.signed ||
      t.values.some((v) => v.value < 0n) ||
      (t.size === 4 && t.values.some((v) => v.value >= 0x80000000n));
    const values = t.values.map((v) =>
      signed && !t.signed && t.size === 4 ? { name: v.name, value: BigInt.asIntN(32, v.value) } : v,
    );
    const base = `${signed ? 'i' : 'u'}${t.size * 8}`;
    const cName = t.name || typedefName;
    if (cName === undefined || t.size > 4 || t.values.length === 0) {
      // An anonymous or 64-bit enum: its integer.
      return { expr: this.#use(base), ts: 'number', size: t.size, align: t.size };
    }
    const constName = pascal(cName);
    const codecName = this.#constName(cName, t.id, 'enum');
    this.#use('enumeration');
    this.#use(base);
    const lines = values.map((v) => `  ${prop(v.name)}: ${v.value},`);
    this.decls.push(
      `/** \`enum ${cName}\` (${plural(t.size)}). */\nexport const ${constName} = {\n${lines.join('\n')}\n} as const;\n` +
        `/** A value of \`enum ${cName}\`. */\nexport type ${constName} = (typeof ${constName})[keyof typeof ${constName}];\n` +
        `/** Codec of \`enum ${cName}\`. */\nexport const ${codecName} = enumeration(${base}, ${constName});`,
    );
    const g = { expr: codecName, ts: constName, size: t.size, align: t.size };
    this.#done.set(t.id, g);
    return g;
  }

  #composite(
    t: Extract<BtfType, { kind: 'struct' | 'union' }>,
    typedefName: string | undefined,
    where: string,
  ): Gen {
    const cached = this.#done.get(t.id);
    if (cached !== undefined) return cached;
    const cName = t.name || typedefName;
    if (this.#active.has(t.id)) throw refuse(`${where}: ${t.kind} ${cName ?? '(anon)'} contains itself`);
    this.#active.add(t.id);
    const owner = cName ?? where;
    const fields: Array<{ name: string; gen: Gen; offset: number; pad: boolean }> = [];
    const taken = new Set(t.members.map((m) => camel(m.name)));
    let padN = 0;
    const padName = () => {
      let n: string;
      do n = `_pad${padN++}`;
      while (taken.has(n));
      return n;
    };
    let anonN = 0;
    let cursor = 0;
    for (const m of t.members) {
      const label = `${t.kind} ${owner}: field ${m.name || '(anonymous)'}`;
      if (m.bitSize !== 0 || m.bitOffset % 8 !== 0) {
        throw refuse(
          `${label} is a bitfield (${m.bitSize || 'unaligned'} bits): bitfields are not supported`,
        );
      }
      const offset = m.bitOffset / 8;
      const key = `${owner}.${m.name}`;
      const o = this.#codecs[key];
      const size = sizeOf(this.#btf, m.type);
      // Explicit padding (`pad`, `pad1`, `__pad`): written as zeros and left out of the value.
      const padding =
        o === undefined && PAD_FIELD.test(m.name) && resolve(this.#btf, m.type).kind !== 'struct';
      const gen = padding
        ? { expr: `${this.#use('pad')}(${size})`, ts: 'undefined', size, align: 1 }
        : o !== undefined
          ? this.#override(o, size, label)
          : this.codec(m.type, label);
      const name = m.name === '' ? `_anon${anonN++}` : camel(m.name);
      if (t.kind === 'struct' && offset > cursor) {
        fields.push({
          name: padName(),
          gen: {
            expr: `${this.#use('pad')}(${offset - cursor})`,
            ts: 'undefined',
            size: offset - cursor,
            align: 1,
          },
          offset: cursor,
          pad: true,
        });
      }
      if (t.kind === 'struct' && offset < cursor) throw refuse(`${label} overlaps the field before it`);
      fields.push({ name, gen, offset, pad: padding });
      cursor = t.kind === 'struct' ? offset + gen.size : Math.max(cursor, gen.size);
    }
    let packed = false;
    let align = 1;
    if (t.kind === 'struct') {
      // Simulate bpf-maps' struct() layout: natural alignment must give BTF's offsets and size.
      let off = 0;
      for (const f of fields) {
        off = (off + f.gen.align - 1) & ~(f.gen.align - 1);
        if (off !== f.offset) packed = true;
        off += f.gen.size;
        align = Math.max(align, f.gen.align);
      }
      const natural = (off + align - 1) & ~(align - 1);
      if (packed || natural !== t.size) {
        packed = true;
        align = 1;
        if (cursor < t.size) {
          fields.push({
            name: padName(),
            gen: {
              expr: `${this.#use('pad')}(${t.size - cursor})`,
              ts: 'undefined',
              size: t.size - cursor,
              align: 1,
            },
            offset: cursor,
            pad: true,
          });
        }
      }
    } else {
      align = Math.max(1, ...fields.map((f) => f.gen.align));
      const natural = (Math.max(0, ...fields.map((f) => f.gen.size)) + align - 1) & ~(align - 1);
      if (natural !== t.size)
        throw refuse(`union ${owner}: its layout (${t.size} bytes) is not the natural one`);
    }
    this.#active.delete(t.id);
    const fn = this.#use(t.kind);
    const body = fields.map((f) => `    ${prop(f.name)}: ${f.gen.expr},`).join('\n');
    const opts = packed ? `{ packed: true, size: ${t.size} }` : `{ size: ${t.size} }`;
    const expr = `${fn}(\n  {\n${body}\n  },\n  ${opts},\n)`;
    if (cName === undefined) {
      // Anonymous: inline (re-indented by one level where it is used).
      const opt = t.kind === 'union' ? '?' : '';
      const ts = fields
        .filter((f) => !f.pad)
        .map((f) => `${prop(f.name)}${opt}: ${f.gen.ts}`)
        .join('; ');
      return {
        expr: `${fn}({ ${fields.map((f) => `${prop(f.name)}: ${f.gen.expr}`).join(', ')} }, ${opts})`,
        ts: `{ ${ts} }`,
        size: t.size,
        align,
      };
    }
    const constName = this.#constName(cName, t.id, t.kind);
    this.decls.push(
      `/** \`${t.kind} ${cName}\` (${plural(t.size)}). */\nexport const ${constName} = ${expr};\n` +
        `/** A \`${t.kind} ${cName}\`. */\nexport type ${pascal(cName)} = ${this.#use('CodecType')}<typeof ${constName}>;`,
    );
    this.named.push([cName, constName]);
    const g = { expr: constName, ts: pascal(cName), size: t.size, align };
    this.#done.set(t.id, g);
    return g;
  }
}

/**
 * Generates a TypeScript module from a BPF object's BTF: a `@datapath/bpf-maps` codec and a type for
 * every map key and value (structs, nested structs, unions, fixed arrays, enums as unions of literals,
 * 64-bit integers as bigint) and for the named `types`, typed clients for the maps (`openMaps`) and
 * programs (`openPrograms`) of a loaded collection, and the `.rodata` constants with their types, defaults
 * and a typed `setConstants`. The output is deterministic: the same object gives the same bytes.
 * Equivalent to: `bpftool gen skeleton OBJ` (for TypeScript) / cilium/ebpf's `bpf2go`.
 *
 * @throws {@link BpfError} `NotSupported` naming the field for a bitfield, pointer, float or flexible array
 * in a type that needs a codec; `InvalidArgument` for bytes that are not a BPF object with BTF, or an
 * unknown `types` name.
 * @example Generating bindings for an object
 * ```ts
 * import { readFileSync, writeFileSync } from 'node:fs';
 * import { generate } from '@datapath/loader';
 * writeFileSync('counter.gen.ts', generate(readFileSync('counter.bpf.o'), { source: 'counter.bpf.o' }));
 * ```
 */
export function generate(object: Uint8Array, options: GenerateOptions = {}): string {
  const obj = readObjectBtf(object);
  const btf = obj.btf;
  const em = new Emitter(btf, options.codecs ?? {});
  const skip = new Set(options.skipMaps ?? []);
  for (const s of skip) {
    if (!obj.maps.some((m) => m.name === s)) {
      throw new BpfError(
        'InvalidArgument',
        `generate: skipMaps names ${s}, which the object does not declare`,
        {
          op: 'generate',
          target: s,
        },
      );
    }
  }
  const mapLines: string[] = [];
  const clientLines: string[] = [];
  const openLines: string[] = [];
  const clientTypes = new Set<string>();
  let ofMaps = false;
  let plainMaps = false;
  for (const m of obj.maps) {
    const mt = MAP_TYPES[m.type];
    const typeName = mt?.name ?? `type ${m.type}`;
    const keySize = m.keyType !== 0 ? sizeOf(btf, m.keyType) : m.keySize;
    const valueSize = m.valueType !== 0 ? sizeOf(btf, m.valueType) : m.valueSize;
    const head = [
      `    type: ${q(typeName)},`,
      `    maxEntries: ${m.maxEntries},`,
      `    keySize: ${keySize},`,
      `    valueSize: ${valueSize},`,
    ];
    const client = mt?.client;
    if ((m.type === 12 || m.type === 13) && m.inner !== undefined && !skip.has(m.name)) {
      // Map-in-map: the outer key, and the inner maps' shape and codecs (checked on every insert).
      const where = `map ${m.name}`;
      const inner = m.inner;
      const innerKind = KIND_OF_TYPE[inner.type];
      const innerKeySize = inner.keyType !== 0 ? sizeOf(btf, inner.keyType) : inner.keySize;
      const innerValueSize = inner.valueType !== 0 ? sizeOf(btf, inner.valueType) : inner.valueSize;
      const outerHead = head.map((l) => (l.startsWith('    valueSize:') ? '    valueSize: 4,' : l));
      const innerHead = [
        `      type: ${q(MAP_TYPES[inner.type]?.name ?? `type ${inner.type}`)},`,
        `      maxEntries: ${inner.maxEntries},`,
        `      keySize: ${innerKeySize},`,
        `      valueSize: ${innerValueSize},`,
        `      flags: ${inner.flags},`,
      ];
      if (
        innerKind === undefined ||
        innerKind === 'progArray' ||
        innerKeySize === 0 ||
        innerValueSize === 0
      ) {
        mapLines.push(
          `  ${prop(m.name)}: {\n${outerHead.join('\n')}\n    inner: {\n${innerHead.join('\n')}\n    },\n  },`,
        );
        continue;
      }
      const raw = (n: number): Gen => {
        em.imports.add('bytes');
        return { expr: `bytes(${n})`, ts: 'Uint8Array', size: n, align: 1 };
      };
      const key = m.keyType !== 0 ? em.codec(m.keyType, `${where} key`) : raw(keySize);
      const ik = inner.keyType !== 0 ? em.codec(inner.keyType, `${where} inner key`) : raw(innerKeySize);
      const iv =
        inner.valueType !== 0 ? em.codec(inner.valueType, `${where} inner value`) : raw(innerValueSize);
      const indexedInner = innerKind === 'array' || innerKind === 'perCpuArray';
      const ikTs = indexedInner ? 'number' : ik.ts;
      mapLines.push(
        `  ${prop(m.name)}: {\n${outerHead.join('\n')}\n    key: ${key.expr},\n    inner: {\n${innerHead.join('\n')}\n      key: ${ik.expr},\n      value: ${iv.expr},\n    },\n  },`,
      );
      const outerClient = m.type === 12 ? 'ArrayOfMaps' : 'HashOfMaps';
      clientTypes.add(outerClient);
      const tsType =
        m.type === 12 ? `ArrayOfMaps<${ikTs}, ${iv.ts}>` : `HashOfMaps<${key.ts}, ${ikTs}, ${iv.ts}>`;
      clientLines.push(
        `  /** \`${m.name}\`: ${typeName} of ${MAP_TYPES[inner.type]?.name ?? `type ${inner.type}`} maps, ${m.maxEntries} entries. */\n  ${prop(m.name)}: ${tsType};`,
      );
      openLines.push(
        `    ${prop(m.name)}: narrowOfMaps(coll, ${q(m.name)}, ${q(m.type === 12 ? 'arrayOfMaps' : 'hashOfMaps')}),`,
      );
      ofMaps = true;
      continue;
    }
    if (client === undefined || skip.has(m.name) || keySize === 0 || valueSize === 0) {
      mapLines.push(`  ${prop(m.name)}: {\n${head.join('\n')}\n  },`);
      continue;
    }
    const where = `map ${m.name}`;
    const raw = (n: number): Gen => {
      em.imports.add('bytes');
      return { expr: `bytes(${n})`, ts: 'Uint8Array', size: n, align: 1 };
    };
    const key = m.keyType !== 0 ? em.codec(m.keyType, `${where} key`) : raw(keySize);
    const value = m.valueType !== 0 ? em.codec(m.valueType, `${where} value`) : raw(valueSize);
    mapLines.push(
      `  ${prop(m.name)}: {\n${head.join('\n')}\n    key: ${key.expr},\n    value: ${value.expr},\n  },`,
    );
    clientTypes.add(client);
    const tsType =
      client === 'ArrayMap' || client === 'PerCpuArrayMap'
        ? `${client}<${value.ts}>`
        : client === 'ProgArrayMap'
          ? 'ProgArrayMap'
          : `${client}<${key.ts}, ${value.ts}>`;
    clientLines.push(
      `  /** \`${m.name}\`: ${typeName}, ${m.maxEntries} entries. */\n  ${prop(m.name)}: ${tsType};`,
    );
    openLines.push(`    ${prop(m.name)}: narrow(coll, ${q(m.name)}, ${q(KIND_OF_TYPE[m.type]!)}),`);
    plainMaps = true;
  }
  for (const name of options.types ?? []) {
    const t = btf.types.find(
      (x) => (x.kind === 'struct' || x.kind === 'union' || x.kind === 'enum') && x.name === name,
    );
    if (t === undefined) {
      throw new BpfError(
        'InvalidArgument',
        `generate: the object's BTF has no struct, union or enum named ${name}`,
        {
          op: 'generate',
          target: name,
        },
      );
    }
    em.codec(t.id, `type ${name}`);
  }

  // .rodata constants.
  const constants = obj.globals.filter((g) => g.section === '.rodata');
  const constLines: string[] = [];
  const defaultLines: string[] = [];
  const codecLines: string[] = [];
  for (const c of constants) {
    const t = resolve(btf, c.type);
    const elem = t.kind === 'array' ? resolve(btf, t.type) : undefined;
    let tsType: string;
    let dflt: string;
    if (t.kind === 'int' && t.bool) {
      tsType = 'boolean';
      dflt = String(c.initial[0] !== 0);
    } else if ((t.kind === 'int' || t.kind === 'enum') && c.size <= 8) {
      let u = 0n;
      for (let i = c.size - 1; i >= 0; i--) u = (u << 8n) | BigInt(c.initial[i] ?? 0);
      const x = t.signed ? BigInt.asIntN(c.size * 8, u) : u;
      tsType =
        c.size <= 4 ? (t.kind === 'enum' ? em.codec(c.type, `constant ${c.name}`).ts : 'number') : 'bigint';
      dflt = c.size <= 4 ? String(x) : `${x}n`;
    } else if (elem?.kind === 'int' && elem.size === 1 && (elem.char || elem.name === 'char')) {
      tsType = 'string';
      const end = c.initial.indexOf(0);
      dflt = q(new TextDecoder().decode(c.initial.subarray(0, end < 0 ? c.size : end)));
    } else {
      const g = em.codec(c.type, `constant ${c.name}`);
      tsType = g.ts;
      dflt = `${g.expr}.decode(new DataView(new Uint8Array([${Array.from(c.initial).join(', ')}]).buffer), 0)`;
      codecLines.push(`    ${prop(c.name)}: ${g.expr},`);
    }
    constLines.push(
      `  /** \`${c.name}\` at .rodata+${c.offset} (${plural(c.size)}). */\n  ${prop(c.name)}: ${tsType};`,
    );
    defaultLines.push(`  ${prop(c.name)}: ${dflt},`);
  }

  // .data / .bss globals: typed accessors over the live section memory.
  // Pointer globals mean nothing outside the kernel (and often only keep a type in BTF): left out.
  const globals = obj.globals.filter(
    (g) => /^\.(data|bss)(\..+)?$/.test(g.section) && resolve(btf, g.type).kind !== 'ptr',
  );
  const globalLines: string[] = [];
  const accessorLines: string[] = [];
  const sections = [...new Set(globals.map((g) => g.section))];
  for (const g of globals) {
    const c = em.codec(g.type, `global ${g.name}`);
    const sec = `s${sections.indexOf(g.section)}`;
    globalLines.push(
      `  /** \`${g.name}\` at ${g.section}+${g.offset} (${plural(g.size)}). */\n  ${prop(g.name)}: ${c.ts};`,
    );
    accessorLines.push(
      `    get ${prop(g.name)}() {\n      return ${sec}.read(${c.expr}, ${g.offset});\n    },`,
      `    set ${prop(g.name)}(value) {\n      ${sec}.write(${c.expr}, ${g.offset}, value);\n    },`,
    );
  }

  // Assemble.
  const out: string[] = [];
  const src = options.source ?? 'object';
  out.push(`// Generated by datapath-gen from ${src} (its BTF): do not edit.`);
  const importLine = (names: string[], from: string) => {
    const one = `import { ${names.join(', ')} } from '${from}';`;
    return one.length <= 110 ? one : `import {\n${names.map((n) => `  ${n},`).join('\n')}\n} from '${from}';`;
  };
  const sortKey = (a: string) => a.replace(/^type /, '');
  const mapsImports = [
    ...[...em.imports].filter((i) => i !== 'CodecType'),
    ...(em.imports.has('CodecType') ? ['type CodecType'] : []),
    ...(openLines.length > 0 ? ['BpfError'] : []),
    ...(plainMaps ? ['type AnyMap', 'type MapCodecs'] : []),
    ...[...clientTypes].map((c) => `type ${c}`),
  ].sort((a, b) => naturalCompare(sortKey(a), sortKey(b)));
  if (mapsImports.length > 0) {
    const allTypes = mapsImports.every((n) => n.startsWith('type '));
    out.push(
      allTypes
        ? importLine(mapsImports.map(sortKey), '@datapath/bpf-maps').replace(/^import /, 'import type ')
        : importLine(mapsImports, '@datapath/bpf-maps'),
    );
  }
  const loaderImports = [
    ...(openLines.length > 0 || obj.programs.length > 0 || globals.length > 0 ? ['Collection'] : []),
    ...(constants.length > 0 ? ['ObjectSpec'] : []),
    ...(ofMaps ? ['MapOfMapsCodecs'] : []),
    ...(obj.programs.length > 0 ? ['Program'] : []),
  ];
  loaderImports.sort(naturalCompare);
  if (loaderImports.length > 0)
    out.push(`import type { ${loaderImports.join(', ')} } from '@datapath/loader';`);
  for (const d of em.decls) out.push('', d);
  if (em.named.length > 0) {
    out.push(
      '',
      '/** Every struct and union codec of this module by its C name (for layout checks). */',
      `export const types = {\n${em.named.map(([c, n]) => `  ${prop(c)}: ${n},`).join('\n')}\n} as const;`,
    );
  }
  out.push(
    '',
    "/** The object's maps as declared: type, sizes, and codecs where a typed client exists. */",
    mapLines.length === 0
      ? 'export const mapSpecs = {} as const;'
      : `export const mapSpecs = {\n${mapLines.join('\n')}\n} as const;`,
  );
  if (openLines.length > 0) {
    out.push(
      '',
      '/** Typed clients of the maps with a key and value codec. */',
      `export interface Maps {\n${clientLines.join('\n')}\n}`,
      '',
      ...(plainMaps
        ? [
            'function narrow<M>(coll: Collection, name: keyof typeof mapSpecs, kind: string): M {',
            '  const codecs = mapSpecs[name] as unknown as MapCodecs<unknown, unknown>;',
            '  const map: AnyMap<unknown, unknown> = coll.map(name, codecs);',
            '  if (map.kind !== kind) {',
            `    throw new BpfError('Incompatible', \`map \${name} is a \${map.kind}, expected a \${kind}\`, {`,
            "      op: 'openMaps',",
            '      target: name,',
            '    });',
            '  }',
            '  return map as M;',
            '}',
            '',
          ]
        : []),
      ...(ofMaps
        ? [
            'function narrowOfMaps<M>(coll: Collection, name: keyof typeof mapSpecs, kind: string): M {',
            '  const codecs = mapSpecs[name] as unknown as MapOfMapsCodecs<unknown, unknown, unknown>;',
            '  const map = coll.mapOfMaps(name, codecs);',
            '  if (map.kind !== kind) {',
            `    throw new BpfError('Incompatible', \`map \${name} is a \${map.kind}, expected a \${kind}\`, {`,
            "      op: 'openMaps',",
            '      target: name,',
            '    });',
            '  }',
            '  return map as M;',
            '}',
            '',
          ]
        : []),
      '/**',
      ' * Typed clients for the maps of a collection loaded from this object (they borrow its fds).',
      ' *',
      " * @throws BpfError `NotFound` for a map the collection lacks, `Incompatible` when a map's shape differs.",
      ' */',
      `export function openMaps(coll: Collection): Maps {\n  return {\n${openLines.join('\n')}\n  };\n}`,
    );
  }
  if (obj.programs.length > 0) {
    out.push(
      '',
      "/** The object's programs and their ELF sections. */",
      `export const programSections = {\n${obj.programs.map((p) => `  ${prop(p.name)}: ${q(p.section)},`).join('\n')}\n} as const;`,
      '',
      '/** A program name of this object. */',
      'export type ProgramName = keyof typeof programSections;',
      '',
      '/**',
      ' * The programs of a collection loaded from this object, by name.',
      ' *',
      ' * @throws BpfError `NotFound` for a program the collection did not load.',
      ' */',
      `export function openPrograms(coll: Collection): Record<ProgramName, Program> {\n  return {\n${obj.programs
        .map((p) => `    ${prop(p.name)}: coll.program(${q(p.name)}),`)
        .join('\n')}\n  };\n}`,
    );
  }
  if (globals.length > 0) {
    out.push(
      '',
      "/** The object's `.data` and `.bss` globals, read and written in place while its programs run. */",
      `export interface Globals {\n${globalLines.join('\n')}\n}`,
      '',
      '/**',
      ' * Typed accessors of the globals of a collection loaded from this object: every read and write goes to',
      ' * the memory the programs use (no copy, no system call).',
      ' *',
      ' * @throws BpfError `NotFound` when a section is missing, `BadFd` on access after the collection closed.',
      ' */',
      'export function openGlobals(coll: Collection): Globals {',
      ...sections.map((sec, i) => `  const s${i} = coll.globals(${q(sec)});`),
      `  return {\n${accessorLines.join('\n')}\n  };`,
      '}',
    );
  }
  if (constants.length > 0) {
    out.push(
      '',
      "/** The object's `.rodata` constants (`const volatile` globals), settable before load. */",
      `export interface Constants {\n${constLines.join('\n')}\n}`,
      '',
      '/** The constants as compiled. */',
      `export const constantDefaults: Constants = {\n${defaultLines.join('\n')}\n};`,
      '',
      '/**',
      ' * Sets constants on a spec of this object before load (checked against their BTF types).',
      ' *',
      " * @throws BpfError `InvalidArgument` for a value out of its type's range.",
      ' */',
      'export function setConstants(spec: ObjectSpec, values: Partial<Constants>): void {',
      ...(codecLines.length > 0
        ? [
            '  const codecs: Record<string, { size: number; encode(v: never, d: DataView, o: number): void }> = {',
            ...codecLines,
            '  };',
          ]
        : []),
      '  for (const [name, value] of Object.entries(values)) {',
      '    if (value === undefined) continue;',
      ...(codecLines.length > 0
        ? [
            '    const codec = codecs[name];',
            '    if (codec === undefined) spec.setConstant(name, value as Exclude<typeof value, object> | Uint8Array);',
            '    else {',
            '      const buf = new Uint8Array(codec.size);',
            '      codec.encode(value as never, new DataView(buf.buffer), 0);',
            '      spec.setConstant(name, buf);',
            '    }',
          ]
        : ['    spec.setConstant(name, value);']),
      '  }',
      '}',
    );
  }
  return `${out.join('\n')}\n`;
}
