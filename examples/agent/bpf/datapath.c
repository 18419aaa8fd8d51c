// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The reference agent's pod datapath: one object, loaded once per agent and attached to every
 * endpoint's host-side veth. A program finds its endpoint through skb->ifindex in the `lxc` map and
 * the endpoint's policy under its endpoint id in the shared `policy` trie, so adding a pod loads
 * nothing.
 *
 *   from_container  tc/tcx ingress of the pod's host-side veth (packets the pod sends):
 *                   ARP responder for the gateway 169.254.1.1; source check; conntrack; for a new
 *                   flow the pod's egress policy and, towards a local pod, that pod's ingress
 *                   policy; then MAC rewrite, TTL decrement and bpf_redirect_peer() straight into
 *                   the destination pod's eth0 (kernel >= 5.10), or the node's stack (host, world).
 *                   Towards a pod on another node (an ipcache entry with a tunnel endpoint) in
 *                   tunnel mode (config.tunnel_ifindex set): VXLAN tunnel key with the source's
 *                   identity as VNI, bpf_redirect to the node's VXLAN device; in native mode with
 *                   host routing (DP_F_HOST_ROUTING), bpf_redirect_neigh out of the underlay device
 *                   (config.netdev_ifindex) to the tunnel endpoint, the remote node's underlay
 *                   address, without a FIB lookup; otherwise the node's stack routes it.
 *   to_container    tc/tcx egress of the host-side veth (packets the node's stack sends to the
 *                   pod: host, world, and remote pods in native mode): conntrack and, for a new
 *                   flow, ingress policy with the source's identity from the ipcache.
 *   from_netdev     tc/tcx ingress of the node's underlay device (native mode, host routing): a
 *                   packet for a local pod gets that pod's ingress policy with the source's identity
 *                   from the ipcache, then bpf_redirect_peer into the pod; anything else goes on to
 *                   the node's stack.
 *   from_overlay    tc/tcx ingress of the node's VXLAN device (tunnel mode): the source identity
 *                   from the tunnel key's VNI, conntrack and the destination pod's ingress policy,
 *                   then bpf_redirect_peer into the pod.
 *                   Both node-side programs share one preamble (from_node) and also take the replies
 *                   of a NodePort flow's remote backend (addressed to this node, nodeport_reply).
 *   from_world      tcx ingress of the node's world-facing device, at the head of the chain (before
 *                   @datapath/lb's from_netdev): NodePort with the backend on another node, as
 *                   Cilium's default SNAT mode does it (nodeport_remote). Everything else goes on to
 *                   the next program (TC_ACT_UNSPEC).
 *
 * Fast path: a packet whose conntrack entry carries the current policy revision
 * (config.policy_rev) skips policy entirely, so an established flow costs the same with policy on
 * and off: three hash lookups (this endpoint by ifindex, the destination by IP, conntrack), and
 * lookups the verifier inlines as plain loads (config, the two `fwd` counter slots, jiffies). Policy
 * is evaluated when a flow opens, and once more for each flow after the agent changes a policy map,
 * an identity or the ipcache (it bumps the revision after writing them): a flow that the new policy
 * no longer allows has both conntrack entries marked denied, and its packets are dropped in both
 * directions from then on (until a later policy change allows it again, or the entries age out).
 *
 * Policy lookup follows Cilium's two-candidate rule (bpf/lib/policy.h): the peer's identity and
 * the wildcard identity 0, each at full prefix in the LPM trie; a deny in either wins, otherwise
 * any match allows, no match drops (default deny).
 *
 * NodePort translation uses @datapath/lb's BPF library (svc.h: the service maps, the nat4 flow map, port
 * allocation, checksum-correct rewrites); its maps are pinned beside the lb package's own objects
 * (<pinDir>/lb), so this object, the socket LB and the lb package's outward-device programs share them.
 *
 * Build (the agent compiles it through @datapath/loader's cache, with @datapath/lb's bpf/ as include
 * directory and its map sizes as defines):
 *   clang -O2 -g --target=bpf -I/usr/include/x86_64-linux-gnu -I<lb>/bpf -c datapath.c -o datapath.o
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "datapath.h"
/* @datapath/lb's per-packet service library: lb_* service maps, the nat4 flow map and its steps. */
#include "svc.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

/* The same endpoint entries keyed by the host-side veth's ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipcache SEC(".maps");

/* Per-CPU LRU lists: no global LRU lock on the flow-creation path. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} metrics SEC(".maps");

/* Forwarded counters by endpoint id: the per-packet counters, an inlined array lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FWD_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct fwd_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dp_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* Every endpoint's policy: { endpoint id, Cilium's policy_key } -> policy_entry (datapath.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lxc_policy_key);
	__type(value, struct policy_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy SEC(".maps");

#ifndef DATAPATH_EVENTS
#define DATAPATH_EVENTS 1 /* 0: no event is emitted (the benchmarks' baseline) */
#endif

/* Drop, policy-verdict and trace records (struct dp_event / struct trace_event in datapath.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 19);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* Anchors the record layouts and the flag enums in the object's BTF, so that datapath-gen emits
 * their codecs and constants. */
struct trace_event *trace_event_type __attribute__((unused));
enum ct_flags *ct_flags_type __attribute__((unused));
enum dp_flags *dp_flags_type __attribute__((unused));
enum ipcache_flags *ipcache_flags_type __attribute__((unused));
enum lxc_policy_prefix *lxc_policy_prefix_type __attribute__((unused));

