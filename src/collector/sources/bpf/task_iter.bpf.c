// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * tdcollect's BPF task iterator (iter/task): one binary record per task (struct td_task, little-endian),
 * written with bpf_seq_write: the 192-byte header, then only the min(ngroups, 32) groups the task has
 * (4 bytes each), so a record is 192..320 bytes. Decoded by src/collector/sources/bpf/record.ts; the two
 * layouts must change together (HEADER_SIZE and RECORD_VERSION there).
 *
 * - CO-RE: the kernel types below are minimal hand-written declarations marked preserve_access_index;
 *   libbpf relocates every field offset against the running kernel's BTF. `__state` (5.14+) vs `state`,
 *   and kernel_cap_t as u64 (6.3+) vs u32[2], are told apart with bpf_core_field_exists.
 * - Filter: cfg.root (a tgid in the reader's pid namespace; 0 = every task) keeps the tasks whose process
 *   is root or a descendant of it, found by walking real_parent up to MAX_DEPTH (MAX_DEPTH_NS from a child pid
 *   namespace) levels from the task's group
 *   leader. A task whose walk hits the bound is emitted with TD_UNDECIDED set; the reader then re-reads in
 *   all-tasks mode and filters in user space. cfg.leaders_only drops non-leader threads.
 * - Pid numbers are translated into the reader's pid namespace (that of the task calling read()), as
 *   pid_nr_ns() does: 0 when a pid has no number there.
 * - State is raw (__state, exit_state); user space decodes it like the kernel's __task_state_index().
 *
 * Build: clang-14 -target bpf -O2 -g -c task_iter.bpf.c -o task_iter.bpf.o   (npm run build:bpf)
 */

typedef unsigned char __u8;
typedef signed int __s32;
typedef unsigned int __u32;
typedef unsigned short __u16;
typedef signed long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

/* ---- minimal kernel types (only the fields read; CO-RE finds the real offsets) ---- */
typedef struct { __u32 val; } kuid_t;
typedef struct { __u32 val; } kgid_t;
typedef struct { __u64 val; } kernel_cap_t; /* 6.3+ */
struct kernel_cap_struct___old { __u32 cap[2]; };
typedef struct { unsigned long sig[1]; } sigset_t;

struct task_struct;
struct pid_namespace { struct task_struct *child_reaper; } PAI;
struct upid { int nr; struct pid_namespace *ns; } PAI;
struct pid { unsigned int level; struct upid numbers[1]; } PAI;

struct group_info { int ngroups; kgid_t gid[0]; } PAI;

struct cred {
	kuid_t uid, suid, euid, fsuid;
	kgid_t gid, sgid, egid, fsgid;
	unsigned int securebits;
	kernel_cap_t cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
	struct group_info *group_info;
} PAI;
struct cred___old {
	struct kernel_cap_struct___old cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
} PAI;

struct signal_struct { struct pid *pids[4]; } PAI;
enum { PIDTYPE_PID = 0, PIDTYPE_TGID = 1, PIDTYPE_PGID = 2, PIDTYPE_SID = 3 };

struct seccomp { int mode; } PAI;
struct robust_list_head;

struct task_struct {
	unsigned int __state;
	unsigned int flags;
	unsigned int ptrace;
	int prio, static_prio;
	unsigned int rt_priority;
	unsigned int policy;
	int exit_state, exit_code;
	unsigned int personality;
	unsigned long atomic_flags;
	int pid, tgid;
	struct task_struct *real_parent, *parent, *group_leader;
	struct pid *thread_pid;
	__u64 start_boottime;
	const struct cred *real_cred;
	char comm[16];
	struct signal_struct *signal;
	sigset_t blocked;
	struct seccomp seccomp;
	struct robust_list_head *robust_list;
} PAI;
struct task_struct___old { long state; } PAI; /* before 5.14 */

struct seq_file;
struct bpf_iter_meta { struct seq_file *seq; __u64 session_id; __u64 seq_num; } PAI;
struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; } PAI;

/* ---- the record ---- */
#define TD_MAX_GROUPS 32
#define TD_NO_NEW_PRIVS 0x1u /* bits: prctl(PR_SET_NO_NEW_PRIVS) is set */
#define TD_UNDECIDED 0x2u    /* bits: ancestor walk hit MAX_DEPTH; subtree membership unknown */
#define TD_NO_SECCOMP 0x4u   /* bits: kernel without task_struct.seccomp */
#define MAX_DEPTH 64     /* ancestor walk bound, reader in the initial pid namespace */
#define MAX_DEPTH_NS 16  /* the same, reader in a child pid namespace */
#define MAX_PID_NS_LEVEL 32
#define NSEC_PER_TICK 10000000ULL /* NSEC_PER_SEC / USER_HZ (100), as nsec_to_clock_t() */

