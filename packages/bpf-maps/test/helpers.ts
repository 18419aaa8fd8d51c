import { bpftoolJson } from '@datapath/testutils';

/** One element of `bpftool -j map dump`, as raw bytes. */
export interface DumpedEntry {
  key: Uint8Array;
  /** The value (ordinary maps). */
  value?: Uint8Array;
  /** One value per CPU (per-CPU maps). */
  values?: Uint8Array[];
}

interface RawEntry {
  key: string[];
  value?: string[];
  values?: { cpu: number; value: string[] }[];
}

const bytes = (hex: string[]) => Uint8Array.from(hex.map((h) => Number.parseInt(h, 16)));

/** Dumps a map with bpftool (an independent oracle) and returns raw key/value bytes. */
export function bpftoolDump(id: number): DumpedEntry[] {
  const raw = bpftoolJson<RawEntry[]>(['map', 'dump', 'id', String(id)]);
  return raw.map((e) => ({
    key: bytes(e.key),
    ...(e.value ? { value: bytes(e.value) } : {}),
    ...(e.values ? { values: e.values.sort((a, b) => a.cpu - b.cpu).map((v) => bytes(v.value)) } : {}),
  }));
}

/** Little-endian bytes of an unsigned integer of `size` bytes. */
export function le(n: number | bigint, size: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  for (let i = 0; i < size; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** Sorts dumped entries by key bytes, for order-independent comparison. */
export function byKey<T extends { key: Uint8Array }>(entries: T[]): T[] {
  return [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
}
