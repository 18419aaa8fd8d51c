/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The family-generic steps of @datapath/lb's translation, written once and instantiated per address
 * family: nat.h includes it between family4.h and family_undef.h, nat6.h between family6.h and
 * family_undef.h. The parameters (family4.h / family6.h):
 *
 *   NAT_F(x)            the family's name of step x (nat4_x, nat6_x)
 *   PKT_F(x)            the family's packet function x (pkt4_x, pkt6_x: parse, rewrite; key is here)
 *   NAT_KEY, NAT_ENTRY  the family's key and entry structs (addresses in fields of the family's size)
 *   NAT_PKT             the family's parsed packet (saddr, daddr, sport, dport, proto, tcp_flags)
 *   NAT_MAP             the family's pair map
 *   NAT_NODE_LOAD(dst)  copies the node's address (the masquerade source) into the address field dst
 *   NAT_ADDR_EQ(a, b)   compares two address fields
 *
 * Addresses are copied by size (NAT_ADDR_COPY, nat.h), so one text serves a 4-byte and a 16-byte
 * address. Steps: the packet's key, the pair's other half, expiry, a packet's state update on both
 * halves, removal of a pair, SNAT port allocation (nat.h describes it), and the masquerade of one
 * packet each way. No include guard: it is meant to be included once per family.
 */

/* The key a packet has in direction `dir`: its tuple as it travels. */
static __always_inline void PKT_F(key)(const NAT_PKT *p, __u8 dir, NAT_KEY *k)
{
	NAT_ADDR_COPY(k->saddr, p->saddr);
	NAT_ADDR_COPY(k->daddr, p->daddr);
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->dir = dir;
	k->pad = 0;
}

/*
 * The key of the other half of the pair whose half `k` holds `e`. A half that rewrites the source
 * (OUT, RSVC) is answered from the peer to the rewritten source; a half that rewrites the
 * destination (IN, SVC) is answered from the rewritten destination to the packet's source.
 */
static __always_inline void NAT_F(peer_key)(const NAT_KEY *k, const NAT_ENTRY *e, NAT_KEY *peer)
{
	peer->pad = 0;
	peer->proto = k->proto;
	if (k->dir == NAT_DIR_OUT || k->dir == NAT_DIR_RSVC) {
		NAT_ADDR_COPY(peer->saddr, k->daddr);
		NAT_ADDR_COPY(peer->daddr, e->to_addr);
		peer->sport = k->dport;
		peer->dport = e->to_port;
		peer->dir = k->dir == NAT_DIR_OUT ? NAT_DIR_IN : NAT_DIR_SVC;
	} else {
		NAT_ADDR_COPY(peer->saddr, e->to_addr);
		NAT_ADDR_COPY(peer->daddr, k->saddr);
		peer->sport = e->to_port;
		peer->dport = k->sport;
		peer->dir = k->dir == NAT_DIR_IN ? NAT_DIR_OUT : NAT_DIR_RSVC;
	}
}

static __always_inline int NAT_F(expired)(const NAT_ENTRY *e)
{
	return (__s32)(e->expires - ct_now()) < 0;
}

/*
 * Refreshes a half's state for one packet. New flag bits (a first reply, a FIN, a reset: rare) are
 * written into both halves; otherwise only this half's expiry moves, once a second at most. A SYN
 * from the opening side on a closing flow opens the tuple again: both halves start over.
 */
static __always_inline void NAT_F(touch)(const NAT_KEY *k, NAT_ENTRY *e, const NAT_PKT *p, int reply)
{
	__u8 add = ct_packet_flags(p->tcp_flags, reply);
	__u8 flags = e->flags | add;
	int reopen = !reply && k->proto == IPPROTO_TCP && (p->tcp_flags & 0x12) == 0x02 /* SYN, no ACK */ &&
		     (e->flags & CT_F_CLOSING);
	__u32 expires;

	if (reopen)
		flags = add;
	expires = ct_now() + ct_lifetime(k->proto, flags);
	if (flags != e->flags) {
		NAT_KEY pk;
		NAT_ENTRY *pe;

		e->flags = flags;
		NAT_F(peer_key)(k, e, &pk);
		pe = bpf_map_lookup_elem(&NAT_MAP, &pk);
		if (pe) {
			pe->flags = reopen ? flags : pe->flags | flags;
			pe->expires = ct_now() + ct_lifetime(k->proto, pe->flags);
		}
	}
	if (e->expires != expires)
		e->expires = expires;
}

/* Removes both halves of the pair that `k` is half of. */
static __always_inline void NAT_F(delete_pair)(const NAT_KEY *k, const NAT_ENTRY *e)
{
	NAT_KEY pk;

	NAT_F(peer_key)(k, e, &pk);
	bpf_map_delete_elem(&NAT_MAP, &pk);
	bpf_map_delete_elem(&NAT_MAP, k);
}

/*
 * Creates the SNAT pair for the flow `out` (a NAT_DIR_OUT key) and returns its `out` half, or NULL
 * after counting the reason of the drop.
 */
