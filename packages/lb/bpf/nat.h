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
 * SNAT port allocation (nat4_snat_new): the first candidate is the packet's own source port when it
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

static __always_inline void pkt4_key(const struct pkt4 *p, __u8 dir, struct nat4_key *k)
{
	k->saddr = p->saddr;
	k->daddr = p->daddr;
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->dir = dir;
	k->pad = 0;
}

/*
 * The key of the other half of the pair whose half `k` holds `e`. A half that rewrites the source
 * (OUT, RSVC) is answered from the peer to the rewritten source; a half that rewrites the
 * destination (IN, SVC) is answered from the rewritten destination to the packet's source.
 */
static __always_inline void nat4_peer_key(const struct nat4_key *k, const struct nat4_entry *e,
					  struct nat4_key *peer)
{
	peer->pad = 0;
	peer->proto = k->proto;
	if (k->dir == NAT_DIR_OUT || k->dir == NAT_DIR_RSVC) {
		peer->saddr = k->daddr;
		peer->daddr = e->to_addr;
		peer->sport = k->dport;
		peer->dport = e->to_port;
		peer->dir = k->dir == NAT_DIR_OUT ? NAT_DIR_IN : NAT_DIR_SVC;
	} else {
		peer->saddr = e->to_addr;
		peer->daddr = k->saddr;
		peer->sport = e->to_port;
		peer->dport = k->sport;
		peer->dir = k->dir == NAT_DIR_IN ? NAT_DIR_OUT : NAT_DIR_RSVC;
	}
}

/*
 * Refreshes a half's state for one packet. New flag bits (a first reply, a FIN, a reset: rare) are
 * written into both halves; otherwise only this half's expiry moves, once a second at most. A SYN
 * from the opening side on a closing flow opens the tuple again: both halves start over.
 */
static __always_inline void nat4_touch(const struct nat4_key *k, struct nat4_entry *e, const struct pkt4 *p,
				       int reply)
{
	__u8 add = ct_packet_flags(p->tcp_flags, reply);
	__u8 flags = e->flags | add;
	int reopen = !reply && k->proto == IPPROTO_TCP && (p->tcp_flags & 0x12) == 0x02 /* SYN, no ACK */ &&
		     (e->flags & CT_F_CLOSING);
	__u32 expires;

	if (reopen)
		flags = add;
	expires = ct_now() + ct_lifetime(k->proto, flags);
	if (flags != e->flags) {
		struct nat4_key pk;
		struct nat4_entry *pe;

		e->flags = flags;
		nat4_peer_key(k, e, &pk);
		pe = bpf_map_lookup_elem(&nat4, &pk);
		if (pe) {
			pe->flags = reopen ? flags : pe->flags | flags;
			pe->expires = ct_now() + ct_lifetime(k->proto, pe->flags);
		}
	}
	if (e->expires != expires)
		e->expires = expires;
}

static __always_inline int nat4_expired(const struct nat4_entry *e)
{
	return (__s32)(e->expires - ct_now()) < 0;
}

/* Removes both halves of the pair that `k` is half of. */
static __always_inline void nat4_delete_pair(const struct nat4_key *k, const struct nat4_entry *e)
{
	struct nat4_key pk;

	nat4_peer_key(k, e, &pk);
	bpf_map_delete_elem(&nat4, &pk);
	bpf_map_delete_elem(&nat4, k);
}

/*
 * Creates the SNAT pair for the flow `out` (a NAT_DIR_OUT key) and returns its `out` half, or NULL
 * after counting the reason of the drop.
 */
static __always_inline struct nat4_entry *nat4_snat_new(const struct nat4_key *out)
{
	struct nat4_key in = {
		.saddr = out->daddr,
		.daddr = nat_ipv4,
		.sport = out->dport,
		.proto = out->proto,
		.dir = NAT_DIR_IN,
	};
	__u32 now = ct_now();
	struct nat4_entry ine = {
		.to_addr = out->saddr,
		.to_port = out->sport,
		.expires = now + ct_lifetime(out->proto, 0),
		.created = now,
	};
	struct nat4_entry oute = ine;
	__u32 range = (__u32)nat_port_max - nat_port_min + 1;
	__u32 port = bpf_ntohs(out->sport);
	struct nat4_entry *e;
	int i, err;

	if (port < nat_port_min || port > nat_port_max)
		port = nat_port_min + bpf_get_prandom_u32() % range;
	for (i = 0; i < NAT_MAX_RETRIES; i++) {
		if (i >= nat_retries)
			break;
		in.dport = bpf_htons((__u16)port);
		err = bpf_map_update_elem(&nat4, &in, &ine, BPF_NOEXIST);
		if (err == 0)
			goto claimed;
		if (err != -17 /* EEXIST */) {
			nat_count(NAT_STAT_DROP_MAP_FULL);
			return NULL;
		}
		e = bpf_map_lookup_elem(&nat4, &in);
		if (e && nat4_expired(e)) {
			/* an expired pair: remove its `out` half and take the port over */
			struct nat4_key stale;

			nat4_peer_key(&in, e, &stale);
			bpf_map_delete_elem(&nat4, &stale);
			if (bpf_map_update_elem(&nat4, &in, &ine, BPF_EXIST) == 0) {
				nat_count(NAT_STAT_RECLAIMED);
				goto claimed;
			}
		}
		nat_count(NAT_STAT_COLLISION);
		port = nat_port_min + bpf_get_prandom_u32() % range;
	}
	nat_count(NAT_STAT_DROP_EXHAUSTED);
	return NULL;

claimed:
	oute.to_addr = nat_ipv4;
	oute.to_port = in.dport;
	err = bpf_map_update_elem(&nat4, out, &oute, BPF_NOEXIST);
	if (err != 0) {
		/* another CPU created this flow's pair first (or the map is full): keep theirs */
		bpf_map_delete_elem(&nat4, &in);
		e = bpf_map_lookup_elem(&nat4, out);
		if (!e)
			nat_count(NAT_STAT_DROP_MAP_FULL);
		return e;
	}
	nat_count(NAT_STAT_SNAT_NEW);
	return bpf_map_lookup_elem(&nat4, out);
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

#endif
