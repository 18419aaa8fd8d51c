// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ClusterIP-style load balancing at connect(): a cgroup/connect4 hook rewrites the destination of
 * sockets that connect to a service address (VIP:port) to one of its backends, picked at random.
 * Nothing is translated per packet: the socket is connected to the backend from the start (what
 * Cilium calls socket-level LB, "kube-proxy replacement" for east-west traffic).
 *
 *   services  hash { be32 vip; be16 port; u8 proto; u8 pad } -> { u32 id; u32 count }
 *   backends  hash { u32 service id; u32 slot }               -> { be32 ip; be16 port; u16 pad }
 *   picks     per-CPU hash { u32 service id; u32 slot }       -> connections sent to that backend
 *
 * Build: clang -O2 -g --target=bpf -I/usr/include/x86_64-linux-gnu -c sock_lb.c
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

struct service_key {
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct service_value {
	__u32 id;
	__u32 count;
};

struct backend_key {
	__u32 service;
	__u32 slot;
};

struct backend_value {
	__be32 ip;
	__be16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct service_key);
	__type(value, struct service_value);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct backend_key);
	__type(value, struct backend_value);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct backend_key);
	__type(value, __u64);
} picks SEC(".maps");

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	struct service_key sk = {
		.vip = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.proto = (__u8)ctx->protocol,
	};
	struct service_value *svc;
	struct backend_value *be;
	struct backend_key bk;
	__u64 *n;

	svc = bpf_map_lookup_elem(&services, &sk);
	if (!svc || svc->count == 0)
		return 1; /* not a service: connect as asked */
	bk.service = svc->id;
	bk.slot = bpf_get_prandom_u32() % svc->count;
	be = bpf_map_lookup_elem(&backends, &bk);
	if (!be)
		return 1;
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
	n = bpf_map_lookup_elem(&picks, &bk);
	if (n) {
		*n += 1;
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&picks, &bk, &one, BPF_NOEXIST);
	}
	return 1;
}

char _license[] SEC("license") = "Dual BSD/GPL";