/* Records the ring had no room for, per CPU (the kernel does not count failed reservations). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events_lost SEC(".maps");

/* The gateway every pod routes through (Cilium-style: a link-local address nobody owns), host order.
 * Set by the agent at load (src/gateway.ts is its one definition). */
const volatile __u32 gateway_ipv4 = 0;

struct flow {
	struct ct_key tuple;
	__u32 len;
};

static __always_inline void account(__u32 lxc_id, __u8 reason, __u8 dir, __u32 len)
{
	struct metrics_key k = { .lxc_id = lxc_id, .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&metrics, &k);

	if (v) {
		v->packets += 1;
		v->bytes += len;
		return;
	}
	struct metrics_value init = { .packets = 1, .bytes = len };
	bpf_map_update_elem(&metrics, &k, &init, BPF_NOEXIST);
}

/* A delivered packet: the endpoint's slot in the per-CPU `fwd` array (no hash lookup). */
static __always_inline void account_fwd(__u32 lxc_id, __u8 dir, __u32 len)
{
	struct fwd_value *v = bpf_map_lookup_elem(&fwd, &lxc_id);
	struct metrics_value *m;

	if (!v)
		return;
	m = dir == DIR_INGRESS ? &v->ingress : &v->egress;
	m->packets += 1;
	m->bytes += len;
}

struct side {
	struct endpoint_info *ep; /* local endpoint, or NULL (host, world) */
	__u32 id;                 /* security identity */
};

static __always_inline void event_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&events_lost, &zero);

	if (n)
		*n += 1;
}

/* Fills a record header; `f`, `src` and `dst` may be NULL (unknown). */
static __always_inline void fill_event(struct dp_event *ev, __u8 type, __u8 reason, __u8 dir, __u8 match,
				       const struct flow *f, const struct side *src, const struct side *dst,
				       __u32 lxc_id, __u32 len)
{
	ev->ts_ns = bpf_ktime_get_ns();
	ev->type = type;
	ev->reason = reason;
	ev->dir = dir;
	ev->match = match;
	ev->src_lxc = src && src->ep ? src->ep->lxc_id : 0;
	ev->dst_lxc = dst && dst->ep ? dst->ep->lxc_id : 0;
	ev->src_id = src ? (src->ep ? src->ep->sec_id : src->id) : 0;
	ev->dst_id = dst ? (dst->ep ? dst->ep->sec_id : dst->id) : 0;
	if (f)
		ev->tuple = f->tuple;
	else
		__builtin_memset(&ev->tuple, 0, sizeof(ev->tuple));
	ev->len = len;
	ev->cap_len = 0;
	ev->lxc_id = lxc_id;
}

/* A drop or policy-verdict record. */
static __always_inline void emit(__u8 type, __u8 reason, __u8 dir, __u8 match, const struct flow *f,
				 const struct side *src, const struct side *dst, __u32 lxc_id, __u32 len)
{
#if DATAPATH_EVENTS
	struct dp_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev) {
		event_lost();
		return;
	}
	fill_event(ev, type, reason, dir, match, f, src, dst, lxc_id, len);
	bpf_ringbuf_submit(ev, 0);
#endif
}

/* A trace record of a forwarded packet, about one in `rate` (0: tracing off, the per-packet cost). */
static __always_inline void trace(struct __sk_buff *skb, __u32 rate, const struct flow *f,
				  const struct side *src, const struct side *dst, __u32 lxc_id, __u8 dir)
{
#if DATAPATH_EVENTS
	struct trace_event *ev;
	__u32 n;

	if (rate == 0)
		return;
	if (rate > 1 && bpf_get_prandom_u32() % rate != 0)
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		event_lost();
		return;
	}
	fill_event(&ev->hdr, EVENT_TRACE, REASON_FORWARDED, dir, MATCH_NONE, f, src, dst, lxc_id, skb->len);
	__builtin_memset(ev->data, 0, TRACE_CAP);
	n = skb->len < TRACE_CAP ? skb->len : TRACE_CAP;
	if (n > 0 && n <= TRACE_CAP && bpf_skb_load_bytes(skb, 0, ev->data, n) == 0)
		ev->hdr.cap_len = n;
	bpf_ringbuf_submit(ev, 0);
#endif
}

/* A drop before the flow is known (no endpoint, not IPv4, bad headers): `lxc_id` is this veth's
 * endpoint, the source for DIR_EGRESS and the destination for DIR_INGRESS. */
static __always_inline int drop(struct __sk_buff *skb, __u32 lxc_id, __u8 reason, __u8 dir)
{
	account(lxc_id, reason, dir, skb->len);
	emit(EVENT_DROP, reason, dir, MATCH_NONE, NULL, NULL, NULL, lxc_id, skb->len);
	return TC_ACT_SHOT;
}

/* A drop of a parsed packet from `src` to `dst` by endpoint `lxc_id` in direction `dir`. */
static __always_inline int drop_flow(struct __sk_buff *skb, const struct flow *f, const struct side *src,
				     const struct side *dst, __u32 lxc_id, __u8 reason, __u8 dir)
{
	account(lxc_id, reason, dir, skb->len);
	emit(EVENT_DROP, reason, dir, MATCH_NONE, f, src, dst, lxc_id, skb->len);
	return TC_ACT_SHOT;
}

