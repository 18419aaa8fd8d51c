// SPDX-License-Identifier: GPL-2.0
// Test program: counts UDP/IPv4 packets to `port` and drops (count_drop) or passes (count_pass) them.
// counters[0] = matched, [1] = dropped, [2] = passed by tc, [3] = seen by XDP.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u16 port = 9;
const volatile __u32 step = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared SEC(".maps");

static __always_inline int to_port(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(port);
}

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &key);

	if (v)
		__sync_fetch_and_add(v, (__u64)step);
}

SEC("tc")
int count_drop(struct __sk_buff *skb)
{
	if (!to_port((void *)(long)skb->data, (void *)(long)skb->data_end))
		return TC_ACT_UNSPEC;
	bump(0);
	bump(1);
	return TC_ACT_SHOT;
}

SEC("tc")
int count_pass(struct __sk_buff *skb)
{
	if (!to_port((void *)(long)skb->data, (void *)(long)skb->data_end))
		return TC_ACT_UNSPEC;
	bump(0);
	bump(2);
	return TC_ACT_UNSPEC;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	if (to_port((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		bump(3);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
