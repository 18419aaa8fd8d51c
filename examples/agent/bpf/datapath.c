// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The reference agent's pod datapath: one object, loaded once per endpoint (constants LXC_ID and
 * LXC_IPV4 differ, and so does its own `policy` map), all other maps shared through bpffs pins.
 *
 *   from_container  tc/tcx ingress of the pod's host-side veth (packets the pod sends):
 *                   ARP responder for the gateway 169.254.1.1; source check; conntrack;
 *                   destination identity from the endpoint map or the ipcache LPM trie;
 *                   the pod's egress policy; then either a tail call into the destination
 *                   endpoint's lxc_policy (local pod) or the node's stack (host, world).
 *   lxc_policy      tail-call target, one per endpoint in `policy_progs[lxc_id]`: the
 *                   destination's ingress policy, then MAC rewrite, TTL decrement and
 *                   bpf_redirect_peer() straight into the pod's eth0 (kernel >= 5.10).
 *   to_container    tc/tcx egress of the host-side veth (packets the node's stack sends to the
 *                   pod: host and world peers): conntrack and the pod's ingress policy.
 *
 * Policy lookup follows Cilium's two-candidate rule (bpf/lib/policy.h): the peer's identity and
 * the wildcard identity 0, each at full prefix in the LPM trie; a deny in either wins, otherwise
 * any match allows, no match drops (default deny). Replies of a flow that conntrack has seen
 * allowed skip policy; packets of the opening direction are checked every time, so a policy
 * change also cuts established flows.
 *
 * Build (the agent compiles it through @datapath/loader's cache):
 *   clang -O2 -g --target=bpf -I/usr/include/x86_64-linux-gnu -c datapath.c -o datapath.o
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

/* Set per endpoint at load time. */
const volatile __u32 LXC_ID = 0;
const volatile __u32 LXC_IPV4 = 0; /* network order */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
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

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy_progs SEC(".maps");

/* This endpoint's policy map; the agent pins it per endpoint (it is not shared). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
} policy SEC(".maps");

struct flow {
	struct ct_key tuple;
	__be16 policy_port; /* destination port as the policy sees it (0 for ICMP) */
	__u8 ttl;
	__u32 len;
};

static __always_inline void account(__u32 lxc, __u8 reason, __u8 dir, __u32 len)
{
	struct metrics_key k = { .lxc_id = lxc, .reason = reason, .dir = dir };
	struct metrics_value *v = bpf_map_lookup_elem(&metrics, &k);

	if (v) {
		v->packets += 1;
		v->bytes += len;
		return;
	}
	struct metrics_value init = { .packets = 1, .bytes = len };
	bpf_map_update_elem(&metrics, &k, &init, BPF_NOEXIST);
}

static __always_inline int drop(struct __sk_buff *skb, __u8 reason, __u8 dir)
{
	account(LXC_ID, reason, dir, skb->len);
	return TC_ACT_SHOT;
}

/* Parses an IPv4 packet into a flow; returns a metric reason, REASON_FORWARDED when it parsed. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 l4;

	if ((void *)(ip + 1) > data_end)
		return REASON_INVALID_PACKET;
	if (ip->ihl < 5)
		return REASON_INVALID_PACKET;
	__builtin_memset(f, 0, sizeof(*f));
	f->tuple.saddr = ip->saddr;
	f->tuple.daddr = ip->daddr;
	f->tuple.proto = ip->protocol;
	f->ttl = ip->ttl;
	f->len = skb->len;
	l4 = ETH_HLEN + ip->ihl * 4;
	/* Later fragments carry no L4 header: they match as port 0. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return REASON_FORWARDED;

	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return REASON_INVALID_PACKET;
		f->tuple.sport = ports[0];
		f->tuple.dport = ports[1];
		f->policy_port = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		__u8 hdr[6];

		if (bpf_skb_load_bytes(skb, l4, hdr, sizeof(hdr)) < 0)
			return REASON_INVALID_PACKET;
		/* Echo request and reply share the identifier: use it on both sides of the tuple so
		 * the reply is the reverse of the request. */
		if (hdr[0] == 8 || hdr[0] == 0) {
			__be16 id = (__be16)(hdr[4] | (hdr[5] << 8));
			f->tuple.sport = id;
			f->tuple.dport = id;
		}
		break;
	}
	default:
		break;
	}
	return REASON_FORWARDED;
}

