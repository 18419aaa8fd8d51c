/**
 * The agent's map layouts against the kernel's own reading of them: an entry written into every key/value map of
 * bpf/datapath.c through the generated clients (the policy trie included: its key and value have no
 * bitfields) reads back field for field in `bpftool -j map lookup`'s BTF-formatted output.
 */
import { mapInfo } from '@datapath/libbpf';
import { type Collection, load, openObject } from '@datapath/loader';
import { bpftoolJson, requireRoot } from '@datapath/testutils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Dumped, expectSame } from '../../../packages/loader/test/helpers/btf-dump.js';
import {
  type CtEntry,
  type CtKey,
  type EndpointInfo,
  type LxcPolicyKey,
  LxcPolicyPrefix,
  MetricDir,
  MetricReason,
  mapSpecs,
  openMaps,
  type PolicyEntry,
} from '../src/datapath.gen.js';
import { generateDatapathModule } from '../src/layout.js';
import { policyTrieKey } from '../src/policy-map.js';

let object: string;
beforeAll(async () => {
  object = (await generateDatapathModule()).object;
});

/** `bpftool -j map lookup` of the entry at `key` (encoded with `codec`) in map `name`. */
function lookup<K>(
  coll: Collection,
  name: string,
  codec: { size: number; encode(k: K, v: DataView, o: number): void },
  key: K,
): Dumped {
  const bytes = new Uint8Array(codec.size);
  codec.encode(key, new DataView(bytes.buffer), 0);
  const id = mapInfo(coll.maps[name]!.fd).id;
  return bpftoolJson<Dumped>([
    'map',
    'lookup',
    'id',
    String(id),
    'key',
    'hex',
    ...[...bytes].map((b) => b.toString(16).padStart(2, '0')),
  ]);
}

/** What bpftool prints for an address stored as 4 bytes in a `__u32`/`__be32`: the bytes read little-endian. */
const ipAsU32 = (ip: unknown) =>
  new DataView(Uint8Array.from(String(ip).split('.').map(Number)).buffer).getUint32(0, true);
/** What bpftool prints for a MAC in a `__u8[6]`: its bytes. */
const macBytes = (mac: unknown) =>
  String(mac)
    .split(':')
    .map((h) => Number.parseInt(h, 16));

