/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * task_diag v1 — generic-netlink family "TASKDIAG", version 1.
 *
 * Wire-compatible with the February 2015 RFC ("kernel: add a netlink interface to get information
 * about processes"), plus extensions that only use numbers v1 leaves free:
 *   - dump strategies 2 (THREADS) and 3 (SUBTREE),
 *   - show_flags bit 1 requesting attribute 65 (TASK_DIAG_EXT).
 * A v1 provider answers strategy 2/3 with -EINVAL and ignores show_flags bit 1 (no attribute 65),
 * so clients can detect both extensions at run time.
 *
 * All structures are little/host-endian, naturally aligned, explicitly padded, and every padding
 * byte is zero in replies.  This header is usable from both the kernel module and user space.
 */
#ifndef _TASK_DIAG_H
#define _TASK_DIAG_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <linux/types.h>
#endif

#define TASKDIAG_GENL_NAME	"TASKDIAG"
#define TASKDIAG_GENL_VERSION	0x1

/* Commands */
enum {
	TASKDIAG_CMD_UNSPEC = 0,	/* reserved */
	TASKDIAG_CMD_GET = 1,		/* doit (single task) and dumpit (NLM_F_DUMP) */
	__TASKDIAG_CMD_MAX,
};

/* Request attributes */
enum {
	TASKDIAG_CMD_ATTR_UNSPEC = 0,
	TASKDIAG_CMD_ATTR_GET = 1,	/* struct task_diag_pid (>= 24 bytes; longer is accepted) */
	__TASKDIAG_CMD_ATTR_MAX,
};

/*
 * Reply attributes.  Ids < 64 are optional and requested by show_flags bit (1 << id);
 * ids >= 64 are "other" attributes.
 */
enum {
	TASK_DIAG_CRED = 0,		/* struct task_diag_creds, if show_flags & TASK_DIAG_SHOW_CRED */
	/* id 1 is deliberately unused: show_flags bit 1 selects TASK_DIAG_EXT (65), see below */
	TASK_DIAG_MSG = 64,		/* struct task_diag_msg, always, first */
	TASK_DIAG_EXT = 65,		/* extension: struct task_diag_ext + __u32 groups[], if TASK_DIAG_SHOW_EXT */
};

#define TASK_DIAG_SHOW_CRED	(1ULL << TASK_DIAG_CRED)	/* 0x1 */
#define TASK_DIAG_SHOW_EXT	(1ULL << 1)			/* 0x2, extension */

/* Dump strategies (struct task_diag_pid.dump_stratagy) */
#define TASK_DIAG_DUMP_ALL	0	/* v1: thread-group leaders, ascending tgid; pid ignored */
#define TASK_DIAG_DUMP_CHILDREN	1	/* v1: direct children of the task pid (may be any thread) */
#define TASK_DIAG_DUMP_THREADS	2	/* extension: all threads of pid's thread group, leader first */
#define TASK_DIAG_DUMP_SUBTREE	3	/* extension: pid's process and every descendant process with
					 * all their threads, depth first (see docs) */

#define TASK_DIAG_COMM_LEN	16

/* Task states (value of task_diag_msg.state), as task_state_index() / /proc/PID/stat */
enum {
	TASK_DIAG_RUNNING,		/* 0 R */
	TASK_DIAG_INTERRUPTIBLE,	/* 1 S */
	TASK_DIAG_UNINTERRUPTIBLE,	/* 2 D */
	TASK_DIAG_STOPPED,		/* 3 T */
	TASK_DIAG_TRACE_STOP,		/* 4 t */
	TASK_DIAG_DEAD,			/* 5 X */
	TASK_DIAG_ZOMBIE,		/* 6 Z */
	TASK_DIAG_PARKED,		/* 7 P */
	TASK_DIAG_IDLE,			/* 8 I */
};

/* Request payload: 24 bytes on x86_64 (offsets 0, 8, 16; 4 padding bytes at 20, send zero) */
struct task_diag_pid {
	__u64	show_flags;
	__u64	dump_stratagy;		/* spelling of the 2015 RFC */
	__u32	pid;
};

/* attribute 64: 44 bytes */
struct task_diag_msg {
	__u32	tgid;			/*  0 */
	__u32	pid;			/*  4 */
	__u32	ppid;			/*  8  tgid of real_parent, 0 if !pid_alive or outside the ns */
	__u32	tpid;			/* 12  ptrace tracer's pid, 0 if not traced */
	__u32	sid;			/* 16 */
	__u32	pgid;			/* 20 */
	__u8	state;			/* 24 */
	char	comm[TASK_DIAG_COMM_LEN];	/* 25 */
	/* 41: 3 bytes padding, zeroed */
};

struct task_diag_caps {
	__u32 cap[2];			/* [0] = bits 0..31, [1] = bits 32..63 */
};

/* attribute 0: 64 bytes */
struct task_diag_creds {
	struct task_diag_caps cap_inheritable;	/*  0 */
	struct task_diag_caps cap_permitted;	/*  8 */
	struct task_diag_caps cap_effective;	/* 16 */
	struct task_diag_caps cap_bset;		/* 24 */
	__u32 uid;				/* 32 */
	__u32 euid;				/* 36 */
	__u32 suid;				/* 40 */
	__u32 fsuid;				/* 44 */
	__u32 gid;				/* 48 */
	__u32 egid;				/* 52 */
	__u32 sgid;				/* 56 */
	__u32 fsgid;				/* 60 */
};

/* task_diag_ext.ext_flags */
#define TASK_DIAG_EXT_GROUPS_TRUNCATED	0x1	/* ngroups_sent < ngroups */
#define TASK_DIAG_EXT_MAX_GROUPS	512	/* at most this many groups are sent */

/*
 * attribute 65 (extension): 88 fixed bytes followed by ngroups_sent __u32 group ids
 * (attribute payload length = 88 + 4 * ngroups_sent).  Clients must accept a longer fixed part
 * in the future: the groups start at offset TASK_DIAG_EXT_GROUPS_OFF of THIS layout only when
 * fixed_len == 88; always use fixed_len.
 */
struct task_diag_ext {
	__u64	start_time_ns;		/*  0  task->start_boottime, ns, time-namespace adjusted */
	__u64	start_time;		/*  8  same in clock ticks (USER_HZ), = /proc/PID/stat field 22 */
	__u64	robust_list;		/* 16  robust futex list head (get_robust_list), 0 if none */
	struct task_diag_caps cap_ambient;	/* 24 */
	__u32	sigblk[2];		/* 32  blocked signals, [0] = signals 1..32, [1] = 33..64 */
	__u32	flags;			/* 40  PF_* (stat field 9) */
	__u32	personality;		/* 44 */
	__u32	securebits;		/* 48  cred->securebits */
	__u32	seccomp;		/* 52  0 disabled, 1 strict, 2 filter */
	__s32	nice;			/* 56  -20..19 */
	__u32	policy;			/* 60  SCHED_* (stat field 41) */
	__s32	prio;			/* 64  stat field 18 (task->prio - 100) */
	__u32	rt_priority;		/* 68  stat field 40 */
	__u32	exit_code;		/* 72  stat field 52 */
	__u8	no_new_privs;		/* 76  0/1 */
	__u8	ext_flags;		/* 77  TASK_DIAG_EXT_* */
	__u16	fixed_len;		/* 78  = sizeof(struct task_diag_ext) = 88 */
	__u32	ngroups;		/* 80  supplementary groups in the task's creds */
	__u32	ngroups_sent;		/* 84  group ids that follow (min(ngroups, 512)) */
	/* 88: __u32 groups[ngroups_sent], from_kgid_munged() into the reader's user ns */
};

#define TASK_DIAG_EXT_GROUPS_OFF	88

#endif /* _TASK_DIAG_H */
