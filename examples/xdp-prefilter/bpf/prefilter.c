// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP prefilter: drops IPv4 packets whose source address falls in a deny list of CIDRs, before
 * the stack allocates anything for them (Cilium's "prefilter" idea, reduced to one LPM trie).
 *
 *   deny4     LPM trie { u32 prefixlen; be32 addr } -> u32 rule id (the agent's index of the CIDR)
 *   hits      per-CPU hash, rule id -> packets dropped by that rule
 *   verdicts  per-CPU array: [0] passed, [1] dropped, [2] not IPv4 (passed)
 *
 * Build: clang -O2 -g --target=bpf -I/usr/include/x86_64-linux-gnu -c prefilter.c
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct cidr4_key {
	__u32 prefixlen;
	__be32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cidr4_key);
	__type(value, __u32);
} deny4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

enum { V_PASS = 0, V_DROP = 1, V_NOT_IP = 2, V_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline int verdict(__u32 v, int action)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);

	if (n)
		*n += 1;
	return action;
}

SEC("xdp")
int prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct cidr4_key key = { .prefixlen = 32 };
	__u32 *rule;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return verdict(V_NOT_IP, XDP_PASS);
	key.addr = ip->saddr;
	rule = bpf_map_lookup_elem(&deny4, &key);
	if (!rule)
		return verdict(V_PASS, XDP_PASS);

	__u32 id = *rule;
	__u64 *n = bpf_map_lookup_elem(&hits, &id);
	if (n) {
		*n += 1;
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&hits, &id, &one, BPF_NOEXIST);
	}
	return verdict(V_DROP, XDP_DROP);
}

char _license[] SEC("license") = "Dual BSD/GPL";
