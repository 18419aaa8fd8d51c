// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level load balancing (what Cilium calls socket LB, kube-proxy replacement for traffic that
 * starts in a socket on this node): cgroup hooks translate a service address into a backend once, when
 * the socket connects (TCP, connected UDP) or sends a datagram (unconnected UDP), so no packet ever
 * carries the service address and nothing is translated per packet. Replies and getpeername() are
 * translated back through lb_sock_rev, so the application only ever sees the service address.
 *
 *   connect4/6   TCP and UDP connect(): pick a backend (affinity, Maglev or random), rewrite the
 *                destination, remember socket cookie + backend -> service in lb_sock_rev
 *   sendmsg4/6   unconnected UDP sendmsg(): the same, the backend chosen per socket (stable: its cookie)
 *   recvmsg4/6   UDP recvmsg(): a datagram from a remembered backend shows the service as its source
 *   getpeername4/6  shows the service as the peer
 *   sock_release removes a connected socket's lb_sock_rev entry when the socket goes (TCP, connected UDP)
 *
 * A service with no backend that takes new flows refuses: connect() and sendmsg() fail ECONNREFUSED.
 * Needs Linux >= 5.18 (bpf_set_retval in cgroup sock_addr programs); the maps are those of lb.h.
 */
#include "lb.h"
#include <linux/in.h>

#ifndef LB_SOCK_REV_MAP_MAX
#define LB_SOCK_REV_MAP_MAX 65536
#endif

#define LB_ECONNREFUSED 111
#define LB_AF_INET 2
#define LB_AF_INET6 10

struct lb_sock_rev_key {
	__u64 cookie;	/* bpf_get_socket_cookie() */
	__u8 addr[16];	/* the backend */
	__be16 port;
	__u8 pad[6];
};

struct lb_sock_rev_value {
	__u8 addr[16];	/* the frontend the socket asked for */
	__be16 port;
	__u16 rev_nat_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_SOCK_REV_MAP_MAX);
	__type(key, struct lb_sock_rev_key);
	__type(value, struct lb_sock_rev_value);
	LB_MAP_PINNING
} lb_sock_rev SEC(".maps");

static __always_inline void ctx_get_addr(const struct bpf_sock_addr *ctx, __u8 addr[16], int v6)
{
	if (v6) {
		__u32 *w = (__u32 *)addr;

		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
	} else {
		lb_addr_v4(addr, ctx->user_ip4);
	}
}

/* Writes addr:port (network order) into the socket address; an IPv6-only address cannot go to a v4 hook. */
static __always_inline int ctx_set_addr(struct bpf_sock_addr *ctx, const __u8 addr[16], __be16 port, int v6)
{
	const __u32 *w = (const __u32 *)addr;

	if (v6) {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	} else {
		if (!lb_addr_is_v4(addr))
			return -1;
		ctx->user_ip4 = w[3];
	}
	ctx->user_port = (__u32)port;
	return 0;
}

static __always_inline __u32 mix32(__u64 x)
{
	__u32 h = (__u32)(x ^ (x >> 32));

	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * Forward translation. `per_socket`: pick by the socket's cookie (sendmsg: every datagram of a socket
 * goes to one backend) instead of at random (connect: one pick per connection).
 * Returns 1 to let the call go on, 0 to refuse it (with ECONNREFUSED set).
 */
