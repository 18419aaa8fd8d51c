// SPDX-License-Identifier: Apache-2.0
/*
 * C baseline for @datapath/bpf-maps: the same loops as bench/run.ts, against libbpf's bpf(2) wrappers.
 * Hash map, u32 key, u64 value, N entries (default 65536). Prints one JSON object per line:
 *   {"op": "...", "median": <figure>, "unit": "ops/s" | "ms"}
 * each the median of REPS measurements of process CPU time; a measurement repeats whole passes (one pass: N single-element
 * calls, or one sweep of the map in batches) until MIN_MS of thread CPU time have gone by, so the clock's
 * granularity is a small fraction of it.
 *
 *   mapbench [N] [MIN_MS] [REPS] [OP]   OP: one of the op names below, clock, or all (default)
 *
 * `clock` prints the mean step of getrusage(RUSAGE_SELF) and getrusage(RUSAGE_THREAD), in µs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

/* CPU time of the process (user + system), from getrusage(RUSAGE_SELF): the very clock Node's
 * process.cpuUsage() reads, so both sides measure alike (wall time would measure the neighbours on
 * this shared machine). It is µs-precise: the kernel brings the calling thread's runtime up to date
 * first. RUSAGE_THREAD is not (Node's process.threadCpuUsage()): without an update it advances only
 * at scheduler ticks, 4 ms at HZ=250. */
static double clock_of(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now(void)
{
	return clock_of(RUSAGE_SELF);
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Mean step of a getrusage clock (CPU time it covered / times it changed) while spinning on it for
 * 200 ms of wall time, in µs. (The loop is timed with CLOCK_MONOTONIC: reading CLOCK_THREAD_CPUTIME_ID
 * would update the thread's runtime and hide the tick granularity of RUSAGE_THREAD.) */
static double granularity(int who)
{
	double start = wall(), first = clock_of(who), prev = first;
	long n = 0;
	while (wall() - start < 0.2) {
		double t = clock_of(who);
		if (t != prev) {
			n++;
			prev = t;
		}
	}
	return n ? (prev - first) / n * 1e6 : 0;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "mapbench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

static const char *only = "all";

static int want(const char *op)
{
	return !strcmp(only, "all") || !strcmp(only, op);
}

static void emit(const char *op, double value, const char *unit)
{
	printf("{\"op\":\"%s\",\"median\":%.3f,\"unit\":\"%s\"}\n", op, value, unit);
	fflush(stdout);
}

/* One measurement: repeat `pass` (which returns how many elements it handled) until MIN_MS of CPU time
 * went by; returns elements per second. */
static double min_s;

#define MEASURE(rate, body)                                                                        \
	do {                                                                                       \
		double t0_ = now(), el_;                                                           \
		uint64_t count_ = 0;                                                               \
		do {                                                                               \
			body;                                                                      \
		} while ((el_ = now() - t0_) < min_s);                                             \
		(rate) = count_ / el_;                                                             \
	} while (0)

static uint32_t batch_walk(int fd, uint32_t B, uint32_t *keys, uint64_t *vals, int advance)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	uint32_t in_tok, out_tok, total = 0;
	int err;

	for (int first = 1;; first = 0) {
		uint32_t cnt = B;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, advance ? keys + total : keys,
					   advance ? vals + total : vals, &cnt, &bo);
		total += cnt;
		if (err) {
			if (errno == ENOENT)
				break;
			die("lookup_batch", errno);
		}
		in_tok = out_tok;
	}
	return total;
}

int main(int argc, char **argv)
{
	uint32_t N = argc > 1 ? strtoul(argv[1], NULL, 0) : 65536;
	double MIN_MS = argc > 2 ? atof(argv[2]) : 400;
	int REPS = argc > 3 ? atoi(argv[3]) : 5;
	char name[64];
	/* room for one extra batch: the kernel may stop a batch short at a bucket boundary */
	uint32_t *keys = malloc(sizeof(*keys) * (N + 8192)), k, i, mask = N - 1;
	uint64_t *vals = malloc(sizeof(*vals) * (N + 8192)), v;
	double r[64];
	int fd, err, rep;
	uint32_t batch_sizes[] = {1024, 8192};
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	if (argc > 4)
		only = argv[4];
	min_s = MIN_MS / 1e3;
	if (!strcmp(only, "clock")) {
		printf("{\"op\":\"clock\",\"selfUs\":%.1f,\"threadUs\":%.1f}\n", granularity(RUSAGE_SELF),
		       granularity(RUSAGE_THREAD));
		return 0;
	}
	if (N & (N - 1))
		die("N must be a power of two", EINVAL);
	if (REPS < 1 || REPS > 64)
		die("REPS must be 1…64", EINVAL);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "dp_bench_c", 4, 8, N, NULL);
	if (fd < 0)
		die("create", fd);
	for (k = 0; k < N; k++) {
		v = k;
		if ((err = bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST)))
			die("fill", err);
	}
	/* warm-up */
	for (i = 0; i < N; i++) {
		k = i & mask;
		bpf_map_lookup_elem(fd, &k, &v);
	}

	for (rep = 0; want("lookup") && rep < REPS; rep++) {
		MEASURE(r[rep], {
			for (i = 0; i < N; i++) {
				k = i & mask;
				if ((err = bpf_map_lookup_elem(fd, &k, &v)))
					die("lookup", err);
			}
			count_ += N;
		});
	}
	if (want("lookup"))
		emit("lookup", median(r, REPS), "ops/s");

	for (rep = 0; want("update") && rep < REPS; rep++) {
		MEASURE(r[rep], {
			for (i = 0; i < N; i++) {
				k = i & mask;
				v = i;
				if ((err = bpf_map_update_elem(fd, &k, &v, BPF_ANY)))
					die("update", err);
			}
			count_ += N;
		});
	}
	if (want("update"))
		emit("update", median(r, REPS), "ops/s");

	for (unsigned b = 0; b < sizeof(batch_sizes) / sizeof(batch_sizes[0]); b++) {
		uint32_t B = batch_sizes[b];

		snprintf(name, sizeof(name), "updateBatch%u", B);
		for (rep = 0; want(name) && rep < REPS; rep++) {
			for (i = 0; i < N; i++) {
				keys[i] = i;
				vals[i] = (uint64_t)i * 3 + rep;
			}
			MEASURE(r[rep], {
				for (uint32_t done = 0; done < N; done += B) {
					uint32_t cnt = N - done < B ? N - done : B;
					if ((err = bpf_map_update_batch(fd, keys + done, vals + done, &cnt, &bo)))
						die("update_batch", err);
				}
				count_ += N;
			});
		}
		if (want(name))
			emit(name, median(r, REPS), "ops/s");

		snprintf(name, sizeof(name), "lookupBatch%u", B);
		for (rep = 0; want(name) && rep < REPS; rep++) {
			MEASURE(r[rep], {
				uint32_t total = batch_walk(fd, B, keys, vals, 0);
				if (total != N)
					die("lookup_batch count", EINVAL);
				count_ += total;
			});
		}
		if (want(name))
			emit(name, median(r, REPS), "ops/s");
	}

	/* full dump: whole map in batches of 8192 into arrays of N, milliseconds per dump */
	for (rep = 0; want("dump") && rep < REPS; rep++) {
		MEASURE(r[rep], {
			if (batch_walk(fd, 8192, keys, vals, 1) != N)
				die("dump count", EINVAL);
			count_++;
		});
		r[rep] = 1e3 / r[rep];
	}
	if (want("dump"))
		emit("dump", median(r, REPS), "ms");
	close(fd);
	free(keys);
	free(vals);
	return 0;
}
