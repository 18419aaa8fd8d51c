/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Refusing a flow per packet: the first packet of a flow to a service that has no backend taking new
 * flows is turned, in place, into an ICMP "port unreachable" (IPv4: type 3 code 3; IPv6: type 1 code 4)
 * from the frontend to the client, and sent back out of the device it arrived on. The client's
 * kernel matches the error to its socket by the quoted header: a TCP connect() and a connected UDP
 * socket fail with ECONNREFUSED at once, as they would against a host with nothing listening, instead
 * of the packet being routed on (to a default route: a black hole until the client times out).
 *
 *   pkt4_refuse / pkt6_refuse  returns the verdict (bpf_redirect to the ingress device's egress, or
 *                              TC_ACT_SHOT when the packet cannot be rewritten).
 *
 * The error quotes the IP header and the whole TCP header (a UDP header is 8 bytes): at least what
 * RFC 792 asks for (the IP header and 8 bytes), and never shorter than the part of the packet whose
 * checksum a local sender may have left to be completed (CHECKSUM_PARTIAL, which bpf_skb_change_tail
 * does not cut into). Payload beyond that is dropped. Only packets without IPv4 options or IPv6
 * extension headers are quoted (the callers see no others).
 */
#ifndef DATAPATH_LB_REFUSE_H
#define DATAPATH_LB_REFUSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "nat.h"
#include "nat6.h"

#define REFUSE_ICMP_DEST_UNREACH 3
#define REFUSE_ICMP_PORT_UNREACH 3
#define REFUSE_ICMP6_DST_UNREACH 1
#define REFUSE_ICMP6_PORT_UNREACH 4
#define REFUSE_TTL 64

/* The first 8 bytes of an ICMP or ICMPv6 error: type, code, checksum, 4 unused bytes. */
struct refuse_icmp {
	__u8 type;
	__u8 code;
	__sum16 check;
	__u32 unused;
};

static __always_inline __sum16 refuse_fold(__s64 csum)
{
	__u32 c = (__u32)csum;

	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__sum16)~c;
}

/* Bytes of L4 header to quote: TCP's own length (20..60), UDP's 8; 0 when unreadable. */
static __always_inline __u32 refuse_l4_len(struct __sk_buff *skb, __u32 l4, __u8 proto)
{
	__u8 doff;

	if (proto != IPPROTO_TCP)
		return 8;
	if (bpf_skb_load_bytes(skb, l4 + 12, &doff, 1))
		return 0;
	return (doff >> 4) * 4;
}

/* Swaps the Ethernet addresses: the reply goes back to the hop the packet came from. */
static __always_inline int refuse_eth(struct __sk_buff *skb, __be16 proto)
{
	struct ethhdr eth, out;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return -1;
	__builtin_memcpy(out.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(out.h_source, eth.h_dest, ETH_ALEN);
	out.h_proto = proto;
	return bpf_skb_store_bytes(skb, 0, &out, sizeof(out), 0);
}

static __always_inline int pkt4_refuse(struct __sk_buff *skb, const struct pkt4 *p)
{
	struct {
		struct iphdr ip;
		struct refuse_icmp icmp;
	} h = {};
	__u8 quote[20 + 60];
	__u32 qlen;
	__s64 sum;

	if (p->l3 != ETH_HLEN || p->l4 != ETH_HLEN + sizeof(struct iphdr))
		return TC_ACT_SHOT;
	qlen = sizeof(struct iphdr) + refuse_l4_len(skb, p->l4, p->proto);
	if (qlen < 28 || qlen > sizeof(quote))
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, p->l3, quote, qlen))
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_HLEN + qlen, 0) || bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tot_len = bpf_htons(sizeof(h) + qlen);
	h.ip.ttl = REFUSE_TTL;
	h.ip.protocol = IPPROTO_ICMP;
	h.ip.saddr = p->daddr;
	h.ip.daddr = p->saddr;
	h.ip.check = refuse_fold(bpf_csum_diff(NULL, 0, (__be32 *)&h.ip, sizeof(h.ip), 0));
	h.icmp.type = REFUSE_ICMP_DEST_UNREACH;
	h.icmp.code = REFUSE_ICMP_PORT_UNREACH;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp, sizeof(h.icmp), 0);
	h.icmp.check = refuse_fold(bpf_csum_diff(NULL, 0, (__be32 *)quote, qlen, sum));
	if (refuse_eth(skb, bpf_htons(ETH_P_IP)) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int pkt6_refuse(struct __sk_buff *skb, const struct pkt6 *p)
{
	struct {
		struct ipv6hdr ip;
		struct refuse_icmp icmp;
	} h = {};
	struct {
		__u8 saddr[16];
		__u8 daddr[16];
		__be32 len;
		__be32 nexthdr;
	} pseudo = {};
	__u8 quote[40 + 60];
	__u32 qlen;
	__s64 sum;

	if (p->l4 != ETH_HLEN + sizeof(struct ipv6hdr))
		return TC_ACT_SHOT;
	qlen = sizeof(struct ipv6hdr) + refuse_l4_len(skb, p->l4, p->proto);
	if (qlen < 48 || qlen > sizeof(quote))
		return TC_ACT_SHOT;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, quote, qlen))
		return TC_ACT_SHOT;
	if (bpf_skb_change_tail(skb, ETH_HLEN + qlen, 0) || bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	h.ip.version = 6;
	h.ip.payload_len = bpf_htons(sizeof(h.icmp) + qlen);
	h.ip.nexthdr = IPPROTO_ICMPV6;
	h.ip.hop_limit = REFUSE_TTL;
	__builtin_memcpy(&h.ip.saddr, p->daddr, 16);
	__builtin_memcpy(&h.ip.daddr, p->saddr, 16);
	__builtin_memcpy(pseudo.saddr, p->daddr, 16);
	__builtin_memcpy(pseudo.daddr, p->saddr, 16);
	pseudo.len = bpf_htonl(sizeof(h.icmp) + qlen);
	pseudo.nexthdr = bpf_htonl(IPPROTO_ICMPV6);
	h.icmp.type = REFUSE_ICMP6_DST_UNREACH;
	h.icmp.code = REFUSE_ICMP6_PORT_UNREACH;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&h.icmp, sizeof(h.icmp), sum);
	h.icmp.check = refuse_fold(bpf_csum_diff(NULL, 0, (__be32 *)quote, qlen, sum));
	if (refuse_eth(skb, bpf_htons(ETH_P_IPV6)) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), BPF_F_RECOMPUTE_CSUM))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

#endif
