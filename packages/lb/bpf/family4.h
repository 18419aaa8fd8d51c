/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv4 parameters of the family-generic steps (nat_family.h, svc_family.h): include it, then the
 * generic header, then family_undef.h. No include guard on purpose.
 */
#define NAT_F(x) nat4_##x
#define PKT_F(x) pkt4_##x
#define SVC_F(x) svc4_##x
#define NAT_KEY struct nat4_key
#define NAT_ENTRY struct nat4_entry
#define NAT_PKT struct pkt4
#define NAT_MAP nat4
#define NAT_NODE_LOAD(dst) ((dst) = nat_ipv4)
#define NAT_ADDR_EQ(a, b) ((a) == (b))
/* lb.h's 16-byte form of an address field (IPv4-mapped) */
#define NAT_LB_ADDR(dst16, a) lb_addr_v4(dst16, a)
/* the Maglev flow hash of a packet (lb.h) */
#define NAT_FLOW_HASH(p, seed) lb_flow_hash4((p)->saddr, (p)->sport, (p)->dport, (p)->proto, seed)