/* Parses the IPv4 header and the L4 ports with direct packet access; returns a metric reason,
 * REASON_FORWARDED when it parsed. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u8 *l4;

	if ((void *)(ip + 1) > data_end)
		return REASON_INVALID_PACKET;
	if (ip->ihl < 5)
		return REASON_INVALID_PACKET;
	__builtin_memset(f, 0, sizeof(*f));
	f->tuple.saddr = ip->saddr;
	f->tuple.daddr = ip->daddr;
	f->tuple.proto = ip->protocol;
	f->len = skb->len;
	/* Later fragments carry no L4 header: they match as port 0. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return REASON_FORWARDED;
	l4 = (__u8 *)ip + ip->ihl * 4;

	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__be16 *ports = (__be16 *)l4;

		if ((void *)(ports + 2) > data_end)
			return REASON_INVALID_PACKET;
		f->tuple.sport = ports[0];
		f->tuple.dport = ports[1];
		break;
	}
	case IPPROTO_ICMP:
		if ((void *)(l4 + 8) > data_end)
			return REASON_INVALID_PACKET;
		/* Echo request and reply share the identifier: use it on both sides of the tuple so
		 * the reply is the reverse of the request. */
		if (l4[0] == 8 || l4[0] == 0) {
			__be16 id = *(__be16 *)(l4 + 4);

			f->tuple.sport = id;
			f->tuple.dport = id;
		}
		break;
	default:
		break;
	}
	return REASON_FORWARDED;
}

/* parse_ipv4, pulling the headers into the linear area first when they are not there (rare). */
static __always_inline int load_flow(struct __sk_buff *skb, struct flow *f)
{
	int r = parse_ipv4(skb, f);

	if (r == REASON_INVALID_PACKET && skb->len > skb->data_end - skb->data) {
		__u32 n = skb->len < 128 ? skb->len : 128;

		if (bpf_skb_pull_data(skb, n) == 0)
			r = parse_ipv4(skb, f);
	}
	return r;
}

/* The agent's settings (policy revision, flags), read once per packet. */
static __always_inline struct dp_config load_config(void)
{
	__u32 zero = 0;
	struct dp_config *c = bpf_map_lookup_elem(&config, &zero);
	struct dp_config none = {};

	return c ? *c : none;
}

/* The ipcache entry of an address (longest prefix), NULL when none covers it (world). */
static __always_inline struct remote_endpoint_info *ipcache_lookup(__be32 addr)
{
	struct ipcache_key k = {
		.prefixlen = IPCACHE_STATIC_PREFIX + 32,
		.family = IPCACHE_FAMILY_IPV4,
		.ip4 = addr,
	};

	return bpf_map_lookup_elem(&ipcache, &k);
}

/* Identity of an address that is not a local endpoint: ipcache longest prefix, else world. */
static __always_inline __u32 ipcache_identity(__be32 addr)
{
	struct remote_endpoint_info *info = ipcache_lookup(addr);

	return info ? info->sec_identity : ID_WORLD;
}

/* The port policy matches: the destination port for TCP, UDP and SCTP, 0 otherwise. */
static __always_inline __be16 policy_port(__u8 proto, __be16 port)
{
	return proto == IPPROTO_ICMP ? 0 : port;
}

/* The match type of a policy entry found under the peer's identity (`l3`) or the wildcard identity:
 * its lpm_prefix_length is the protocol/port prefix of its key (0 any, 8 the protocol, more a port). */
static __always_inline __u8 match_kind(const struct policy_entry *e, int l3)
{
	__u8 plen = e->lpm_prefix_length;

	if (l3)
		return plen == 0 ? MATCH_L3_ONLY : plen <= 8 ? MATCH_L3_PROTO : MATCH_L3_L4;
	return plen == 0 ? MATCH_ALL : plen <= 8 ? MATCH_PROTO_ONLY : MATCH_L4_ONLY;
}

/* One endpoint's verdict for a flow in direction `egress` with `peer`: REASON_FORWARDED, or the
 * drop reason; *match says which entry decided. An endpoint without policy entries drops (default
 * deny). */
static __always_inline int policy_check(__u32 lxc_id, __u32 peer, __u8 egress, __u8 proto, __be16 dport,
					__u8 *match)
{
	struct lxc_policy_key k = {
		.prefixlen = LXC_POLICY_FULL_PREFIX,
		.lxc_id = lxc_id,
		.sec_label = peer,
		.egress = egress,
		.protocol = proto,
		.dport = dport,
	};
	struct policy_entry *l3, *any;

	l3 = bpf_map_lookup_elem(&policy, &k);
	k.sec_label = 0;
	any = bpf_map_lookup_elem(&policy, &k);
	if (l3 && l3->deny) {
		*match = match_kind(l3, 1);
		return REASON_POLICY_DENY;
	}
	if (any && any->deny) {
		*match = match_kind(any, 0);
		return REASON_POLICY_DENY;
	}
	/* Both allow: the more specific entry (longer protocol/port prefix) decided, the identity's on a tie. */
	if (l3 && (!any || l3->lpm_prefix_length >= any->lpm_prefix_length)) {
		*match = match_kind(l3, 1);
		return REASON_FORWARDED;
	}
	if (any) {
		*match = match_kind(any, 0);
		return REASON_FORWARDED;
	}
	*match = MATCH_NONE;
	return REASON_POLICY_DENIED;
}

/* The verdict of a flow in its opening direction src -> dst: the source endpoint's egress policy
 * when it is local, then the destination endpoint's ingress policy when it is local. `who`/`dir`/
 * `match` say which policy decided: the one that dropped it, else the last one checked. */
