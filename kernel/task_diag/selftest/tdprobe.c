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
 *   -W      keep the socket open until standard input reaches end of file (after -m): the invoker
 *           decides when, however slow the machine
 *
 * Handing a socket with a dump in progress to another process (SCM_RIGHTS over a unix socket pair):
 *   -X REQ:RD  the requester REQ opens the socket, sends the request and reads -k datagrams; then the
 *              reader RD receives the socket and reads the rest (or -m datagrams in all, then closes it).
 *              REQ and RD are each: root (as invoked), nobody (uid/gid 65534, no groups, dumpable),
 *              ns (pid 1 of a new pid namespace, with -c children of its own there), userns (nobody,
 *              then root of a new user namespace that maps 0 to 65534, with -c children there) or time (a process of a new
 *              time namespace whose boot-time clock is 1,000,000 s ahead).  The requester
 *              stays alive until the reader is done; it starts once the reader is set up.  A line "HANDOFF" separates the two parts;
 *              "REQPID <pid>" and "READERPID <pid>" give the two processes as the invoker sees them.
 *   -k N       datagrams the requester reads itself (default 1; 0: none, the first batch stays queued)
 *   -q         the requester exits as soon as it has handed the socket over (an ns requester's
 *              namespace dies with it) instead of waiting for the reader
 *   -c N       fixture: 2N sleeping tasks forked by the invoker first, alternately root and nobody
 *              ("FIXTURE <pid> <uid>" lines), and N in each ns actor's namespace ("NSFIXTURE <pid>")
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
#include <sched.h>
#include <signal.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
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

/* ---------------------------------------------------------------- handing a socket over */

static int nfix, quick;

static void fail(const char *what)
{
	perror(what);
	exit(2);
}

static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		fail(path);
}

static void drop_to_nobody(void)
{
	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		fail("drop to nobody");
	prctl(PR_SET_DUMPABLE, 1);	/* as a task nobody started itself: readable by nobody */
}

/* a task that sleeps until killed; returns once it runs as who it should be */
static pid_t sleeper(int as_nobody)
{
	int ready[2];
	char c;

	if (pipe(ready))
		fail("pipe");
	pid_t p = fork();
	if (p < 0)
		fail("fork");
	if (p == 0) {
		close(ready[0]);
		if (as_nobody)
			drop_to_nobody();
		/* dies with whoever forked it (set after the drop, which clears it) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (write(ready[1], "R", 1) != 1)
			_exit(1);
		close(ready[1]);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		fail("sleeper did not start");
	close(ready[0]);
	return p;
}

/*
 * Become the actor for ROLE; returns in the process that acts.  For "ns" and "time" the calling process
 * stays outside as the parent of the first task of the new namespace and never returns: it waits for it
 * and exits with its status.
 */
static void become(const char *role)
{
	if (!strcmp(role, "root"))
		return;
	if (!strcmp(role, "nobody")) {
		drop_to_nobody();
		return;
	}
	if (!strcmp(role, "userns")) {
		drop_to_nobody();
		if (unshare(CLONE_NEWUSER))
			fail("unshare(CLONE_NEWUSER)");
		put_file("/proc/self/uid_map", "0 65534 1\n");
		put_file("/proc/self/setgroups", "deny\n");
		put_file("/proc/self/gid_map", "0 65534 1\n");
		/* tasks of the namespace's own (another user namespace's tasks are not readable from it) */
		for (int i = 0; i < nfix; i++)
			printf("NSFIXTURE %d\n", sleeper(0));
		fflush(stdout);
		return;
	}
	if (strcmp(role, "ns") && strcmp(role, "time")) {
		fprintf(stderr, "tdprobe: unknown role %s\n", role);
		exit(2);
	}
	if (!strcmp(role, "time")) {
		if (unshare(CLONE_NEWTIME))
			fail("unshare(CLONE_NEWTIME)");
		put_file("/proc/self/timens_offsets", "boottime 1000000 0\n");
	} else if (unshare(CLONE_NEWPID)) {
		fail("unshare(CLONE_NEWPID)");
	}
	pid_t p = fork();
	if (p < 0)
		fail("fork");
	if (p > 0) {
		int st;
		waitpid(p, &st, 0);
		exit(WIFEXITED(st) ? WEXITSTATUS(st) : 2);
	}
	/* pid 1 of the new namespace: N tasks of its own there, killed with it */
	for (int i = 0; i < nfix && !strcmp(role, "ns"); i++)
		printf("NSFIXTURE %d\n", sleeper(0));
	fflush(stdout);
}

/* the descriptor, with one byte: 'F' the dump goes on, 'E' it ended before the handoff */
static void send_fd(int via, int fd, char c)
{
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	memset(&u, 0, sizeof(u));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(via, &m, 0) != 1)
		fail("sendmsg(SCM_RIGHTS)");
}

static int recv_fd(int via, char *c)
{
	struct iovec iov = { .iov_base = c, .iov_len = 1 };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(via, &m, 0) != 1)
		fail("recvmsg(SCM_RIGHTS)");
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		fail("no descriptor received");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* prints one received datagram (TRUNC first when it was longer than the buffer); "done" or "error" when
 * it carries NLMSG_DONE or NLMSG_ERROR, else NULL */
static const char *print_dgram(unsigned char *buf, int len, int bufsz)
{
	const char *why = NULL;

	if (len > bufsz) {
		printf("TRUNC %d\n", len);
		len = bufsz;
	}
	printf("DGRAM ");
	for (int i = 0; i < len; i++)
		printf("%02x", buf[i]);
	printf("\n");
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)len); nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_type == NLMSG_DONE) why = "done";
		else if (nh->nlmsg_type == NLMSG_ERROR) why = "error";
	}
	return why;
}

