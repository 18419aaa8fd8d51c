import { addrText } from './addr.js';
import { EtherType, IpProto, tcpFlagsOf } from './build.js';
import { internetChecksum, pseudo4, pseudo6 } from './checksum.js';
import type { ParsedLayer } from './layers.js';

/** UDP port of VXLAN (IANA). */
export const VXLAN_PORT = 4789;

/**
 * Parses a packet from its Ethernet header inward into layers (the inverse of `buildPacket`):
 * Ethernet, ARP, IPv4 (options skipped into the payload), IPv6 (no extension headers), TCP, UDP,
 * ICMP, ICMPv6, VXLAN on UDP port 4789 with its inner frame; what it does not decode, or a truncated
 * header, ends the list as a `payload`. Checksummed headers say whether their checksum verifies.
 *
 * @example Reading the verdict's rewritten headers
 * ```ts
 * import { parsePacket } from '@datapath/loader';
 * declare const out: Uint8Array;
 * const [eth, ip] = parsePacket(out);
 * if (eth?.kind === 'eth' && ip?.kind === 'ipv4') console.log(eth.dst, ip.ttl, ip.checksumOk);
 * ```
 */
export function parsePacket(bytes: Uint8Array): ParsedLayer[] {
  const out: ParsedLayer[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  let next: 'eth' | 'arp' | 'ipv4' | 'ipv6' | 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'vxlan' | 'payload' = 'eth';
  // The IP header the current L4 header sits in: its pseudo-header source.
  let ip: { v6: boolean; off: number; l4len: number } | undefined;
  const left = () => bytes.length - o;
  while (o < bytes.length) {
    switch (next) {
      case 'eth': {
        if (left() < 14) {
          next = 'payload';
          continue;
        }
        const type = view.getUint16(o + 12);
        out.push({ kind: 'eth', dst: addrText(view, o, 6), src: addrText(view, o + 6, 6), type });
        o += 14;
        next =
          type === EtherType.ipv4
            ? 'ipv4'
            : type === EtherType.ipv6
              ? 'ipv6'
              : type === EtherType.arp
                ? 'arp'
                : 'payload';
        continue;
      }
      case 'arp':
        if (left() < 28 || view.getUint16(o) !== 1 || view.getUint16(o + 2) !== EtherType.ipv4) {
          next = 'payload';
          continue;
        }
        out.push({
          kind: 'arp',
          op: view.getUint16(o + 6),
          senderMac: addrText(view, o + 8, 6),
          senderIp: addrText(view, o + 14, 4),
          targetMac: addrText(view, o + 18, 6),
          targetIp: addrText(view, o + 24, 4),
        });
        o += 28;
        next = 'payload';
        continue;
      case 'ipv4': {
        const ihl = (bytes[o]! & 0x0f) * 4;
        if (left() < 20 || bytes[o]! >> 4 !== 4 || ihl < 20 || left() < ihl) {
          next = 'payload';
          continue;
        }
        const totalLength = view.getUint16(o + 2);
        const proto = bytes[o + 9]!;
        const fragment = view.getUint16(o + 6);
        out.push({
          kind: 'ipv4',
          tos: bytes[o + 1]!,
          totalLength,
          id: view.getUint16(o + 4),
          fragment,
          ttl: bytes[o + 8]!,
          proto,
          checksum: view.getUint16(o + 10),
          src: addrText(view, o + 12, 4),
          dst: addrText(view, o + 16, 4),
          checksumOk: internetChecksum(bytes.subarray(o, o + ihl)) === 0,
        });
        ip = { v6: false, off: o, l4len: totalLength - ihl };
        o += ihl;
        // Only a first fragment carries the L4 header.
        next =
          (fragment & 0x1fff) !== 0 || ihl !== 20
            ? 'payload'
            : proto === IpProto.tcp
              ? 'tcp'
              : proto === IpProto.udp
                ? 'udp'
                : proto === IpProto.icmp
                  ? 'icmp'
                  : 'payload';
        continue;
      }
      case 'ipv6': {
        if (left() < 40 || bytes[o]! >> 4 !== 6) {
          next = 'payload';
          continue;
        }
        const w = view.getUint32(o);
        const payloadLength = view.getUint16(o + 4);
        const nh = bytes[o + 6]!;
        out.push({
          kind: 'ipv6',
          trafficClass: (w >>> 20) & 0xff,
          flowLabel: w & 0xfffff,
          payloadLength,
          next: nh,
          hopLimit: bytes[o + 7]!,
          src: addrText(view, o + 8, 16),
          dst: addrText(view, o + 24, 16),
        });
        ip = { v6: true, off: o, l4len: payloadLength };
        o += 40;
        next =
          nh === IpProto.tcp
            ? 'tcp'
            : nh === IpProto.udp
              ? 'udp'
              : nh === IpProto.icmpv6
                ? 'icmpv6'
                : 'payload';
        continue;
      }
      case 'tcp':
      case 'udp':
      case 'icmp':
      case 'icmpv6': {
        const hlen = next === 'tcp' ? 20 : 8;
        if (left() < hlen || (next === 'tcp' && bytes[o + 12]! >> 4 < 5)) {
          next = 'payload';
          continue;
        }
        const seg = bytes.subarray(o, Math.min(bytes.length, o + Math.max(0, ip?.l4len ?? left())));
        const proto = IpProto[next];
        const sum =
          next === 'icmp' || ip === undefined
            ? internetChecksum(seg)
            : ip.v6
              ? internetChecksum(
                  pseudo6(
                    bytes.subarray(ip.off + 8, ip.off + 24),
                    bytes.subarray(ip.off + 24, ip.off + 40),
                    proto,
                    seg.length,
                  ),
                  seg,
                )
              : internetChecksum(
                  pseudo4(
                    bytes.subarray(ip.off + 12, ip.off + 16),
                    bytes.subarray(ip.off + 16, ip.off + 20),
                    proto,
                    seg.length,
                  ),
                  seg,
                );
        if (next === 'tcp') {
          out.push({
            kind: 'tcp',
            sport: view.getUint16(o),
            dport: view.getUint16(o + 2),
            seq: view.getUint32(o + 4),
            ack: view.getUint32(o + 8),
            flags: tcpFlagsOf(bytes[o + 13]!),
            window: view.getUint16(o + 14),
            checksum: view.getUint16(o + 16),
            urgent: view.getUint16(o + 18),
            checksumOk: sum === 0,
          });
          o += 20;
          // Options stay in the payload.
          next = 'payload';
          continue;
        }
        if (next === 'udp') {
          const checksum = view.getUint16(o + 6);
          const dport = view.getUint16(o + 2);
          out.push({
            kind: 'udp',
            sport: view.getUint16(o),
            dport,
            length: view.getUint16(o + 4),
            checksum,
            checksumOk: (checksum === 0 && ip?.v6 !== true) || sum === 0,
          });
          o += 8;
          next = dport === VXLAN_PORT ? 'vxlan' : 'payload';
          continue;
        }
        out.push({
          kind: next,
          type: bytes[o]!,
          code: bytes[o + 1]!,
          checksum: view.getUint16(o + 2),
          id: view.getUint16(o + 4),
          seq: view.getUint16(o + 6),
          checksumOk: sum === 0,
        });
        o += 8;
        next = 'payload';
        continue;
      }
      case 'vxlan':
        if (left() < 8) {
          next = 'payload';
          continue;
        }
        out.push({ kind: 'vxlan', flags: bytes[o]!, vni: view.getUint32(o + 4) >>> 8 });
        o += 8;
        ip = undefined;
        next = 'eth';
        continue;
      case 'payload':
        out.push({ kind: 'payload', bytes: bytes.slice(o) });
        o = bytes.length;
    }
  }
  return out;
}
