// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * @datapath/lb's programs for the node's outward device (the interface that faces the world):
 *
 *   to_netdev    tc/tcx egress: packets the node sends out.
 *                Masquerade: a packet from the pod CIDR (masq_src_*) to a destination outside the
 *                cluster CIDR (nonmasq_*) gets the node's address and a port from the NAT range
 *                (nat4 pair created on its first packet, nat.h); the node's own flows with a source
 *                port inside the range are recorded unchanged (port preserved when free) so that a
 *                pod's flow can never be given a port the node itself is using to the same peer.
 *                With NodePort on, a reply of a local backend to a NodePort client (nat4 `rsvc`
 *                half) first gets the service's address and port back as its source instead.
 *   from_netdev  tc/tcx ingress: packets that arrive for the node's address.
 *                A reply to a masqueraded flow (nat4 `in` half) gets the pod's address and port back
 *                and goes on to the stack, which routes it to the pod.
 *                NodePort: a packet of a known service flow (nat4 `svc` half) is rewritten to its
 *                backend; the first packet of a new flow to a service frontend on the node's address
 *                (lb_services of lb.h: the frontend's master entry) picks a backend (affinity, then
 *                Maglev or random over the active slots), records the `svc`/`rsvc` pair and is
 *                rewritten. The client's address is kept (backends are this node's pods, which
 *                route their replies through it). A service without an active backend, or a TCP
 *                packet that opens nothing (no SYN) and belongs to no flow, goes to the stack
 *                untouched: nothing listens there, so the client gets a reset or a port
 *                unreachable, not silence. Anything else passes untouched.
 *
 * Masquerade works for IPv4 and IPv6 (nat6.h), NodePort for IPv4; TCP, UDP and ICMP echo. Fragments
 * (and IPv6 extension headers) of a flow that must be translated are dropped and counted (no
 * fragment tracking).
 */
#include "svc.h"
#include "nat6.h"

/* Masquerade sources (pod CIDR) and the destinations never masqueraded (cluster CIDR), network order. */
const volatile __u8 masq_enabled = 1;
const volatile __be32 masq_src_net = 0;
const volatile __be32 masq_src_mask = 0xffffffff;
const volatile __be32 nonmasq_net = 0;
const volatile __be32 nonmasq_mask = 0xffffffff;

/* IPv6 masquerade: sources (pod CIDR) and the destinations never masqueraded (cluster CIDR). */
const volatile __u8 masq6_enabled = 0;
const volatile __u8 masq6_src_net[16] = {};
const volatile __u8 masq6_src_mask[16] = {};
const volatile __u8 nonmasq6_net[16] = {};
const volatile __u8 nonmasq6_mask[16] = {};

/* NodePort (per-packet service load balancing for packets that arrive at the node's address). */
const volatile __u8 nodeport_enabled = 0;

/* Anchors the enums in the object's BTF: user space takes their values from it. */
enum nat_dir *nat_dir_type __attribute__((unused));
enum nat_stat *nat_stat_type __attribute__((unused));
enum ct_flag *ct_flag_type __attribute__((unused));

