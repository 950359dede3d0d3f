// SPDX-License-Identifier: GPL-2.0
/*
 * task_diag_v1: the 2015 RFC's selftests (task_diag.c, task_diag_all.c) re-done from their description:
 * same request bytes (genl version 1, nlmsg_seq 0, nlmsg_pid = getpid(), nla_len = 24 + 1 + 4 = 29,
 * nlmsg_len = 20 + NLMSG_ALIGN(29) = 52), same 4096-byte receive buffer, same parsing loop.
 *
 *   task_diag_v1 one [PID]          single task (doit), show_flags = SHOW_CRED
 *   task_diag_v1 all [-q]           dump ALL, show_flags 0
 *   task_diag_v1 children PID [-q]  dump CHILDREN of PID
 *   task_diag_v1 strategy N PID     dump with strategy N, show_flags = SHOW_CRED
 *
 * Prints one line per task: "task tgid=.. pid=.. ppid=.. tpid=.. sid=.. pgid=.. state=.. comm=.."
 * (+ " uid=.. euid=.. ... capeff=%08x%08x" with creds), then "tasks: N" or "error: -ERRNO (text)".
 * Exit 0 on success, 1 when the kernel reported an error, 2 on transport failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/genetlink.h>
#include "../task_diag.h"

#define GENLMSG_DATA(glh) ((void *)((char *)NLMSG_DATA(glh) + GENL_HDRLEN))
#define NLA_DATA(na) ((void *)((char *)(na) + NLA_HDRLEN))

static int quiet;

static int get_family_id(int sd)
{
	struct { struct nlmsghdr n; struct genlmsghdr g; char buf[256]; } ans, req = {0};
	struct nlattr *na;

	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.n.nlmsg_pid = getpid();
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 0x1;
	na = (struct nlattr *)GENLMSG_DATA(&req);
	na->nla_type = CTRL_ATTR_FAMILY_NAME;
	na->nla_len = strlen(TASKDIAG_GENL_NAME) + 1 + NLA_HDRLEN;
	strcpy(NLA_DATA(na), TASKDIAG_GENL_NAME);
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN) + NLMSG_ALIGN(na->nla_len);
	if (send(sd, &req, req.n.nlmsg_len, 0) < 0)
		return -1;
	int rep_len = recv(sd, &ans, sizeof(ans), 0);
	if (rep_len < 0 || ans.n.nlmsg_type == NLMSG_ERROR || !NLMSG_OK(&ans.n, (unsigned)rep_len))
		return -1;
	/* walk the attributes by type (the 2015 code assumed the id is the second one) */
	int rem = ans.n.nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	na = (struct nlattr *)GENLMSG_DATA(&ans);
	while (rem >= NLA_HDRLEN) {
		if (na->nla_type == CTRL_ATTR_FAMILY_ID)
			return *(__u16 *)NLA_DATA(na);
		rem -= NLA_ALIGN(na->nla_len);
		na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
	}
	return -1;
}

static int send_cmd(int sd, __u16 nlmsg_type, __u16 flags, __u8 cmd, __u16 nla_type, void *data, int len)
{
	struct { struct nlmsghdr n; struct genlmsghdr g; char buf[1024]; } msg = {0};
	struct nlattr *na;

	msg.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	msg.n.nlmsg_type = nlmsg_type;
	msg.n.nlmsg_flags = NLM_F_REQUEST | flags;
	msg.n.nlmsg_seq = 0;
	msg.n.nlmsg_pid = getpid();
	msg.g.cmd = cmd;
	msg.g.version = 0x1;
	na = (struct nlattr *)GENLMSG_DATA(&msg);
	na->nla_type = nla_type;
	na->nla_len = len + 1 + NLA_HDRLEN;	/* the quirk inherited from getdelays.c */
	memcpy(NLA_DATA(na), data, len);
	msg.n.nlmsg_len += NLMSG_ALIGN(na->nla_len);
	return send(sd, &msg, msg.n.nlmsg_len, 0) == (ssize_t)msg.n.nlmsg_len ? 0 : -1;
}

static int ntasks;

