// Checksums after translation, on crafted packets run through the programs (BPF_PROG_TEST_RUN): the
// packets carry full checksums (no offload), so every rewrite must keep the IPv4 header, TCP, UDP
// and ICMP checksums right; a UDP checksum of 0 ("none") must stay 0.
import {
  buildPacket,
  type Collection,
  compile,
  type Layer,
  load,
  openObject,
  parsePacket,
} from '@datapath/loader';
import { requireRoot } from '@datapath/testutils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lbConfig } from '../src/datapath/config.js';
import { ServiceWriter } from '../src/datapath.js';
import { ServiceTable } from '../src/index.js';
import { setConstants } from '../src/netdev.gen.js';
import { netdevConstants } from '../src/netdev-config.js';
import { NETDEV_SOURCES } from '../src/netdev-layout.js';

const NODE = '198.18.0.1';
const WORLD = '198.18.0.2';
const POD = '10.244.1.2';
const NODE6 = 'fd00:ff::1';
const WORLD6 = 'fd00:ff::2';
const POD6 = 'fd00:1:0:1::2';
const eth: Layer = { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' };

let coll: Collection | undefined;
beforeAll(async () => {
  if (process.getuid?.() !== 0) return;
  const { path } = await compile({ files: NETDEV_SOURCES });
  const spec = openObject(path, 'netdev');
  setConstants(
    spec,
    netdevConstants({
      nodeAddress: NODE,
      nodeAddress6: 'fd00:ff::1',
      masquerade: { podCidr: '10.244.1.0/24', clusterCidr: '10.244.0.0/16', podCidr6: 'fd00:1::/48' },
    }),
  );
  for (const m of Object.values(spec.maps)) m.pinning = 'none';
  coll = load(spec);
});
afterAll(() => coll?.close());

function run(prog: 'to_netdev' | 'from_netdev', layers: Layer[]) {
  const out = coll!.program(prog).run({ data: buildPacket(layers) });
  expect(out.verdict).toBe('TC_ACT_OK');
  return parsePacket(out.data);
}

describe('checksums after masquerade', () => {
  it('TCP: source rewritten on the way out, destination on the way back, all checksums right', (ctx) => {
    requireRoot(ctx);
    const [, ip, tcp] = run('to_netdev', [
      eth,
      { kind: 'ipv4', src: POD, dst: WORLD },
      { kind: 'tcp', sport: 40000, dport: 80, flags: { syn: true }, seq: 7 },
      { kind: 'payload', bytes: new Uint8Array([1, 2, 3]) },
    ]);
    expect(ip).toMatchObject({ kind: 'ipv4', src: NODE, dst: WORLD, checksumOk: true });
    expect(tcp).toMatchObject({ kind: 'tcp', sport: 40000, dport: 80, checksumOk: true });
    const [, rip, rtcp] = run('from_netdev', [
      eth,
      { kind: 'ipv4', src: WORLD, dst: NODE },
      { kind: 'tcp', sport: 80, dport: 40000, flags: { syn: true, ack: true }, ack: 8 },
    ]);
    expect(rip).toMatchObject({ kind: 'ipv4', src: WORLD, dst: POD, checksumOk: true });
    expect(rtcp).toMatchObject({ kind: 'tcp', sport: 80, dport: 40000, checksumOk: true });
  });

  it('TCP: a second pod tuple on the same port gets another port, checksum right', (ctx) => {
    requireRoot(ctx);
    const [, ip, tcp] = run('to_netdev', [
      eth,
      { kind: 'ipv4', src: '10.244.1.6', dst: WORLD },
      { kind: 'tcp', sport: 40000, dport: 80, flags: { syn: true } },
    ]);
    expect(ip).toMatchObject({ src: NODE, checksumOk: true });
    expect(tcp).toMatchObject({ kind: 'tcp', checksumOk: true });
    expect((tcp as { sport: number }).sport).not.toBe(40000);
  });

  it('UDP: a checksum of 0 stays 0; a real one stays right', (ctx) => {
    requireRoot(ctx);
    const [, ip, udp] = run('to_netdev', [
      eth,
      { kind: 'ipv4', src: POD, dst: WORLD },
      { kind: 'udp', sport: 40001, dport: 53, checksum: 0 },
      { kind: 'payload', bytes: new Uint8Array([9, 9]) },
    ]);
    expect(ip).toMatchObject({ src: NODE, checksumOk: true });
    expect(udp).toMatchObject({ kind: 'udp', sport: 40001, checksum: 0 });
    const [, ip2, udp2] = run('to_netdev', [
      eth,
      { kind: 'ipv4', src: POD, dst: WORLD },
      { kind: 'udp', sport: 40002, dport: 53 },
      { kind: 'payload', bytes: new Uint8Array([9, 9, 9]) },
    ]);
    expect(ip2).toMatchObject({ src: NODE, checksumOk: true });
    expect(udp2).toMatchObject({ kind: 'udp', checksumOk: true });
    const [, rip, rudp] = run('from_netdev', [
      eth,
      { kind: 'ipv4', src: WORLD, dst: NODE },
      { kind: 'udp', sport: 53, dport: 40001, checksum: 0 },
    ]);
    expect(rip).toMatchObject({ dst: POD, checksumOk: true });
    expect(rudp).toMatchObject({ dport: 40001, checksum: 0 });
  });

  it('ICMP echo: identifier moved into the range, checksum right both ways', (ctx) => {
    requireRoot(ctx);
    const [, ip, icmp] = run('to_netdev', [
      eth,
      { kind: 'ipv4', src: POD, dst: WORLD },
      { kind: 'icmp', type: 8, id: 1234, seq: 1 },
      { kind: 'payload', bytes: new Uint8Array(16).fill(7) },
    ]);
    expect(ip).toMatchObject({ src: NODE, checksumOk: true });
    expect(icmp).toMatchObject({ kind: 'icmp', type: 8, seq: 1, checksumOk: true });
    const id = (icmp as { id: number }).id;
    expect(id).toBeGreaterThanOrEqual(32768);
    const [, rip, ricmp] = run('from_netdev', [
      eth,
      { kind: 'ipv4', src: WORLD, dst: NODE },
      { kind: 'icmp', type: 0, id, seq: 1 },
      { kind: 'payload', bytes: new Uint8Array(16).fill(7) },
    ]);
    expect(rip).toMatchObject({ dst: POD, checksumOk: true });
    expect(ricmp).toMatchObject({ kind: 'icmp', type: 0, id: 1234, checksumOk: true });
  });

  it('IPv6: TCP and ICMPv6 echo through the pseudo header, both ways', (ctx) => {
    requireRoot(ctx);
    const eth6: Layer = { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', type: 0x86dd };
    const [, ip, tcp] = run('to_netdev', [
      eth6,
      { kind: 'ipv6', src: 'fd00:1:0:1::2', dst: 'fd00:ff::2' },
      { kind: 'tcp', sport: 40000, dport: 80, flags: { syn: true } },
      { kind: 'payload', bytes: new Uint8Array([5, 6, 7]) },
    ]);
    expect(ip).toMatchObject({ kind: 'ipv6', src: 'fd00:ff::1', dst: 'fd00:ff::2' });
    expect(tcp).toMatchObject({ kind: 'tcp', sport: 40000, checksumOk: true });
    const [, rip, rtcp] = run('from_netdev', [
      eth6,
      { kind: 'ipv6', src: 'fd00:ff::2', dst: 'fd00:ff::1' },
      { kind: 'tcp', sport: 80, dport: 40000, flags: { syn: true, ack: true } },
    ]);
    expect(rip).toMatchObject({ kind: 'ipv6', dst: 'fd00:1:0:1::2' });
    expect(rtcp).toMatchObject({ kind: 'tcp', dport: 40000, checksumOk: true });
    const [, , icmp] = run('to_netdev', [
      eth6,
      { kind: 'ipv6', src: 'fd00:1:0:1::2', dst: 'fd00:ff::2' },
      { kind: 'icmpv6', type: 128, id: 77, seq: 3 },
    ]);
    expect(icmp).toMatchObject({ kind: 'icmpv6', type: 128, checksumOk: true });
    const id = (icmp as { id: number }).id;
    const [, , ricmp] = run('from_netdev', [
      eth6,
      { kind: 'ipv6', src: 'fd00:ff::2', dst: 'fd00:ff::1' },
      { kind: 'icmpv6', type: 129, id, seq: 3 },
    ]);
    expect(ricmp).toMatchObject({ kind: 'icmpv6', type: 129, id: 77, checksumOk: true });
  });
});

describe('checksums after IPv6 NodePort translation (DNAT in, reverse NAT out)', () => {
  let np: Collection | undefined;
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return;
    const { path } = await compile({ files: NETDEV_SOURCES, config: lbConfig({ maglevTableSize: 251 }) });
    const spec = openObject(path, 'netdev');
    setConstants(spec, netdevConstants({ nodeAddress: NODE, nodeAddress6: NODE6, nodePort: true }));
    for (const m of Object.values(spec.maps)) m.pinning = 'none';
    np = load(spec);
    using writer = ServiceWriter.fromCollection(np, new ServiceTable({ tableSize: 251 }));
    for (const protocol of ['TCP', 'UDP'] as const)
      writer.upsert({
        name: `np6-${protocol}`,
        protocol,
        frontends: [{ kind: 'NodePort', address: NODE6, port: 30080 }],
        backends: [{ address: POD6, port: 8080 }],
      });
  });
  afterAll(() => np?.close());
  const run6 = (prog: 'to_netdev' | 'from_netdev', layers: Layer[]) => {
    const out = np!.program(prog).run({ data: buildPacket(layers) });
    expect(out.verdict).toBe('TC_ACT_OK');
    return parsePacket(out.data);
  };
  const eth6: Layer = { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', type: 0x86dd };

  it('TCP and UDP: the destination becomes the backend, the reply source the frontend; checksums right', (ctx) => {
    requireRoot(ctx);
    for (const kind of ['tcp', 'udp'] as const) {
      const l4 = (sport: number, dport: number, syn: boolean): Layer =>
        kind === 'tcp'
          ? { kind, sport, dport, flags: syn ? { syn: true } : { syn: true, ack: true } }
          : { kind, sport, dport };
      const [, ip, seg] = run6('from_netdev', [
        eth6,
        { kind: 'ipv6', src: WORLD6, dst: NODE6 },
        l4(40000, 30080, true),
        { kind: 'payload', bytes: new Uint8Array([1, 2, 3]) },
      ]);
      expect(ip, kind).toMatchObject({ kind: 'ipv6', src: WORLD6, dst: POD6 });
      expect(seg, kind).toMatchObject({ kind, sport: 40000, dport: 8080, checksumOk: true });
      const [, rip, rseg] = run6('to_netdev', [
        eth6,
        { kind: 'ipv6', src: POD6, dst: WORLD6 },
        l4(8080, 40000, false),
        { kind: 'payload', bytes: new Uint8Array([4, 5]) },
      ]);
      expect(rip, kind).toMatchObject({ kind: 'ipv6', src: NODE6, dst: WORLD6 });
      expect(rseg, kind).toMatchObject({ kind, sport: 30080, dport: 40000, checksumOk: true });
    }
  });
});