static __always_inline int masquerade(struct __sk_buff *skb, struct pkt4 *p)
{
	struct nat4_key k;
	struct nat4_entry *e;
	int host = p->saddr == nat_ipv4;

	if (host) {
		__u16 port = bpf_ntohs(p->sport);

		/* the node's own flows matter only where they could collide with a masqueraded one */
		if (p->frag || p->proto == IPPROTO_ICMP || port < nat_port_min || port > nat_port_max)
			return TC_ACT_OK;
	} else {
		if ((p->saddr & masq_src_mask) != masq_src_net || (p->daddr & nonmasq_mask) == nonmasq_net)
			return TC_ACT_OK;
		if (p->frag) {
			nat_count(NAT_STAT_DROP_FRAGMENT);
			return TC_ACT_SHOT;
		}
	}
	pkt4_key(p, NAT_DIR_OUT, &k);
	e = bpf_map_lookup_elem(&nat4, &k);
	if (e && nat4_expired(e)) {
		/* the same tuple again after its flow ended: start over */
		nat4_delete_pair(&k, e);
		e = NULL;
	}
	if (!e) {
		e = nat4_snat_new(&k);
		if (!e)
			return TC_ACT_SHOT;
	}
	nat4_touch(&k, e, p, 0);
	if (e->to_addr == p->saddr && e->to_port == p->sport)
		return TC_ACT_OK;
	if (pkt4_rewrite(skb, p, 1, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_OUT);
	return TC_ACT_OK;
}

static __always_inline int masquerade6(struct __sk_buff *skb)
{
	struct nat6_key k;
	struct nat6_entry *e;
	struct pkt6 p;
	int host;

	if (pkt6_parse(skb, &p))
		return TC_ACT_OK;
	host = addr6_eq(p.saddr, nat_ipv6);
	if (host) {
		__u16 port = bpf_ntohs(p.sport);

		if (p.unparsed || p.proto == IPPROTO_ICMPV6 || port < nat_port_min || port > nat_port_max)
			return TC_ACT_OK;
	} else {
		if (!addr6_in(p.saddr, masq6_src_net, masq6_src_mask) || addr6_in(p.daddr, nonmasq6_net, nonmasq6_mask))
			return TC_ACT_OK;
		if (p.unparsed) {
			nat_count(NAT_STAT_DROP_FRAGMENT);
			return TC_ACT_SHOT;
		}
	}
	pkt6_key(&p, NAT_DIR_OUT, &k);
	e = bpf_map_lookup_elem(&nat6, &k);
	if (e && nat6_expired(e)) {
		struct nat6_key pk;

		nat6_peer_key(&k, e, &pk);
		bpf_map_delete_elem(&nat6, &pk);
		bpf_map_delete_elem(&nat6, &k);
		e = NULL;
	}
	if (!e) {
		e = nat6_snat_new(&k);
		if (!e)
			return TC_ACT_SHOT;
	}
	nat6_touch(&k, e, &p, 0);
	if (addr6_eq(e->to_addr, (const volatile __u8 *)p.saddr) && e->to_port == p.sport)
		return TC_ACT_OK;
	if (pkt6_rewrite(skb, &p, 1, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_OUT);
	return TC_ACT_OK;
}

/* A reply to an IPv6 masqueraded flow: the pod's address and port back. */
static __always_inline int unmasquerade6(struct __sk_buff *skb)
{
	struct nat6_key k;
	struct nat6_entry *e;
	struct pkt6 p;

	if (pkt6_parse(skb, &p) || p.unparsed || !addr6_eq(p.daddr, nat_ipv6))
		return TC_ACT_OK;
	pkt6_key(&p, NAT_DIR_IN, &k);
	e = bpf_map_lookup_elem(&nat6, &k);
	if (!e)
		return TC_ACT_OK;
	nat6_touch(&k, e, &p, 1);
	if (addr6_eq(e->to_addr, (const volatile __u8 *)p.daddr) && e->to_port == p.dport)
		return TC_ACT_OK;
	if (pkt6_rewrite(skb, &p, 0, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_IN);
	return TC_ACT_OK;
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	struct pkt4 p;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return masq6_enabled ? masquerade6(skb) : TC_ACT_OK;
	if (pkt4_parse(skb, &p))
		return TC_ACT_OK;
	if (nodeport_enabled && !p.frag) {
		int r = svc_reply(skb, &p);

		if (r >= 0)
			return r;
	}
	if (masq_enabled)
		return masquerade(skb, &p);
	return TC_ACT_OK;
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct pkt4 p;
	struct nat4_key k;
	struct nat4_entry *e;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return masq6_enabled ? unmasquerade6(skb) : TC_ACT_OK;
	if (pkt4_parse(skb, &p) || p.daddr != nat_ipv4 || p.frag)
		return TC_ACT_OK;
	pkt4_key(&p, NAT_DIR_IN, &k);
	e = bpf_map_lookup_elem(&nat4, &k);
	if (!e)
		return nodeport_enabled && p.proto != IPPROTO_ICMP ? svc_forward(skb, &p) : TC_ACT_OK;
	nat4_touch(&k, e, &p, 1);
	if (e->to_addr == p.daddr && e->to_port == p.dport)
		return TC_ACT_OK;
	if (pkt4_rewrite(skb, &p, 0, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_IN);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
