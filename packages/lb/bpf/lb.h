/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * @datapath/lb: the service maps every load-balancing program shares, and the lookups on them.
 *
 * Include it from a program (socket LB, a tc program) compiled through @datapath/loader; the package's
 * writer (`ServiceWriter` of `@datapath/lb/datapath`) fills the maps in an order that never shows a
 * program a half-written service. The TypeScript side passes the sizes below as load-time constants
 * (`lbCompileConfig()`), so C and TypeScript agree on one value.
 *
 * Maps (one layout for both families: an IPv4 address is stored IPv4-mapped, ::ffff:a.b.c.d):
 *
 *   lb_services       hash  { addr, dport, slot, proto, scope }  -> { backend_id | affinity timeout,
 *                                                                   count, rev_nat_id, flags, flags2 }
 *                     slot 0 is the service's master entry: count = active backends (slots 1..count),
 *                     flags (kind, affinity, maglev), the affinity timeout in seconds; slot n > 0 holds
 *                     the backend id of the n-th active backend.
 *   lb_backends       hash  backend id (u32)                     -> { addr, port, proto, state }
 *   lb_reverse_nat    hash  rev_nat_id (u16)                     -> the frontend { addr, port }
 *   lb_affinity       LRU   { client (address or netns cookie), rev_nat_id } -> { last used, backend id }
 *   lb_affinity_match hash  { backend id, rev_nat_id }           -> 1 while the backend may take new flows
 *   lb_maglev         hash of maps: rev_nat_id (u16) -> an array of one entry, the service's Maglev
 *                     table (LB_MAGLEV_TABLE_SIZE backend ids); replaced whole on every change.
 *
 * Build-time constants (pass them as config; defaults below): LB_MAGLEV_TABLE_SIZE (a prime from the
 * list TypeScript checks), LB_SERVICE_MAP_MAX, LB_BACKEND_MAP_MAX, LB_REV_NAT_MAP_MAX,
 * LB_AFFINITY_MAP_MAX, LB_MAGLEV_MAP_MAX. Define LB_PIN_BY_NAME to pin every map by name (programs of
 * several objects then share them through the loader's pinDir).
 */
#ifndef DATAPATH_LB_H
#define DATAPATH_LB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef LB_MAGLEV_TABLE_SIZE
#define LB_MAGLEV_TABLE_SIZE 16381
#endif
#ifndef LB_SERVICE_MAP_MAX
#define LB_SERVICE_MAP_MAX 65536
#endif
#ifndef LB_BACKEND_MAP_MAX
#define LB_BACKEND_MAP_MAX 65536
#endif
#ifndef LB_REV_NAT_MAP_MAX
#define LB_REV_NAT_MAP_MAX 65536
#endif
#ifndef LB_AFFINITY_MAP_MAX
#define LB_AFFINITY_MAP_MAX 65536
#endif
#ifndef LB_MAGLEV_MAP_MAX
#define LB_MAGLEV_MAP_MAX 8192
#endif

#ifdef LB_PIN_BY_NAME
#define LB_MAP_PINNING __uint(pinning, LIBBPF_PIN_BY_NAME);
#else
#define LB_MAP_PINNING
#endif

/* lb_svc_value.flags (slot 0). */
#define LB_SVC_FLAG_NODEPORT	(1 << 0) /* frontend is a NodePort (a node address) */
#define LB_SVC_FLAG_EXTERNAL_IP	(1 << 1) /* frontend is an external IP */
#define LB_SVC_FLAG_AFFINITY	(1 << 2) /* session affinity: value.backend_id holds the timeout (s) */
#define LB_SVC_FLAG_MAGLEV	(1 << 3) /* select through the service's Maglev table, not at random */
#define LB_SVC_FLAG_IPV6	(1 << 4) /* an IPv6 service (an IPv4 one is stored IPv4-mapped) */
/* lb_svc_value.flags2 is reserved for the per-packet programs. */

/* lb_backend.state */
#define LB_BACKEND_ACTIVE	0
#define LB_BACKEND_TERMINATING	1 /* keeps its flows, gets no new ones */
#define LB_BACKEND_QUARANTINED	2 /* gets no new flows */

/* lb_affinity_key.kind */
#define LB_AFFINITY_BY_ADDR	0 /* client identified by its address (per-packet LB) */
#define LB_AFFINITY_BY_NETNS	1 /* client identified by its network namespace cookie (socket LB) */

struct lb_svc_key {
	__u8 addr[16];	/* frontend address; IPv4 as ::ffff:a.b.c.d */
	__be16 dport;	/* frontend port, network order */
	__u16 slot;	/* 0: master entry; 1..count: backend slots */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 scope;	/* 0; other values reserved for the per-packet programs */
	__u8 pad[2];
};

struct lb_svc_value {
	__u32 backend_id;	/* slot > 0: the backend; slot 0: affinity timeout in seconds */
	__u16 count;		/* slot 0: active backends (slots 1..count) */
	__u16 rev_nat_id;	/* the frontend's id (lb_reverse_nat, lb_maglev, lb_affinity) */
	__u8 flags;		/* LB_SVC_FLAG_* (slot 0) */
	__u8 flags2;
	__u16 pad;
};

struct lb_backend {
	__u8 addr[16];	/* IPv4 as ::ffff:a.b.c.d */
	__be16 port;	/* network order */
	__u8 proto;
	__u8 state;	/* LB_BACKEND_* */
};

struct lb_rev_nat_value {
	__u8 addr[16];	/* the frontend address */
	__be16 port;	/* the frontend port, network order */
	__u16 pad;
};

struct lb_affinity_key {
	union {
		__u8 addr[16];	/* LB_AFFINITY_BY_ADDR */
		__u64 cookie;	/* LB_AFFINITY_BY_NETNS */
	} client;
	__u16 rev_nat_id;
	__u8 kind;		/* LB_AFFINITY_BY_* */
	__u8 pad;
};

struct lb_affinity_value {
	__u64 last_used;	/* bpf_ktime_get_ns() of the last selection */
	__u32 backend_id;
	__u32 pad;
};

struct lb_affinity_match_key {
	__u32 backend_id;
	__u16 rev_nat_id;
	__u16 pad;
};

struct lb_maglev_table {
	__u32 backend_ids[LB_MAGLEV_TABLE_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_SERVICE_MAP_MAX);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	LB_MAP_PINNING
} lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_BACKEND_MAP_MAX);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	LB_MAP_PINNING
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_REV_NAT_MAP_MAX);
	__type(key, __u16);
	__type(value, struct lb_rev_nat_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	LB_MAP_PINNING
} lb_reverse_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_AFFINITY_MAP_MAX);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity_value);
	LB_MAP_PINNING
} lb_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_BACKEND_MAP_MAX);
	__type(key, struct lb_affinity_match_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	LB_MAP_PINNING
} lb_affinity_match SEC(".maps");

