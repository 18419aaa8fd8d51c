// C baseline of the ring buffer benchmark (packages/bpf-maps/bench/ringbuf.ts): libbpf's ring_buffer__poll
// consuming the records that BPF_PROG_TEST_RUN made the benchmark program write.
//   ringbench consume PROG_PIN MAP_PIN REPEAT ROUNDS  -> one line per round: records, CPU µs of consuming
//   ringbench serve PROG_PIN MAP_PIN REPEAT           -> one process, warm: for each line read on stdin, `f`
//     (the callback reads one field) or `c` (it copies the record into a struct of a 1024-record batch, the
//     C form of decoding into objects), fills the ring and answers one line: records, CPU µs of consuming
//   ringbench produce PROG_PIN PER_TICK TICK_US SECONDS -> test-runs PER_TICK records every TICK_US (a fixed
//     rate: a tick whose runs overrun it delays the next, the counters say what was written); prints `go` first
//   ringbench flood PROG_PIN SECONDS -> test-runs the program back to back (4096 runs a call) for SECONDS,
//     as fast as the kernel lets it; prints `go` after its first call
//   ringbench drain MAP_PIN COUNTERS_PIN SECONDS f|c -> a consumer for a fixed wall time: waits for a line
//     on stdin, then ring_buffer__poll()s for SECONDS (callback: one field, or a copy into structs) and
//     answers one line: records consumed, CPU µs (getrusage over the window), records the program tried to
//     write during the window, reserve failures (lost) during the window (the program's counters)
// CPU time is getrusage(RUSAGE_SELF) user + system around the consuming calls only.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct record {
	unsigned int seq, len, src_label, dst_label, saddr, daddr;
	unsigned short sport, dport;
	unsigned char proto, type, subtype, pad;
};

static unsigned long long sum, seen;
static struct record batch[1024];
static volatile unsigned int batch_sink;

static int on_record(void *ctx, void *data, size_t size)
{
	const struct record *r = data;
	(void)ctx;
	if (size != sizeof(*r))
		return -1;
	sum += r->seq;
	seen++;
	return 0;
}

/* Decoding into structs: each record copied into the next slot of a batch a caller would then use. */
static int on_record_copy(void *ctx, void *data, size_t size)
{
	struct record *slot = &batch[seen & 1023];
	(void)ctx;
	if (size != sizeof(*slot))
		return -1;
	__builtin_memcpy(slot, data, sizeof(*slot));
	sum += slot->seq;
	if ((++seen & 1023) == 0)
		batch_sink += batch[seen & 511].len; /* the batch is read, so the copies are not elided */
	return 0;
}

static long long cpu_us(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000000LL + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

static int run(int prog, int repeat)
{
	unsigned char pkt[64] = {0};
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt), .repeat = repeat);
	pkt[12] = 0x08; /* ETH_P_IP */
	return bpf_prog_test_run_opts(prog, &o);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static unsigned long long counter(int map, unsigned int slot)
{
	unsigned long long v = 0;
	bpf_map_lookup_elem(map, &slot, &v);
	return v;
}

