// SPDX-License-Identifier: GPL-2.0
// Benchmark program: a small per-endpoint tc program (one const, one counter map).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 endpoint_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} packets SEC(".maps");

SEC("tc")
int endpoint(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&packets, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
	return endpoint_id == skb->mark ? TC_ACT_UNSPEC : TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
