// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * tdcollect's BPF task iterator (iter/task): one binary record per task (struct td_task, little-endian),
 * written with bpf_seq_write: the 232-byte header, then only the min(ngroups, 32) groups the task has
 * (4 bytes each), so a record is 232..360 bytes. Decoded by src/collector/sources/bpf/record.ts; the two
 * layouts must change together (HEADER_SIZE and RECORD_VERSION there).
 *
 * - CO-RE: the kernel types below are minimal hand-written declarations marked preserve_access_index;
 *   libbpf relocates every field offset against the running kernel's BTF. `__state` (5.14+) vs `state`,
 *   and kernel_cap_t as u64 (6.3+) vs u32[2], are told apart with bpf_core_field_exists.
 * - Two programs: td_task_iter filters in the kernel, td_task_iter_all does not (kernels without bpf_loop,
 *   5.11-5.16; user space then cuts the subtree out itself, as it does for a pinned iterator). User space
 *   loads one of them (bpf_program__set_autoload).
 * - Filter (td_task_iter): cfg.root (a tgid in the reader's pid namespace; 0 = every task) keeps the tasks
 *   whose process is root or a descendant of it, found by walking real_parent up to MAX_DEPTH levels from the
 *   task's group leader, one bpf_loop step per level. A task whose walk hits the bound is emitted with
 *   TD_UNDECIDED set; the reader then re-reads in all-tasks mode and filters in user space.
 *   cfg.leaders_only drops non-leader threads (both programs).
 * - Cheap to verify. On recent kernels every load of a pointer member through a BTF pointer costs the
 *   verifier one or more linear searches of the kernel's BTF by name (about 1 ms each), and every path and
 *   every unrolled loop step pays them again. So pointers are followed with bpf_probe_read_kernel (the
 *   verifier sees a scalar), scalar members of the visited task are loaded directly, the ancestor walk is a
 *   bpf_loop callback (verified once, not once per level), and the record is built by one inlined emit()
 *   per program plus one probe-read-only copy for pid 1. Loading (verification included) takes a few ms.
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
#define BPF_MAP_TYPE_PERCPU_ARRAY 6 /* uapi linux/bpf.h */

/* ---- minimal kernel types (only the fields read; CO-RE finds the real offsets) ---- */
typedef struct { __u32 val; } kuid_t;
typedef struct { __u32 val; } kgid_t;
typedef struct { __u64 val; } kernel_cap_t; /* 6.3+ */
struct kernel_cap_struct___old { __u32 cap[2]; };
typedef struct { unsigned long sig[1]; } sigset_t;

struct task_struct;
/* namespaces: each embeds a struct ns_common whose inum is what /proc/PID/ns/KIND shows */
struct ns_common { unsigned int inum; } PAI;
struct pid_namespace { struct task_struct *child_reaper; struct ns_common ns; } PAI;
struct uts_namespace { struct ns_common ns; } PAI;
struct ipc_namespace { struct ns_common ns; } PAI;
struct mnt_namespace { struct ns_common ns; } PAI;
struct net { struct ns_common ns; } PAI;
struct cgroup_namespace { struct ns_common ns; } PAI;
struct time_namespace { struct ns_common ns; } PAI;
struct user_namespace { struct ns_common ns; } PAI;
struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct net *net_ns;
	struct time_namespace *time_ns;
	struct cgroup_namespace *cgroup_ns;
} PAI;
struct upid { int nr; struct pid_namespace *ns; } PAI;
struct pid { unsigned int level; struct upid numbers[1]; } PAI;

struct group_info { int ngroups; kgid_t gid[0]; } PAI;

