// SPDX-License-Identifier: GPL-2.0
// Test program for mutable globals: counts its runs in .bss, drops while the .data flag is set.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

__u64 runs;                  /* .bss */
__u32 drop_all = 1;          /* .data */
struct { __u16 a; __u32 b; } last = { 7, 9 }; /* .data, an anonymous struct */

SEC("tc")
int count(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&runs, 1);
	last.b = skb->len;
	return drop_all ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
