/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6 translation for @datapath/lb: the `nat6` map, the IPv6 packet parser and rewrite, and the pair
 * steps of nat_family.h instantiated for IPv6 (same pair scheme and directions as nat.h, same flow
 * state from ct.h, same counters in nat_stats). No IPv6 header
 * checksum exists; TCP, UDP and ICMPv6 checksums all cover a pseudo header with both addresses, so
 * an address change is folded into the L4 checksum as a 16-byte difference (bpf_csum_diff).
 *
 * Packets with extension headers are not parsed (the translation cannot find their ports): one that
 * should be masqueraded is dropped and counted as NAT_STAT_DROP_FRAGMENT.
 */
#ifndef DATAPATH_LB_NAT6_H
#define DATAPATH_LB_NAT6_H

#include <linux/ipv6.h>
#include "nat.h"

#ifndef NAT6_MAX_ENTRIES
#define NAT6_MAX_ENTRIES 65536 /* 32 768 pairs */
#endif
#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct nat6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum nat_dir */
	__u16 pad;
};

struct nat6_entry {
	__u8 to_addr[16];
	__be16 to_port;
	__u8 flags;    /* enum ct_flag */
	__u8 pad;
	__u32 expires; /* CLOCK_MONOTONIC seconds */
	__u32 created;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT6_MAX_ENTRIES);
	__type(key, struct nat6_key);
	__type(value, struct nat6_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat6 SEC(".maps");

/* The node's IPv6 address the masquerade translates to; all zero turns IPv6 masquerade off. */
const volatile __u8 nat_ipv6[16] = {};

struct pkt6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 l4;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__u8 unparsed; /* an extension header (or other next header) where the ports would be */
};

static __always_inline int addr6_eq(const __u8 *a, const volatile __u8 *b)
{
	const __u32 *x = (const __u32 *)a;
	const volatile __u32 *y = (const volatile __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Copies a load-time constant address (volatile reads: the compiler must not fold the default). */
static __always_inline void addr6_load(__u8 *dst, const volatile __u8 *src)
{
	__u32 *d = (__u32 *)dst;
	const volatile __u32 *s = (const volatile __u32 *)src;

	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
	d[3] = s[3];
}

/* Whether `a` lies in the prefix `net`/`mask`. */
static __always_inline int addr6_in(const __u8 *a, const volatile __u8 *net, const volatile __u8 *mask)
{
	const __u32 *x = (const __u32 *)a;
	const volatile __u32 *n = (const volatile __u32 *)net;
	const volatile __u32 *m = (const volatile __u32 *)mask;

	return (x[0] & m[0]) == n[0] && (x[1] & m[1]) == n[1] && (x[2] & m[2]) == n[2] && (x[3] & m[3]) == n[3];
}

/* Parses Ethernet + IPv6 + TCP/UDP/ICMPv6 echo: 0, or -1 for anything else (not IPv6: -2). */
static __always_inline int pkt6_parse(struct __sk_buff *skb, struct pkt6 *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	__u8 *l4;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return -2;
	ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end)
		return -1;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	p->proto = ip6->nexthdr;
	p->l4 = sizeof(*eth) + sizeof(*ip6);
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->unparsed = 0;
	l4 = (__u8 *)(ip6 + 1);
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		if ((void *)(l4 + sizeof(struct udphdr)) > end)
			return -1;
		p->sport = *(__be16 *)l4;
		p->dport = *(__be16 *)(l4 + 2);
		if (p->proto == IPPROTO_TCP) {
			if ((void *)(l4 + sizeof(struct tcphdr)) > end)
				return -1;
			p->tcp_flags = l4[13];
		}
		return 0;
	}
	if (p->proto == IPPROTO_ICMPV6) {
		struct icmp_echo *ih = (void *)l4;

		if ((void *)(ih + 1) > end)
			return -1;
		if (ih->type == ICMPV6_ECHO_REQUEST)
			p->sport = ih->id;
		else if (ih->type == ICMPV6_ECHO_REPLY)
			p->dport = ih->id;
		else
			return -1;
		return 0;
	}
	p->unparsed = 1;
	return 0;
}

/*
 * Rewrites the source (`source` non-zero) or destination address and port of an IPv6 packet; the
 * L4 checksum takes the address change through its pseudo header (a UDP checksum of 0 stays 0).
 */
static __always_inline int pkt6_rewrite(struct __sk_buff *skb, const struct pkt6 *p, int source,
					const __u8 *new_addr, __be16 new_port)
{
	__u32 old[4], new[4];
	__be16 old_port = source ? p->sport : p->dport;
	__u32 addr_off = sizeof(struct ethhdr) + (source ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
	__u32 csum = p->l4 + (p->proto == IPPROTO_TCP ? offsetof(struct tcphdr, check)
				: p->proto == IPPROTO_UDP ? offsetof(struct udphdr, check)
							  : offsetof(struct icmp_echo, checksum));
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 diff;
	int err;

	__builtin_memcpy(old, source ? p->saddr : p->daddr, 16);
	__builtin_memcpy(new, new_addr, 16);
	if (old[0] != new[0] || old[1] != new[1] || old[2] != new[2] || old[3] != new[3]) {
		diff = bpf_csum_diff(old, 16, new, 16, 0);
		if (diff < 0)
			return (int)diff;
		err = bpf_l4_csum_replace(skb, csum, 0, diff, BPF_F_PSEUDO_HDR | mangled);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, addr_off, new, 16, 0);
		if (err)
			return err;
	}
	if (old_port != new_port) {
		__u32 port_off = p->proto == IPPROTO_ICMPV6 ? p->l4 + offsetof(struct icmp_echo, id)
							    : p->l4 + (source ? 0 : 2);

		err = bpf_l4_csum_replace(skb, csum, old_port, new_port, mangled | 2);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0);
		if (err)
			return err;
	}
	return 0;
}

/* The pair steps for IPv6: nat6_peer_key, nat6_touch, nat6_snat_new, nat6_masquerade, … */
#include "family6.h"
#include "nat_family.h"
#include "family_undef.h"

#endif
