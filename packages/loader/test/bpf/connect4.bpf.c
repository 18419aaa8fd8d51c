// SPDX-License-Identifier: GPL-2.0
// Test program: rewrites connect() to from_ip:from_port into to_ip:to_port (addresses and ports host order).
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 from_ip = 0;
const volatile __u16 from_port = 0;
const volatile __u32 to_ip = 0;
const volatile __u16 to_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} rewrites SEC(".maps");

SEC("cgroup/connect4")
int rewrite4(struct bpf_sock_addr *ctx)
{
	__u32 key = 0;
	__u64 *n;

	if (ctx->user_ip4 != bpf_htonl(from_ip) || ctx->user_port != bpf_htons(from_port))
		return 1;
	ctx->user_ip4 = bpf_htonl(to_ip);
	ctx->user_port = bpf_htons(to_port);
	n = bpf_map_lookup_elem(&rewrites, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
