/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 address and port translation for @datapath/lb: the `nat4` map, port allocation with bounded
 * collision retries, and checksum-correct header rewrites.
 *
 * One map holds every translated flow as a PAIR of entries, one per direction, so that each packet
 * costs one lookup whichever way it goes:
 *
 *   kind          key (as the packet carries it)                       value (rewrite to)
 *   SNAT out      pod:port   -> peer:pport  dir NAT_DIR_OUT            node:nport  (source)
 *   SNAT in       peer:pport -> node:nport  dir NAT_DIR_IN             pod:port    (destination)
 *   service       client:cport -> front:fport dir NAT_DIR_SVC          backend:bport (destination)
 *   service reply backend:bport -> client:cport dir NAT_DIR_RSVC       front:fport (source)
 *
 * ICMP echo travels as port-less traffic: the echo identifier takes the source port's place on the
 * way out (dport 0) and the destination port's place on the way back (sport 0).
 *
 * The steps on pairs (key, other half, state update, expiry, port allocation, masquerade each way) are
 * written once for both families in nat_family.h and instantiated here for IPv4 (nat4_*) and in
 * nat6.h for IPv6 (nat6_*).
 *
 * SNAT port allocation (nat4_snat_new, nat6_snat_new): the first candidate is the packet's own source port when it
 * lies in [nat_port_min, nat_port_max] (port preservation), later candidates are random in that
 * range. The `in` entry is created first with BPF_NOEXIST: the kernel's hash map is the arbiter
 * between CPUs, so two flows can never hold the same (peer, node port) pair. An `in` entry that has
 * expired is taken over (its stale `out` half is removed first). After `nat_retries` candidates
 * the packet is dropped and counted (NAT_STAT_DROP_EXHAUSTED).
 */
#ifndef DATAPATH_LB_NAT_H
#define DATAPATH_LB_NAT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "ct.h"

#ifndef NAT4_MAX_ENTRIES
#define NAT4_MAX_ENTRIES 131072 /* 65 536 pairs */
#endif
#define NAT_MAX_RETRIES 64 /* upper bound of nat_retries: the verifier's loop bound */

/* Copies an address field of either family (4 or 16 bytes: the size of `dst`). */
#define NAT_ADDR_COPY(dst, src) __builtin_memcpy(&(dst), &(src), sizeof(dst))

/* ICMP echo request/reply header (linux/icmp.h pulls in libc headers a BPF build cannot use). */
struct icmp_echo {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be16 id;
	__be16 seq;
};
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

enum nat_dir {
	NAT_DIR_OUT = 1,
	NAT_DIR_IN = 2,
	NAT_DIR_SVC = 3,
	NAT_DIR_RSVC = 4,
};

struct nat4_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum nat_dir */
	__u16 pad;
};

struct nat4_entry {
	__be32 to_addr; /* the address the packet is rewritten to (source for OUT/RSVC, destination for IN/SVC) */
	__be16 to_port;
	__u8 flags;      /* enum ct_flag */
	__u8 pad;
	__u32 expires;   /* CLOCK_MONOTONIC seconds */
	__u32 created;   /* CLOCK_MONOTONIC seconds */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NAT4_MAX_ENTRIES);
	__type(key, struct nat4_key);
	__type(value, struct nat4_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat4 SEC(".maps");

/* Packet counters by reason, per CPU. */
enum nat_stat {
	NAT_STAT_SNAT_OUT = 0,       /* packets source-translated on the way out */
	NAT_STAT_SNAT_IN = 1,        /* replies translated back on the way in */
	NAT_STAT_SNAT_NEW = 2,       /* new SNAT pairs */
	NAT_STAT_COLLISION = 3,      /* port candidates that were taken */
	NAT_STAT_DROP_EXHAUSTED = 4, /* dropped: no free port after nat_retries candidates */
	NAT_STAT_DROP_MAP_FULL = 5,  /* dropped: the nat4 map is full */
	NAT_STAT_DROP_FRAGMENT = 6,  /* dropped: an IPv4 fragment of a flow that must be translated */
	NAT_STAT_RECLAIMED = 7,      /* expired pairs taken over by a new flow */
	NAT_STAT_SVC_NEW = 8,        /* new service flows (backend chosen) */
	NAT_STAT_SVC_FWD = 9,        /* packets to a service translated to the backend */
	NAT_STAT_SVC_REPLY = 10,     /* replies translated back to the service address */
	NAT_STAT_NO_BACKEND = 11, /* a new flow to a service without a backend taking new flows (passed on) */
	NAT_STAT_MAX = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NAT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_stats SEC(".maps");

/* The node's address the masquerade translates to (network order), and the port range. */
const volatile __be32 nat_ipv4 = 0;
const volatile __u16 nat_port_min = 32768;
const volatile __u16 nat_port_max = 65535;
const volatile __u32 nat_retries = 32;

static __always_inline void nat_count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&nat_stats, &stat);

	if (n)
		*n += 1;
}

