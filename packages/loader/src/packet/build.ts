import { BpfError } from '@datapath/libbpf';
import { addrBytes, macBytes } from './addr.js';
import { internetChecksum, pseudo4, pseudo6 } from './checksum.js';
import type { Layer, TcpFlags } from './layers.js';

/** EtherTypes the packet module knows. */
export const EtherType = {
  /** `ETH_P_IP` */
  ipv4: 0x0800,
  /** `ETH_P_ARP` */
  arp: 0x0806,
  /** `ETH_P_IPV6` */
  ipv6: 0x86dd,
} as const;

/** IP protocol numbers the packet module knows. */
export const IpProto = {
  /** `IPPROTO_ICMP` */
  icmp: 1,
  /** `IPPROTO_TCP` */
  tcp: 6,
  /** `IPPROTO_UDP` */
  udp: 17,
  /** `IPPROTO_ICMPV6` */
  icmpv6: 58,
} as const;

const HEADER_SIZE: Readonly<Record<Layer['kind'], number>> = {
  eth: 14,
  arp: 28,
  ipv4: 20,
  ipv6: 40,
  tcp: 20,
  udp: 8,
  icmp: 8,
  icmpv6: 8,
  vxlan: 8,
  payload: 0,
};

const TCP_FLAG_BITS: ReadonlyArray<[keyof TcpFlags, number]> = [
  ['fin', 0x01],
  ['syn', 0x02],
  ['rst', 0x04],
  ['psh', 0x08],
  ['ack', 0x10],
  ['urg', 0x20],
  ['ece', 0x40],
  ['cwr', 0x80],
];

/** The TCP flags byte of `flags`. */
export function tcpFlagsByte(flags: TcpFlags = {}): number {
  let b = 0;
  for (const [name, bit] of TCP_FLAG_BITS) if (flags[name]) b |= bit;
  return b;
}

/** The named TCP flags of a flags byte. */
export function tcpFlagsOf(b: number): Required<TcpFlags> {
  const out = {} as Required<TcpFlags>;
  for (const [name, bit] of TCP_FLAG_BITS) out[name] = (b & bit) !== 0;
  return out;
}

function fail(message: string): BpfError {
  return new BpfError('InvalidArgument', `buildPacket: ${message}`, { op: 'buildPacket' });
}

function uint(v: number | undefined, bits: number, what: string, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 0 || x >= 2 ** bits)
    throw fail(`${what} must be a ${bits}-bit unsigned integer, got ${x}`);
  return x;
}

function size(l: Layer): number {
  return l.kind === 'payload' ? l.bytes.length : HEADER_SIZE[l.kind];
}

function nextType(next: Layer | undefined): number {
  switch (next?.kind) {
    case 'ipv4':
      return EtherType.ipv4;
    case 'ipv6':
      return EtherType.ipv6;
    case 'arp':
      return EtherType.arp;
    default:
      throw fail('eth.type is required when the next layer is not ipv4, ipv6 or arp');
  }
}

function nextProto(next: Layer | undefined, v6: boolean): number {
  switch (next?.kind) {
    case 'tcp':
      return IpProto.tcp;
    case 'udp':
      return IpProto.udp;
    case 'icmp':
      return IpProto.icmp;
    case 'icmpv6':
      return IpProto.icmpv6;
    default:
      throw fail(
        `${v6 ? 'ipv6.next' : 'ipv4.proto'} is required when the next layer is not tcp, udp or icmp`,
      );
  }
}

/**
 * Builds a packet from its layers, outermost first (`eth`, then `ipv4`/`ipv6`/`arp`, then
 * `tcp`/`udp`/`icmp`/`icmpv6`, `vxlan` and an inner frame, `payload`). Lengths, EtherTypes, protocol
 * numbers and checksums are filled in unless given (give one to build a deliberately broken packet).
 *
 * @throws {@link BpfError} `InvalidArgument` for a malformed address, an out-of-range field, or a missing
 * EtherType/protocol that cannot be inferred; nothing else.
 * @example A TCP SYN from a pod to a peer
 * ```ts
 * import { buildPacket } from '@datapath/loader';
 * const syn = buildPacket([
 *   { kind: 'eth', src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' },
 *   { kind: 'ipv4', src: '10.244.0.10', dst: '10.244.0.11' },
 *   { kind: 'tcp', sport: 40000, dport: 80, flags: { syn: true } },
 * ]);
 * console.log(syn.length); // 54
 * ```
 */
