// SPDX-License-Identifier: GPL-2.0
// Test program for program test runs (BPF_PROG_TEST_RUN): rewrites and inspects packets.
//   ttl_dec   tc: IPv4 packets get their TTL decremented (checksum fixed) and mark = 7, then TC_ACT_OK;
//             TTL 1 is TC_ACT_SHOT; anything else TC_ACT_UNSPEC. Counts runs in counters[0].
//   xdp_drop_udp  xdp: UDP over IPv4 is XDP_DROP, everything else XDP_PASS.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} runs SEC(".maps");

SEC("tc")
int ttl_dec(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&runs, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if (ip->ttl <= 1)
		return TC_ACT_SHOT;
	__u16 old = *(__u16 *)&ip->ttl;
	ip->ttl -= 1;
	__u16 new = *(__u16 *)&ip->ttl;
	bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2);
	skb->mark = 7;
	return TC_ACT_OK;
}

SEC("xdp")
int xdp_drop_udp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	return ip->protocol == IPPROTO_UDP ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
