/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map layouts shared by the agent's BPF datapath (datapath.c) and its TypeScript side, which is
 * generated from the compiled object's BTF: src/datapath.gen.ts (`pnpm --filter
 * @datapath/example-agent run gen`; a test fails when it is stale). Nothing here is written twice.
 *
 * The policy and ipcache layouts follow Cilium's (bpf/lib/maps.h, bpf/lib/policy.h,
 * pkg/maps/policymap, pkg/maps/ipcache; without bitfields): the agent fills them from
 * @datapath/policy's compiled state, the policy trie through the generated codecs, the ipcache
 * through that package's codecs. The endpoint, conntrack and metrics layouts are this agent's.
 */
#ifndef DATAPATH_H
#define DATAPATH_H

#include <linux/types.h>

/* Reserved security identities as Cilium numbers them. */
#define ID_UNKNOWN 0
#define ID_HOST 1
#define ID_WORLD 2
#define ID_REMOTE_NODE 6

/* ---- endpoints: pod IPv4 (network order) -> endpoint; lxc: host-side ifindex -> the same -------
 *      (the programs are loaded once per agent and find "their" endpoint through skb->ifindex) */
struct endpoint_info {
	__u32 ifindex;     /* host-side veth (node namespace) */
	__u16 lxc_id;      /* endpoint id: index in policy_maps */
	__u16 flags;       /* reserved */
	__u32 sec_id;      /* security identity of the pod */
	__u8 mac[6];       /* pod eth0 MAC: destination MAC on delivery */
	__u8 node_mac[6];  /* host-side veth MAC: source MAC on delivery, ARP responder MAC */
	__be32 ip;         /* pod IPv4, network order */
}; /* 28 bytes */

/* ---- ipcache: LPM trie, IP prefix -> identity and, for a prefix on another node, that node's
 *      underlay address (Cilium's ipcache_key and, reordered, remote_endpoint_info). The policy
 *      engine writes the node's own entries (world, host, local pods, CIDR identities); the
 *      cluster writer (src/ipcache.ts) writes remote pods and nodes, flagged IPCACHE_F_REMOTE -- */
struct ipcache_key {
	__u32 prefixlen;   /* bpf_lpm_trie_key header: 32 static bits + address prefix */
	__u16 cluster_id;
	__u8 pad1;
	__u8 family;       /* 1 = IPv4, 2 = IPv6 (Cilium's ENDPOINT_KEY_IPV4/IPV6) */
	__u32 ip4;         /* network order; IPv6 uses all 16 bytes */
	__u32 pad4;
	__u32 pad5;
	__u32 pad6;
}; /* 24 bytes */
#define IPCACHE_STATIC_PREFIX 32
#define IPCACHE_FAMILY_IPV4 1

struct remote_endpoint_info {
	__u32 sec_identity;
	__u32 flags;           /* IPCACHE_F_* */
	__be32 tunnel_endpoint; /* IPv4 underlay address of the node behind the prefix (network
	                         * order), 0 = not behind a tunnel (local, world, a node address) */
	__u32 pad;
}; /* 16 bytes */
/* Bits of remote_endpoint_info.flags (an enum for the BTF, as IpcacheFlags on the TypeScript side). */
enum ipcache_flags {
	IPCACHE_F_LOCAL_ENDPOINT = 1, /* a pod of this node (policy engine) */
	IPCACHE_F_HOST = 2,           /* an address of this node (policy engine) */
	IPCACHE_F_REMOTE = 4,         /* written by the cluster writer: a remote pod or node */
};

/* ---- policy: Cilium's policy_key / policy_entry, one LPM trie for all endpoints keyed by
 *      { endpoint id, Cilium's policy_key } (Cilium has one map per endpoint because it loads
 *      programs per endpoint; with one program set per agent, a per-endpoint map would need an
 *      array of maps, whose every update from user space waits for an RCU grace period).
 *      No bitfields, so that datapath-gen emits the codecs: Cilium's `egress:1, pad:7` is the plain
 *      byte `egress` (same bytes), and Cilium's packed entry flags are one byte each. ------------ */
struct lxc_policy_key {
	__u32 prefixlen;   /* bpf_lpm_trie_key header: LXC_POLICY_STATIC_PREFIX + protocol/port prefix */
	__u32 lxc_id;      /* endpoint id (host order) */
	__u32 sec_label;   /* peer identity, 0 = any (host order); from here on Cilium's policy_key */
	__u8 egress;       /* 0 ingress, 1 egress */
	__u8 protocol;     /* 0 = any */
	__be16 dport;      /* network order */
}; /* 16 bytes */
/* Prefix lengths of the key (an enum for the BTF, as LxcPolicyPrefix on the TypeScript side): the
 * always-significant bits are lxc_id (32), sec_label (32) and egress (8); protocol (8) and port (16)
 * follow, so prefixlen = LXC_POLICY_STATIC_PREFIX + the entry's protocol/port prefix (0..24). */
enum lxc_policy_prefix {
	LXC_POLICY_STATIC_PREFIX = 32 + 32 + 8,
	LXC_POLICY_FULL_PREFIX = 32 + 32 + 8 + 24,
};

struct policy_entry {
	__be16 proxy_port;         /* 0: no L7 redirect */
	__u8 deny;                 /* 1: an explicit deny */
	__u8 lpm_prefix_length;    /* the key's protocol/port prefix length (0..24) */
	__u8 auth_type;
	__u8 has_explicit_auth_type;
	__u8 proxy_port_priority;
	__u8 pad;
}; /* 8 bytes */

/* ---- conntrack: LRU hash keyed by the 5-tuple of the packet that opened the flow ------------ */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
}; /* 16 bytes */

/* Two entries per flow: the opening direction's tuple and the reversed tuple (CT_F_REPLY), so
 * every packet needs one lookup. Packets of a flow whose entry carries the current policy revision
 * skip policy; the entry is written only when the flow opens, when it is checked again after a
 * policy change, and at most once per CT_REFRESH_JIFFIES to refresh seen_jiffies. A flow that a policy change
 * no longer allows keeps its entries, marked CT_F_DENIED with the drop's reason and endpoint, so
 * neither direction can open it again as a new flow; the next policy change checks it again. */
struct ct_entry {
	__u64 created_ns;  /* bpf_ktime_get_ns() when the first packet was allowed */
	__u64 seen_jiffies; /* bpf_jiffies64(), refreshed at most every CT_REFRESH_JIFFIES: a jiffies read
	                     * is a load, bpf_ktime_get_ns() reads the clock source on every packet */
	__u32 rev;         /* policy revision (config.policy_rev) the flow was last checked under */
	__u32 src_sec_id;  /* identity of the side that opened the flow */
	__u32 dst_sec_id;
	__u8 flags;        /* CT_F_* */
	__u8 drop_reason;  /* CT_F_DENIED: the metric reason */
	__u16 drop_lxc;    /* CT_F_DENIED: the endpoint whose policy denies it */
}; /* 32 bytes */
/* Bits of ct_entry.flags (an enum so that its names reach the BTF, and from there the TypeScript
 * side as CtFlags; the field stays a __u8 because it holds combinations). */
enum ct_flags {
	CT_F_REPLY = 1,       /* this tuple is the reply direction */
	CT_F_DENIED = 2,      /* denied since the last policy change */
	CT_F_DROP_EGRESS = 4, /* CT_F_DENIED: by the endpoint's egress policy (else ingress) */
};
#define CT_REFRESH_JIFFIES 256 /* about 1 s at HZ=250, 0.26 s at HZ=1000 */

/* ---- config: one-slot array written by the agent ------------------------------------------ */
struct dp_config {
	__u32 policy_rev;  /* bumped after every policy, identity or ipcache change */
	__u32 flags;       /* DP_F_* */
	__u32 trace_rate;  /* trace events: 0 = off (default), N = about one forwarded packet in N */
	__u32 tunnel_ifindex; /* tunnel mode: the node's VXLAN device (external mode); 0 = native
	                       * routing (packets to remote pods leave through the node's stack) */
	__u32 netdev_ifindex; /* native mode with host routing (DP_F_HOST_ROUTING): the node's underlay
	                       * device, where every remote node's underlay address is a neighbour; 0 = not
	                       * known (from_container asks the FIB for device and next hop) */
}; /* 20 bytes */

/* Bits of dp_config.flags (an enum for the BTF, as DpFlags on the TypeScript side).
 * DP_F_DELIVER_EGRESS: local delivery out of the destination's host-side veth (bpf_redirect) instead
 * of straight into the pod's eth0 (bpf_redirect_peer): the receive work then runs from the peer's
 * backlog, which spreads multi-stream traffic over the CPUs; to_container meets the packet again and
 * accounts it.
 * DP_F_HOST_ROUTING: native routing without the node's stack (Cilium's BPF host routing): from_container
 * sends a packet for a remote pod straight out of the underlay device (netdev_ifindex) to the remote node's
 * underlay address (the ipcache's tunnel endpoint) with bpf_redirect_neigh, and from_netdev on the underlay
 * device's ingress delivers packets for local pods straight into them (bpf_redirect_peer); set while
 * from_netdev is attached. */
enum dp_flags {
	DP_F_DELIVER_EGRESS = 1,
	DP_F_HOST_ROUTING = 2,
};

/* ---- metrics: per-CPU hash, (endpoint, reason, direction) -> packets, bytes, for every reason
 *      but REASON_FORWARDED; forwarded packets go to `fwd` (below), the per-packet path ------- */
enum __attribute__((packed)) metric_reason {
	REASON_FORWARDED = 0,        /* delivered (not a drop) */
	REASON_ARP_REPLY = 1,        /* ARP request for the gateway answered (not a drop) */
	REASON_POLICY_DENIED = 2,    /* no policy entry allows it (default deny) */
	REASON_POLICY_DENY = 3,      /* an explicit deny entry matched */
	REASON_INVALID_SOURCE = 4,   /* source IP is not the endpoint's */
	REASON_NO_ENDPOINT = 5,      /* the veth or the endpoint has no endpoint entry / policy map */
	REASON_UNSUPPORTED_L3 = 6,   /* neither IPv4 nor ARP */
	REASON_TTL_EXCEEDED = 7,
	REASON_INVALID_PACKET = 8,   /* truncated headers */
	REASON_NO_TUNNEL_KEY = 9,    /* a packet on the tunnel device without tunnel metadata */
	REASON_INVALID_IDENTITY = 10, /* a tunnel key whose VNI is no identity a node sends (0, host) */
	REASON_TUNNEL_FAILED = 11,   /* the tunnel key could not be set (or the identity is > 24 bits) */
	REASON_MAX
};

enum __attribute__((packed)) metric_dir {
	DIR_INGRESS = 1,             /* towards the endpoint */
	DIR_EGRESS = 2,              /* from the endpoint */
};

/* The reason and direction are 1-byte enums so that their names reach the BTF, and from there the
 * TypeScript side (MetricReason, MetricDir): the drop reasons are defined here only. */
struct metrics_key {
	__u32 lxc_id;
	enum metric_reason reason;
	enum metric_dir dir;
	__u16 pad;
}; /* 8 bytes */

struct metrics_value {
	__u64 packets;
	__u64 bytes;
}; /* 16 bytes, per CPU */

/* ---- fwd: per-CPU array indexed by endpoint id (lxc_id < FWD_MAX_ENDPOINTS) -> the endpoint's
 *      REASON_FORWARDED counters of both directions. An array lookup is inlined by the verifier
 *      (no helper call, no hashing), and every delivered packet is counted here twice (the source's
 *      egress, the destination's ingress), so this is the datapath's hottest map. The agent zeroes
 *      an endpoint's slot when the endpoint goes away (ids are reused). */
#define FWD_MAX_ENDPOINTS 4096

struct fwd_value {
	struct metrics_value ingress; /* DIR_INGRESS */
	struct metrics_value egress;  /* DIR_EGRESS */
}; /* 32 bytes, per CPU */

/* ---- events: the `events` ring buffer, read by `agent monitor` / `agent serve` -------------
 *
 * Every record starts with `struct dp_event` (48 bytes); a trace record is a `struct trace_event`:
 * the header followed by the first TRACE_CAP bytes of the packet (`cap_len` of them are valid).
 *
 *   EVENT_DROP            every dropped packet: `reason` says why, `lxc_id` and `dir` which endpoint
 *                         and direction dropped it; the tuple is zero when the packet did not parse.
 *   EVENT_POLICY_VERDICT  once per new flow (a packet without a conntrack entry; a denied flow never
 *                         gets one, so each of its packets is new), and once per direction of an
 *                         established flow that a policy change denies (when its next packet re-checks
 *                         it; a flow still allowed gets none): `reason` is REASON_FORWARDED when
 *                         allowed, else the policy drop reason; `lxc_id`/`dir` the policy that decided
 *                         (the denying one, else the last one checked); `match` the kind of policy
 *                         entry that decided (Cilium's match types).
 *   EVENT_TRACE           a forwarded packet, when dp_config.trace_rate is not 0 (sampled):
 *                         `lxc_id`/`dir` the observation point (DIR_EGRESS: from_container, leaving
 *                         the source endpoint; DIR_INGRESS: to_container, entering the destination).
 *
 * The datapath is built with DATAPATH_EVENTS=0 to compile every emission out (benchmarks). Records
 * the ring has no room for are counted per CPU in `events_lost`. */
enum __attribute__((packed)) event_type {
	EVENT_DROP = 1,
	EVENT_POLICY_VERDICT = 2,
	EVENT_TRACE = 3,
};

/* Which policy entry decided (Cilium's policy match types, same numbers). */
enum __attribute__((packed)) policy_match {
	MATCH_NONE = 0,        /* no entry: default deny */
	MATCH_L3_ONLY = 1,     /* the peer's identity, any protocol and port */
	MATCH_L3_L4 = 2,       /* the peer's identity and the port */
	MATCH_L4_ONLY = 3,     /* any identity, the port */
	MATCH_ALL = 4,         /* any identity, any protocol and port */
	MATCH_L3_PROTO = 5,    /* the peer's identity and the protocol, any port */
	MATCH_PROTO_ONLY = 6,  /* any identity, the protocol, any port */
};

struct dp_event {
	__u64 ts_ns;               /* bpf_ktime_get_ns() */
	enum event_type type;
	enum metric_reason reason;
	enum metric_dir dir;
	enum policy_match match;   /* EVENT_POLICY_VERDICT only */
	__u16 src_lxc;             /* source endpoint id, 0 = not a local endpoint (host, world) */
	__u16 dst_lxc;             /* destination endpoint id, 0 = not a local endpoint */
	__u32 src_id;              /* security identities, 0 = not resolved for this packet */
	__u32 dst_id;
	struct ct_key tuple;       /* the packet's 5-tuple (ICMP echo: the identifier as both ports) */
	__u32 len;                 /* packet length (skb->len) */
	__u16 cap_len;             /* packet bytes after the header (EVENT_TRACE), else 0 */
	__u16 lxc_id;              /* the endpoint whose policy or program decided (drop, verdict) or
	                            * that observed the packet (trace), 0 = none; `dir` is relative to it */
}; /* 48 bytes */

#define TRACE_CAP 64

struct trace_event {
	struct dp_event hdr;
	__u8 data[TRACE_CAP];      /* the packet from its Ethernet header, cap_len bytes valid */
}; /* 112 bytes */

#endif /* DATAPATH_H */