/* -W: hold the socket until standard input ends */
#define HOLD_UNTIL_EOF (-1)

/* Keep the socket open: `hold` ms, or until standard input reaches end of file (HOLD_UNTIL_EOF). */
static void hold_open(int hold)
{
	char c[64];

	if (hold == HOLD_UNTIL_EOF) {
		for (;;) {
			ssize_t n = read(0, c, sizeof(c));

			if (n > 0 || (n < 0 && errno == EINTR))
				continue;
			break;
		}
	} else if (hold > 0) {
		usleep(hold * 1000);
	}
}

/* read datagrams until NLMSG_DONE/ERROR, a timeout or (max > 0) `max` of them; prints them; 1 when the dump ended */
static const char *drain(int fd, int bufsz, int max, int *nd)
{
	unsigned char *buf = malloc(bufsz);
	const char *why = NULL;

	while (!why && !(max && *nd >= max)) {
		int len = recv(fd, buf, bufsz, MSG_TRUNC);
		if (len < 0) {
			if (errno == EAGAIN) { why = "timeout"; break; }
			fail("recv");
		}
		(*nd)++;
		why = print_dgram(buf, len, bufsz);
	}
	free(buf);
	fflush(stdout);
	return why;
}

static int open_family(const char *fam, int bufsz, int *id)
{
	int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	if (fd < 0)
		fail("socket");
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("bind");
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*id = resolve(fd, fam, bufsz);
	if (*id < 0) {
		printf("NOFAMILY %d\n", *id);
		exit(3);
	}
	return fd;
}