struct cred {
	kuid_t uid, suid, euid, fsuid;
	kgid_t gid, sgid, egid, fsgid;
	unsigned int securebits;
	kernel_cap_t cap_inheritable, cap_permitted, cap_effective, cap_bset, cap_ambient;
	struct user_namespace *user_ns;
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
	struct nsproxy *nsproxy;
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
#define MAX_DEPTH 64     /* ancestor walk bound (bpf_loop steps) */
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
	__u32 ns_depth, ns_pid;                          /* 192 pid namespace levels below the reader's; pid in its own */
	__u32 ns[8];                                     /* 200 inums: pid mnt net ipc uts user cgroup time; 0 = none */
	__u32 groups[TD_MAX_GROUPS];                     /* 232 first min(ngroups, 32); only these are written */
};                                                   /* 360 at most */
#define TD_HEADER_SIZE 232
_Static_assert(sizeof(struct td_task) == 360, "record layout");
_Static_assert(__builtin_offsetof(struct td_task, groups) == TD_HEADER_SIZE, "record header");

/* Written by user space through the mmap'ed .bss map; never written here. */
struct { __u32 root; __u32 leaders_only; } cfg;

/* The record is built here, not on the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct td_task);
} scratch SEC(".maps");

/* Read a kernel value through a pointer without giving the verifier a BTF pointer to check: the result is a
 * scalar. src is an lvalue expression whose address CO-RE relocates (the types are preserve_access_index). */
#define KREAD(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), &(src))
/* a kernel pointer held as a scalar */
typedef __u64 kptr_t;
#define AS(type, p) ((type *)(unsigned long)(p))

/* The number of the struct pid at pid in the pid namespace ns at depth level (the reader's), as pid_nr_ns():
 * 0 when pid is null or has no number there. */
static __always_inline __u32 nr_ns(kptr_t pid, __u32 level, kptr_t ns)
{
	struct upid up = {};
	unsigned int plevel = 0;

	if (!pid)
		return 0;
	if (level == 0) {
		int nr = 0;

		KREAD(nr, AS(struct pid, pid)->numbers[0].nr);
		return nr;
	}
	KREAD(plevel, AS(struct pid, pid)->level);
	if (plevel < level)
		return 0;
	bpf_probe_read_kernel(&up, sizeof(up), &AS(struct pid, pid)->numbers[level & (MAX_PID_NS_LEVEL - 1)]);
	return (kptr_t)up.ns == ns ? (__u32)up.nr : 0;
}

/* Copy member m of the task into dst: a direct load when the task is the iterator's (a trusted BTF pointer;
 * scalar loads cost the verifier nothing), a probe read otherwise (pid 1, reached through pointers). */
#define TREAD(dst, t, m, direct) do {				\
		if (direct)					\
			(dst) = (t)->m;				\
		else						\
			KREAD(dst, (t)->m);			\
	} while (0)

#define CRED_CHUNK 96
/* member m of the struct cred at c (type ct), from chunk (read from &c->uid) when it lies there, else read on its
 * own; the offsets are CO-RE relocated constants, so the verifier follows one branch only */
#define CRED_T(dst, ct, c, m) do {								\
		__u32 rel = bpf_core_field_offset(((ct *)0)->m) - bpf_core_field_offset(((struct cred *)0)->uid); \
		if (rel <= CRED_CHUNK - sizeof(dst))					\
			__builtin_memcpy(&(dst), chunk + rel, sizeof(dst));		\
		else									\
			KREAD(dst, AS(ct, c)->m);					\
	} while (0)
#define CRED(dst, c, m) CRED_T(dst, struct cred, c, m)
#define CRED_OLD(dst, c, m) CRED_T(dst, struct cred___old, c, m)

/*
 * The task's place in the pid namespaces and its namespace identities, as /proc/PID/ns/KIND shows them: pid from
 * the task's own struct pid (its active pid namespace), user from its credentials, the rest from its nsproxy
 * (gone once the task has exited: a zombie keeps pid and user only, as /proc gives). c is t->real_cred.
 */
