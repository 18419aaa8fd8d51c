// SPDX-License-Identifier: GPL-2.0
// Test program: a map pinned by name next to a program the verifier rejects (the pin must not survive).
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} kept SEC(".maps");

SEC("tc")
int unchecked(struct __sk_buff *skb)
{
	unsigned char *data = (void *)(long)skb->data;
	__u32 key = data[30];

	return bpf_map_lookup_elem(&kept, &key) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
