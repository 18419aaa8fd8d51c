// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * @datapath/lb's per-packet service load balancing for pods, in a mode without socket LB: attached
 * to the host side of a pod's veth.
 *
 *   from_container  tc/tcx ingress (packets the pod sends): a packet to a service frontend
 *                   (ClusterIP) goes to a backend, chosen on the flow's first packet (svc.h).
 *   to_container    tc/tcx egress (packets for the pod): a backend's reply gets the frontend's
 *                   address and port back as its source.
 *
 * A service without a backend for new flows refuses: the flow's first packet comes back to the
 * pod as an ICMP port unreachable (connect() fails ECONNREFUSED) rather than being routed on.
 * IPv4 and IPv6, TCP and UDP. The flows live in the nat4 and nat6 maps (pinned by name when loaded
 * with a pinDir, and then shared with bpf/netdev.c).
 */
#include "svc.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct pkt6 p6;

		if (pkt6_parse(skb, &p6) || p6.unparsed || p6.proto == IPPROTO_ICMPV6)
			return TC_ACT_OK;
		return svc6_forward(skb, &p6, 0, 1);
	}
	struct pkt4 p;

	if (pkt4_parse(skb, &p) || p.frag || p.proto == IPPROTO_ICMP)
		return TC_ACT_OK;
	return svc4_forward(skb, &p, 0, 1);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	int r;

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct pkt6 p6;

		if (pkt6_parse(skb, &p6) || p6.unparsed || p6.proto == IPPROTO_ICMPV6)
			return TC_ACT_OK;
		r = svc6_reply(skb, &p6);
		return r < 0 ? TC_ACT_OK : r;
	}
	struct pkt4 p;

	if (pkt4_parse(skb, &p) || p.frag || p.proto == IPPROTO_ICMP)
		return TC_ACT_OK;
	r = svc4_reply(skb, &p);
	return r < 0 ? TC_ACT_OK : r;
}

char _license[] SEC("license") = "Dual BSD/GPL";