static int handoff(const char *spec, const char *fam, unsigned char *req, int rlen, int bufsz, int first,
		   int maxd, int hold)
{
	char rq[16], rd[16];
	int sp[2], go[2], st, rc = 0;
	pid_t fix[4096], a, b;
	int nf = 0;

	if (sscanf(spec, "%15[^:]:%15s", rq, rd) != 2) {
		fprintf(stderr, "tdprobe: -X REQ:RD\n");
		return 2;
	}
	for (int i = 0; i < 2 * nfix && nf < 4096; i++) {
		fix[nf] = sleeper(i & 1);
		printf("FIXTURE %d %d\n", fix[nf], i & 1 ? 65534 : 0);
		nf++;
	}
	fflush(stdout);
	/* sp: the descriptor, requester -> reader; go: "reader done", reader -> requester; pid reports */
	/* SEQPACKET: a side that dies early is seen as end of file by the other, nobody waits forever */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, go))
		fail("socketpair");

	a = fork();
	if (a == 0) {	/* requester */
		int id, nd = 0;
		char c;

		close(sp[1]);
		close(go[0]);
		become(rq);
		/* one writer at a time on stdout: wait until the reader has set itself up (and printed) */
		if (recv(go[1], &c, 1, 0) != 1)
			fail("recv(ready)");
		int fd = open_family(fam, bufsz, &id);
		printf("FAMILY %d\n", id);
		req[4] = id & 0xff;
		req[5] = id >> 8;
		if (send(fd, req, rlen, 0) != rlen)
			fail("send");
		const char *why = first > 0 ? drain(fd, bufsz, first, &nd) : NULL;
		if (why) {
			printf("END %s\n", why);	/* ended before the handoff: the test sees no HANDOFF */
			fflush(stdout);
		}
		send_fd(sp[0], fd, why ? 'E' : 'F');
		close(fd);
		if (quick)
			_exit(0);
		if (recv(go[1], &c, 1, 0) != 1)	/* stay (and keep the namespace alive) until the reader is done */
			fail("recv(go)");
		_exit(0);
	}
	b = fork();
	if (b == 0) {	/* reader */
		int nd = 0;
		char c;

		close(sp[0]);
		close(go[1]);
		become(rd);
		fflush(stdout);
		if (send(go[0], "R", 1, 0) != 1)
			fail("send(ready)");
		int fd = recv_fd(sp[1], &c);
		if (c == 'F') {
			printf("HANDOFF\n");
			fflush(stdout);
			const char *why = drain(fd, bufsz, maxd, &nd);
			printf("END %s\n", why ? why : "max");
			fflush(stdout);
		}
		hold_open(hold);
		close(fd);
		/* the requester may be gone already (-q): then nobody waits for this */
		if (send(go[0], "D", 1, MSG_NOSIGNAL) != 1 && !(quick && errno == EPIPE))
			fail("send(go)");
		_exit(0);
	}
	close(sp[0]);
	close(sp[1]);
	close(go[0]);
	close(go[1]);
	waitpid(b, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		rc = 2;
	waitpid(a, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		rc = 2;
	printf("REQPID %d\nREADERPID %d\n", a, b);
	fflush(stdout);
	for (int i = 0; i < nf; i++) {
		kill(fix[i], SIGKILL);
		waitpid(fix[i], NULL, 0);
	}
	return rc;
}

int main(int argc, char **argv)
{
	int bufsz = 16384, delay = 0, maxd = 0, setpid = 0, keeptype = 0, rounds = 1, opt;
	int pidoff = -1, hold = 0, first = 1;
	const char *hand = NULL;
	const char *fam = "TASKDIAG";
	unsigned char req[4096];

	while ((opt = getopt(argc, argv, "b:d:m:PTF:R:p:H:WX:k:c:q")) != -1) {
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
		case 'W': hold = HOLD_UNTIL_EOF; break;
		case 'X': hand = optarg; break;
		case 'k': first = atoi(optarg); break;
		case 'c': nfix = atoi(optarg); break;
		case 'q': quick = 1; break;
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

	if (hand)
		return handoff(hand, fam, req, rlen, bufsz, first, maxd, hold);

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
			why = print_dgram(buf, len, bufsz);
			if (!why && !dump && !ack) why = "single";
			if (!why && maxd && nd >= maxd) why = "max";
		}
		printf("END %s\n", why);
		fflush(stdout);
		if (!strcmp(why, "max") || !strcmp(why, "timeout"))
			break;
	}
	hold_open(hold);
	close(fd);
	return 0;
}