describe('agent maps through bpftool', () => {
  it('entries written through the generated clients read back field for field', (ctx) => {
    requireRoot(ctx);
    const spec = openObject(object, 'datapath');
    for (const m of Object.values(spec.maps)) m.pinning = 'none';
    using coll = load(spec);
    const maps = openMaps(coll);

    const ep: EndpointInfo = {
      ifindex: 0x01020304,
      lxcId: 0x0506,
      flags: 0x0708,
      secId: 0x090a0b0c,
      mac: '02:11:22:33:44:55',
      nodeMac: '02:66:77:88:99:aa',
      ip: '10.244.1.2',
    };
    const epConvert = {
      'value.mac': macBytes,
      'value.node_mac': macBytes,
      'value.ip': ipAsU32,
    };
    maps.endpoints.set(0x0af40102, ep);
    expectSame(
      lookup(coll, 'endpoints', mapSpecs.endpoints.key, 0x0af40102).formatted.value,
      ep,
      'value',
      {},
      {},
      epConvert,
    );
    maps.lxc.set(7, ep);
    expectSame(lookup(coll, 'lxc', mapSpecs.lxc.key, 7).formatted.value, ep, 'value', {}, {}, epConvert);

    const ipKey = { prefixlen: 64, clusterId: 3, family: 1, ip4: 0x0102f40a };
    const ipv = { secIdentity: 4242, flags: 5, tunnelEndpoint: '198.18.0.2' };
    maps.ipcache.set(ipKey, ipv);
    const ipc = lookup(coll, 'ipcache', mapSpecs.ipcache.key, ipKey);
    expectSame(ipc.formatted.key, ipKey, 'key', {});
    expectSame(ipc.formatted.value, ipv, 'value', {}, {}, { 'value.tunnel_endpoint': ipAsU32 });

    const ctk: CtKey = { saddr: '10.244.0.10', daddr: '10.244.0.11', sport: 40000, dport: 80, proto: 6 };
    const cte: CtEntry = {
      createdNs: 2n ** 40n + 5n,
      seenJiffies: 2n ** 33n + 7n,
      rev: 3,
      srcSecId: 1001,
      dstSecId: 1002,
      flags: 2,
      dropReason: MetricReason.REASON_POLICY_DENIED,
      dropLxc: 0x0102,
    };
    maps.ct4.set(ctk, cte);
    const ct = lookup(coll, 'ct4', mapSpecs.ct4.key, ctk);
    expectSame(
      ct.formatted.key,
      ctk,
      'key',
      { 'key.sport': 16, 'key.dport': 16 },
      {},
      { 'key.saddr': ipAsU32, 'key.daddr': ipAsU32 },
    );
    expectSame(ct.formatted.value, cte, 'value', {});

    const mk = { lxcId: 9, reason: MetricReason.REASON_INVALID_SOURCE, dir: MetricDir.DIR_EGRESS };
    const per = Array.from({ length: maps.metrics.cpus }, (_, i) => ({
      packets: BigInt(i + 1),
      bytes: 2n ** 35n + BigInt(i),
    }));
    maps.metrics.set(mk, per);
    const mt = lookup(coll, 'metrics', mapSpecs.metrics.key, mk);
    expectSame(mt.formatted.key, mk, 'key', {}, { 'key.reason': MetricReason, 'key.dir': MetricDir });
    expect(mt.formatted.values).toHaveLength(per.length);
    for (const v of mt.formatted.values!) expectSame(v.value, per[v.cpu], `cpu${v.cpu}`, {});

    const fw = Array.from({ length: maps.fwd.cpus }, (_, i) => ({
      ingress: { packets: 1n, bytes: BigInt(1500 * (i + 1)) },
      egress: { packets: BigInt(i + 10), bytes: 2n ** 40n },
    }));
    maps.fwd.set(5, fw);
    for (const v of lookup(coll, 'fwd', mapSpecs.fwd.key, 5).formatted.values!)
      expectSame(v.value, fw[v.cpu], `cpu${v.cpu}`, {});

    maps.config.set(0, {
      policyRev: 77,
      flags: 1,
      traceRate: 0x01020304,
      tunnelIfindex: 0,
      netdevIfindex: 0x0a0b0c0d,
    });
    expectSame(
      lookup(coll, 'config', mapSpecs.config.key, 0).formatted.value,
      { policyRev: 77, flags: 1, traceRate: 0x01020304, tunnelIfindex: 0, netdevIfindex: 0x0a0b0c0d },
      'value',
      {},
    );

    const lost = Array.from({ length: maps.events_lost.cpus }, (_, i) => 2n ** 50n + BigInt(i));
    maps.events_lost.set(0, lost);
    for (const v of lookup(coll, 'events_lost', mapSpecs.events_lost.key, 0).formatted.values!)
      expectSame(v.value, lost[v.cpu], `cpu${v.cpu}`, {});

    // The policy trie: generated codecs (no bitfields left), written through the typed client; and the
    // agent's engine-typed codec (policy-map.ts) gives the same bytes.
    const pk: LxcPolicyKey = {
      prefixlen: LxcPolicyPrefix.LXC_POLICY_STATIC_PREFIX + 24,
      lxcId: 9,
      secLabel: 1234,
      egress: 1,
      protocol: 6,
      dport: 8080,
    };
    const pv: PolicyEntry = {
      proxyPort: 0x1f90,
      deny: 1,
      lpmPrefixLength: 24,
      authType: 5,
      hasExplicitAuthType: 1,
      proxyPortPriority: 7,
    };
    maps.policy.set(pk, pv);
    const pol = lookup(coll, 'policy', mapSpecs.policy.key, pk);
    expectSame(pol.formatted.key, pk, 'key', { 'key.dport': 16 });
    expectSame(pol.formatted.value, pv, 'value', { 'value.proxy_port': 16 });
    const engineKey = {
      lxcId: 9,
      key: { direction: 'egress' as const, identity: 1234, protocol: 6, port: 8080, prefixLen: 24 },
    };
    const viaEngine = lookup(coll, 'policy', policyTrieKey, engineKey);
    expect(viaEngine.formatted).toEqual(pol.formatted);
    expect(maps.policy.get(pk)).toEqual(pv);
  });
});