static __always_inline void emit_ns(struct td_task *r, struct task_struct *t, __u32 level, kptr_t c)
{
	kptr_t tp = 0, nsp = 0, x = 0;
	unsigned int plevel = 0;
	struct upid up = {};

	KREAD(tp, t->thread_pid);
	if (tp) {
		KREAD(plevel, AS(struct pid, tp)->level);
		bpf_probe_read_kernel(&up, sizeof(up), &AS(struct pid, tp)->numbers[plevel & (MAX_PID_NS_LEVEL - 1)]);
		r->ns_depth = plevel - level;
		r->ns_pid = (__u32)up.nr;
		if (up.ns)
			KREAD(r->ns[0], up.ns->ns.inum);
	}
	KREAD(x, AS(struct cred, c)->user_ns);
	if (x)
		KREAD(r->ns[5], AS(struct user_namespace, x)->ns.inum);
	KREAD(nsp, t->nsproxy);
	if (!nsp)
		return;
#define NSP(i, member, type) do {								x = 0;										KREAD(x, AS(struct nsproxy, nsp)->member);					if (x)											KREAD(r->ns[i], AS(type, x)->ns.inum);				} while (0)
	NSP(1, mnt_ns, struct mnt_namespace);
	NSP(2, net_ns, struct net);
	NSP(3, ipc_ns, struct ipc_namespace);
	NSP(4, uts_ns, struct uts_namespace);
	if (bpf_core_field_exists(AS(struct nsproxy, nsp)->cgroup_ns))
		NSP(6, cgroup_ns, struct cgroup_namespace);
	if (bpf_core_field_exists(AS(struct nsproxy, nsp)->time_ns))
		NSP(7, time_ns, struct time_namespace);
#undef NSP
}

