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
 * IPv4, TCP and UDP. The flows live in the nat4 map (pinned by name when loaded with a pinDir,
 * and then shared with bpf/netdev.c).
 */
#include "svc.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct pkt4 p;

	if (pkt4_parse(skb, &p) || p.frag || p.proto == IPPROTO_ICMP)
		return TC_ACT_OK;
	return svc_forward(skb, &p);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	struct pkt4 p;
	int r;

	if (pkt4_parse(skb, &p) || p.frag || p.proto == IPPROTO_ICMP)
		return TC_ACT_OK;
	r = svc_reply(skb, &p);
	return r < 0 ? TC_ACT_OK : r;
}

char _license[] SEC("license") = "Dual BSD/GPL";
