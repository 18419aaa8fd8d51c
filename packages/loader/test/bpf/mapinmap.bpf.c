// SPDX-License-Identifier: GPL-2.0
// Test program for map-in-map: returns the value at index 0 of the inner map in slot `slot` of `outer`
// (statically initialised from the ELF), or of `by_key`'s inner map under key `slot` when `use_hash` is set.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct inner);
} by_key SEC(".maps");

__u32 slot;      /* .bss: which slot / key to read */
__u32 use_hash;  /* .bss: 0 = outer, 1 = by_key */

#define NO_INNER 1000
#define NO_VALUE 1001

SEC("tc")
int pick(struct __sk_buff *skb)
{
	__u32 key = slot, zero = 0;
	void *inner = use_hash ? bpf_map_lookup_elem(&by_key, &key) : bpf_map_lookup_elem(&outer, &key);
	if (!inner)
		return NO_INNER;
	__u32 *value = bpf_map_lookup_elem(inner, &zero);
	return value ? *value : NO_VALUE;
}

char LICENSE[] SEC("license") = "GPL";
