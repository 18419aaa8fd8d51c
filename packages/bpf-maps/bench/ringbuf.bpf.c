// SPDX-License-Identifier: GPL-2.0
// Load for the ring buffer benchmark: every run writes one 32-byte monitor-style record (sequence number,
// packet length, identities, addresses, ports) into `rb`, counting failed outputs in `lost`. Driven by BPF_PROG_TEST_RUN with
// `repeat`, so the same records reach the C and the Node consumer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} lost SEC(".maps");

/* A monitor-style record: sequence, length, identities, addresses, ports, protocol, type. */
struct record {
	__u32 seq;
	__u32 len;
	__u32 src_label;
	__u32 dst_label;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 type;
	__u8 subtype;
	__u8 pad;
};

SEC("tc")
int produce(struct __sk_buff *skb)
{
	__u32 k0 = 0, k1 = 1;
	__u64 *seq = bpf_map_lookup_elem(&lost, &k0);
	__u64 *miss = bpf_map_lookup_elem(&lost, &k1);
	struct record r = {};

	if (!seq || !miss)
		return 0;
	r.seq = (__u32)(*seq)++;
	r.len = skb->len;
	r.src_label = 4242;
	r.dst_label = r.seq & 0xffff;
	r.saddr = 0x0af40001;
	r.daddr = 0x0af40002 + (r.seq & 0xff);
	r.sport = (__u16)r.seq;
	r.dport = 80;
	r.proto = 6;
	r.type = 5;
	r.subtype = 1;
	if (bpf_ringbuf_output(&rb, &r, sizeof(r), 0))
		(*miss)++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