/* A parsed IPv4 packet: offsets and the tuple as it travels. */
struct pkt4 {
	__u32 l3; /* offset of the IPv4 header */
	__u32 l4; /* offset of the L4 header */
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ICMP echo: the identifier (request) or 0 (reply) */
	__be16 dport; /* ICMP echo: 0 (request) or the identifier (reply) */
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 frag; /* non-zero for any fragment */
};

/*
 * Parses Ethernet + IPv4 + TCP/UDP/ICMP echo. Returns 0 for a packet the translation can act on,
 * -1 otherwise (not IPv4, other protocol, truncated, non-echo ICMP). A fragment returns 0 with
 * `frag` set and no ports.
 */
static __always_inline int pkt4_parse(struct __sk_buff *skb, struct pkt4 *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5)
		return -1;
	p->l3 = sizeof(*eth);
	p->l4 = sizeof(*eth) + ip->ihl * 4;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;
	p->proto = ip->protocol;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type = 0;
	p->frag = (ip->frag_off & bpf_htons(0x3fff)) != 0;
	if (p->frag)
		return (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP || p->proto == IPPROTO_ICMP) ? 0 : -1;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		/* one pointer, one path: the ports sit at the same offsets in both headers */
		__u8 *l4 = data + p->l4;

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
	if (p->proto == IPPROTO_ICMP) {
		struct icmp_echo *ih = data + p->l4;

		if ((void *)(ih + 1) > end)
			return -1;
		p->icmp_type = ih->type;
		if (ih->type == ICMP_ECHO)
			p->sport = ih->id;
		else if (ih->type == ICMP_ECHOREPLY)
			p->dport = ih->id;
		else
			return -1;
		return 0;
	}
	return -1;
}

/* Offsets of the L4 checksum, or -1 (ICMP handled by the caller). */
static __always_inline int l4_csum_off(const struct pkt4 *p)
{
	if (p->proto == IPPROTO_TCP)
		return p->l4 + offsetof(struct tcphdr, check);
	if (p->proto == IPPROTO_UDP)
		return p->l4 + offsetof(struct udphdr, check);
	return p->l4 + offsetof(struct icmp_echo, checksum);
}

/*
 * Rewrites the source (`source` non-zero) or destination address and port of the packet, fixing the
 * IPv4 header checksum and the L4 checksum (TCP and UDP through the pseudo header; a UDP checksum
 * of 0 stays 0; ICMP has no pseudo header, only the echo identifier enters its checksum).
 * Returns 0, or a negative error from a helper.
 */
static __always_inline int pkt4_rewrite(struct __sk_buff *skb, const struct pkt4 *p, int source,
					__be32 new_addr, __be16 new_port)
{
	__be32 old_addr = source ? p->saddr : p->daddr;
	__be16 old_port = source ? p->sport : p->dport;
	__u32 addr_off = p->l3 + (source ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
	int csum = l4_csum_off(p);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	int err;

	if (old_addr != new_addr) {
		if (p->proto != IPPROTO_ICMP) {
			err = bpf_l4_csum_replace(skb, csum, old_addr, new_addr, BPF_F_PSEUDO_HDR | mangled | 4);
			if (err)
				return err;
		}
		err = bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old_addr, new_addr, 4);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, addr_off, &new_addr, 4, 0);
		if (err)
			return err;
	}
	if (old_port != new_port) {
		__u32 port_off;

		if (p->proto == IPPROTO_ICMP)
			port_off = p->l4 + offsetof(struct icmp_echo, id);
		else
			port_off = p->l4 + (source ? offsetof(struct tcphdr, source) : offsetof(struct tcphdr, dest));
		err = bpf_l4_csum_replace(skb, csum, old_port, new_port, mangled | 2);
		if (err)
			return err;
		err = bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0);
		if (err)
			return err;
	}
	return 0;
}

/* The pair steps for IPv4: nat4_peer_key, nat4_touch, nat4_snat_new, nat4_masquerade, … */
#include "family4.h"
#include "nat_family.h"
#include "family_undef.h"

#endif