struct lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct lb_maglev_table));
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, LB_MAGLEV_MAP_MAX);
	__type(key, __u16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	LB_MAP_PINNING
	__array(values, struct lb_maglev_inner);
} lb_maglev SEC(".maps");

/* ---- lookups ---------------------------------------------------------------------------------- */

static __always_inline void lb_addr_v4(__u8 addr[16], __be32 ip4)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(&addr[12], &ip4, 4);
}

static __always_inline int lb_addr_is_v4(const __u8 addr[16])
{
	const __u32 *w = (const __u32 *)addr;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* The master entry (slot 0) of the frontend addr:dport/proto, or NULL when it is not a service. */
static __always_inline struct lb_svc_value *lb_lookup_service(struct lb_svc_key *key)
{
	key->slot = 0;
	key->scope = 0;
	key->pad[0] = 0;
	key->pad[1] = 0;
	return bpf_map_lookup_elem(&lb_services, key);
}

/* The backend with id `id` if it may take a new flow (active), else NULL. */
static __always_inline struct lb_backend *lb_lookup_active_backend(__u32 id)
{
	struct lb_backend *be = bpf_map_lookup_elem(&lb_backends, &id);

	if (!be || be->state != LB_BACKEND_ACTIVE)
		return NULL;
	return be;
}

/* The backend id in slot `slot` (1..count) of the service `key` names (key->slot is overwritten). */
static __always_inline __u32 lb_slot_backend(struct lb_svc_key *key, __u16 slot)
{
	struct lb_svc_value *v;

	key->slot = slot;
	v = bpf_map_lookup_elem(&lb_services, key);
	key->slot = 0;
	return v ? v->backend_id : 0;
}

/*
 * The backend id the service's Maglev table holds for `hash`, 0 when it has none. The one Maglev
 * lookup of every program: the index is computed after both lookups and checked again where the
 * verifier sees it (it does not follow a modulo; the empty asm keeps the compiler from dropping a
 * check it knows holds).
 */
static __always_inline __u32 lb_maglev_backend(__u16 rev_nat_id, __u32 hash)
{
	struct lb_maglev_table *t;
	__u32 zero = 0, idx;
	void *inner;

	inner = bpf_map_lookup_elem(&lb_maglev, &rev_nat_id);
	if (!inner)
		return 0;
	t = bpf_map_lookup_elem(inner, &zero);
	if (!t)
		return 0;
	idx = hash % LB_MAGLEV_TABLE_SIZE;
	asm volatile("" : "+r"(idx));
	if (idx >= LB_MAGLEV_TABLE_SIZE)
		return 0;
	return t->backend_ids[idx];
}

/* ---- the flow hash of per-packet Maglev --------------------------------------------------------- */

static __always_inline __u32 lb_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

/*
 * Bob Jenkins' lookup3 hash of three words (the Linux kernel's jhash_3words): the initial value
 * 0xdeadbeef + 12 + initval added to each word, then lookup3's final mix.
 */
static __always_inline __u32 lb_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	initval += 0xdeadbeef + (3 << 2);
	a += initval;
	b += initval;
	c += initval;
	c ^= b;
	c -= lb_rol32(b, 14);
	a ^= c;
	a -= lb_rol32(c, 11);
	b ^= a;
	b -= lb_rol32(a, 25);
	c ^= b;
	c -= lb_rol32(b, 16);
	a ^= c;
	a -= lb_rol32(c, 4);
	b ^= a;
	b -= lb_rol32(a, 14);
	c ^= b;
	c -= lb_rol32(b, 24);
	return c;
}

