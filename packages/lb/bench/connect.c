// Benchmark client: sequential TCP connect + request + read the answer line + close against HOST:PORT for MS
// milliseconds; prints "<connections> <errors> <seconds> <p50 us> <p99 us> <CPU us per connection>". The CPU
// time is this process's (CLOCK_PROCESS_CPUTIME_ID, user + system, including the softirq work the kernel
// does in its context): unlike the rate it does not include time spent waiting for a CPU on a loaded machine.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	size_t cap = 1 << 20, n = 0, errors = 0;
	double *lat = malloc(cap * sizeof(double));
	double start, end, t0, cpu0;
	char buf[64];

	if (argc != 4 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		return 2;
	sa.sin_port = htons(atoi(argv[2]));
	cpu0 = cpu();
	start = now();
	end = start + atoi(argv[3]) / 1000.0;
	while ((t0 = now()) < end && n < cap) {
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(s, "hi\n", 3) != 3) {
			errors++;
			if (s >= 0)
				close(s);
			continue;
		}
		/* the answer is one line; the server resets the connection after it (no TIME_WAIT) */
		for (ssize_t r; (r = read(s, buf, sizeof(buf))) > 0;)
			if (buf[r - 1] == '\n')
				break;
		close(s);
		lat[n++] = now() - t0;
	}
	double secs = now() - start, used = cpu() - cpu0;

	qsort(lat, n, sizeof(double), cmp);
	printf("%zu %zu %.3f %.1f %.1f %.2f\n", n, errors, secs, n ? lat[n / 2] * 1e6 : 0,
	       n ? lat[(n * 99) / 100] * 1e6 : 0, n ? used / n * 1e6 : 0);
	return 0;
}