/* Write the record of task t, built in *rp, if t is in the reader's namespace; bits start the record's bits. */
static __always_inline void emit(struct seq_file *seq, struct td_task *r, struct task_struct *t, const int direct,
				 __u32 level, kptr_t ns, __u32 bits)
{
	kptr_t tp = 0, leader = 0, parent = 0, signal = 0, pg[2] = {}, c = 0, gi = 0, rl = 0;
	__u32 n = 0, len;
	int ngroups = 0;
	__u8 chunk[CRED_CHUNK];

	__builtin_memset(r, 0, sizeof(*r));
	r->bits = bits;
	KREAD(tp, t->thread_pid);
	if (level == 0) {
		/* the initial namespace's numbers are the task's own: pid, tgid (its leader's pid) and the
		 * parent's tgid; one probe read less per pid than pid->numbers[0].nr */
		if (!tp)
			return;
		TREAD(r->pid, t, pid, direct);
		TREAD(r->tgid, t, tgid, direct);
		KREAD(parent, t->real_parent);
		KREAD(r->ppid, AS(struct task_struct, parent)->tgid);
	} else {
		r->pid = nr_ns(tp, level, ns);
		if (!r->pid) /* not visible from the reader's namespace */
			return;
		KREAD(leader, t->group_leader);
		KREAD(tp, AS(struct task_struct, leader)->thread_pid);
		r->tgid = nr_ns(tp, level, ns);
		KREAD(parent, t->real_parent);
		KREAD(parent, AS(struct task_struct, parent)->group_leader);
		KREAD(tp, AS(struct task_struct, parent)->thread_pid);
		r->ppid = nr_ns(tp, level, ns);
	}
	TREAD(r->ptrace, t, ptrace, direct);
	if (r->ptrace) {
		KREAD(parent, t->parent);
		KREAD(tp, AS(struct task_struct, parent)->thread_pid);
		r->tpid = nr_ns(tp, level, ns);
	}
	KREAD(signal, t->signal);
	/* pids[PIDTYPE_PGID] and pids[PIDTYPE_SID], one read */
	bpf_probe_read_kernel(pg, sizeof(pg), &AS(struct signal_struct, signal)->pids[PIDTYPE_PGID]);
	r->pgid = nr_ns(pg[0], level, ns);
	r->sid = nr_ns(pg[1], level, ns);

	if (bpf_core_field_exists(t->__state)) {
		TREAD(r->state, t, __state, direct);
	} else {
		long st = 0;

		TREAD(st, (struct task_struct___old *)t, state, direct);
		r->state = (__u32)st;
	}
	TREAD(r->exit_state, t, exit_state, direct);
	TREAD(r->flags, t, flags, direct);
	TREAD(r->personality, t, personality, direct);
	TREAD(r->exit_code, t, exit_code, direct);
	TREAD(r->prio, t, prio, direct);
	TREAD(r->static_prio, t, static_prio, direct);
	TREAD(r->rt_priority, t, rt_priority, direct);
	TREAD(r->policy, t, policy, direct);
	if (bpf_core_field_exists(t->seccomp))
		TREAD(r->seccomp, t, seccomp.mode, direct);
	else
		r->bits |= TD_NO_SECCOMP;
	{
		unsigned long af = 0;

		TREAD(af, t, atomic_flags, direct);
		if (af & 1) /* PFA_NO_NEW_PRIVS */
			r->bits |= TD_NO_NEW_PRIVS;
	}
	TREAD(r->blocked, t, blocked.sig[0], direct);
	{
		__u64 st = 0;

		TREAD(st, t, start_boottime, direct);
		r->start_time = st / NSEC_PER_TICK;
	}
	KREAD(rl, t->robust_list);
	r->robust_list = rl;
	bpf_probe_read_kernel(r->comm, sizeof(r->comm), t->comm);

	KREAD(c, t->real_cred);
	/* ids, securebits and capabilities are contiguous in struct cred (uid first, cap_ambient last, within
	 * CRED_CHUNK bytes on every kernel since 4.3): one read, then each member at its relocated offset; a
	 * member outside the chunk (a kernel laid out otherwise) is read on its own */
	bpf_probe_read_kernel(chunk, sizeof(chunk), &AS(struct cred, c)->uid);
	CRED(r->uid, c, uid.val);
	CRED(r->euid, c, euid.val);
	CRED(r->suid, c, suid.val);
	CRED(r->fsuid, c, fsuid.val);
	CRED(r->gid, c, gid.val);
	CRED(r->egid, c, egid.val);
	CRED(r->sgid, c, sgid.val);
	CRED(r->fsgid, c, fsgid.val);
	CRED(r->securebits, c, securebits);
	if (bpf_core_field_exists(AS(struct cred, c)->cap_inheritable.val)) {
		CRED(r->cap_inh, c, cap_inheritable.val);
		CRED(r->cap_prm, c, cap_permitted.val);
		CRED(r->cap_eff, c, cap_effective.val);
		CRED(r->cap_bnd, c, cap_bset.val);
		CRED(r->cap_amb, c, cap_ambient.val);
	} else { /* before 6.3: two u32 words, low word first, as one little-endian u64 */
		CRED_OLD(r->cap_inh, c, cap_inheritable);
		CRED_OLD(r->cap_prm, c, cap_permitted);
		CRED_OLD(r->cap_eff, c, cap_effective);
		CRED_OLD(r->cap_bnd, c, cap_bset);
		CRED_OLD(r->cap_amb, c, cap_ambient);
	}
	KREAD(gi, AS(struct cred, c)->group_info);
	if (gi) {
		KREAD(ngroups, AS(struct group_info, gi)->ngroups);
		n = (__u32)ngroups;
		r->ngroups = n;
		if (n > TD_MAX_GROUPS)
			n = TD_MAX_GROUPS;
		barrier_var(n);
		if (n)
			bpf_probe_read_kernel(r->groups, (n & (2 * TD_MAX_GROUPS - 1)) * sizeof(__u32) > sizeof(r->groups)
				? sizeof(r->groups) : (n & (2 * TD_MAX_GROUPS - 1)) * sizeof(__u32), AS(struct group_info, gi)->gid);
	}

	emit_ns(r, t, level, c);

	len = TD_HEADER_SIZE + n * sizeof(__u32);
	if (len > sizeof(*r)) /* keeps the bound visible to the verifier */
		len = sizeof(*r);
	bpf_seq_write(seq, r, len);
}

/* The reader: its pid namespace depth and (below the initial namespace) that namespace. */
struct reader { __u32 level; kptr_t ns; kptr_t pid; };