export function buildPacket(layers: readonly Layer[]): Uint8Array {
  if (!Array.isArray(layers) || layers.length === 0) throw fail('at least one layer is needed');
  const offsets: number[] = [];
  let total = 0;
  for (const l of layers) {
    offsets.push(total);
    total += size(l);
  }
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer);
  // Fields first, outermost first; then checksums, innermost first, so each covers its finished payload.
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!;
    const o = offsets[i]!;
    const next = layers[i + 1];
    const rest = total - o; // this layer and everything after it
    switch (l.kind) {
      case 'eth':
        buf.set(macBytes(l.dst, 'eth.dst'), o);
        buf.set(macBytes(l.src, 'eth.src'), o + 6);
        view.setUint16(o + 12, l.type === undefined ? nextType(next) : uint(l.type, 16, 'eth.type', 0));
        break;
      case 'arp':
        view.setUint16(o, 1); // Ethernet
        view.setUint16(o + 2, EtherType.ipv4);
        buf[o + 4] = 6;
        buf[o + 5] = 4;
        view.setUint16(o + 6, uint(l.op, 16, 'arp.op', 1));
        buf.set(macBytes(l.senderMac, 'arp.senderMac'), o + 8);
        buf.set(addrBytes(l.senderIp, 4, 'arp.senderIp'), o + 14);
        buf.set(macBytes(l.targetMac, 'arp.targetMac'), o + 18);
        buf.set(addrBytes(l.targetIp, 4, 'arp.targetIp'), o + 24);
        break;
      case 'ipv4': {
        buf[o] = 0x45;
        buf[o + 1] = uint(l.tos, 8, 'ipv4.tos', 0);
        view.setUint16(o + 2, uint(l.totalLength, 16, 'ipv4.totalLength', rest));
        view.setUint16(o + 4, uint(l.id, 16, 'ipv4.id', 0));
        view.setUint16(o + 6, uint(l.fragment, 16, 'ipv4.fragment', 0x4000));
        buf[o + 8] = uint(l.ttl, 8, 'ipv4.ttl', 64);
        buf[o + 9] = l.proto === undefined ? nextProto(next, false) : uint(l.proto, 8, 'ipv4.proto', 0);
        buf.set(addrBytes(l.src, 4, 'ipv4.src'), o + 12);
        buf.set(addrBytes(l.dst, 4, 'ipv4.dst'), o + 16);
        break;
      }
      case 'ipv6': {
        const tc = uint(l.trafficClass, 8, 'ipv6.trafficClass', 0);
        const fl = uint(l.flowLabel, 20, 'ipv6.flowLabel', 0);
        view.setUint32(o, ((6 << 28) | (tc << 20) | fl) >>> 0);
        view.setUint16(o + 4, uint(l.payloadLength, 16, 'ipv6.payloadLength', rest - 40));
        buf[o + 6] = l.next === undefined ? nextProto(next, true) : uint(l.next, 8, 'ipv6.next', 0);
        buf[o + 7] = uint(l.hopLimit, 8, 'ipv6.hopLimit', 64);
        buf.set(addrBytes(l.src, 16, 'ipv6.src'), o + 8);
        buf.set(addrBytes(l.dst, 16, 'ipv6.dst'), o + 24);
        break;
      }
      case 'tcp':
        view.setUint16(o, uint(l.sport, 16, 'tcp.sport', 0));
        view.setUint16(o + 2, uint(l.dport, 16, 'tcp.dport', 0));
        view.setUint32(o + 4, uint(l.seq, 32, 'tcp.seq', 0));
        view.setUint32(o + 8, uint(l.ack, 32, 'tcp.ack', 0));
        buf[o + 12] = 5 << 4;
        buf[o + 13] = tcpFlagsByte(l.flags);
        view.setUint16(o + 14, uint(l.window, 16, 'tcp.window', 65535));
        view.setUint16(o + 18, uint(l.urgent, 16, 'tcp.urgent', 0));
        break;
      case 'udp':
        view.setUint16(o, uint(l.sport, 16, 'udp.sport', 0));
        view.setUint16(o + 2, uint(l.dport, 16, 'udp.dport', 0));
        view.setUint16(o + 4, uint(l.length, 16, 'udp.length', rest));
        break;
      case 'icmp':
      case 'icmpv6':
        buf[o] = uint(l.type, 8, `${l.kind}.type`, 0);
        buf[o + 1] = uint(l.code, 8, `${l.kind}.code`, 0);
        view.setUint16(o + 4, uint(l.id, 16, `${l.kind}.id`, 0));
        view.setUint16(o + 6, uint(l.seq, 16, `${l.kind}.seq`, 0));
        break;
      case 'vxlan':
        buf[o] = uint(l.flags, 8, 'vxlan.flags', 0x08);
        view.setUint32(o + 4, (uint(l.vni, 24, 'vxlan.vni', 0) << 8) >>> 0);
        break;
      case 'payload':
        if (!(l.bytes instanceof Uint8Array)) throw fail('payload.bytes must be a Uint8Array');
        buf.set(l.bytes, o);
        break;
      default:
        throw fail(`unknown layer kind ${(l as { kind: unknown }).kind}`);
    }
  }
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    const o = offsets[i]!;
    switch (l.kind) {
      case 'ipv4':
        view.setUint16(
          o + 10,
          l.checksum === undefined
            ? internetChecksum(buf.subarray(o, o + 20))
            : uint(l.checksum, 16, 'ipv4.checksum', 0),
        );
        break;
      case 'tcp':
        view.setUint16(
          o + 16,
          l.checksum === undefined
            ? l4Checksum(layers, offsets, i, buf, IpProto.tcp)
            : uint(l.checksum, 16, 'tcp.checksum', 0),
        );
        break;
      case 'udp':
        if (l.checksum !== undefined) view.setUint16(o + 6, uint(l.checksum, 16, 'udp.checksum', 0));
        else {
          const c = l4Checksum(layers, offsets, i, buf, IpProto.udp);
          view.setUint16(o + 6, c === 0 ? 0xffff : c); // 0 means "no checksum" in UDP
        }
        break;
      case 'icmp':
      case 'icmpv6':
        view.setUint16(
          o + 2,
          l.checksum !== undefined
            ? uint(l.checksum, 16, `${l.kind}.checksum`, 0)
            : l.kind === 'icmp'
              ? internetChecksum(buf.subarray(o, total))
              : l4Checksum(layers, offsets, i, buf, IpProto.icmpv6),
        );
        break;
      default:
        break;
    }
  }
  return buf;
}

