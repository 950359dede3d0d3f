// SPDX-License-Identifier: GPL-2.0
/*
 * tdprobe: send raw request bytes to the TASKDIAG generic-netlink family and print every reply
 * datagram in hex, one per line.  The tests build the exact bytes and parse the replies themselves.
 *
 *   tdprobe [-b RCVBUF] [-d DELAY_MS] [-m MAX_DGRAMS] [-P] [-T] [-F NAME] HEX
 *
 *   HEX   the whole request (nlmsghdr ...); nlmsg_type (bytes 4..5) is replaced by the resolved family
 *         id unless -T is given
 *   -P    put getpid() into nlmsg_pid, as the 2015 selftest did
 *   -b    recv() buffer size (default 16384)
 *   -d    sleep this many ms before each recv() after the first (lets a tree change during a dump)
 *   -m    stop after this many datagrams without draining (socket closed mid-dump)
 *   -F    family name (default TASKDIAG)
 *   -R N  repeat the whole exchange N times on the same socket (prints "ROUND i" lines)
 *   -p OFF  write getpid() (u32) at byte offset OFF of the request (e.g. 40: task_diag_pid.pid)
 *   -H MS   keep the socket open this many ms before closing it (after -m)
 *
 * Output lines: "FAMILY <id>", "PID <pid>", then "DGRAM <hex>" per datagram, "TRUNC <len>" if a
 * datagram did not fit, "END <reason>" (done, error, single, max, timeout).
 * Exit code: 0 when the exchange ended normally, 2 on usage/transport errors, 3 if the family is missing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>

static int resolve(int fd, const char *name, int bufsz)
{
	struct {
		struct nlmsghdr n;
		struct genlmsghdr g;
		char buf[256];
	} req;
	char resp[8192];
	struct nlattr *na;
	/* receive with the caller's buffer size: the kernel sizes later dump skbs by the largest recv() */
	if (bufsz > (int)sizeof(resp))
		bufsz = sizeof(resp);
	int len, nlen = strlen(name) + 1;

	memset(&req, 0, sizeof(req));
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.n.nlmsg_seq = 1;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	na = (struct nlattr *)req.buf;
	na->nla_type = CTRL_ATTR_FAMILY_NAME;
	na->nla_len = NLA_HDRLEN + nlen;
	memcpy((char *)na + NLA_HDRLEN, name, nlen);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(na->nla_len);
	if (send(fd, &req, req.n.nlmsg_len, 0) < 0)
		return -errno;
	len = recv(fd, resp, bufsz, 0);
	if (len < 0)
		return -errno;
	struct nlmsghdr *nh = (struct nlmsghdr *)resp;
	if (!NLMSG_OK(nh, (unsigned)len))
		return -EPROTO;
	if (nh->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(nh);
		return e->error ? e->error : -EPROTO;
	}
	int rem = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	na = (struct nlattr *)((char *)NLMSG_DATA(nh) + GENL_HDRLEN);
	while (rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN && na->nla_len <= rem) {
		if ((na->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
			return *(unsigned short *)((char *)na + NLA_HDRLEN);
		rem -= NLA_ALIGN(na->nla_len);
		na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
	}
	return -ENOENT;
}

static int unhex(const char *s, unsigned char *out, int max)
{
	int n = 0;
	while (s[0] && s[1]) {
		unsigned v;
		if (s[0] == ' ' || s[0] == ':') { s++; continue; }
		if (sscanf(s, "%2x", &v) != 1 || n >= max)
			return -1;
		out[n++] = v;
		s += 2;
	}
	return n;
}

int main(int argc, char **argv)
{
	int bufsz = 16384, delay = 0, maxd = 0, setpid = 0, keeptype = 0, rounds = 1, opt;
	int pidoff = -1, hold = 0;
	const char *fam = "TASKDIAG";
	unsigned char req[4096];

	while ((opt = getopt(argc, argv, "b:d:m:PTF:R:p:H:")) != -1) {
		switch (opt) {
		case 'b': bufsz = atoi(optarg); break;
		case 'd': delay = atoi(optarg); break;
		case 'm': maxd = atoi(optarg); break;
		case 'P': setpid = 1; break;
		case 'T': keeptype = 1; break;
		case 'F': fam = optarg; break;
		case 'R': rounds = atoi(optarg); break;
		case 'p': pidoff = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		default: return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: tdprobe [-b N] [-d MS] [-m N] [-P] [-T] [-F NAME] [-R N] HEX\n");
		return 2;
	}
	int rlen = unhex(argv[optind], req, sizeof(req));
	if (rlen < 16) {
		fprintf(stderr, "tdprobe: bad request hex\n");
		return 2;
	}

	int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	if (fd < 0) { perror("socket"); return 2; }
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) { perror("bind"); return 2; }
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	int id = resolve(fd, fam, bufsz);
	if (id < 0) {
		printf("NOFAMILY %d\n", id);
		return 3;
	}
	printf("FAMILY %d\nPID %d\n", id, getpid());
	if (!keeptype) {
		req[4] = id & 0xff;
		req[5] = id >> 8;
	}
	if (setpid) {
		unsigned p = getpid();
		memcpy(req + 12, &p, 4);
	}
	if (pidoff >= 0 && pidoff + 4 <= rlen) {
		unsigned p = getpid();
		memcpy(req + pidoff, &p, 4);
	}
	unsigned short flags;
	memcpy(&flags, req + 6, 2);
	int dump = (flags & NLM_F_DUMP) == NLM_F_DUMP, ack = flags & NLM_F_ACK;

	unsigned char *buf = malloc(bufsz);
	for (int r = 0; r < rounds; r++) {
		if (rounds > 1)
			printf("ROUND %d\n", r);
		if (send(fd, req, rlen, 0) != rlen) { perror("send"); return 2; }
		int nd = 0;
		const char *why = NULL;
		while (!why) {
			if (nd && delay)
				usleep(delay * 1000);
			int len = recv(fd, buf, bufsz, MSG_TRUNC);
			if (len < 0) {
				if (errno == EAGAIN) { why = "timeout"; break; }
				perror("recv");
				return 2;
			}
			nd++;
			if (len > bufsz) {
				printf("TRUNC %d\n", len);
				len = bufsz;
			}
			printf("DGRAM ");
			for (int i = 0; i < len; i++)
				printf("%02x", buf[i]);
			printf("\n");
			for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)len);
			     nh = NLMSG_NEXT(nh, len)) {
				if (nh->nlmsg_type == NLMSG_DONE) why = "done";
				else if (nh->nlmsg_type == NLMSG_ERROR) why = "error";
			}
			if (!why && !dump && !ack) why = "single";
			if (!why && maxd && nd >= maxd) why = "max";
		}
		printf("END %s\n", why);
		fflush(stdout);
		if (!strcmp(why, "max") || !strcmp(why, "timeout"))
			break;
	}
	if (hold)
		usleep(hold * 1000);
	close(fd);
	return 0;
}