static __always_inline int reader(struct reader *rd)
{
	kptr_t cur = bpf_get_current_task();
	struct upid up = {};

	rd->level = 0;
	rd->ns = 0;
	rd->pid = 0;
	KREAD(rd->pid, AS(struct task_struct, cur)->thread_pid);
	if (!rd->pid)
		return -1;
	KREAD(rd->level, AS(struct pid, rd->pid)->level);
	if (rd->level >= MAX_PID_NS_LEVEL)
		return -1;
	if (rd->level) {
		bpf_probe_read_kernel(&up, sizeof(up), &AS(struct pid, rd->pid)->numbers[rd->level & (MAX_PID_NS_LEVEL - 1)]);
		rd->ns = (kptr_t)up.ns;
	}
	return 0;
}

/*
 * The task iterator of some kernels (6.18 among them) never visits pid 1 of the initial pid namespace. So
 * when the reader is in that namespace and the first task visited is not pid 1, pid 1 (the namespace's
 * child_reaper) is emitted before it. Where the iterator does visit pid 1, the first task is pid 1 itself and
 * nothing is added. (In other pid namespaces the iterator visits their pid 1.)
 */
static __always_inline void emit_init(struct seq_file *seq, struct td_task *r, struct task_struct *first, struct reader *rd)
{
	kptr_t ns = 0, init = 0;
	int pid = 0;

	if (first->pid == 1 || (cfg.root && cfg.root != 1))
		return;
	KREAD(ns, AS(struct pid, rd->pid)->numbers[0].ns);
	KREAD(init, AS(struct pid_namespace, ns)->child_reaper);
	if (!init)
		return;
	KREAD(pid, AS(struct task_struct, init)->pid);
	if (pid == 1)
		emit(seq, r, AS(struct task_struct, init), 0, 0, 0, 0);
}

/* One step of the ancestor walk (a bpf_loop callback): p is a group leader. */
struct walk { kptr_t p; kptr_t ns; __u32 root; __u32 level; int in; };

static long walk_step(__u32 i, void *data)
{
	struct walk *w = data;
	kptr_t p = w->p, tp = 0;
	__u32 nr = 0;

	if (w->level == 0) {
		/* a leader's number in the initial namespace is its tgid; the idle task (tgid 0) ends the walk:
		 * its real_parent is itself, whose tgid is 0 too */
		KREAD(nr, AS(struct task_struct, p)->tgid);
	} else {
		KREAD(tp, AS(struct task_struct, p)->thread_pid);
		nr = nr_ns(tp, w->level, w->ns);
	}
	if (nr == w->root) {
		w->in = 1;
		return 1;
	}
	if (nr == 0) { /* the idle task, or left the reader's namespace */
		w->in = 0;
		return 1;
	}
	KREAD(p, AS(struct task_struct, p)->real_parent);
	KREAD(p, AS(struct task_struct, p)->group_leader);
	w->p = p;
	return 0;
}

/* The body of both programs; filter selects the in-kernel subtree filter (td_task_iter). */
static __always_inline int task_iter(struct bpf_iter__task *ctx, const int filter)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	struct reader rd;
	struct td_task *r;
	__u32 bits = 0, zero = 0;

	if (!t)
		return 0;
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	if (reader(&rd))
		return 0;
	if (ctx->meta->seq_num == 0 && rd.level == 0)
		emit_init(seq, r, t, &rd);
	if (cfg.leaders_only && t->pid != t->tgid)
		return 0;
	if (filter && cfg.root) {
		struct walk w = { .ns = rd.ns, .root = cfg.root, .level = rd.level, .in = -1 };

		KREAD(w.p, t->group_leader);
		bpf_loop(MAX_DEPTH, walk_step, &w, 0);
		if (w.in == 0)
			return 0;
		if (w.in < 0)
			bits = TD_UNDECIDED;
	}
	emit(seq, r, t, 1, rd.level, rd.ns, bits);
	return 0;
}

/* Kernels with bpf_loop (5.17+): the subtree of cfg.root is selected here. */
SEC("iter/task")
int td_task_iter(struct bpf_iter__task *ctx)
{
	return task_iter(ctx, 1);
}

/* Kernels without bpf_loop (5.11-5.16): every task; user space selects the subtree. */
SEC("iter/task")
int td_task_iter_all(struct bpf_iter__task *ctx)
{
	return task_iter(ctx, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