static __always_inline int ct_lookup(struct flow *f)
{
	struct ct_key rev = {
		.saddr = f->tuple.daddr,
		.daddr = f->tuple.saddr,
		.sport = f->tuple.dport,
		.dport = f->tuple.sport,
		.proto = f->tuple.proto,
	};
	struct ct_entry *e;

	e = bpf_map_lookup_elem(&ct4, &rev);
	if (e) {
		e->seen_ns = bpf_ktime_get_ns();
		e->packets += 1;
		return CT_REPLY;
	}
	e = bpf_map_lookup_elem(&ct4, &f->tuple);
	if (e) {
		e->seen_ns = bpf_ktime_get_ns();
		e->packets += 1;
		return CT_ESTABLISHED;
	}
	return CT_NEW;
}

static __always_inline void ct_create(struct flow *f, __u32 src_id, __u32 dst_id)
{
	__u64 now = bpf_ktime_get_ns();
	struct ct_entry e = {
		.created_ns = now,
		.seen_ns = now,
		.packets = 1,
		.src_sec_id = src_id,
		.dst_sec_id = dst_id,
	};

	bpf_map_update_elem(&ct4, &f->tuple, &e, BPF_ANY);
}

/* Identity of an address that is not a local endpoint: ipcache longest prefix, else world. */
static __always_inline __u32 ipcache_identity(__be32 addr)
{
	struct ipcache_key k = {
		.prefixlen = IPCACHE_STATIC_PREFIX + 32,
		.family = IPCACHE_FAMILY_IPV4,
		.ip4 = addr,
	};
	struct remote_endpoint_info *info = bpf_map_lookup_elem(&ipcache, &k);

	return info ? info->sec_identity : ID_WORLD;
}

static __always_inline __u32 peer_identity(__be32 addr)
{
	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &addr);

	return ep ? ep->sec_id : ipcache_identity(addr);
}

/* Returns REASON_FORWARDED when this endpoint's policy allows the flow in direction `egress`. */
static __always_inline int policy_verdict(struct flow *f, __u32 peer, __u8 egress)
{
	struct policy_key k = {
		.prefixlen = POLICY_FULL_PREFIX,
		.sec_label = peer,
		.egress = egress,
		.protocol = f->tuple.proto,
		.dport = f->policy_port,
	};
	struct policy_entry *l3, *any;

	l3 = bpf_map_lookup_elem(&policy, &k);
	k.sec_label = 0;
	any = bpf_map_lookup_elem(&policy, &k);
	if ((l3 && l3->deny) || (any && any->deny))
		return REASON_POLICY_DENY;
	if (l3 || any)
		return REASON_FORWARDED;
	return REASON_POLICY_DENIED;
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
static __always_inline int arp_respond(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct arp_eth *p = data;
	__u32 self_ip = LXC_IPV4;
	struct endpoint_info *self;
	__be32 requester;

	if ((void *)(p + 1) > data_end)
		return TC_ACT_OK;
	if (p->arp.ar_op != bpf_htons(ARPOP_REQUEST) || p->arp.ar_hrd != bpf_htons(ARPHRD_ETHER) ||
	    p->arp.ar_pro != bpf_htons(ETH_P_IP) || p->tpa != bpf_htonl(GATEWAY_IPV4))
		return TC_ACT_OK;
	self = bpf_map_lookup_elem(&endpoints, &self_ip);
	if (!self)
		return drop(skb, REASON_NO_ENDPOINT, DIR_EGRESS);

	requester = p->spa;
	__builtin_memcpy(p->eth.h_dest, p->sha, ETH_ALEN);
	__builtin_memcpy(p->eth.h_source, self->node_mac, ETH_ALEN);
	p->arp.ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(p->tha, p->sha, ETH_ALEN);
	p->tpa = requester;
	__builtin_memcpy(p->sha, self->node_mac, ETH_ALEN);
	p->spa = bpf_htonl(GATEWAY_IPV4);
	account(LXC_ID, REASON_ARP_REPLY, DIR_EGRESS, skb->len);
	/* Back out of the same veth: egress of the host side arrives at the pod's eth0. */
	return bpf_redirect(skb->ifindex, 0);
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 self_ip = LXC_IPV4;
	struct endpoint_info *self, *dst;
	struct flow f;
	__u32 dst_id;
	int ct, reason;

	if ((void *)(eth + 1) > data_end)
		return drop(skb, REASON_INVALID_PACKET, DIR_EGRESS);
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return arp_respond(skb);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, REASON_UNSUPPORTED_L3, DIR_EGRESS);
	reason = parse_ipv4(skb, &f);
	if (reason != REASON_FORWARDED)
		return drop(skb, reason, DIR_EGRESS);
	if (f.tuple.saddr != self_ip)
		return drop(skb, REASON_INVALID_SOURCE, DIR_EGRESS);
	self = bpf_map_lookup_elem(&endpoints, &self_ip);
	if (!self)
		return drop(skb, REASON_NO_ENDPOINT, DIR_EGRESS);

	ct = ct_lookup(&f);
	dst = bpf_map_lookup_elem(&endpoints, &f.tuple.daddr);
	dst_id = dst ? dst->sec_id : ipcache_identity(f.tuple.daddr);
	if (ct != CT_REPLY) {
		reason = policy_verdict(&f, dst_id, 1);
		if (reason != REASON_FORWARDED)
			return drop(skb, reason, DIR_EGRESS);
	}
	account(LXC_ID, REASON_FORWARDED, DIR_EGRESS, f.len);
	if (dst) {
		skb->cb[CB_SRC_IDENTITY] = self->sec_id;
		skb->cb[CB_CT_STATE] = ct;
		skb->cb[CB_SRC_LXC] = LXC_ID;
		bpf_tail_call(skb, &policy_progs, dst->lxc_id);
		account(dst->lxc_id, REASON_NO_ENDPOINT, DIR_INGRESS, f.len);
		return TC_ACT_SHOT;
	}
	/* Not a local pod: the node's stack routes it (host, world). */
	if (ct == CT_NEW)
		ct_create(&f, self->sec_id, dst_id);
	return TC_ACT_OK;
}