static int drain(int argc, char **argv)
{
	if (argc != 6)
		return fprintf(stderr, "usage: ringbench drain MAP COUNTERS SECONDS f|c\n"), 2;
	int map = bpf_obj_get(argv[2]), counters = bpf_obj_get(argv[3]);
	double secs = atof(argv[4]);
	char line[16];
	if (map < 0 || counters < 0)
		return perror("bpf_obj_get"), 1;
	struct ring_buffer *rb = ring_buffer__new(map, argv[5][0] == 'c' ? on_record_copy : on_record, NULL, NULL);
	if (!rb)
		return perror("ring_buffer__new"), 1;
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	unsigned long long tried0 = counter(counters, 0), lost0 = counter(counters, 1);
	seen = 0;
	long long t0 = cpu_us();
	double end = now_s() + secs;
	while (now_s() < end)
		if (ring_buffer__poll(rb, 10) < 0)
			return perror("ring_buffer__poll"), 1;
	long long t1 = cpu_us();
	unsigned long long tried = counter(counters, 0) - tried0, lost = counter(counters, 1) - lost0;
	printf("%llu %lld %llu %llu\n", seen, t1 - t0, tried, lost);
	fflush(stdout);
	ring_buffer__free(rb);
	fprintf(stderr, "checksum %llu %u\n", sum, batch_sink);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "drain") == 0)
		return drain(argc, argv);
	if (argc == 4 && strcmp(argv[1], "flood") == 0) {
		int prog = bpf_obj_get(argv[2]);
		double end = now_s() + atof(argv[3]);
		if (prog < 0)
			return perror("bpf_obj_get prog"), 1;
		for (int first = 1; now_s() < end; first = 0) {
			if (run(prog, 4096))
				return perror("test_run"), 1;
			if (first) {
				printf("go\n");
				fflush(stdout);
			}
		}
		return 0;
	}
	if (argc < 6 && !(argc == 5 && argv[1][0] == 's'))
		return fprintf(stderr, "usage: ringbench consume|serve|produce PROG MAP|PER_TICK N M\n"), 2;
	int prog = bpf_obj_get(argv[2]);
	if (prog < 0)
		return perror("bpf_obj_get prog"), 1;
	if (argv[1][0] == 'p') {
		int per = atoi(argv[3]);
		long tick = atol(argv[4]);
		double secs = atof(argv[5]);
		struct timespec next;
		clock_gettime(CLOCK_MONOTONIC, &next);
		long ticks = (long)(secs * 1e6 / tick);
		for (long i = 0; i < ticks; i++) {
			if (run(prog, per))
				return perror("test_run"), 1;
			if (i == 0) {
				printf("go\n");
				fflush(stdout);
			}
			next.tv_nsec += tick * 1000;
			while (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		}
		return 0;
	}
	int map = bpf_obj_get(argv[3]);
	int repeat = atoi(argv[4]), rounds = argc > 5 ? atoi(argv[5]) : 0;
	if (map < 0)
		return perror("bpf_obj_get map"), 1;
	if (argv[1][0] == 's') {
		struct ring_buffer *field = ring_buffer__new(map, on_record, NULL, NULL);
		struct ring_buffer *copy = ring_buffer__new(map, on_record_copy, NULL, NULL);
		char line[16];
		if (!field || !copy)
			return perror("ring_buffer__new"), 1;
		while (fgets(line, sizeof(line), stdin)) {
			struct ring_buffer *rb = line[0] == 'c' ? copy : field;
			if (run(prog, repeat))
				return perror("test_run"), 1;
			seen = 0;
			long long t0 = cpu_us();
			while (seen < (unsigned long long)repeat)
				if (ring_buffer__poll(rb, 100) < 0)
					return perror("ring_buffer__poll"), 1;
			long long t1 = cpu_us();
			printf("%llu %lld\n", seen, t1 - t0);
			fflush(stdout);
		}
		ring_buffer__free(field);
		ring_buffer__free(copy);
		fprintf(stderr, "checksum %llu %u\n", sum, batch_sink);
		return 0;
	}
	struct ring_buffer *rb = ring_buffer__new(map, on_record, NULL, NULL);
	if (!rb)
		return perror("ring_buffer__new"), 1;
	for (int i = 0; i < rounds; i++) {
		if (run(prog, repeat))
			return perror("test_run"), 1;
		seen = 0;
		long long t0 = cpu_us();
		while (seen < (unsigned long long)repeat)
			if (ring_buffer__poll(rb, 100) < 0)
				return perror("ring_buffer__poll"), 1;
		long long t1 = cpu_us();
		printf("%llu %lld\n", seen, t1 - t0);
	}
	ring_buffer__free(rb);
	fprintf(stderr, "checksum %llu\n", sum);
	return 0;
}
