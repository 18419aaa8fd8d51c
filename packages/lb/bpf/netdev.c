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
 *                unreachable, not silence. External IPs: a packet to an address that is not the
 *                node's is load-balanced the same way when it is a frontend of kind ExternalIP
 *                (LB_SVC_FLAG_EXTERNAL_IP); a ClusterIP is never served from the world. An external
 *                IP without a backend refuses (ICMP port unreachable back out, refuse.h): the node
 *                owns no socket there to reset. Anything else passes untouched.
 *
 * Both work for IPv4 (nat4 map) and IPv6 (nat6 map; the IPv6 NodePort frontend is the node's IPv6
 * address, nat_ipv6); TCP, UDP, and ICMP echo for masquerade. Fragments (and IPv6 extension headers)
 * of a flow that must be translated are dropped and counted (no fragment tracking).
 */
#include "svc.h"

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

/* Masquerade of a packet leaving the node (IPv4): which flows are translated, then nat4_masquerade. */
static __always_inline int masquerade4(struct __sk_buff *skb, struct pkt4 *p)
{
	if (p->saddr == nat_ipv4) {
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
	return nat4_masquerade(skb, p);
}

/* The same for IPv6 (a packet with extension headers counts as a fragment). */
static __always_inline int masquerade6(struct __sk_buff *skb, struct pkt6 *p)
{
	if (addr6_eq(p->saddr, nat_ipv6)) {
		__u16 port = bpf_ntohs(p->sport);

		if (p->unparsed || p->proto == IPPROTO_ICMPV6 || port < nat_port_min || port > nat_port_max)
			return TC_ACT_OK;
	} else {
		if (!addr6_in(p->saddr, masq6_src_net, masq6_src_mask) || addr6_in(p->daddr, nonmasq6_net, nonmasq6_mask))
			return TC_ACT_OK;
		if (p->unparsed) {
			nat_count(NAT_STAT_DROP_FRAGMENT);
			return TC_ACT_SHOT;
		}
	}
	return nat6_masquerade(skb, p);
}

static __always_inline int to_netdev6(struct __sk_buff *skb)
{
	struct pkt6 p;

	if (pkt6_parse(skb, &p))
		return TC_ACT_OK;
	if (nodeport_enabled && !p.unparsed) {
		int r = svc6_reply(skb, &p);

		if (r >= 0)
			return r;
	}
	return masq6_enabled ? masquerade6(skb, &p) : TC_ACT_OK;
}

static __always_inline int from_netdev6(struct __sk_buff *skb)
{
	struct pkt6 p;
	int r;

	if (pkt6_parse(skb, &p) || p.unparsed)
		return TC_ACT_OK;
	if (!addr6_eq(p.daddr, nat_ipv6)) /* not the node's address: an external IP, or not ours */
		return nodeport_enabled && p.proto != IPPROTO_ICMPV6 ? svc6_forward(skb, &p, 1, 1) : TC_ACT_OK;
	r = nat6_unmasquerade(skb, &p);
	if (r >= 0)
		return r;
	return nodeport_enabled && p.proto != IPPROTO_ICMPV6 ? svc6_forward(skb, &p, 0, 0) : TC_ACT_OK;
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	struct pkt4 p;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return masq6_enabled || nodeport_enabled ? to_netdev6(skb) : TC_ACT_OK;
	if (pkt4_parse(skb, &p))
		return TC_ACT_OK;
	if (nodeport_enabled && !p.frag) {
		int r = svc4_reply(skb, &p);

		if (r >= 0)
			return r;
	}
	if (masq_enabled)
		return masquerade4(skb, &p);
	return TC_ACT_OK;
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct pkt4 p;
	int r;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return masq6_enabled || nodeport_enabled ? from_netdev6(skb) : TC_ACT_OK;
	if (pkt4_parse(skb, &p) || p.frag)
		return TC_ACT_OK;
	if (p.daddr != nat_ipv4) /* not the node's address: an external IP, or not ours */
		return nodeport_enabled && p.proto != IPPROTO_ICMP ? svc4_forward(skb, &p, 1, 1) : TC_ACT_OK;
	r = nat4_unmasquerade(skb, &p);
	if (r >= 0)
		return r;
	return nodeport_enabled && p.proto != IPPROTO_ICMP ? svc4_forward(skb, &p, 0, 0) : TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
