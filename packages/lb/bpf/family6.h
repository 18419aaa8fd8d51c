/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The IPv6 parameters of the family-generic steps (nat_family.h, svc_family.h): include it, then the
 * generic header, then family_undef.h. No include guard on purpose.
 */
#define NAT_F(x) nat6_##x
#define PKT_F(x) pkt6_##x
#define SVC_F(x) svc6_##x
#define NAT_KEY struct nat6_key
#define NAT_ENTRY struct nat6_entry
#define NAT_PKT struct pkt6
#define NAT_MAP nat6
#define NAT_NODE_LOAD(dst) addr6_load(dst, nat_ipv6)
#define NAT_ADDR_EQ(a, b) addr6_eq(a, (const volatile __u8 *)(b))
#define NAT_LB_ADDR(dst16, a) __builtin_memcpy(dst16, a, 16)
#define NAT_FLOW_HASH(p, seed) lb_flow_hash6((p)->saddr, (p)->sport, (p)->dport, (p)->proto, seed)
