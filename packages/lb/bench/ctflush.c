// Bench helper: empties the conntrack table of the network namespace it runs in (ctnetlink
// IPCTNL_MSG_CT_DELETE with no tuple: every IPv4 entry), then prints how many entries the namespace
// had before ("<count before>"). The bench runs it in every namespace on the path before each run, so no
// side starts with entries another side left (a baseline entry whose reply tuple, after DNAT, is the
// same as a later direct connection's would make that connection's SYN fail conntrack confirmation).
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	struct {
		struct nlmsghdr nh;
		struct nfgenmsg nf;
	} req = {
		.nh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
			.nlmsg_seq = 1,
		},
		.nf = { .nfgen_family = AF_INET, .version = NFNETLINK_V0 },
	};
	char buf[4096];
	long before = -1;
	FILE *f = fopen("/proc/sys/net/netfilter/nf_conntrack_count", "r");
	int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);

	if (f) {
		if (fscanf(f, "%ld", &before) != 1)
			before = -1;
		fclose(f);
	}
	if (s < 0 || send(s, &req, sizeof(req), 0) != sizeof(req)) {
		perror("ctflush");
		return 1;
	}
	ssize_t n = recv(s, buf, sizeof(buf), 0);
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;

	if (n < (ssize_t)sizeof(*nh) || nh->nlmsg_type != NLMSG_ERROR) {
		fprintf(stderr, "ctflush: no answer\n");
		return 1;
	}
	int err = ((struct nlmsgerr *)NLMSG_DATA(nh))->error;

	if (err) {
		fprintf(stderr, "ctflush: %s\n", strerror(-err));
		return 1;
	}
	printf("%ld\n", before);
	close(s);
	return 0;
}