SEC("tc")
int lxc_policy(struct __sk_buff *skb)
{
	__u32 self_ip = LXC_IPV4;
	struct endpoint_info *self;
	__u32 src_id = skb->cb[CB_SRC_IDENTITY];
	__u32 ct = skb->cb[CB_CT_STATE];
	__u16 old_word, new_word;
	__u8 macs[2 * ETH_ALEN];
	struct flow f;
	int reason;

	reason = parse_ipv4(skb, &f);
	if (reason != REASON_FORWARDED)
		return drop(skb, reason, DIR_INGRESS);
	self = bpf_map_lookup_elem(&endpoints, &self_ip);
	if (!self || f.tuple.daddr != self_ip)
		return drop(skb, REASON_NO_ENDPOINT, DIR_INGRESS);
	if (ct != CT_REPLY) {
		reason = policy_verdict(&f, src_id, 0);
		if (reason != REASON_FORWARDED)
			return drop(skb, reason, DIR_INGRESS);
		if (ct == CT_NEW)
			ct_create(&f, src_id, self->sec_id);
	}
	if (f.ttl <= 1)
		return drop(skb, REASON_TTL_EXCEEDED, DIR_INGRESS);

	/* Router semantics: new L2 addresses and TTL - 1 (checksum updated incrementally). */
	__builtin_memcpy(macs, self->mac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, self->node_mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS);
	if (bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &old_word, 2) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS);
	new_word = old_word;
	((__u8 *)&new_word)[0] -= 1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + offsetof(struct iphdr, ttl), &new_word, 2, 0) < 0 ||
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_word, new_word, 2) < 0)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS);

	account(LXC_ID, REASON_FORWARDED, DIR_INGRESS, f.len);
	return bpf_redirect_peer(self->ifindex, 0);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 self_ip = LXC_IPV4;
	struct endpoint_info *self;
	struct flow f;
	__u32 src_id;
	int ct, reason;

	if ((void *)(eth + 1) > data_end)
		return drop(skb, REASON_INVALID_PACKET, DIR_INGRESS);
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop(skb, REASON_UNSUPPORTED_L3, DIR_INGRESS);
	reason = parse_ipv4(skb, &f);
	if (reason != REASON_FORWARDED)
		return drop(skb, reason, DIR_INGRESS);
	if (f.tuple.daddr != self_ip)
		return TC_ACT_OK; /* broadcast and the like: the pod's stack decides */
	self = bpf_map_lookup_elem(&endpoints, &self_ip);
	if (!self)
		return drop(skb, REASON_NO_ENDPOINT, DIR_INGRESS);

	ct = ct_lookup(&f);
	src_id = peer_identity(f.tuple.saddr);
	if (ct != CT_REPLY) {
		reason = policy_verdict(&f, src_id, 0);
		if (reason != REASON_FORWARDED)
			return drop(skb, reason, DIR_INGRESS);
		if (ct == CT_NEW)
			ct_create(&f, src_id, self->sec_id);
	}
	account(LXC_ID, REASON_FORWARDED, DIR_INGRESS, f.len);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
