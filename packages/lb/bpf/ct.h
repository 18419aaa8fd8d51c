/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow state of @datapath/lb's translation entries: what each half of a translated flow has seen
 * (a reply, a FIN from either side, a reset) and when the flow expires. Every translation entry
 * (struct nat4_entry in nat.h) carries this state; both halves of a pair carry the same flags, and
 * each refreshes its own expiry as its packets pass.
 *
 * Expiry is in seconds of CLOCK_MONOTONIC (bpf_ktime_get_coarse_ns() / 1e9), the clock user space
 * reads with clock_gettime(CLOCK_MONOTONIC) to garbage-collect expired pairs. An entry is written
 * at most once a second per flow on the fast path: the expiry only moves when the second changes.
 *
 * Timeouts (load-time constants, seconds; the defaults are Cilium's where it has one):
 *   ct_timeout_syn      TCP flow that has not seen a reply yet (60)
 *   ct_timeout_tcp      established TCP flow (21600, six hours)
 *   ct_timeout_close    TCP flow after a reset or a FIN from both sides (10)
 *   ct_timeout_udp      UDP flow (60)
 *   ct_timeout_icmp     ICMP echo flow (60)
 */
#ifndef DATAPATH_LB_CT_H
#define DATAPATH_LB_CT_H

#include <linux/types.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

/* struct nat4_entry.flags */
enum ct_flag {
	CT_F_REPLIED = 1,  /* a packet went the reply way */
	CT_F_FIN_OUT = 2,  /* FIN from the side that opened the flow */
	CT_F_FIN_IN = 4,   /* FIN from the other side */
	CT_F_RST = 8,      /* a reset, either way */
	CT_F_CLOSING = CT_F_RST | CT_F_FIN_OUT | CT_F_FIN_IN,
};

const volatile __u32 ct_timeout_syn = 60;
const volatile __u32 ct_timeout_tcp = 21600;
const volatile __u32 ct_timeout_close = 10;
const volatile __u32 ct_timeout_udp = 60;
const volatile __u32 ct_timeout_icmp = 60;

static __always_inline __u32 ct_now(void)
{
	return (__u32)(bpf_ktime_get_coarse_ns() / 1000000000ULL);
}

/* The lifetime of a flow in its current state. */
static __always_inline __u32 ct_lifetime(__u8 proto, __u8 flags)
{
	if (proto == IPPROTO_TCP) {
		if ((flags & CT_F_RST) || (flags & (CT_F_FIN_OUT | CT_F_FIN_IN)) == (CT_F_FIN_OUT | CT_F_FIN_IN))
			return ct_timeout_close;
		return (flags & CT_F_REPLIED) ? ct_timeout_tcp : ct_timeout_syn;
	}
	if (proto == IPPROTO_UDP)
		return ct_timeout_udp;
	return ct_timeout_icmp;
}

/* The flag bits one packet adds: `tcp_flags` is byte 13 of the TCP header (0 for UDP and ICMP). */
static __always_inline __u8 ct_packet_flags(__u8 tcp_flags, int reply)
{
	__u8 f = reply ? CT_F_REPLIED : 0;

	if (tcp_flags & 0x04) /* RST */
		f |= CT_F_RST;
	if (tcp_flags & 0x01) /* FIN */
		f |= reply ? CT_F_FIN_IN : CT_F_FIN_OUT;
	return f;
}

#endif