static void show_task(struct nlmsghdr *hdr)
{
	int rem = hdr->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	struct nlattr *na = GENLMSG_DATA(hdr);
	char line[512];
	int o = 0;

	ntasks++;
	while (rem >= NLA_HDRLEN && na->nla_len >= NLA_HDRLEN) {
		if (na->nla_type == TASK_DIAG_MSG) {
			struct task_diag_msg *m = NLA_DATA(na);
			o += snprintf(line + o, sizeof(line) - o,
				"task tgid=%u pid=%u ppid=%u tpid=%u sid=%u pgid=%u state=%u comm=%.16s",
				m->tgid, m->pid, m->ppid, m->tpid, m->sid, m->pgid, m->state, m->comm);
		} else if (na->nla_type == TASK_DIAG_CRED) {
			struct task_diag_creds *c = NLA_DATA(na);
			o += snprintf(line + o, sizeof(line) - o,
				" uid=%u euid=%u suid=%u fsuid=%u gid=%u egid=%u sgid=%u fsgid=%u"
				" capinh=%08x%08x capprm=%08x%08x capeff=%08x%08x capbnd=%08x%08x",
				c->uid, c->euid, c->suid, c->fsuid, c->gid, c->egid, c->sgid, c->fsgid,
				c->cap_inheritable.cap[1], c->cap_inheritable.cap[0],
				c->cap_permitted.cap[1], c->cap_permitted.cap[0],
				c->cap_effective.cap[1], c->cap_effective.cap[0],
				c->cap_bset.cap[1], c->cap_bset.cap[0]);
		}
		rem -= NLA_ALIGN(na->nla_len);
		na = (struct nlattr *)((char *)na + NLA_ALIGN(na->nla_len));
	}
	if (!quiet)
		printf("%s\n", line);
}

/* 0 = finished, 1 = need more data, <0 = -errno from the kernel */
static int nlmsg_receive(void *buf, int len)
{
	struct nlmsghdr *hdr;

	for (hdr = buf; NLMSG_OK(hdr, (unsigned)len); hdr = NLMSG_NEXT(hdr, len)) {
		if (hdr->nlmsg_type == NLMSG_DONE) {
			int *ret = NLMSG_DATA(hdr);
			return *ret < 0 ? *ret : 0;
		}
		if (hdr->nlmsg_type == NLMSG_ERROR) {
			struct nlmsgerr *err = NLMSG_DATA(hdr);
			if (hdr->nlmsg_len - sizeof(*hdr) < sizeof(struct nlmsgerr))
				return -EPROTO;
			return err->error;
		}
		show_task(hdr);
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct task_diag_pid req = {0};
	char buf[4096];
	int dump = 1, opt;

	if (argc < 2) {
		fprintf(stderr, "usage: task_diag_v1 one [PID] | all | children PID | strategy N PID [-q]\n");
		return 2;
	}
	const char *mode = argv[1];
	if (!strcmp(mode, "one")) {
		dump = 0;
		req.show_flags = TASK_DIAG_SHOW_CRED;
		req.pid = argc > 2 && argv[2][0] != '-' ? atoi(argv[2]) : getpid();
	} else if (!strcmp(mode, "all")) {
		req.dump_stratagy = TASK_DIAG_DUMP_ALL;
		req.pid = 1;
	} else if (!strcmp(mode, "children") && argc > 2) {
		req.dump_stratagy = TASK_DIAG_DUMP_CHILDREN;
		req.pid = atoi(argv[2]);
	} else if (!strcmp(mode, "strategy") && argc > 3) {
		req.show_flags = TASK_DIAG_SHOW_CRED;
		req.dump_stratagy = strtoull(argv[2], NULL, 0);
		req.pid = atoi(argv[3]);
	} else {
		fprintf(stderr, "task_diag_v1: bad arguments\n");
		return 2;
	}
	optind = 2;
	while ((opt = getopt(argc, argv, "q")) != -1)
		if (opt == 'q')
			quiet = 1;

	int nl_sd = socket(PF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	if (nl_sd < 0 || bind(nl_sd, (struct sockaddr *)&local, sizeof(local)) < 0) {
		perror("socket");
		return 2;
	}
	int id = get_family_id(nl_sd);
	if (id < 0) {
		fprintf(stderr, "task_diag_v1: family TASKDIAG not found\n");
		return 2;
	}
	if (send_cmd(nl_sd, id, dump ? NLM_F_DUMP : 0, TASKDIAG_CMD_GET, TASKDIAG_CMD_ATTR_GET,
		     &req, sizeof(req))) {
		perror("send");
		return 2;
	}
	for (;;) {
		int size = recv(nl_sd, buf, sizeof(buf), 0);
		if (size < 0) {
			perror("recv");
			return 2;
		}
		int ret = nlmsg_receive(buf, size);
		if (ret < 0) {
			printf("error: %d (%s)\n", ret, strerror(-ret));
			return 1;
		}
		if (ret == 0 || !dump)
			break;
	}
	printf("tasks: %d\n", ntasks);
	return 0;
}
