// SPDX-License-Identifier: GPL-2.0
// Test object for the generator: a map whose key has a bitfield (refused unless the map is skipped) beside
// a map with a plain key (still generated).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flag_key {
	__u32 prefixlen;
	__u8 egress : 1;
	__u8 pad : 7;
	__u8 proto;
	__u16 port;
};

struct plain_key {
	__u32 addr;
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct flag_key);
	__type(value, __u32);
} flags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct plain_key);
	__type(value, __u64);
} plain SEC(".maps");

char LICENSE[] SEC("license") = "GPL";
