// Field-by-field comparison of bpftool's BTF-formatted map dumps (`bpftool -j map dump|lookup`) with the
// values our codecs decode: the oracle of the generated (and hand-written) codecs' layouts.
import { expect } from 'vitest';

/** One element of `bpftool -j map dump` / `map lookup`: raw bytes and the BTF-formatted form. */
export interface Dumped {
  key: string[];
  value?: string[];
  values?: { cpu: number; value: string[] }[];
  formatted: {
    key: unknown;
    value?: Record<string, unknown>;
    values?: { cpu: number; value: Record<string, unknown> }[];
  };
}

const camel = (s: string) => s.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const swap16 = (n: number) => ((n & 0xff) << 8) | (n >> 8);
const swap32 = (n: number) => new DataView(Uint32Array.of(n).buffer).getUint32(0, false);

/**
 * Compares bpftool's BTF-formatted value with ours, member by member. `be` names the network-order fields
 * (bpftool prints them as host-order numbers), `enums` the enum fields (bpftool prints the enumerator's
 * name, and a 1-byte enum as a signed number), `convert` turns our value at a path into what bpftool prints
 * (an address string into the number its bytes read as). Bitfields, which bpftool prints as hex strings,
 * compare as numbers.
 */
export function expectSame(
  theirs: unknown,
  ours: unknown,
  path: string,
  be: Record<string, 16 | 32>,
  enums: Record<string, Readonly<Record<string, number>>> = {},
  convert: Record<string, (ours: unknown) => unknown> = {},
): void {
  const conv = convert[path];
  if (conv !== undefined) {
    expectSame(theirs, conv(ours), `${path}'`, be, enums, {});
    return;
  }
  if (theirs !== null && typeof theirs === 'object' && !Array.isArray(theirs)) {
    for (const [k, v] of Object.entries(theirs)) {
      if (/^_*pad\d*$/.test(k) && !Object.hasOwn(ours as object, camel(k))) {
        for (const x of Array.isArray(v) ? v : [v])
          expect(BigInt(x as number), `${path}.${k} (padding)`).toBe(0n);
        continue;
      }
      expect(ours, path).toHaveProperty(camel(k));
      expectSame(v, (ours as Record<string, unknown>)[camel(k)], `${path}.${k}`, be, enums, convert);
    }
    return;
  }
  if (Array.isArray(theirs)) {
    const list = ours instanceof Uint8Array ? Array.from(ours) : (ours as unknown[]);
    expect(list.length, path).toBe(theirs.length);
    for (const [i, v] of theirs.entries()) expectSame(v, list[i], `${path}[${i}]`, be, enums, convert);
    return;
  }
  if (typeof theirs === 'string' && ours instanceof Uint8Array) {
    const end = ours.indexOf(0);
    expect(new TextDecoder().decode(ours.subarray(0, end < 0 ? ours.length : end)), path).toBe(theirs);
    return;
  }
  const e = enums[path];
  if (e !== undefined) {
    const named = typeof theirs === 'string' ? e[theirs] : undefined;
    const n = named ?? Number(BigInt.asUintN(8, BigInt(theirs as number)));
    expect(n, path).toBe(ours);
    return;
  }
  const bits = be[path];
  const mine = bits === 16 ? swap16(ours as number) : bits === 32 ? swap32(ours as number) : ours;
  expect(typeof mine === 'bigint' ? mine : BigInt(mine as number), path).toBe(
    BigInt(theirs as number | bigint),
  );
}
