// SPDX-License-Identifier: Apache-2.0
/*
 * C baseline for @datapath/bpf-maps: the same loops as bench/run.ts, against libbpf's bpf(2) wrappers.
 * Hash map, u32 key, u64 value, N entries (default 65536). Prints one JSON object per line:
 *   {"op": "...", "median": <figure>, "unit": "ops/s" | "ms"}
 * each the median of REPS repetitions.
 *
 *   mapbench [N] [OPS] [REPS] [OP]      OP: one of the op names below, or all (default)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

/* CPU time of this thread (user + system): the machine is shared, so wall time would measure the
 * neighbours; the Node side measures the same clock (process.threadCpuUsage). */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
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

int main(int argc, char **argv)
{
	uint32_t N = argc > 1 ? strtoul(argv[1], NULL, 0) : 65536;
	uint32_t OPS = argc > 2 ? strtoul(argv[2], NULL, 0) : 500000;
	int REPS = argc > 3 ? atoi(argv[3]) : 5;
	char name[64];
	/* room for one extra batch: the kernel may stop a batch short at a bucket boundary */
	uint32_t *keys = malloc(sizeof(*keys) * (N + 8192)), k, i, mask = N - 1;
	uint64_t *vals = malloc(sizeof(*vals) * (N + 8192)), v;
	double r[64], t;
	int fd, err, rep;
	uint32_t batch_sizes[] = {1024, 8192};
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	if (argc > 4)
		only = argv[4];
	if (N & (N - 1))
		die("N must be a power of two", EINVAL);
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "dp_bench_c", 4, 8, N, NULL);
	if (fd < 0)
		die("create", fd);
	for (k = 0; k < N; k++) {
		v = k;
		if ((err = bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST)))
			die("fill", err);
	}
	/* warm-up */
	for (i = 0; i < OPS / 5; i++) {
		k = i & mask;
		bpf_map_lookup_elem(fd, &k, &v);
	}

	for (rep = 0; want("lookup") && rep < REPS; rep++) {
		t = now();
		for (i = 0; i < OPS; i++) {
			k = i & mask;
			if ((err = bpf_map_lookup_elem(fd, &k, &v)))
				die("lookup", err);
		}
		r[rep] = OPS / (now() - t);
	}
	if (want("lookup"))
		emit("lookup", median(r, REPS), "ops/s");

	for (rep = 0; want("update") && rep < REPS; rep++) {
		t = now();
		for (i = 0; i < OPS; i++) {
			k = i & mask;
			v = i;
			if ((err = bpf_map_update_elem(fd, &k, &v, BPF_ANY)))
				die("update", err);
		}
		r[rep] = OPS / (now() - t);
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
			t = now();
			for (uint32_t done = 0; done < N; done += B) {
				uint32_t cnt = N - done < B ? N - done : B;
				if ((err = bpf_map_update_batch(fd, keys + done, vals + done, &cnt, &bo)))
					die("update_batch", err);
			}
			r[rep] = N / (now() - t);
		}
		if (want(name))
			emit(name, median(r, REPS), "ops/s");

		snprintf(name, sizeof(name), "lookupBatch%u", B);
		for (rep = 0; want(name) && rep < REPS; rep++) {
			uint32_t in_tok, out_tok, total = 0;
			t = now();
			for (int first = 1;; first = 0) {
				uint32_t cnt = B;
				err = bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, keys, vals, &cnt, &bo);
				total += cnt;
				if (err) {
					if (errno == ENOENT)
						break;
					die("lookup_batch", errno);
				}
				in_tok = out_tok;
			}
			r[rep] = total / (now() - t);
			if (total != N)
				die("lookup_batch count", EINVAL);
		}
		if (want(name))
			emit(name, median(r, REPS), "ops/s");
	}

	/* full dump: whole map in batches of 8192, milliseconds */
	for (rep = 0; want("dump") && rep < REPS; rep++) {
		uint32_t in_tok, out_tok, total = 0;
		t = now();
		for (int first = 1;; first = 0) {
			uint32_t cnt = 8192;
			err = bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, keys + total, vals + total, &cnt, &bo);
			total += cnt;
			if (err) {
				if (errno == ENOENT)
					break;
				die("dump", errno);
			}
			in_tok = out_tok;
		}
		r[rep] = (now() - t) * 1e3;
	}
	if (want("dump"))
		emit("dump", median(r, REPS), "ms");
	close(fd);
	free(keys);
	free(vals);
	return 0;
}