static __always_inline int flow_verdict(struct side *src, struct side *dst, __u8 proto, __be16 dport,
					__u32 *who, __u8 *dir, __u8 *match)
{
	int r = REASON_FORWARDED;

	if (src->ep) {
		*who = src->ep->lxc_id;
		*dir = DIR_EGRESS;
		r = policy_check(src->ep->lxc_id, dst->id, 1, proto, dport, match);
		if (r != REASON_FORWARDED)
			return r;
	}
	if (dst->ep) {
		*who = dst->ep->lxc_id;
		*dir = DIR_INGRESS;
		r = policy_check(dst->ep->lxc_id, src->id, 0, proto, dport, match);
	}
	return r;
}

static __always_inline void reverse(struct ct_key *out, const struct ct_key *in)
{
	__builtin_memset(out, 0, sizeof(*out));
	out->saddr = in->daddr;
	out->daddr = in->saddr;
	out->sport = in->dport;
	out->dport = in->sport;
	out->proto = in->proto;
}

/*
 * The slow path of a packet from `a` to `b` whose conntrack entry `e` is missing or was checked
 * under an older policy revision: evaluate the flow in its opening direction (b -> a when `e` is a
 * reply entry), then create both entries, or stamp `e` with `rev` and the verdict.
 */
static __always_inline int ct_admit(struct flow *f, struct ct_entry *e, struct side *a, struct side *b,
				    __u32 rev, __u32 *who, __u8 *dir)
{
	struct ct_key rk;
	__u8 match = MATCH_NONE;
	int r;

	if (e && (e->flags & CT_F_REPLY))
		r = flow_verdict(b, a, f->tuple.proto, policy_port(f->tuple.proto, f->tuple.sport), who, dir, &match);
	else
		r = flow_verdict(a, b, f->tuple.proto, policy_port(f->tuple.proto, f->tuple.dport), who, dir, &match);
	if (e) {
		/* An established flow checked again after a policy change. A flow the change denies gets
		 * a policy-verdict record (once per direction: its entry is marked denied, so its later
		 * packets take the fast path); one still allowed gets none, as any established flow. */
		e->flags &= CT_F_REPLY;
		if (r != REASON_FORWARDED) {
			e->flags |= CT_F_DENIED | (*dir == DIR_EGRESS ? CT_F_DROP_EGRESS : 0);
			e->drop_reason = r;
			e->drop_lxc = *who;
			emit(EVENT_POLICY_VERDICT, r, *dir, match, f, a, b, *who, f->len);
		}
		e->rev = rev;
		return r;
	}
	/* A new flow: one policy-verdict record (a denied flow gets no entry: each packet is new). */
	emit(EVENT_POLICY_VERDICT, r, *dir, match, f, a, b, *who, f->len);
	if (r != REASON_FORWARDED)
		return r;
	struct ct_entry n = {
		.created_ns = bpf_ktime_get_ns(),
		.seen_jiffies = bpf_jiffies64(),
		.rev = rev,
		.src_sec_id = a->id,
		.dst_sec_id = b->id,
	};

	bpf_map_update_elem(&ct4, &f->tuple, &n, BPF_ANY);
	reverse(&rk, &f->tuple);
	n.flags = CT_F_REPLY;
	bpf_map_update_elem(&ct4, &rk, &n, BPF_ANY);
	return REASON_FORWARDED;
}

/* Identity of a peer address on the slow path: a local endpoint's, else the ipcache's. */
static __always_inline void resolve(struct side *s, __be32 addr)
{
	if (!s->ep)
		s->ep = bpf_map_lookup_elem(&endpoints, &addr);
	s->id = s->ep ? s->ep->sec_id : ipcache_identity(addr);
}

/* Conntrack for a packet from `a` to `b`, where `peer` (a or b, or NULL when both are known) still needs its identity: the fast
 * path (entry at the current policy revision `rev`) only refreshes seen_jiffies once per CT_REFRESH_JIFFIES; everything
 * else resolves the peer and goes through ct_admit.
 *
 * A reply checked again (its entry stamped with an older revision) is judged in the flow's opening direction with the
 * identity the opener was admitted with when the opener is not a local endpoint: the reply's destination address need
 * not name the opener. A NodePort flow forwarded by another node in tunnel mode comes in with the world identity in
 * its VNI, from that node's address, whose ipcache identity is remote-node; resolving the address would judge the
 * backend's reply as from remote-node, and a policy that admits world would cut the flow at its first revision change. */
static __always_inline int conntrack(__u32 rev, struct flow *f, struct side *a, struct side *b, struct side *peer,
				     __be32 peer_addr, __u32 *who, __u8 *dir)
{
	struct ct_entry *e = bpf_map_lookup_elem(&ct4, &f->tuple);

	if (e && e->rev == rev) {
		__u64 now;

		if (e->flags & CT_F_DENIED) {
			*who = e->drop_lxc;
			*dir = e->flags & CT_F_DROP_EGRESS ? DIR_EGRESS : DIR_INGRESS;
			return e->drop_reason;
		}
		now = bpf_jiffies64();
		if (now - e->seen_jiffies > CT_REFRESH_JIFFIES)
			e->seen_jiffies = now;
		return REASON_FORWARDED;
	}
	if (peer)
		resolve(peer, peer_addr);
	if (e && (e->flags & CT_F_REPLY) && !b->ep && e->src_sec_id != ID_UNKNOWN)
		b->id = e->src_sec_id;
	return ct_admit(f, e, a, b, rev, who, dir);
}

/* Ethernet + ARP for IPv4 (linux/if_arp.h drags in libc headers, so spelled out here). */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

