/** Ethernet II header (14 bytes). `type` defaults to the next layer's EtherType. */
export interface EthLayer {
  /** Which header this is. */
  kind: 'eth';
  /** Destination MAC, `aa:bb:cc:dd:ee:ff`. */
  dst: string;
  /** Source MAC. */
  src: string;
  /** EtherType (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP). */
  type?: number;
}

/** An Ethernet/IPv4 ARP packet (28 bytes). */
export interface ArpLayer {
  /** Which header this is. */
  kind: 'arp';
  /** 1 request, 2 reply. */
  op: number;
  /** Sender hardware address. */
  senderMac: string;
  /** Sender protocol address. */
  senderIp: string;
  /** Target hardware address (zeros in a request). */
  targetMac: string;
  /** Target protocol address. */
  targetIp: string;
}

/** IPv4 header without options (20 bytes). Length, protocol and checksum are filled in when omitted. */
export interface Ipv4Layer {
  /** Which header this is. */
  kind: 'ipv4';
  /** Source address. */
  src: string;
  /** Destination address. */
  dst: string;
  /** Time to live (default 64). */
  ttl?: number;
  /** IP protocol (default: the next layer's: 6 TCP, 17 UDP, 1 ICMP). */
  proto?: number;
  /** Identification (default 0). */
  id?: number;
  /** Type of service byte (default 0). */
  tos?: number;
  /** Flags and fragment offset, the 16-bit field (default 0x4000, don't fragment). */
  fragment?: number;
  /** Total length (default: computed). */
  totalLength?: number;
  /** Header checksum (default: computed). Set it to build a corrupt header. */
  checksum?: number;
}

/** IPv6 fixed header (40 bytes, no extension headers). */
export interface Ipv6Layer {
  /** Which header this is. */
  kind: 'ipv6';
  /** Source address. */
  src: string;
  /** Destination address. */
  dst: string;
  /** Hop limit (default 64). */
  hopLimit?: number;
  /** Next header (default: the next layer's: 6 TCP, 17 UDP, 58 ICMPv6). */
  next?: number;
  /** Traffic class (default 0). */
  trafficClass?: number;
  /** Flow label (default 0). */
  flowLabel?: number;
  /** Payload length (default: computed). */
  payloadLength?: number;
}

/** TCP flags by name. */
export interface TcpFlags {
  /** The FIN flag. */
  fin?: boolean;
  /** The SYN flag. */
  syn?: boolean;
  /** The RST flag. */
  rst?: boolean;
  /** The PSH flag. */
  psh?: boolean;
  /** The ACK flag. */
  ack?: boolean;
  /** The URG flag. */
  urg?: boolean;
  /** The ECE flag. */
  ece?: boolean;
  /** The CWR flag. */
  cwr?: boolean;
}

/** TCP header without options (20 bytes). */
export interface TcpLayer {
  /** Which header this is. */
  kind: 'tcp';
  /** Source port. */
  sport: number;
  /** Destination port. */
  dport: number;
  /** Sequence number (default 0). */
  seq?: number;
  /** Acknowledgment number (default 0). */
  ack?: number;
  /** Flags (default none). */
  flags?: TcpFlags;
  /** Window (default 65535). */
  window?: number;
  /** Urgent pointer (default 0). */
  urgent?: number;
  /** Checksum (default: computed over the pseudo-header). */
  checksum?: number;
}

/** UDP header (8 bytes). */
export interface UdpLayer {
  /** Which header this is. */
  kind: 'udp';
  /** Source port. */
  sport: number;
  /** Destination port. */
  dport: number;
  /** Length (default: computed). */
  length?: number;
  /** Checksum (default: computed over the pseudo-header). */
  checksum?: number;
}

/** ICMP (IPv4) or ICMPv6 header (8 bytes); `id`/`seq` are the echo fields (bytes 4–7 for other types). */
export interface IcmpLayer {
  /** Which header this is. */
  kind: 'icmp' | 'icmpv6';
  /** Type (8 echo request, 0 echo reply; ICMPv6 128/129). */
  type: number;
  /** Code (default 0). */
  code?: number;
  /** Identifier (default 0). */
  id?: number;
  /** Sequence number (default 0). */
  seq?: number;
  /** Checksum (default: computed; ICMPv6 over the pseudo-header). */
  checksum?: number;
}

/** VXLAN header (8 bytes, RFC 7348); an Ethernet frame follows. */
export interface VxlanLayer {
  /** Which header this is. */
  kind: 'vxlan';
  /** VXLAN network identifier (24 bits). */
  vni: number;
  /** Flags byte (default 0x08, VNI valid). */
  flags?: number;
}

/** Opaque bytes (application data, or whatever the parser does not decode). */
export interface PayloadLayer {
  /** Which header this is. */
  kind: 'payload';
  /** The bytes. */
  bytes: Uint8Array;
}

/** One header of a packet, outermost first. */
export type Layer =
  | EthLayer
  | ArpLayer
  | Ipv4Layer
  | Ipv6Layer
  | TcpLayer
  | UdpLayer
  | IcmpLayer
  | VxlanLayer
  | PayloadLayer;

/** Whether a parsed header's checksum verifies. */
export interface ChecksumVerdict {
  /** True when the checksum in the packet is right for its contents. */
  checksumOk: boolean;
}

/** A parsed TCP header: every field, every flag named. */
export interface ParsedTcpLayer extends Omit<Required<TcpLayer>, 'flags'>, ChecksumVerdict {
  /** Every flag, set or not. */
  flags: Required<TcpFlags>;
}

/** A parsed layer: every field present, and for checksummed headers whether the checksum verifies. */
export type ParsedLayer =
  | Required<EthLayer>
  | ArpLayer
  | (Required<Ipv4Layer> & ChecksumVerdict)
  | Required<Ipv6Layer>
  | ParsedTcpLayer
  | (Required<UdpLayer> & ChecksumVerdict)
  | (Required<IcmpLayer> & ChecksumVerdict)
  | Required<VxlanLayer>
  | PayloadLayer;
