// SPDX-License-Identifier: GPL-2.0
// Test programs the verifier takes a while over: eight copies of a bounded loop it walks iteration by
// iteration (about 20 000 instructions processed each; under the 8192-jump history limit), plus a map, so a
// load both creates a map and runs the verifier for several milliseconds.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} seen SEC(".maps");

#define BUSY(name, seed)                                    \
	SEC("tc") int name(struct __sk_buff *skb)           \
	{                                                   \
		__u32 acc = skb->len + seed;                \
		__u32 key = 0;                              \
		__u64 *v;                                   \
		for (__u32 i = 0; i < 3000; i++) {          \
			acc = acc * 31 + i;                 \
			if (acc == 7)                       \
				break;                      \
		}                                           \
		v = bpf_map_lookup_elem(&seen, &key);       \
		if (v)                                      \
			*v += acc;                          \
		return acc & 1 ? TC_ACT_OK : TC_ACT_UNSPEC; \
	}

BUSY(busy0, 0)
BUSY(busy1, 1)
BUSY(busy2, 2)
BUSY(busy3, 3)
BUSY(busy4, 4)
BUSY(busy5, 5)
BUSY(busy6, 6)
BUSY(busy7, 7)

char LICENSE[] SEC("license") = "GPL";
