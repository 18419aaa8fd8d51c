/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ends an instantiation of the family-generic steps (family4.h / family6.h). No include guard. */
#undef NAT_F
#undef PKT_F
#undef SVC_F
#undef NAT_KEY
#undef NAT_ENTRY
#undef NAT_PKT
#undef NAT_MAP
#undef NAT_NODE_LOAD
#undef NAT_ADDR_EQ
#undef NAT_LB_ADDR
#undef NAT_FLOW_HASH