/** The TCP/UDP/ICMPv6 checksum of layer `i` over its IP layer's pseudo-header (the field still zero). */
function l4Checksum(
  layers: readonly Layer[],
  offsets: number[],
  i: number,
  buf: Uint8Array,
  proto: number,
): number {
  const ip = layers[i - 1];
  const o = offsets[i]!;
  const ipOff = offsets[i - 1]!;
  // The L4 length is what the IP header says (its default: everything after it).
  const view = new DataView(buf.buffer);
  if (ip?.kind === 'ipv4') {
    const len = view.getUint16(ipOff + 2) - 20;
    const seg = buf.subarray(o, Math.min(buf.length, o + Math.max(0, len)));
    return internetChecksum(
      pseudo4(buf.subarray(ipOff + 12, ipOff + 16), buf.subarray(ipOff + 16, ipOff + 20), proto, seg.length),
      seg,
    );
  }
  if (ip?.kind === 'ipv6') {
    const len = view.getUint16(ipOff + 4);
    const seg = buf.subarray(o, Math.min(buf.length, o + len));
    return internetChecksum(
      pseudo6(buf.subarray(ipOff + 8, ipOff + 24), buf.subarray(ipOff + 24, ipOff + 40), proto, seg.length),
      seg,
    );
  }
  throw fail(`a ${layers[i]!.kind} layer must follow an ipv4 or ipv6 layer (give its checksum otherwise)`);
}
