// Benchmark server: accepts on 0.0.0.0:PORT, reads a request, answers "ok\n" and closes with a reset
// (SO_LINGER 0, set once on the listener: accepted sockets inherit it), so no connection leaves
// TIME_WAIT behind on either side and the client's ports are reused freely. TCP_DEFER_ACCEPT wakes
// the server once per connection, when the request is there, instead of once for the handshake and
// once for the data. Prints "ready" once listening.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[64];

	if (argc != 2)
		return 2;
	sa.sin_port = htons(atoi(argv[1]));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1024) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);

		if (c < 0)
			continue;
		if (read(c, buf, sizeof(buf)) > 0 && write(c, "ok\n", 3) != 3) {
		}
		close(c);
	}
}