struct td_task {
	__u32 tgid, pid, ppid, tpid, sid, pgid;          /*   0 reader's pid namespace */
	__u32 state, exit_state, flags, ptrace;          /*  24 raw __state, exit_state, PF_*, PT_* */
	__u32 uid, euid, suid, fsuid, gid, egid, sgid, fsgid; /* 40 kernel (init userns) ids */
	__u32 securebits, ngroups, personality;          /*  72 ngroups = the true count */
	__s32 exit_code, prio, static_prio;              /*  84 */
	__u32 rt_priority, policy, seccomp, bits;        /*  96 */
	__u64 cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb; /* 112 */
	__u64 blocked, start_time, robust_list;          /* 152 start_time in clock ticks */
	char comm[16];                                   /* 176 */
	__u32 groups[TD_MAX_GROUPS];                     /* 192 first min(ngroups, 32); only these are written */
};                                                   /* 320 at most */
#define TD_HEADER_SIZE 192
_Static_assert(sizeof(struct td_task) == 320, "record layout");
_Static_assert(__builtin_offsetof(struct td_task, groups) == TD_HEADER_SIZE, "record header");

/* Written by user space through the mmap'ed .bss map; never written here. */
struct { __u32 root; __u32 leaders_only; } cfg;

static __always_inline __u32 nr_ns(struct pid *pid, __u32 level, struct pid_namespace *ns)
{
	struct upid up;
	__u32 nr;

	if (!pid)
		return 0;
	if (level == 0) {
		nr = pid->numbers[0].nr;
		/* keep clang from merging this BTF-pointer load with the stack load below: the verifier
		 * rejects one instruction used with two pointer types */
		barrier_var(nr);
		return nr;
	}
	if (pid->level < level)
		return 0;
	up.nr = 0;
	up.ns = 0;
	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & (MAX_PID_NS_LEVEL - 1)]);
	nr = up.nr;
	barrier_var(nr);
	return up.ns == ns ? nr : 0;
}

/*
 * 1 in the subtree, 0 not, -1 undecided. The verifier walks every step of a bounded loop, and a step that
 * translates pids (nr_ns) costs it about ten times one that does not: from the initial namespace, where a
 * leader's number is its tgid, the walk compares tgids and goes MAX_DEPTH levels; from a child namespace it
 * translates and stops after MAX_DEPTH_NS (undecided tasks are then filtered in user space).
 */
static __always_inline int in_subtree(struct task_struct *t, __u32 root, __u32 level, struct pid_namespace *ns)
{
	struct task_struct *p = t->group_leader;
	int i;

	if (level == 0) {
		/* the idle task (tgid 0) ends the walk: its real_parent is itself, whose tgid is 0 too */
		for (i = 0; i < MAX_DEPTH; i++) {
			__u32 nr = (__u32)p->tgid;

			if (nr == root)
				return 1;
			if (nr == 0)
				return 0;
			p = p->real_parent->group_leader;
		}
		return -1;
	}
	for (i = 0; i < MAX_DEPTH_NS; i++) {
		__u32 nr = nr_ns(p->thread_pid, level, ns);

		if (nr == root)
			return 1;
		if (nr == 0) /* left the reader's namespace */
			return 0;
		p = p->real_parent->group_leader;
	}
	return -1;
}

