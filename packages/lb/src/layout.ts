// The map layouts of bpf/lb.h, as codecs (the `Codec` shape of @datapath/bpf-maps, without importing it:
// this module stays pure). The C header is the source of the layout; test/layout.priv.test.ts checks every
// size and field offset here against the BTF of an object that includes it.
import { mappedAddress, unmappedAddress } from './model.js';

/** A fixed-size binary layout: the `Codec` interface of `@datapath/bpf-maps`. */
export interface LayoutCodec<T> {
  /** Size in bytes (C `sizeof`). */
  readonly size: number;
  /** Alignment in bytes. */
  readonly align: number;
  /** Writes `value` at `offset`. */
  encode(value: T, view: DataView, offset: number): void;
  /** Reads a value at `offset`. */
  decode(view: DataView, offset: number): T;
}

/** `LB_SVC_FLAG_*` of `struct lb_svc_value.flags`. */
export const LbServiceFlag = {
  /** The frontend is a NodePort (a node address). */
  NodePort: 1 << 0,
  /** The frontend is an external IP. */
  ExternalIp: 1 << 1,
  /** Session affinity: the master entry's `backendId` holds the timeout in seconds. */
  Affinity: 1 << 2,
  /** Select through the service's Maglev table. */
  Maglev: 1 << 3,
  /** An IPv6 service. */
  Ipv6: 1 << 4,
} as const;

/** `LB_BACKEND_*` of `struct lb_backend.state`. */
export const LbBackendState = {
  /** Takes new flows. */
  active: 0,
  /** Keeps its flows, gets no new ones. */
  terminating: 1,
  /** Gets no new flows. */
  quarantined: 2,
} as const;

/** IP protocol numbers of `proto` fields. */
export const LbProto = {
  /** `IPPROTO_TCP`. */
  TCP: 6,
  /** `IPPROTO_UDP`. */
  UDP: 17,
} as const;

/** `struct lb_svc_key`: a frontend and a slot (0 = master entry). */
export interface LbServiceKey {
  /** Frontend address (text; stored IPv4-mapped for IPv4). */
  address: string;
  /** Frontend port (host order here, network order in the map). */
  port: number;
  /** Slot: 0 for the master entry, 1..count for backends. */
  slot: number;
  /** IP protocol number. */
  proto: number;
  /** 0; other values are reserved for per-packet programs. */
  scope: number;
}

/** `struct lb_svc_value`. */
export interface LbServiceValue {
  /** Slot > 0: the backend id; slot 0: the affinity timeout in seconds. */
  backendId: number;
  /** Slot 0: the number of active backend slots. */
  count: number;
  /** The frontend's id. */
  revNatId: number;
  /** `LbServiceFlag` bits (slot 0). */
  flags: number;
  /** Reserved for per-packet programs. */
  flags2: number;
}

/** `struct lb_backend`. */
export interface LbBackendValue {
  /** Backend address. */
  address: string;
  /** Backend port (host order here). */
  port: number;
  /** IP protocol number. */
  proto: number;
  /** `LbBackendState` value. */
  state: number;
}

/** `struct lb_rev_nat_value`: the frontend a reply is translated back to. */
export interface LbRevNatValue {
  /** Frontend address. */
  address: string;
  /** Frontend port (host order here). */
  port: number;
}

/** `struct lb_affinity_match_key`. */
export interface LbAffinityMatchKey {
  /** Backend id. */
  backendId: number;
  /** Frontend id. */
  revNatId: number;
}

/**
 * The head `lb_svc_key`, `lb_backend` and `lb_rev_nat_value` share: `__u8 addr[16]` (IPv6, or IPv4
 * stored IPv4-mapped) then `__be16 port`. One codec for both families and all three structs.
 */
const addrPort = {
  encode(v: { address: string; port: number }, view: DataView, off: number): void {
    new Uint8Array(view.buffer, view.byteOffset + off, 16).set(mappedAddress(v.address));
    view.setUint16(off + 16, v.port, false);
  },
  decode(view: DataView, off: number): { address: string; port: number } {
    return {
      address: unmappedAddress(new Uint8Array(view.buffer, view.byteOffset + off, 16).slice()),
      port: view.getUint16(off + 16, false),
    };
  },
};

/** Codec of `struct lb_svc_key` (24 bytes). */
export const serviceKeyCodec: LayoutCodec<LbServiceKey> = {
  size: 24,
  align: 2,
  encode(v, view, off) {
    addrPort.encode(v, view, off);
    view.setUint16(off + 18, v.slot, true);
    view.setUint8(off + 20, v.proto);
    view.setUint8(off + 21, v.scope);
    view.setUint16(off + 22, 0, true);
  },
  decode(view, off) {
    return {
      ...addrPort.decode(view, off),
      slot: view.getUint16(off + 18, true),
      proto: view.getUint8(off + 20),
      scope: view.getUint8(off + 21),
    };
  },
};

