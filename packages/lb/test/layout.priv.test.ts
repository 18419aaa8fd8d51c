// The TypeScript layouts against the C: compile an object that includes bpf/lb.h (through the loader,
// with lbConfig), read its BTF with bpftool as an independent oracle, and load it to check the maps.
import { compile, load, openObject } from '@datapath/loader';
import { bpftoolJson, requireRoot } from '@datapath/testutils';
import { describe, expect, it } from 'vitest';
import { LB_BPF_DIR, lbConfig } from '../src/datapath.js';
import {
  affinityMatchKeyCodec,
  backendIdCodec,
  backendValueCodec,
  LB_MAP_NAMES,
  LB_STRUCT_SIZES,
  revNatIdCodec,
  revNatValueCodec,
  serviceKeyCodec,
  serviceValueCodec,
} from '../src/index.js';

interface BtfType {
  kind: string;
  name?: string;
  size?: number;
  members?: { name: string; bits_offset: number }[];
}

describe('bpf/lb.h layouts', () => {
  it('struct sizes and field offsets match the codecs; maps load with the codec sizes', async (ctx) => {
    requireRoot(ctx);
    const obj = await compile({
      source: '#include "lb.h"\n' + 'char _license[] SEC("license") = "Dual BSD/GPL";\n',
      includeDirs: [LB_BPF_DIR],
      config: lbConfig({ maglevTableSize: 251, serviceMapMax: 128, backendMapMax: 128 }),
    });
    const btf = bpftoolJson(['btf', 'dump', 'file', obj.path]) as { types: BtfType[] };
    const struct = (name: string) => btf.types.find((t) => t.kind === 'STRUCT' && t.name === name);
    for (const [name, size] of Object.entries(LB_STRUCT_SIZES)) expect(struct(name)?.size, name).toBe(size);
    const offsets = (name: string) =>
      Object.fromEntries((struct(name)?.members ?? []).map((m) => [m.name, m.bits_offset / 8]));
    expect(offsets('lb_svc_key')).toEqual({ addr: 0, dport: 16, slot: 18, proto: 20, scope: 21, pad: 22 });
    expect(offsets('lb_svc_value')).toEqual({
      backend_id: 0,
      count: 4,
      rev_nat_id: 6,
      flags: 8,
      flags2: 9,
      pad: 10,
    });
    expect(offsets('lb_backend')).toEqual({ addr: 0, port: 16, proto: 18, state: 19 });
    expect(offsets('lb_rev_nat_value')).toEqual({ addr: 0, port: 16, pad: 18 });
    expect(offsets('lb_affinity_match_key')).toEqual({ backend_id: 0, rev_nat_id: 4, pad: 6 });

    using coll = load(openObject(obj.path, 'lb'));
    const m = coll.maps;
    const shape = (n: string) => [m[n]?.keySize, m[n]?.valueSize];
    expect(shape(LB_MAP_NAMES.services)).toEqual([serviceKeyCodec.size, serviceValueCodec.size]);
    expect(shape(LB_MAP_NAMES.backends)).toEqual([backendIdCodec.size, backendValueCodec.size]);
    expect(shape(LB_MAP_NAMES.revNat)).toEqual([revNatIdCodec.size, revNatValueCodec.size]);
    expect(shape(LB_MAP_NAMES.affinityMatch)).toEqual([affinityMatchKeyCodec.size, 4]);
    expect(shape(LB_MAP_NAMES.affinity)).toEqual([24, 16]);
    expect(m[LB_MAP_NAMES.services]?.maxEntries).toBe(128);
    expect(m[LB_MAP_NAMES.maglev]?.inner).toMatchObject({ keySize: 4, valueSize: 251 * 4, maxEntries: 1 });
  });
});