struct arp_eth {
	struct ethhdr eth;
	struct {
		__be16 ar_hrd;
		__be16 ar_pro;
		__u8 ar_hln;
		__u8 ar_pln;
		__be16 ar_op;
	} arp;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

/* Answers the pod's ARP request for the gateway with the host-side veth's MAC. */
static __always_inline int arp_respond(struct __sk_buff *skb, struct endpoint_info *self)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct arp_eth *p = data;
	__be32 requester;

	if ((void *)(p + 1) > data_end)
		return TC_ACT_OK;
	if (p->arp.ar_op != bpf_htons(ARPOP_REQUEST) || p->arp.ar_hrd != bpf_htons(ARPHRD_ETHER) ||
	    p->arp.ar_pro != bpf_htons(ETH_P_IP) || p->tpa != bpf_htonl(gateway_ipv4))
		return TC_ACT_OK;

	requester = p->spa;
	__builtin_memcpy(p->eth.h_dest, p->sha, ETH_ALEN);
	__builtin_memcpy(p->eth.h_source, self->node_mac, ETH_ALEN);
	p->arp.ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(p->tha, p->sha, ETH_ALEN);
	p->tpa = requester;
	__builtin_memcpy(p->sha, self->node_mac, ETH_ALEN);
	p->spa = bpf_htonl(gateway_ipv4);
	account(self->lxc_id, REASON_ARP_REPLY, DIR_EGRESS, skb->len);
	/* Back out of the same veth: egress of the host side arrives at the pod's eth0. */
	return bpf_redirect(skb->ifindex, 0);
}

/* Router semantics towards a local pod: new L2 addresses, TTL - 1 (incremental checksum, as
 * ip_decrease_ttl does), then straight into the pod's eth0. */
static __always_inline int deliver(struct __sk_buff *skb, struct endpoint_info *dst, const struct flow *f,
				   const struct side *a, const struct side *b, __u32 flags)
{
	__u32 len = f->len;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 check;

	if ((void *)(ip + 1) > data_end)
		return drop_flow(skb, f, a, b, dst->lxc_id, REASON_INVALID_PACKET, DIR_INGRESS);
	if (ip->ttl <= 1)
		return drop_flow(skb, f, a, b, dst->lxc_id, REASON_TTL_EXCEEDED, DIR_INGRESS);
	__builtin_memcpy(eth->h_dest, dst->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, dst->node_mac, ETH_ALEN);
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl -= 1;
	if (flags & DP_F_DELIVER_EGRESS)
		return bpf_redirect(dst->ifindex, 0); /* to_container accounts it on the way out */
	account_fwd(dst->lxc_id, DIR_INGRESS, len);
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* A packet leaving for another node stops sharing its head with the sender's copy. A TCP sender's
 * data packet is a clone of the skb it keeps for retransmission (same head, same pages); a router
 * makes it private before it writes the headers (ip_forward: skb_cow), and a receiving socket only
 * appends a private skb to the one before it in its receive queue (skb_try_coalesce refuses to grow
 * a cloned one). Delivered still shared, the other node's pod gets one skb per GSO packet to copy out
 * and free (the cross-node bench: about 300 merges per GB received against 8 000-9 000 on the routed
 * path, and twice the skbs read per GB). bpf_skb_change_head(skb, 0, 0) is skb_cow(skb, 0): nothing
 * for a private skb, a new head for a clone (the headers, a few hundred bytes; the pages stay shared
 * by reference), the GSO state kept; the same work ip_forward does. Packet pointers must be reloaded
 * afterwards. A failure (no memory) leaves the packet as it was: it goes on, shared. */
static __always_inline void unshare(struct __sk_buff *skb)
{
	bpf_skb_change_head(skb, 0, 0);
}

/* The VXLAN tunnel key of a packet for the node at underlay address `node` (network order): `id` (a
 * security identity, at most 24 bits) as the VNI; the kernel picks the outer source. Returns 0, or a
 * negative value when the key cannot be set. */
static __always_inline int tunnel_key(struct __sk_buff *skb, __u32 id, __be32 node)
{
	struct bpf_tunnel_key key = {};

	if (id > 0xffffff)
		return -1;
	key.tunnel_id = id;
	key.remote_ipv4 = bpf_ntohl(node);
	key.tunnel_ttl = 64;
	return bpf_skb_set_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4), BPF_F_ZERO_CSUM_TX);
}

/* Tunnel mode, towards a pod on another node (Cilium's encap_and_redirect_lxc): the VXLAN key
 * carries the source's security identity as its VNI and the remote node's underlay address as the
 * outer destination. Then out of the node's VXLAN device. */
static __always_inline int encap_redirect(struct __sk_buff *skb, const struct flow *f, const struct side *a,
					  const struct side *b, __be32 node, __u32 tunnel_ifindex)
{
	if (tunnel_key(skb, a->id, node) < 0)
		return drop_flow(skb, f, a, b, a->ep ? a->ep->lxc_id : 0, REASON_TUNNEL_FAILED, DIR_EGRESS);
	return bpf_redirect(tunnel_ifindex, 0);
}

/* Routing without the node's IP stack where the next hop is not known from the ipcache (a NodePort reply
 * to its client), and node_route's fallback: the node's FIB says which device and next hop, then
 * router semantics (TTL - 1, new L2 addresses) and out of that device, without the node's IP stack
 * (no ip_rcv/forward, no netfilter, no second backlog pass). tot_len 0: the kernel checks the MTU
 * with is_skb_forwardable(), which knows GSO packets. A packet the FIB cannot forward (no route,
 * TTL at its end, MTU) goes to the stack, which answers it as a router does. */