static __always_inline NAT_ENTRY *NAT_F(snat_new)(const NAT_KEY *out)
{
	NAT_KEY in = { .sport = out->dport, .proto = out->proto, .dir = NAT_DIR_IN };
	__u32 now = ct_now();
	NAT_ENTRY ine = {
		.to_port = out->sport,
		.expires = now + ct_lifetime(out->proto, 0),
		.created = now,
	};
	NAT_ENTRY oute;
	__u32 range = (__u32)nat_port_max - nat_port_min + 1;
	__u32 port = bpf_ntohs(out->sport);
	NAT_ENTRY *e;
	int i, err;

	NAT_ADDR_COPY(in.saddr, out->daddr);
	NAT_NODE_LOAD(in.daddr);
	NAT_ADDR_COPY(ine.to_addr, out->saddr);
	oute = ine;
	if (port < nat_port_min || port > nat_port_max)
		port = nat_port_min + bpf_get_prandom_u32() % range;
	for (i = 0; i < NAT_MAX_RETRIES; i++) {
		if (i >= nat_retries)
			break;
		in.dport = bpf_htons((__u16)port);
		err = bpf_map_update_elem(&NAT_MAP, &in, &ine, BPF_NOEXIST);
		if (err == 0)
			goto claimed;
		if (err != -17 /* EEXIST */) {
			nat_count(NAT_STAT_DROP_MAP_FULL);
			return NULL;
		}
		e = bpf_map_lookup_elem(&NAT_MAP, &in);
		if (e && NAT_F(expired)(e)) {
			/* an expired pair: remove its `out` half and take the port over */
			NAT_KEY stale;

			NAT_F(peer_key)(&in, e, &stale);
			bpf_map_delete_elem(&NAT_MAP, &stale);
			if (bpf_map_update_elem(&NAT_MAP, &in, &ine, BPF_EXIST) == 0) {
				nat_count(NAT_STAT_RECLAIMED);
				goto claimed;
			}
		}
		nat_count(NAT_STAT_COLLISION);
		port = nat_port_min + bpf_get_prandom_u32() % range;
	}
	nat_count(NAT_STAT_DROP_EXHAUSTED);
	return NULL;

claimed:
	NAT_NODE_LOAD(oute.to_addr);
	oute.to_port = in.dport;
	err = bpf_map_update_elem(&NAT_MAP, out, &oute, BPF_NOEXIST);
	if (err != 0) {
		/* another CPU created this flow's pair first (or the map is full): keep theirs */
		bpf_map_delete_elem(&NAT_MAP, &in);
		e = bpf_map_lookup_elem(&NAT_MAP, out);
		if (!e)
			nat_count(NAT_STAT_DROP_MAP_FULL);
		return e;
	}
	nat_count(NAT_STAT_SNAT_NEW);
	return bpf_map_lookup_elem(&NAT_MAP, out);
}

/*
 * Masquerades one packet the caller chose (its source is a pod's, or the node's own in the port
 * range): the flow's `out` half, created on its first packet, gives the source address and port.
 */
static __always_inline int NAT_F(masquerade)(struct __sk_buff *skb, NAT_PKT *p)
{
	NAT_KEY k;
	NAT_ENTRY *e;

	PKT_F(key)(p, NAT_DIR_OUT, &k);
	e = bpf_map_lookup_elem(&NAT_MAP, &k);
	if (e && NAT_F(expired)(e)) {
		/* the same tuple again after its flow ended: start over */
		NAT_F(delete_pair)(&k, e);
		e = NULL;
	}
	if (!e) {
		e = NAT_F(snat_new)(&k);
		if (!e)
			return TC_ACT_SHOT;
	}
	NAT_F(touch)(&k, e, p, 0);
	if (NAT_ADDR_EQ(e->to_addr, p->saddr) && e->to_port == p->sport)
		return TC_ACT_OK;
	if (PKT_F(rewrite)(skb, p, 1, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_OUT);
	return TC_ACT_OK;
}

/*
 * A packet for the node's address that answers a masqueraded flow (`in` half): the pod's address and
 * port back. Returns the verdict, or -1 when the packet belongs to no such flow.
 */
static __always_inline int NAT_F(unmasquerade)(struct __sk_buff *skb, NAT_PKT *p)
{
	NAT_KEY k;
	NAT_ENTRY *e;

	PKT_F(key)(p, NAT_DIR_IN, &k);
	e = bpf_map_lookup_elem(&NAT_MAP, &k);
	if (!e)
		return -1;
	NAT_F(touch)(&k, e, p, 1);
	if (NAT_ADDR_EQ(e->to_addr, p->daddr) && e->to_port == p->dport)
		return TC_ACT_OK;
	if (PKT_F(rewrite)(skb, p, 0, e->to_addr, e->to_port))
		return TC_ACT_SHOT;
	nat_count(NAT_STAT_SNAT_IN);
	return TC_ACT_OK;
}
