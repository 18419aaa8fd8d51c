/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service load balancing for @datapath/lb's tc programs: destination NAT of a flow to
 * one backend of a service (the service maps of lb.h, filled by the package's writer) and reverse
 * NAT of the backend's replies, through a `svc`/`rsvc` pair in the nat4 map (nat.h).
 *
 *   svc_forward  a packet towards a frontend: its flow's `svc` half, or for a TCP SYN / a UDP packet
 *                of no known flow a backend chosen now (session affinity first, then the service's
 *                Maglev table or a random active slot); the destination becomes the backend.
 *   svc_reply    a packet from a backend to a client of such a flow (`rsvc` half): the source
 *                becomes the frontend again.
 *
 * The pair keeps the backend's address and port, so a flow stays on its backend after the backend
 * turns terminating or is removed from the service (graceful termination); only new flows avoid it.
 */
#ifndef DATAPATH_LB_SVC_H
#define DATAPATH_LB_SVC_H

#include "nat.h"
#include "lb.h"

/*
 * Anchors the Maglev table's full type in the object's BTF (a pointer to the struct alone leaves a
 * forward declaration, and libbpf cannot size lb_maglev's inner map from it).
 */
struct lb_maglev_table (*lb_maglev_table_anchor)[1] __attribute__((unused));

/*
 * A reply of a backend to a service client: the source becomes the service's frontend again.
 * Returns the verdict, or -1 when the packet is not such a reply.
 */
static __always_inline int svc_reply(struct __sk_buff *skb, struct pkt4 *p)
{
	struct nat4_key k;
	struct nat4_entry *e;

	pkt4_key(p, NAT_DIR_RSVC, &k);
	e = bpf_map_lookup_elem(&nat4, &k);
	if (!e)
		return -1;
	nat4_touch(&k, e, p, 1);
	if (pkt4_rewrite(skb, p, 1, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SVC_REPLY);
	return TC_ACT_OK;
}

/*
 * The first packet of a flow to a service frontend at the node's address: picks a backend and
 * records the flow's pair. Returns the `svc` half, or NULL when the packet is not for a service or
 * the service has no backend that takes new flows (counted).
 */
static __always_inline struct nat4_entry *svc_new(struct __sk_buff *skb, const struct pkt4 *p,
						  const struct nat4_key *k)
{
	struct lb_svc_key sk = {};
	struct lb_affinity_key ak = {};
	struct lb_svc_value *svc;
	struct lb_backend *be;
	__u32 id, now = ct_now();
	struct nat4_entry fwd = { .flags = 0, .created = now }, rev;
	struct nat4_key rk;

	if (p->proto == IPPROTO_TCP && (p->tcp_flags & 0x12) != 0x02)
		return NULL; /* not a SYN: no flow to open */
	lb_addr_v4(sk.addr, p->daddr);
	sk.dport = p->dport;
	sk.proto = p->proto;
	svc = lb_lookup_service(&sk);
	if (!svc)
		return NULL;
	lb_addr_v4(ak.client.addr, p->saddr);
	ak.rev_nat_id = svc->rev_nat_id;
	ak.kind = LB_AFFINITY_BY_ADDR;
	id = lb_affinity_backend(svc, &ak);
	be = id ? lb_lookup_active_backend(id) : NULL;
	if (!be) {
		/* Maglev: by the flow's hash (a reopened tuple lands on the same backend); else random */
		id = lb_select_backend(&sk, svc,
				       (svc->flags & LB_SVC_FLAG_MAGLEV) ? bpf_get_hash_recalc(skb) : bpf_get_prandom_u32());
		be = id ? lb_lookup_active_backend(id) : NULL;
	}
	if (!be) {
		nat_count(NAT_STAT_NO_BACKEND);
		return NULL;
	}
	lb_affinity_update(svc, &ak, id);
	__builtin_memcpy(&fwd.to_addr, &be->addr[12], 4);
	fwd.to_port = be->port;
	fwd.expires = now + ct_lifetime(p->proto, 0);
	rev = fwd;
	rev.to_addr = p->daddr;
	rev.to_port = p->dport;
	nat4_peer_key(k, &fwd, &rk);
	if (bpf_map_update_elem(&nat4, &rk, &rev, BPF_ANY) ||
	    bpf_map_update_elem(&nat4, k, &fwd, BPF_NOEXIST)) {
		struct nat4_entry *e = bpf_map_lookup_elem(&nat4, k); /* another CPU opened it first */

		if (!e)
			nat_count(NAT_STAT_DROP_MAP_FULL);
		return e;
	}
	nat_count(NAT_STAT_SVC_NEW);
	return bpf_map_lookup_elem(&nat4, k);
}

/*
 * A TCP or UDP packet that may be for a service: a packet of a known flow goes to its backend, the
 * first packet of a new flow to a frontend picks one (svc_new). Anything else passes untouched.
 */
static __always_inline int svc_forward(struct __sk_buff *skb, struct pkt4 *p)
{
	struct nat4_key k;
	struct nat4_entry *e;

	pkt4_key(p, NAT_DIR_SVC, &k);
	e = bpf_map_lookup_elem(&nat4, &k);
	if (e && (nat4_expired(e) || (e->flags & CT_F_CLOSING)) && p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & 0x12) == 0x02) {
		/* a new connection on the tuple of an ended one: a new flow, which chooses again */
		nat4_delete_pair(&k, e);
		e = NULL;
	}
	if (!e) {
		e = svc_new(skb, p, &k);
		if (!e)
			return TC_ACT_OK;
	}
	nat4_touch(&k, e, p, 0);
	if (pkt4_rewrite(skb, p, 0, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SVC_FWD);
	return TC_ACT_OK;
}

#endif