static __always_inline int host_route(struct __sk_buff *skb)
{
	struct bpf_fib_lookup p = {};
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 check;
	long rc;

	unshare(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
		return TC_ACT_OK;
	p.family = 2; /* AF_INET */
	p.tos = ip->tos;
	p.l4_protocol = ip->protocol;
	p.ipv4_src = ip->saddr;
	p.ipv4_dst = ip->daddr;
	p.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl -= 1;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* the next hop's MAC is not known yet: the kernel resolves it (and queues the packet) */
		struct bpf_redir_neigh nh = { .nh_family = 2, .ipv4_nh = p.ipv4_dst };

		return bpf_redirect_neigh(p.ifindex, &nh, sizeof(nh), 0);
	}
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	return bpf_redirect(p.ifindex, 0);
}

/* The smallest underlay MTU a node may have (node-datapath.ts refuses less): an IPv4 packet of at most
 * this many bytes fits through any underlay device without a check. */
#define UNDERLAY_MTU_MIN 1280

/* Native mode with host routing, towards a pod on the node at underlay address `node` (network order, the
 * ipcache's tunnel endpoint), out of the node's underlay device `ifindex` (config.netdev_ifindex). The
 * control plane routes every remote node's pod CIDRs via that node's underlay address, a neighbour on the
 * underlay link (remoteNodeRoutes), so the FIB would answer with this device and this next hop: the
 * lookup is left out (in the cross-node bench it was a third of from_container's time per packet, on
 * both the data and the ACK direction). bpf_redirect_neigh then fills in the L2 addresses from the
 * kernel's neighbour entry of `node`, creating and resolving it when there is none (the packet waits in
 * the neighbour's queue, as one the stack sends would). Router semantics as host_route: unshared,
 * TTL - 1. What the short path cannot send goes to host_route, whose FIB lookup answers as before: no
 * underlay device known (0), or a packet that is not GSO and bigger than the device's MTU (the stack
 * then answers it with "fragmentation needed"); a TTL at its end goes to the stack. */
static __always_inline int node_route(struct __sk_buff *skb, __be32 node, __u32 ifindex)
{
	struct bpf_redir_neigh nh = { .nh_family = 2 /* AF_INET */, .ipv4_nh = node };
	void *data, *data_end;
	struct iphdr *ip;
	__u32 check;

	if (ifindex == 0)
		return host_route(skb);
	if (skb->gso_size == 0 && skb->len > ETH_HLEN + UNDERLAY_MTU_MIN) {
		__u32 mtu = 0;

		if (bpf_check_mtu(skb, ifindex, &mtu, 0, 0) != BPF_MTU_CHK_RET_SUCCESS)
			return host_route(skb);
	}
	unshare(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
		return TC_ACT_OK;
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__sum16)(check + (check >= 0xFFFF));
	ip->ttl -= 1;
	return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

/* What both programs do first: find this veth's endpoint, answer or pass ARP, refuse what is not
 * IPv4, parse the flow. Returns 1 with *selfp and *f filled when the packet goes on, otherwise
 * 0 with the tc verdict in *verdict. */
static __always_inline int enter(struct __sk_buff *skb, __u8 dir, struct endpoint_info **selfp, struct flow *f,
				  int *verdict)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *self = bpf_map_lookup_elem(&lxc, &ifindex);
	void *data, *data_end;
	struct ethhdr *eth;
	int reason;

	if (!self) {
		*verdict = drop(skb, 0, REASON_NO_ENDPOINT, dir);
		return 0;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		*verdict = drop(skb, self->lxc_id, REASON_INVALID_PACKET, dir);
		return 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		/* from the pod: answer for the gateway; towards the pod: the pod's stack answers */
		*verdict = dir == DIR_EGRESS ? arp_respond(skb, self) : TC_ACT_OK;
		return 0;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		*verdict = drop(skb, self->lxc_id, REASON_UNSUPPORTED_L3, dir);
		return 0;
	}
	reason = load_flow(skb, f);
	if (reason != REASON_FORWARDED) {
		*verdict = drop(skb, self->lxc_id, reason, dir);
		return 0;
	}
	*selfp = self;
	return 1;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct dp_config cfg;
	struct endpoint_info *self = NULL;
	struct remote_endpoint_info *remote = NULL;
	struct side a, b;
	struct flow f;
	__u32 who = 0;
	__u8 dir = DIR_EGRESS;
	int reason, verdict = TC_ACT_SHOT;

	if (!enter(skb, DIR_EGRESS, &self, &f, &verdict) || !self)
		return verdict;
	a.ep = self;
	a.id = self->sec_id;
	if (f.tuple.saddr != self->ip)
		return drop_flow(skb, &f, &a, NULL, self->lxc_id, REASON_INVALID_SOURCE, DIR_EGRESS);

	b.ep = bpf_map_lookup_elem(&endpoints, &f.tuple.daddr);
	b.id = 0; /* resolved on the slow path only */
	cfg = load_config();
	if (b.ep || !(cfg.tunnel_ifindex || (cfg.flags & DP_F_HOST_ROUTING))) {
		/* A local pod, or native routing through the stack: the peer's identity is needed on the
		 * slow path only. */
		reason = conntrack(cfg.policy_rev, &f, &a, &b, &b, f.tuple.daddr, &who, &dir);
	} else {
		/* Tunnel mode or host routing, not a local pod: every packet needs the ipcache to know
		 * whether it goes to another node (and which), and the same lookup gives the identity. */
		remote = ipcache_lookup(f.tuple.daddr);
		b.id = remote ? remote->sec_identity : ID_WORLD;
		reason = conntrack(cfg.policy_rev, &f, &a, &b, NULL, 0, &who, &dir);
	}
	if (reason != REASON_FORWARDED)
		return drop_flow(skb, &f, &a, &b, who, reason, dir);
	account_fwd(self->lxc_id, DIR_EGRESS, f.len);
	trace(skb, cfg.trace_rate, &f, &a, &b, self->lxc_id, DIR_EGRESS);
	if (b.ep)
		return deliver(skb, b.ep, &f, &a, &b, cfg.flags);
	if (remote && remote->tunnel_endpoint)
		return cfg.tunnel_ifindex ? encap_redirect(skb, &f, &a, &b, remote->tunnel_endpoint, cfg.tunnel_ifindex)
					  : node_route(skb, remote->tunnel_endpoint, cfg.netdev_ifindex);
	/* Host, world, or a remote pod in native mode without host routing: the node's stack routes it. */
	return TC_ACT_OK;
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	struct dp_config cfg;
	struct endpoint_info *self = NULL;
	struct side a, b;
	struct flow f;
	__u32 who = 0;
	__u8 dir = DIR_INGRESS;
	int reason, verdict = TC_ACT_SHOT;

	if (!enter(skb, DIR_INGRESS, &self, &f, &verdict) || !self)
		return verdict;
	if (f.tuple.daddr != self->ip)
		return TC_ACT_OK; /* broadcast and the like: the pod's stack decides */

	/* The peer came through the node's stack (host or world), or is a local pod delivered with
	 * DP_F_DELIVER_EGRESS, whose flow from_container already admitted: the conntrack entry is
	 * current, so this is the fast path; only this endpoint's policy applies otherwise. */
	a.ep = NULL;
	a.id = 0;
	b.ep = self;
	b.id = self->sec_id;
	cfg = load_config();
	reason = conntrack(cfg.policy_rev, &f, &a, &b, &a, f.tuple.saddr, &who, &dir);
	if (reason != REASON_FORWARDED)
		return drop_flow(skb, &f, &a, &b, who, reason, dir);
	account_fwd(self->lxc_id, DIR_INGRESS, f.len);
	trace(skb, cfg.trace_rate, &f, &a, &b, self->lxc_id, DIR_INGRESS);
	return TC_ACT_OK;
}