static __always_inline int sock_xlate_fwd(struct bpf_sock_addr *ctx, int v6, int per_socket)
{
	struct lb_affinity_key akey = {};
	struct lb_sock_rev_key rkey = {};
	struct lb_sock_rev_value rval = {};
	struct lb_svc_key key = {};
	struct lb_svc_value *svc;
	struct lb_backend *be;
	__u64 cookie;
	__u32 id, hash;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	ctx_get_addr(ctx, key.addr, v6);
	key.dport = (__be16)ctx->user_port;
	key.proto = (__u8)ctx->protocol;
	svc = lb_lookup_service(&key);
	if (!svc)
		return 1; /* not a service: connect as asked */

	cookie = bpf_get_socket_cookie(ctx);
	akey.client.cookie = bpf_get_netns_cookie(ctx);
	akey.rev_nat_id = svc->rev_nat_id;
	akey.kind = LB_AFFINITY_BY_NETNS;
	id = lb_affinity_backend(svc, &akey);
	if (!id) {
		hash = per_socket ? mix32(cookie) : bpf_get_prandom_u32();
		id = lb_select_backend(&key, svc, hash);
	}
	be = id ? bpf_map_lookup_elem(&lb_backends, &id) : NULL;
	if (!be) {
		bpf_set_retval(-LB_ECONNREFUSED);
		return 0;
	}
	if (ctx_set_addr(ctx, be->addr, be->port, v6) < 0) {
		bpf_set_retval(-LB_ECONNREFUSED);
		return 0;
	}
	lb_affinity_update(svc, &akey, id);

	rkey.cookie = cookie;
	__builtin_memcpy(rkey.addr, be->addr, 16);
	rkey.port = be->port;
	__builtin_memcpy(rval.addr, key.addr, 16);
	rval.port = key.dport;
	rval.rev_nat_id = svc->rev_nat_id;
	bpf_map_update_elem(&lb_sock_rev, &rkey, &rval, BPF_ANY);
	return 1;
}

/* Reverse translation: a remembered backend shows as the service it was picked for. */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx, int v6)
{
	struct lb_sock_rev_key rkey = {};
	struct lb_sock_rev_value *rval;
	struct lb_svc_key key = {};
	struct lb_svc_value *svc;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	ctx_get_addr(ctx, rkey.addr, v6);
	rkey.port = (__be16)ctx->user_port;
	rval = bpf_map_lookup_elem(&lb_sock_rev, &rkey);
	if (!rval)
		return 1;
	/* The service may be gone or its frontend reused: translate only while it is the same one. */
	__builtin_memcpy(key.addr, rval->addr, 16);
	key.dport = rval->port;
	key.proto = (__u8)ctx->protocol;
	svc = lb_lookup_service(&key);
	if (!svc || svc->rev_nat_id != rval->rev_nat_id) {
		bpf_map_delete_elem(&lb_sock_rev, &rkey);
		return 1;
	}
	ctx_set_addr(ctx, rval->addr, rval->port, v6);
	return 1;
}

SEC("cgroup/connect4")
int lb_sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, 0, 0);
}

SEC("cgroup/connect6")
int lb_sock_connect6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, 1, 0);
}

SEC("cgroup/sendmsg4")
int lb_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, 0, 1);
}

SEC("cgroup/sendmsg6")
int lb_sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, 1, 1);
}

SEC("cgroup/recvmsg4")
int lb_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, 0);
}

SEC("cgroup/recvmsg6")
int lb_sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, 1);
}

SEC("cgroup/getpeername4")
int lb_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, 0);
}

SEC("cgroup/getpeername6")
int lb_sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, 1);
}

/*
 * A connected socket's reverse entry (cookie, backend) goes with the socket: lb_sock_rev then holds the
 * entries of open sockets only, and a host making many short TCP connections never pushes the entries
 * of open sockets (a UDP client waiting for its reply) out of the LRU. The socket still knows its
 * destination here (the backend connect4/6 chose): the release hook runs before the protocol's close.
 * An unconnected UDP socket has no destination (its entries, one per service it sent to, age out of
 * the LRU), nor has a socket whose connect() failed before it was sent (the kernel clears it).
 */
SEC("cgroup/sock_release")
int lb_sock_release(struct bpf_sock *sk)
{
	struct lb_sock_rev_key rkey = {};

	if (sk->protocol != IPPROTO_TCP && sk->protocol != IPPROTO_UDP)
		return 1;
	rkey.port = sk->dst_port;
	if (!rkey.port)
		return 1; /* never connected: nothing written for it under a destination */
	if (sk->family == LB_AF_INET6) {
		__u32 *w = (__u32 *)rkey.addr;

		w[0] = sk->dst_ip6[0];
		w[1] = sk->dst_ip6[1];
		w[2] = sk->dst_ip6[2];
		w[3] = sk->dst_ip6[3];
	} else if (sk->family == LB_AF_INET) {
		lb_addr_v4(rkey.addr, sk->dst_ip4);
	} else {
		return 1;
	}
	rkey.cookie = bpf_get_socket_cookie(sk);
	bpf_map_delete_elem(&lb_sock_rev, &rkey);
	return 1;
}

char _license[] SEC("license") = "Dual BSD/GPL";
