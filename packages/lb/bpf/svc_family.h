/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The per-packet service steps of svc.h, written once for both families: svc.h includes it between
 * family4.h and family_undef.h (svc4_*: the nat4 map) and between family6.h and family_undef.h
 * (svc6_*: the nat6 map). The parameters are nat_family.h's, plus SVC_F(x) (the family's name of step
 * x), NAT_LB_ADDR(dst16, a) (lb.h's 16-byte form of an address field) and NAT_FLOW_HASH(p, seed)
 * (lb.h's Maglev flow hash of a packet). No include guard.
 */

/*
 * A reply of a backend to a service client: the source becomes the service's frontend again.
 * Returns the verdict, or -1 when the packet is not such a reply.
 */
static __always_inline int SVC_F(reply)(struct __sk_buff *skb, NAT_PKT *p)
{
	NAT_KEY k;
	NAT_ENTRY *e;

	PKT_F(key)(p, NAT_DIR_RSVC, &k);
	e = bpf_map_lookup_elem(&NAT_MAP, &k);
	if (!e)
		return -1;
	NAT_F(touch)(&k, e, p, 1);
	if (PKT_F(rewrite)(skb, p, 1, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SVC_REPLY);
	return TC_ACT_OK;
}

/*
 * The first packet of a flow to a service frontend: picks a backend and records the flow's pair.
 * `external_only`: only frontends that are external IPs qualify (a packet from the world to an
 * address that is not the node's). Returns the `svc` half, or NULL when the packet is not for such a
 * service or the service has no backend that takes new flows (counted, and `*no_backend` set).
 */
static __always_inline NAT_ENTRY *SVC_F(new)(struct __sk_buff *skb, const NAT_PKT *p, const NAT_KEY *k,
					     int external_only, int *no_backend)
{
	struct lb_svc_key sk = {};
	struct lb_affinity_key ak = {};
	struct lb_svc_value *svc;
	struct lb_backend *be;
	__u32 id, now = ct_now();
	NAT_ENTRY fwd = { .flags = 0, .created = now }, rev;
	NAT_KEY rk;

	if (p->proto == IPPROTO_TCP && (p->tcp_flags & 0x12) != 0x02)
		return NULL; /* not a SYN: no flow to open */
	NAT_LB_ADDR(sk.addr, p->daddr);
	sk.dport = p->dport;
	sk.proto = p->proto;
	svc = lb_lookup_service(&sk);
	if (!svc || (external_only && !(svc->flags & LB_SVC_FLAG_EXTERNAL_IP)))
		return NULL;
	NAT_LB_ADDR(ak.client.addr, p->saddr);
	ak.rev_nat_id = svc->rev_nat_id;
	ak.kind = LB_AFFINITY_BY_ADDR;
	id = lb_affinity_backend(svc, &ak);
	be = id ? lb_lookup_active_backend(id) : NULL;
	if (!be) {
		/*
		 * Maglev: by the flow hash with the cluster's seed, so every node (and a reopened tuple)
		 * picks the same backend; else random
		 */
		id = lb_select_backend(&sk, svc,
				       (svc->flags & LB_SVC_FLAG_MAGLEV) ? NAT_FLOW_HASH(p, lb_hash_seed)
									 : bpf_get_prandom_u32());
		be = id ? lb_lookup_active_backend(id) : NULL;
	}
	if (!be) {
		nat_count(NAT_STAT_NO_BACKEND);
		*no_backend = 1;
		return NULL;
	}
	lb_affinity_update(svc, &ak, id);
	/* the backend's address in the family's size: the last 4 bytes of an IPv4-mapped one */
	__builtin_memcpy(&fwd.to_addr, &be->addr[16 - sizeof(fwd.to_addr)], sizeof(fwd.to_addr));
	fwd.to_port = be->port;
	fwd.expires = now + ct_lifetime(p->proto, 0);
	rev = fwd;
	NAT_ADDR_COPY(rev.to_addr, p->daddr);
	rev.to_port = p->dport;
	NAT_F(peer_key)(k, &fwd, &rk);
	if (bpf_map_update_elem(&NAT_MAP, &rk, &rev, BPF_ANY) ||
	    bpf_map_update_elem(&NAT_MAP, k, &fwd, BPF_NOEXIST)) {
		NAT_ENTRY *e = bpf_map_lookup_elem(&NAT_MAP, k); /* another CPU opened it first */

		if (!e)
			nat_count(NAT_STAT_DROP_MAP_FULL);
		return e;
	}
	nat_count(NAT_STAT_SVC_NEW);
	return bpf_map_lookup_elem(&NAT_MAP, k);
}

/*
 * A TCP or UDP packet that may be for a service: a packet of a known flow goes to its backend, the
 * first packet of a new flow to a frontend picks one (with `external_only`, only a frontend that is an
 * external IP). With `refuse`, the first packet of a flow to a service without a backend for new
 * flows comes back to its sender as an ICMP port unreachable (refuse.h). Anything else passes untouched.
 */
static __always_inline int SVC_F(forward)(struct __sk_buff *skb, NAT_PKT *p, int external_only, int refuse)
{
	NAT_KEY k;
	NAT_ENTRY *e;

	PKT_F(key)(p, NAT_DIR_SVC, &k);
	e = bpf_map_lookup_elem(&NAT_MAP, &k);
	if (e && (NAT_F(expired)(e) || (e->flags & CT_F_CLOSING)) && p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & 0x12) == 0x02) {
		/* a new connection on the tuple of an ended one: a new flow, which chooses again */
		NAT_F(delete_pair)(&k, e);
		e = NULL;
	}
	if (!e) {
		int no_backend = 0;

		e = SVC_F(new)(skb, p, &k, external_only, &no_backend);
		if (!e)
			return no_backend && refuse ? PKT_F(refuse)(skb, p) : TC_ACT_OK;
	}
	NAT_F(touch)(&k, e, p, 0);
	if (PKT_F(rewrite)(skb, p, 0, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SVC_FWD);
	return TC_ACT_OK;
}