/*
 * A reply of a NodePort flow's backend on another node (see from_world), addressed to this node's
 * address (nat_ipv4) at the port from_world allocated: the flow's `in` half gives the client's address
 * and port back as the destination, its `rsvc` half the frontend (this node's address and the
 * nodePort) as the source, and the node's FIB sends it to the client (Cilium's rev-SNAT, then
 * rev-DNAT, then fib_redirect). A packet of no such flow is the node's own traffic: the stack's.
 */
static __always_inline int nodeport_reply(struct __sk_buff *skb)
{
	struct pkt4 p;
	int r;

	if (pkt4_parse(skb, &p) || p.frag || p.proto == IPPROTO_ICMP)
		return TC_ACT_OK;
	r = nat4_unmasquerade(skb, &p);
	if (r < 0)
		return TC_ACT_OK;
	if (r != TC_ACT_OK)
		return r;
	if (pkt4_parse(skb, &p))
		return TC_ACT_SHOT;
	r = svc4_reply(skb, &p);
	if (r > 0 && r != TC_ACT_OK)
		return r;
	return host_route(skb);
}

/*
 * What from_netdev and from_overlay share once the packet is parsed: a packet for a local pod gets
 * that pod's ingress policy with the source identity `src_id` (ID_UNKNOWN: the ipcache's entry of the
 * source address, resolved on conntrack's slow path only), then goes straight into the pod; a reply of
 * a NodePort flow's remote backend goes back to its client (nodeport_reply); anything else goes on to
 * the node's stack.
 */
static __always_inline int from_node(struct __sk_buff *skb, struct flow *f, __u32 src_id)
{
	struct dp_config cfg;
	struct side a, b;
	__u32 who = 0;
	__u8 dir = DIR_INGRESS;
	int reason;

	b.ep = bpf_map_lookup_elem(&endpoints, &f->tuple.daddr);
	if (!b.ep)
		return f->tuple.daddr == nat_ipv4 && nat_ipv4 != 0 ? nodeport_reply(skb) : TC_ACT_OK;
	b.id = b.ep->sec_id;
	a.ep = NULL;
	a.id = src_id;
	cfg = load_config();
	if (src_id == ID_UNKNOWN)
		reason = conntrack(cfg.policy_rev, f, &a, &b, &a, f->tuple.saddr, &who, &dir);
	else
		reason = conntrack(cfg.policy_rev, f, &a, &b, NULL, 0, &who, &dir);
	if (reason != REASON_FORWARDED)
		return drop_flow(skb, f, &a, &b, who, reason, dir);
	trace(skb, cfg.trace_rate, f, &a, &b, b.ep->lxc_id, DIR_INGRESS);
	return deliver(skb, b.ep, f, &a, &b, cfg.flags);
}

/*
 * from_netdev: tc/tcx ingress of the node's underlay device (native mode with host routing, Cilium's
 * bpf_host from-netdev). A packet for a local pod gets that pod's ingress policy with the source's
 * identity from the ipcache (a remote pod's, or remote-node for another node's own traffic), the same
 * conntrack as to_container, then goes straight into the pod (bpf_redirect_peer): the node's stack
 * never sees it. Everything else (the node's own traffic, ARP) goes on to the stack untouched.
 */
SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct flow f;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (load_flow(skb, &f) != REASON_FORWARDED)
		return TC_ACT_OK; /* not for a pod as far as we can tell: the stack decides */
	return from_node(skb, &f, ID_UNKNOWN);
}

/*
 * from_overlay: tc/tcx ingress of the node's VXLAN device (tunnel mode, Cilium's bpf_overlay). The
 * kernel has decapsulated the packet and left the tunnel key in its metadata: the VNI is the source
 * pod's security identity as the sending node's from_container set it (world for a NodePort flow a
 * node forwards, remote-node for a node's own traffic). The destination endpoint's ingress policy is
 * applied with that remote identity (the same conntrack and policy code as for local traffic), then
 * the packet goes straight into the pod (bpf_redirect_peer).
 */
SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct flow f;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	int reason;

	if ((void *)(eth + 1) > data_end)
		return drop(skb, 0, REASON_INVALID_PACKET, DIR_INGRESS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK; /* nothing else travels the tunnel; the stack decides */
	reason = load_flow(skb, &f);
	if (reason != REASON_FORWARDED)
		return drop(skb, 0, reason, DIR_INGRESS);
	if (bpf_skb_get_tunnel_key(skb, &key, offsetof(struct bpf_tunnel_key, local_ipv4), 0) < 0)
		return drop(skb, 0, REASON_NO_TUNNEL_KEY, DIR_INGRESS);
	/* Senders put the source's identity there, never unknown or host. */
	if (key.tunnel_id == ID_UNKNOWN || key.tunnel_id == ID_HOST) {
		struct side a = { .ep = NULL, .id = key.tunnel_id };

		return drop_flow(skb, &f, &a, NULL, 0, REASON_INVALID_IDENTITY, DIR_INGRESS);
	}
	return from_node(skb, &f, key.tunnel_id);
}

/*
 * NodePort with the backend on another node (Cilium's nodeport_lb4 and its NAT egress step, default
 * SNAT mode). The packet is already translated to the backend (the flow's svc/rsvc pair); the source
 * becomes this node's address with a port from [nat_port_min, nat_port_max] (the flow's out/in pair,
 * nat4_masquerade: collisions retried, expired pairs reclaimed), so the backend's replies come back
 * here. Then, in tunnel mode, VXLAN to the backend's node with the world identity as VNI (the client is
 * outside the cluster: the backend's policy must not take it for a node); in native mode, the node's
 * FIB (the route to the backend's node over the underlay), where the backend's node resolves the source
 * through its ipcache (remote-node).
 */
static __always_inline int nodeport_remote(struct __sk_buff *skb, struct pkt4 *q, __be32 node)
{
	struct dp_config cfg;
	int r;

	r = nat4_masquerade(skb, q);
	if (r != TC_ACT_OK)
		return r;
	cfg = load_config();
	if (cfg.tunnel_ifindex) {
		if (tunnel_key(skb, ID_WORLD, node) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(cfg.tunnel_ifindex, 0);
	}
	return node_route(skb, node, cfg.netdev_ifindex);
}

/*
 * from_world: tcx ingress of the node's world-facing device, first in the chain. A TCP or UDP packet
 * for a NodePort frontend on this node's address (nat_ipv4) is translated to its backend here (the
 * same svc4_forward as @datapath/lb's from_netdev, the same nat4 pair); a local backend's packet goes
 * on to the stack (which routes it into the pod, where to_container applies its policy with the
 * client's identity), a remote backend's to nodeport_remote. A reply to a masqueraded flow, a packet
 * for no service, anything not IPv4 TCP/UDP: TC_ACT_UNSPEC, the next program of the chain decides.
 */
SEC("tc")
int from_world(struct __sk_buff *skb)
{
	struct remote_endpoint_info *info;
	struct lb_svc_key sk = {};
	struct nat4_key k;
	struct pkt4 p, q;
	int r;

	if (nat_ipv4 == 0 || skb->protocol != bpf_htons(ETH_P_IP) || pkt4_parse(skb, &p))
		return TC_ACT_UNSPEC;
	if (p.frag || p.daddr != nat_ipv4 || (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP))
		return TC_ACT_UNSPEC;
	pkt4_key(&p, NAT_DIR_IN, &k);
	if (bpf_map_lookup_elem(&nat4, &k))
		return TC_ACT_UNSPEC;
	lb_addr_v4(sk.addr, p.daddr);
	sk.dport = p.dport;
	sk.proto = p.proto;
	if (!lb_lookup_service(&sk))
		return TC_ACT_UNSPEC;
	r = svc4_forward(skb, &p, 0, 0); /* no backend: the stack answers, as lb's from_netdev does */
	if (r != TC_ACT_OK)
		return r;
	if (pkt4_parse(skb, &q))
		return TC_ACT_SHOT;
	if (q.daddr == p.daddr)
		return TC_ACT_OK; /* no backend takes new flows: the stack answers (reset, port unreachable) */
	if (bpf_map_lookup_elem(&endpoints, &q.daddr))
		return TC_ACT_OK;
	info = ipcache_lookup(q.daddr);
	if (!info || !info->tunnel_endpoint)
		return TC_ACT_OK;
	return nodeport_remote(skb, &q, info->tunnel_endpoint);
}

char _license[] SEC("license") = "Dual BSD/GPL";