/** Codec of `struct lb_svc_value` (12 bytes). */
export const serviceValueCodec: LayoutCodec<LbServiceValue> = {
  size: 12,
  align: 4,
  encode(v, view, off) {
    view.setUint32(off, v.backendId, true);
    view.setUint16(off + 4, v.count, true);
    view.setUint16(off + 6, v.revNatId, true);
    view.setUint8(off + 8, v.flags);
    view.setUint8(off + 9, v.flags2);
    view.setUint16(off + 10, 0, true);
  },
  decode(view, off) {
    return {
      backendId: view.getUint32(off, true),
      count: view.getUint16(off + 4, true),
      revNatId: view.getUint16(off + 6, true),
      flags: view.getUint8(off + 8),
      flags2: view.getUint8(off + 9),
    };
  },
};

/** Codec of the backend map's key, a backend id (u32). */
export const backendIdCodec: LayoutCodec<number> = {
  size: 4,
  align: 4,
  encode: (v, view, off) => view.setUint32(off, v, true),
  decode: (view, off) => view.getUint32(off, true),
};

/** Codec of `struct lb_backend` (20 bytes). */
export const backendValueCodec: LayoutCodec<LbBackendValue> = {
  size: 20,
  align: 2,
  encode(v, view, off) {
    addrPort.encode(v, view, off);
    view.setUint8(off + 18, v.proto);
    view.setUint8(off + 19, v.state);
  },
  decode(view, off) {
    return {
      ...addrPort.decode(view, off),
      proto: view.getUint8(off + 18),
      state: view.getUint8(off + 19),
    };
  },
};

/** Codec of the reverse-NAT map's key, a frontend id (u16). */
export const revNatIdCodec: LayoutCodec<number> = {
  size: 2,
  align: 2,
  encode: (v, view, off) => view.setUint16(off, v, true),
  decode: (view, off) => view.getUint16(off, true),
};

/** Codec of `struct lb_rev_nat_value` (20 bytes). */
export const revNatValueCodec: LayoutCodec<LbRevNatValue> = {
  size: 20,
  align: 2,
  encode(v, view, off) {
    addrPort.encode(v, view, off);
    view.setUint16(off + 18, 0, true);
  },
  decode: (view, off) => addrPort.decode(view, off),
};

/** Codec of `struct lb_affinity_match_key` (8 bytes). */
export const affinityMatchKeyCodec: LayoutCodec<LbAffinityMatchKey> = {
  size: 8,
  align: 4,
  encode(v, view, off) {
    view.setUint32(off, v.backendId, true);
    view.setUint16(off + 4, v.revNatId, true);
    view.setUint16(off + 6, 0, true);
  },
  decode(view, off) {
    return { backendId: view.getUint32(off, true), revNatId: view.getUint16(off + 4, true) };
  },
};

/** Codec of the affinity-match map's value (u32, 1). */
export const affinityMatchValueCodec: LayoutCodec<number> = backendIdCodec;

/** Sizes of the structs of bpf/lb.h, by C name (checked against BTF by the tests). */
export const LB_STRUCT_SIZES = {
  /** `struct lb_svc_key`. */
  lb_svc_key: 24,
  /** `struct lb_svc_value`. */
  lb_svc_value: 12,
  /** `struct lb_backend`. */
  lb_backend: 20,
  /** `struct lb_rev_nat_value`. */
  lb_rev_nat_value: 20,
  /** `struct lb_affinity_key`. */
  lb_affinity_key: 24,
  /** `struct lb_affinity_value`. */
  lb_affinity_value: 16,
  /** `struct lb_affinity_match_key`. */
  lb_affinity_match_key: 8,
} as const;

/** Names of the maps bpf/lb.h declares. */
export const LB_MAP_NAMES = {
  /** Frontend + slot → master entry or backend id. */
  services: 'lb_services',
  /** Backend id → backend. */
  backends: 'lb_backends',
  /** Frontend id → frontend. */
  revNat: 'lb_reverse_nat',
  /** Client + frontend id → backend (LRU). */
  affinity: 'lb_affinity',
  /** Backend id + frontend id → present while the backend takes new flows. */
  affinityMatch: 'lb_affinity_match',
  /** Frontend id → Maglev table (hash of maps). */
  maglev: 'lb_maglev',
} as const;