/*
 * The flow hash that indexes a service's Maglev table, the same on every node for one `seed` (the
 * cluster's; @datapath/lb's `flowHash` computes it in TypeScript): lookup3 over the client's address,
 * (client port << 16) | service port and the protocol, every field in host order. The destination
 * address is left out on purpose (as Cilium does): a NodePort flow reaches each node at that node's
 * own address, and must still land on the same backend whichever node it enters by.
 *
 *   IPv4: jhash_3words(saddr, ports, proto, seed)
 *   IPv6: h = jhash_3words(saddr[0..3], saddr[4..7], saddr[8..11], seed) (big-endian words), then
 *         jhash_3words(saddr[12..15], ports, proto, h)
 */
static __always_inline __u32 lb_flow_hash4(__be32 saddr, __be16 sport, __be16 dport, __u8 proto, __u32 seed)
{
	__u32 ports = ((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport);

	return lb_jhash_3words(bpf_ntohl(saddr), ports, proto, seed);
}

static __always_inline __u32 lb_flow_hash6(const __u8 saddr[16], __be16 sport, __be16 dport, __u8 proto,
					   __u32 seed)
{
	__u32 w[4], ports = ((__u32)bpf_ntohs(sport) << 16) | bpf_ntohs(dport);

	__builtin_memcpy(w, saddr, 16);
	seed = lb_jhash_3words(bpf_ntohl(w[0]), bpf_ntohl(w[1]), bpf_ntohl(w[2]), seed);
	return lb_jhash_3words(bpf_ntohl(w[3]), ports, proto, seed);
}

/*
 * Picks a backend id for a new flow of the service whose master entry is `svc` (key: its frontend) with
 * `hash`: the Maglev table's entry hash % LB_MAGLEV_TABLE_SIZE, or slot hash % count + 1 (pass
 * bpf_get_prandom_u32() for a random pick). The slots repeat each backend in proportion to its weight
 * (the writer's weighted slot table), so a random pick follows the weights. 0 when the service has no
 * backend for new flows.
 */
static __always_inline __u32 lb_select_backend(struct lb_svc_key *key, const struct lb_svc_value *svc,
					       __u32 hash)
{
	if (svc->count == 0)
		return 0;
	if (svc->flags & LB_SVC_FLAG_MAGLEV)
		return lb_maglev_backend(svc->rev_nat_id, hash);
	return lb_slot_backend(key, (__u16)(hash % svc->count) + 1);
}

/* The backend a client's affinity entry names, if it is unexpired and still takes new flows; else 0. */
static __always_inline __u32 lb_affinity_backend(const struct lb_svc_value *svc,
						 const struct lb_affinity_key *akey)
{
	struct lb_affinity_match_key mkey = {};
	struct lb_affinity_value *av;
	__u64 timeout_ns;

	if (!(svc->flags & LB_SVC_FLAG_AFFINITY))
		return 0;
	av = bpf_map_lookup_elem(&lb_affinity, akey);
	if (!av)
		return 0;
	timeout_ns = (__u64)svc->backend_id * 1000000000ULL;
	if (bpf_ktime_get_ns() - av->last_used > timeout_ns)
		return 0;
	mkey.backend_id = av->backend_id;
	mkey.rev_nat_id = svc->rev_nat_id;
	if (!bpf_map_lookup_elem(&lb_affinity_match, &mkey))
		return 0;
	return av->backend_id;
}

/* Records (or refreshes) the client's affinity to `backend_id`. */
static __always_inline void lb_affinity_update(const struct lb_svc_value *svc,
					       const struct lb_affinity_key *akey, __u32 backend_id)
{
	struct lb_affinity_value av = {};

	if (!(svc->flags & LB_SVC_FLAG_AFFINITY))
		return;
	av.last_used = bpf_ktime_get_ns();
	av.backend_id = backend_id;
	bpf_map_update_elem(&lb_affinity, akey, &av, BPF_ANY);
}

#endif /* DATAPATH_LB_H */
