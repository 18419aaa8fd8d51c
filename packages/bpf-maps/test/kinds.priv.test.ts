import { possibleCpus } from '@datapath/libbpf';
import { requireRoot, uniqueName } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { array, createMap, lpmKey, lpmKeyCodec, pad, u8, u32, u64 } from '../src/index.js';
import { bpftoolDump, byKey, le } from './helpers.js';

describe('every map kind round-trips through the kernel (bpftool as oracle)', () => {
  it('LRU hash evicts instead of failing when full', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'lruHash', key: u32, value: u32, maxEntries: 8, name: uniqueName() });
    expect(map.kind).toBe('lruHash');
    for (let i = 0; i < 64; i++) map.set(i, i * 10);
    const dump = bpftoolDump(map.id);
    expect(dump.length).toBeGreaterThan(0);
    expect(dump.length).toBeLessThanOrEqual(8);
    for (const e of dump) {
      const k = new DataView(e.key.buffer).getUint32(0, true);
      expect([...e.value!]).toEqual(le(k * 10, 4));
      expect(map.get(k)).toBe(k * 10);
    }
    expect(map.get(63)).toBe(630); // the most recent insert survives
  });

  it('array specs take an optional u32 key (as the loader does); a wrong or missing codec is named', (ctx) => {
    requireRoot(ctx);
    using keyed = createMap({ type: 'array', key: u32, value: u64, maxEntries: 2, name: uniqueName() });
    keyed.set(1, 5n);
    expect(keyed.get(1)).toBe(5n);
    const bad = (spec: unknown) => {
      try {
        createMap(spec as never);
      } catch (e) {
        return e as { code: string; target?: string; message: string };
      }
      throw new Error('accepted');
    };
    expect(bad({ type: 'array', key: u64, value: u64, maxEntries: 2 })).toMatchObject({
      code: 'InvalidArgument',
      target: 'key',
      message: expect.stringContaining('spec.key of a array map must be a 4-byte codec'),
    });
    expect(bad({ type: 'hash', value: u64, maxEntries: 2 })).toMatchObject({
      code: 'InvalidArgument',
      target: 'key',
      message: expect.stringContaining('a hash map needs spec.key'),
    });
    expect(bad({ type: 'array', maxEntries: 2 })).toMatchObject({ code: 'InvalidArgument', target: 'value' });
    expect(bad({ type: 'hashh', maxEntries: 2 })).toMatchObject({ code: 'InvalidArgument', target: 'type' });
  });

  it('array: every index exists, writes land at the index, delete is refused, clear zeroes', (ctx) => {
    requireRoot(ctx);
    using map = createMap({ type: 'array', value: array(u32, 2), maxEntries: 4, name: uniqueName() });
    expect(map.get(3)).toEqual([0, 0]);
    map.set(1, [7, 8]);
    map.set(3, [0xffff_ffff, 1]);
    const dump = byKey(bpftoolDump(map.id));
    expect(dump.map((e) => [...e.value!])).toEqual([
      [0, 0, 0, 0, 0, 0, 0, 0],
      [...le(7, 4), ...le(8, 4)],
      [0, 0, 0, 0, 0, 0, 0, 0],
      [...le(0xffff_ffff, 4), ...le(1, 4)],
    ]);
    expect(() => map.set(4, [1, 1])).toThrow(expect.objectContaining({ code: 'Exhausted', reason: 'Full' }));
    expect(() => map.delete(1)).toThrow(expect.objectContaining({ code: 'InvalidArgument', errno: 22 }));
    expect(() => map.lookupAndDelete(1)).toThrow(
      expect.objectContaining({
        code: 'NotSupported',
        errno: 524,
        message: expect.stringContaining('array maps'),
      }),
    );
    expect(map.count()).toBe(4);
    expect(map.clear()).toBe(4);
    expect(bpftoolDump(map.id).every((e) => e.value!.every((b) => b === 0))).toBe(true);
  });

  it('LPM trie: longest prefix wins, static prefix fields take part in the key', (ctx) => {
    requireRoot(ctx);
    const key = lpmKeyCodec({ family: 'ipv4', prefix: { _pad: pad(2), clusterId: u8, family: u8 } });
    expect(key.size).toBe(12);
    using trie = createMap({ type: 'lpmTrie', key, value: u32, maxEntries: 16, name: uniqueName() });
    const c1 = { clusterId: 1, family: 2 };
    trie.set(lpmKey.fromCidr('10.0.0.0/8', c1), 8);
    trie.set(lpmKey.fromCidr('10.1.0.0/16', c1), 16);
    trie.set(lpmKey.fromCidr('10.1.0.0/16', { clusterId: 2, family: 2 }), 99);
    expect(trie.get(lpmKey.fromCidr('10.1.2.3/32', c1))).toBe(16);
    expect(trie.get(lpmKey.fromCidr('10.9.9.9/32', c1))).toBe(8);
    expect(trie.get(lpmKey.fromCidr('10.1.2.3', { clusterId: 2, family: 2 }))).toBe(99);
    expect(trie.get(lpmKey.fromCidr('10.9.9.9', { clusterId: 2, family: 2 }))).toBeUndefined();
    expect(trie.get(lpmKey.fromCidr('192.168.0.1/32', c1))).toBeUndefined();
    // prefixlen counts the 32 static bits; bpftool sees the raw bytes.
    const raw = byKey(bpftoolDump(trie.id)).map((e) => [...e.key]);
    expect(raw).toContainEqual([...le(32 + 8, 4), 0, 0, 1, 2, 10, 0, 0, 0]);
    expect(raw).toContainEqual([...le(32 + 16, 4), 0, 0, 2, 2, 10, 1, 0, 0]);
    const dumped = trie.dump().map(([k, v]) => [`${k.addr}/${k.prefixLen}@${k.clusterId}`, v]);
    expect(dumped.sort()).toEqual(
      [
        ['10.0.0.0/8@1', 8],
        ['10.1.0.0/16@1', 16],
        ['10.1.0.0/16@2', 99],
      ].sort(),
    );
    expect(trie.delete(lpmKey.fromCidr('10.1.0.0/16', c1))).toBe(true);
    expect(trie.get(lpmKey.fromCidr('10.1.2.3/32', c1))).toBe(8);
  });

  it('LPM trie with IPv4 in a 16-byte field, as Cilium stores it', (ctx) => {
    requireRoot(ctx);
    const key = lpmKeyCodec({
      family: 'ipv4',
      addressSize: 16,
      prefix: { _pad: pad(2), clusterId: u8, family: u8 },
    });
    using trie = createMap({ type: 'lpmTrie', key, value: u32, maxEntries: 8, name: uniqueName() });
    const v4 = { clusterId: 0, family: 2 };
    trie.set(lpmKey.fromCidr('10.244.0.0/16', v4), 16);
    trie.set(lpmKey.fromCidr('10.244.3.0/24', v4), 24);
    expect(trie.get(lpmKey.fromCidr('10.244.3.9', v4))).toBe(24);
    expect(trie.get(lpmKey.fromCidr('10.244.4.9', v4))).toBe(16);
    const raw = byKey(bpftoolDump(trie.id)).map((e) => [...e.key]);
    expect(raw).toContainEqual([...le(32 + 16, 4), 0, 0, 0, 2, 10, 244, ...new Array(14).fill(0)]);
  });

  it('LPM trie over IPv6', (ctx) => {
    requireRoot(ctx);
    using trie = createMap({
      type: 'lpmTrie',
      key: lpmKeyCodec({ family: 'ipv6' }),
      value: u32,
      maxEntries: 4,
      name: uniqueName(),
    });
    trie.set(lpmKey.fromCidr('fd00:10::/32'), 1);
    trie.set(lpmKey.fromCidr('fd00:10:1::/48'), 2);
    expect(trie.get(lpmKey.fromCidr('fd00:10:1::5'))).toBe(2);
    expect(trie.get(lpmKey.fromCidr('fd00:10:2::5'))).toBe(1);
    expect(trie.get(lpmKey.fromCidr('fd00:11::1'))).toBeUndefined();
    const raw = byKey(bpftoolDump(trie.id)).map((e) => [...e.key]);
    expect(raw).toContainEqual([...le(32, 4), 0xfd, 0, 0, 0x10, ...new Array(12).fill(0)]);
  });

  it('per-CPU hash and array: one value per possible CPU, in bpftool order', (ctx) => {
    requireRoot(ctx);
    const cpus = possibleCpus();
    using hash = createMap({ type: 'perCpuHash', key: u32, value: u32, maxEntries: 4, name: uniqueName() });
    expect(hash.cpus).toBe(cpus);
    const vals = Array.from({ length: cpus }, (_, i) => 100 + i);
    hash.set(5, vals);
    expect(hash.get(5)).toEqual(vals);
    const dump = bpftoolDump(hash.id);
    expect(dump).toHaveLength(1);
    expect(dump[0]!.values!.map((v) => [...v])).toEqual(vals.map((v) => le(v, 4)));
    expect(() => hash.set(6, [1])).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(hash.dump()).toEqual([[5, vals]]);

    using arr = createMap({ type: 'perCpuArray', value: u64, maxEntries: 2, name: uniqueName() });
    const big = Array.from({ length: cpus }, (_, i) => 2n ** 40n + BigInt(i));
    arr.set(1, big);
    expect(arr.get(1)).toEqual(big);
    expect(arr.get(0)).toEqual(new Array(cpus).fill(0n));
    const adump = byKey(bpftoolDump(arr.id));
    expect(adump[1]!.values!.map((v) => [...v])).toEqual(big.map((v) => le(v, 8)));
    expect(arr.clear()).toBe(2);
    expect(bpftoolDump(arr.id).every((e) => e.values!.every((v) => v.every((b) => b === 0)))).toBe(true);
  });
});
