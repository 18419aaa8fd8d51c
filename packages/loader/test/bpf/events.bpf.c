// SPDX-License-Identifier: GPL-2.0
// Test program for the event readers: one 24-byte record per matching packet (UDP/IPv4 to `port`, or an
// ICMP echo request), into the ring buffer `events` (mode bit 0) and/or the perf event array
// `perf_events` (mode bit 1). stats[0] = records attempted (the record's seq), [1] = ring buffer
// outputs that failed (full ring), [2] = perf outputs that failed.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u16 port = 9;
const volatile __u32 mode = 1;

struct event {
	__u32 saddr;   /* network order */
	__u32 daddr;   /* network order */
	__u32 len;     /* skb->len */
	__u32 seq;     /* stats[0] before this packet */
	__u16 dport;   /* host order; 0 for ICMP */
	__u8 proto;
	__u8 cpu;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 3);
} stats SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tc")
int emit(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct event ev = {};
	__u32 key = 0;
	__u64 *seq;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return TC_ACT_UNSPEC;
	if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > end || udp->dest != bpf_htons(port))
			return TC_ACT_UNSPEC;
		ev.dport = port;
	} else if (ip->protocol == IPPROTO_ICMP) {
		__u8 *icmp_type = (void *)(ip + 1);

		if ((void *)(icmp_type + 8) > end || *icmp_type != 8 /* echo request */)
			return TC_ACT_UNSPEC;
	} else {
		return TC_ACT_UNSPEC;
	}
	seq = bpf_map_lookup_elem(&stats, &key);
	if (!seq)
		return TC_ACT_UNSPEC;
	ev.seq = (__u32)__sync_fetch_and_add(seq, 1);
	ev.saddr = ip->saddr;
	ev.daddr = ip->daddr;
	ev.len = skb->len;
	ev.proto = ip->protocol;
	ev.cpu = (__u8)bpf_get_smp_processor_id();
	if ((mode & 1) && bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) != 0)
		bump(1);
	if ((mode & 2) && bpf_perf_event_output(skb, &perf_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev)) != 0)
		bump(2);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
