// SPDX-License-Identifier: GPL-2.0
// Test object for the generator: every type shape it supports in map keys, values, constants and
// records (nested structs, unions, fixed arrays, enums, 64-bit and signed integers, network-order
// typedefs, padding, a packed struct), plus one record it must refuse (a pointer).
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 1, GREEN = 2, BLUE = 40000 };
enum __attribute__((packed)) level { LOW = 0, HIGH = 200 };
enum delta { MINUS = -5, PLUS = 5 };

struct inner {
	__u16 a;
	__s8 b;       /* 1 byte of padding follows */
	__u32 c;
};

union either {
	__u32 word;
	__u8 bytes4[4];
	struct inner in;
};

struct shape_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	enum level lvl;
};

struct shape_value {
	__u8 flag;          /* 7 bytes of padding follow */
	__u64 big;
	__s64 neg;
	__s32 small;
	enum color color;
	enum delta delta;
	struct inner nested;
	struct inner list[3];
	__u32 words[4];
	__u8 mac[6];
	char name[10];
	union either u;
}; /* tail padding */

struct __attribute__((packed)) packed_rec {
	__u8 kind;
	__u64 stamp;
	__u16 len;
};

struct event {
	__u64 ts;
	struct packed_rec rec;
	__u32 pid;
};

struct with_ptr {
	__u32 n;
	void *p;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct shape_key);
	__type(value, struct shape_value);
} shapes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, union either);
} unions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct packed_rec);
} packed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

const volatile __u32 limit = 42;
const volatile __s64 offset = -7;
const volatile bool enabled = true;
const volatile enum color favourite = GREEN;
const volatile char label[8] = "shapes";
const volatile struct inner origin = { .a = 1, .b = -2, .c = 3 };

/* Keeps the record types in BTF (a ring buffer has no value type). */
struct event *unused_event __attribute__((unused));
struct with_ptr *unused_with_ptr __attribute__((unused));

SEC("tc")
int touch(struct __sk_buff *skb)
{
	__u32 k = 0;
	union either *u = bpf_map_lookup_elem(&unions, &k);
	struct event *e;

	if (u && enabled)
		u->word += limit + (__u32)offset + favourite + origin.a + label[0];
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->ts = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, 0);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
