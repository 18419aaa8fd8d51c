// Maglev consistent hashing (Eisenbud et al., NSDI 2016): every backend walks its own permutation of the
// table (offset + j·skip mod M, M prime) and, in turns, claims the next free entry on it. Weighted: a
// backend of weight w takes a turn in round r while it has taken fewer than r·w/wMax turns (equal weights
// give the paper's loop exactly). Typed arrays and one pass; no permutation tables are materialised.
import { LbError } from './errors.js';

/** The table sizes offered (primes, as Cilium's `--bpf-lb-maglev-table-size`). */
export const MAGLEV_TABLE_SIZES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;

/** One of {@link MAGLEV_TABLE_SIZES}. */
export type MaglevTableSize = (typeof MAGLEV_TABLE_SIZES)[number];

/** Default table size (Cilium's default). */
export const DEFAULT_MAGLEV_TABLE_SIZE: MaglevTableSize = 16381;

/** A backend as the table builder sees it. */
export interface MaglevBackend {
  /** Identity hashed into the backend's permutation, e.g. `10.244.1.5:8080`: the same on every node. */
  readonly key: string;
  /** Relative weight, 0..65535 (default 1); 0 leaves the backend out of the table. */
  readonly weight?: number | undefined;
}

/** Options of {@link maglevTable}. */
export interface MaglevOptions {
  /** Seed of the permutation hashes (u32, default 0): every node of a cluster must use the same. */
  seed?: number | undefined;
}

const encoder = new TextEncoder();

/**
 * MurmurHash3 (x86, 32-bit) of `data` with `seed`: the hash behind each backend's offset and skip.
 *
 * @example
 * ```ts
 * import { murmur3 } from '@datapath/lb';
 * murmur3(new TextEncoder().encode('hello'), 0); // 0x248bfa47
 * ```
 */
export function murmur3(data: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const n = data.length;
  const blocks = n & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = n & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= data[blocks + 2]! << 16;
    if (tail >= 2) k ^= data[blocks + 1]! << 8;
    k ^= data[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Where a backend's permutation of the table starts and how it steps. */
export interface MaglevPermutation {
  /** First entry, 0..M-1. */
  readonly offset: number;
  /** Step, 1..M-1. */
  readonly skip: number;
}

/**
 * A backend's place in the table: its permutation starts at `offset` and steps by `skip` (1..M-1).
 *
 * @example
 * ```ts
 * import { maglevPermutation } from '@datapath/lb';
 * const { offset, skip } = maglevPermutation('10.244.1.5:8080', 251);
 * console.log(offset < 251, skip >= 1 && skip < 251); // true true
 * ```
 */
export function maglevPermutation(key: string, size: number, seed = 0): MaglevPermutation {
  const bytes = encoder.encode(key);
  return {
    offset: murmur3(bytes, seed) % size,
    skip: (murmur3(bytes, (seed ^ 0x9e3779b9) >>> 0) % (size - 1)) + 1,
  };
}

/** Whether `size` is one of {@link MAGLEV_TABLE_SIZES}. */
export function isMaglevTableSize(size: unknown): size is MaglevTableSize {
  return (MAGLEV_TABLE_SIZES as readonly unknown[]).includes(size);
}

/**
 * Builds a Maglev lookup table of `size` entries over `backends`: entry e holds the index (into
 * `backends`) of the backend a flow hashing to e goes to, or -1 in every entry when no backend has a
 * weight above 0. Changing one backend of N moves about 1/N of the entries.
 *
 * @throws {@link LbError} `InvalidTableSize` for a size not in {@link MAGLEV_TABLE_SIZES}, `InvalidWeight`
 * for a weight outside 0..65535, `TooManyBackends` when there are more weighted backends than entries.
 * @example A table for three backends
 * ```ts
 * import { maglevTable } from '@datapath/lb';
 * const t = maglevTable([{ key: 'a' }, { key: 'b' }, { key: 'c', weight: 2 }], 251);
 * console.log(t.length, t.filter((i) => i === 2).length > t.filter((i) => i === 0).length); // 251 true
 * ```
 */
export function maglevTable(
  backends: readonly MaglevBackend[],
  size: number,
  options: MaglevOptions = {},
): Int32Array {
  const op = 'maglevTable';
  if (!isMaglevTableSize(size))
    throw new LbError(
      'InvalidTableSize',
      `table size ${String(size)} is not one of ${MAGLEV_TABLE_SIZES.join(', ')}`,
      {
        op,
      },
    );
  const seed = options.seed ?? 0;
  const n = backends.length;
  const weight = new Float64Array(n);
  let wMax = 0;
  let weighted = 0;
  for (let i = 0; i < n; i++) {
    const w = backends[i]!.weight ?? 1;
    if (!Number.isInteger(w) || w < 0 || w > 0xffff)
      throw new LbError(
        'InvalidWeight',
        `backend ${backends[i]!.key}: weight ${String(w)} is not in 0..65535`,
        {
          op,
        },
      );
    weight[i] = w;
    if (w > wMax) wMax = w;
    if (w > 0) weighted++;
  }
  const table = new Int32Array(size).fill(-1);
  if (weighted === 0) return table;
  if (weighted > size)
    throw new LbError('TooManyBackends', `${weighted} backends do not fit a table of ${size}`, { op });
  const pos = new Float64Array(n);
  const skip = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = maglevPermutation(backends[i]!.key, size, seed);
    pos[i] = p.offset;
    skip[i] = p.skip;
  }
  const taken = new Float64Array(n);
  let filled = 0;
  for (let round = 1; ; round++) {
    for (let i = 0; i < n; i++) {
      const w = weight[i]!;
      if (w === 0 || taken[i]! * wMax >= round * w) continue;
      let c = pos[i]!;
      const s = skip[i]!;
      while (table[c]! >= 0) {
        c += s;
        if (c >= size) c -= size;
      }
      table[c] = i;
      c += s;
      pos[i] = c >= size ? c - size : c;
      taken[i]!++;
      if (++filled === size) return table;
    }
  }
}

/**
 * How many entries of two tables of one size point at different backends (after mapping each index
 * through `idsA` / `idsB`, e.g. to backend ids, so reordered backend lists compare by identity).
 *
 * @example
 * ```ts
 * import { maglevMoved, maglevTable } from '@datapath/lb';
 * const a = maglevTable([{ key: 'a' }, { key: 'b' }], 251);
 * console.log(maglevMoved(a, a, ['a', 'b'], ['a', 'b'])); // 0
 * ```
 */
export function maglevMoved<T>(a: Int32Array, b: Int32Array, idsA: readonly T[], idsB: readonly T[]): number {
  let moved = 0;
  for (let e = 0; e < a.length; e++) if (idsA[a[e]!] !== idsB[b[e]!]) moved++;
  return moved;
}