/* Write the record of task t if it is in the reader's namespace; bits start the record's bits. */
static __always_inline void emit(struct seq_file *seq, struct task_struct *t, __u32 level, struct pid_namespace *ns,
				 __u32 bits)
{
	const struct cred *c;
	struct group_info *gi;
	struct td_task r;
	__u32 n = 0, len;

	__builtin_memset(&r, 0, sizeof(r));
	r.bits = bits;
	r.pid = nr_ns(t->thread_pid, level, ns);
	if (!r.pid) /* not visible from the reader's namespace */
		return;
	r.tgid = nr_ns(t->group_leader->thread_pid, level, ns);
	if (t->thread_pid)
		r.ppid = nr_ns(t->real_parent->group_leader->thread_pid, level, ns);
	r.ptrace = t->ptrace;
	if (r.ptrace)
		r.tpid = nr_ns(t->parent->thread_pid, level, ns);
	r.pgid = nr_ns(t->signal->pids[PIDTYPE_PGID], level, ns);
	r.sid = nr_ns(t->signal->pids[PIDTYPE_SID], level, ns);

	if (bpf_core_field_exists(t->__state))
		r.state = t->__state;
	else
		r.state = (__u32)((struct task_struct___old *)t)->state;
	r.exit_state = t->exit_state;
	r.flags = t->flags;
	r.personality = t->personality;
	r.exit_code = t->exit_code;
	r.prio = t->prio;
	r.static_prio = t->static_prio;
	r.rt_priority = t->rt_priority;
	r.policy = t->policy;
	if (bpf_core_field_exists(t->seccomp))
		r.seccomp = t->seccomp.mode;
	else
		r.bits |= TD_NO_SECCOMP;
	if (t->atomic_flags & 1) /* PFA_NO_NEW_PRIVS */
		r.bits |= TD_NO_NEW_PRIVS;
	r.blocked = t->blocked.sig[0];
	r.start_time = t->start_boottime / NSEC_PER_TICK;
	r.robust_list = (__u64)t->robust_list;
	bpf_probe_read_kernel(r.comm, sizeof(r.comm), t->comm);

	c = t->real_cred;
	r.uid = c->uid.val;
	r.euid = c->euid.val;
	r.suid = c->suid.val;
	r.fsuid = c->fsuid.val;
	r.gid = c->gid.val;
	r.egid = c->egid.val;
	r.sgid = c->sgid.val;
	r.fsgid = c->fsgid.val;
	r.securebits = c->securebits;
	if (bpf_core_field_exists(c->cap_inheritable.val)) {
		r.cap_inh = c->cap_inheritable.val;
		r.cap_prm = c->cap_permitted.val;
		r.cap_eff = c->cap_effective.val;
		r.cap_bnd = c->cap_bset.val;
		r.cap_amb = c->cap_ambient.val;
	} else {
		const struct cred___old *o = (const void *)c;
		r.cap_inh = o->cap_inheritable.cap[0] | ((__u64)o->cap_inheritable.cap[1] << 32);
		r.cap_prm = o->cap_permitted.cap[0] | ((__u64)o->cap_permitted.cap[1] << 32);
		r.cap_eff = o->cap_effective.cap[0] | ((__u64)o->cap_effective.cap[1] << 32);
		r.cap_bnd = o->cap_bset.cap[0] | ((__u64)o->cap_bset.cap[1] << 32);
		r.cap_amb = o->cap_ambient.cap[0] | ((__u64)o->cap_ambient.cap[1] << 32);
	}
	gi = c->group_info;
	if (gi) {
		n = (__u32)gi->ngroups;
		r.ngroups = n;
		if (n > TD_MAX_GROUPS)
			n = TD_MAX_GROUPS;
		barrier_var(n);
		if (n)
			bpf_probe_read_kernel(r.groups, (n & (2 * TD_MAX_GROUPS - 1)) * sizeof(__u32) > sizeof(r.groups)
				? sizeof(r.groups) : (n & (2 * TD_MAX_GROUPS - 1)) * sizeof(__u32), gi->gid);
	}

	len = TD_HEADER_SIZE + n * sizeof(__u32);
	if (len > sizeof(r)) /* keeps the bound visible to the verifier */
		len = sizeof(r);
	bpf_seq_write(seq, &r, len);
}

/*
 * The task iterator of some kernels (6.18 among them) never visits pid 1 of the initial pid namespace. So
 * when the reader is in that namespace and the first task visited is not pid 1, pid 1 (the namespace's
 * child_reaper) is emitted before it. Where the iterator does visit pid 1, the first task is pid 1 itself and
 * nothing is added. (In other pid namespaces the iterator visits their pid 1.)
 */
static __always_inline void emit_init(struct seq_file *seq, struct task_struct *first, struct pid *cp)
{
	struct task_struct *init;

	if (first->pid == 1 || (cfg.root && cfg.root != 1))
		return;
	init = cp->numbers[0].ns->child_reaper;
	if (init && init->pid == 1)
		emit(seq, init, 0, 0, 0);
}

SEC("iter/task")
int td_task_iter(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct task_struct *cur;
	struct pid *cp;
	struct pid_namespace *ns = 0;
	__u32 level, root, bits = 0;

	if (!t)
		return 0;

	cur = bpf_get_current_task_btf();
	cp = cur->thread_pid;
	level = cp->level;
	if (level >= MAX_PID_NS_LEVEL)
		return 0;
	if (level) {
		struct upid up = {};
		bpf_probe_read_kernel(&up, sizeof(up), &cp->numbers[level & (MAX_PID_NS_LEVEL - 1)]);
		ns = up.ns;
	}

	if (ctx->meta->seq_num == 0 && level == 0)
		emit_init(seq, t, cp);
	if (cfg.leaders_only && t->pid != t->tgid)
		return 0;
	root = cfg.root;
	if (root) {
		int in = in_subtree(t, root, level, ns);

		if (in == 0)
			return 0;
		if (in < 0)
			bits = TD_UNDECIDED;
	}
	emit(seq, t, level, ns, bits);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
