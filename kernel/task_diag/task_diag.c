// SPDX-License-Identifier: GPL-2.0
/*
 * task_diag: the generic-netlink family "TASKDIAG" version 1 as an out-of-tree module.
 *
 * Wire protocol of the February 2015 RFC (command 1, request attribute 1 = struct task_diag_pid,
 * reply attributes 64 = task_diag_msg and 0 = task_diag_creds, strategies ALL and CHILDREN), with
 * the RFC's bugs fixed (missing request attribute, unzeroed padding) and two extensions in numbers
 * v1 leaves free: strategies THREADS (2) and SUBTREE (3), and show_flags bit 1 = attribute 65.
 *
 * Whose view: a single request is answered in the view of the task that sends it.  A dump is bound
 * to the task whose sendmsg() starts it: its credentials (visibility as ptrace_may_access() with
 * PTRACE_MODE_READ_REALCREDS, ids translated into its user namespace), its pid namespace and its
 * time namespace's boot-time offset are taken in .start and used for every batch, whoever calls
 * recvmsg() later; .done releases them (end, error, or socket closed mid-dump).  Same rule as a
 * /proc file, which keeps its opener's credentials (f_cred).
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/version.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/prio.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/ptrace.h>
#include <linux/cred.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <linux/time_namespace.h>
#include <linux/kprobes.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/security.h>
#include <linux/sched/mm.h>
#include <linux/sched/coredump.h>
#include <net/genetlink.h>

#include "task_diag.h"

#define TD_VERSION "1.1.0"

/* Not exported to modules: resolved at load time through kallsyms. */
static bool (*td_ptrace_may_access)(struct task_struct *task, unsigned int mode);
static int (*td_security_capable)(const struct cred *cred, struct user_namespace *ns, int cap,
				  unsigned int opts);
static int (*td_security_ptrace_access_check)(struct task_struct *child, unsigned int mode);
static rwlock_t *td_tasklist_lock;

static struct genl_family td_family;

/*
 * The view a reply is produced in.  For a single request: the sender's, borrowed for the call.  For a
 * dump: struct td_view, taken from the task that starts it and held until .done.
 */
struct td_ctx {
	struct pid_namespace *ns;
	struct user_namespace *uns;
	u64 boot_off;			/* time namespace: offset added to boot-time stamps */
	const struct td_view *view;	/* NULL: the caller is the requester */
	u64 show;
};

struct td_view {
	const struct cred *cred;	/* get_current_cred() */
	struct pid_namespace *ns;	/* get_pid_ns(task_active_pid_ns(current)) */
	struct user_namespace *uns;	/* get_user_ns(cred->user_ns) */
	struct pid *tgid;		/* get_pid(task_tgid(current)): the requester's thread group */
	u64 boot_off;			/* timens_add_boottime_ns(0): a value, no reference */
};

/* dumps holding a view right now (read-only parameter: a leak shows as a count that stays up) */
static atomic_t td_views = ATOMIC_INIT(0);

static int td_views_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&td_views));
}

static const struct kernel_param_ops td_views_ops = { .get = td_views_get };
module_param_cb(dump_views, &td_views_ops, NULL, 0444);
MODULE_PARM_DESC(dump_views, "dumps in progress (each holds its requester's credentials and namespaces)");

static void td_ctx_init(struct td_ctx *c, u64 show)
{
	c->ns = task_active_pid_ns(current);
	c->uns = current_user_ns();
	c->boot_off = timens_add_boottime_ns(0);
	c->view = NULL;
	c->show = show;
}

static void td_ctx_from_view(struct td_ctx *c, const struct td_view *v, u64 show)
{
	c->ns = v->ns;
	c->uns = v->uns;
	c->boot_off = v->boot_off;
	c->view = v;
	c->show = show;
}

static struct td_view *td_view_get(void)
{
	struct td_view *v = kzalloc(sizeof(*v), GFP_KERNEL);

	if (!v)
		return NULL;
	v->cred = get_current_cred();
	v->uns = get_user_ns(v->cred->user_ns);
	v->ns = get_pid_ns(task_active_pid_ns(current));
	v->tgid = get_pid(task_tgid(current));
	v->boot_off = timens_add_boottime_ns(0);
	atomic_inc(&td_views);
	return v;
}

static void td_view_put(struct td_view *v)
{
	if (!v)
		return;
	put_pid(v->tgid);
	put_pid_ns(v->ns);
	put_user_ns(v->uns);
	put_cred(v->cred);
	kfree(v);
	atomic_dec(&td_views);
}

/*
 * ptrace_may_access() without its first rule ("a thread group may always read itself"), for the one case
 * where that rule would be about the wrong task: the reader of a handed socket looking at its own thread
 * group.  The rest is the same check, made with the requester's credentials (current's are overridden
 * with them while a batch runs, which is what the LSM hook reads).
 */
static bool td_may_read_as(struct task_struct *t, const struct cred *cred)
{
	const struct cred *tcred;
	struct mm_struct *mm;
	bool ok;

	task_lock(t);
	rcu_read_lock();
	tcred = __task_cred(t);
	ok = (uid_eq(cred->uid, tcred->euid) && uid_eq(cred->uid, tcred->suid) &&
	      uid_eq(cred->uid, tcred->uid) && gid_eq(cred->gid, tcred->egid) &&
	      gid_eq(cred->gid, tcred->sgid) && gid_eq(cred->gid, tcred->gid)) ||
	     td_security_capable(cred, tcred->user_ns, CAP_SYS_PTRACE, CAP_OPT_NOAUDIT) == 0;
	rcu_read_unlock();
	if (ok) {
		smp_rmb();	/* dumpability after credentials, as ptrace_may_access() */
		mm = t->mm;
		if (mm && get_dumpable(mm) != SUID_DUMP_USER &&
		    td_security_capable(cred, mm->user_ns, CAP_SYS_PTRACE, CAP_OPT_NOAUDIT) != 0)
			ok = false;
	}
	if (ok)
		ok = td_security_ptrace_access_check(t, PTRACE_MODE_READ_REALCREDS) == 0;
	task_unlock(t);
	return ok;
}

/* called with current's credentials overridden by the view's (dumps) */
static bool td_may_read(struct task_struct *t, const struct td_ctx *c)
{
	if (c->view && same_thread_group(t, current) && task_tgid(current) != c->view->tgid)
		return td_may_read_as(t, c->view->cred);
	return td_ptrace_may_access(t, PTRACE_MODE_READ_REALCREDS);
}

static void td_caps(struct task_diag_caps *d, const kernel_cap_t *c)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	d->cap[0] = (u32)c->val;
	d->cap[1] = (u32)(c->val >> 32);
#else
	d->cap[0] = c->cap[0];
	d->cap[1] = c->cap[1];
#endif
}

static void td_fill_msg(struct task_diag_msg *m, struct task_struct *t, const struct td_ctx *c)
{
	struct task_struct *tracer;

	memset(m, 0, sizeof(*m));
	rcu_read_lock();
	m->tgid = task_tgid_nr_ns(t, c->ns);
	m->pid = task_pid_nr_ns(t, c->ns);
	m->ppid = pid_alive(t) ? task_tgid_nr_ns(rcu_dereference(t->real_parent), c->ns) : 0;
	tracer = ptrace_parent(t);
	m->tpid = tracer ? task_pid_nr_ns(tracer, c->ns) : 0;
	m->sid = task_session_nr_ns(t, c->ns);
	m->pgid = task_pgrp_nr_ns(t, c->ns);
	rcu_read_unlock();
	m->state = task_state_index(t);
	__get_task_comm(m->comm, sizeof(m->comm), t);
}

static void td_fill_creds(struct task_diag_creds *d, struct task_struct *t, const struct td_ctx *c)
{
	const struct cred *cr;

	memset(d, 0, sizeof(*d));
	rcu_read_lock();
	cr = __task_cred(t);
	td_caps(&d->cap_inheritable, &cr->cap_inheritable);
	td_caps(&d->cap_permitted, &cr->cap_permitted);
	td_caps(&d->cap_effective, &cr->cap_effective);
	td_caps(&d->cap_bset, &cr->cap_bset);
	d->uid = from_kuid_munged(c->uns, cr->uid);
	d->euid = from_kuid_munged(c->uns, cr->euid);
	d->suid = from_kuid_munged(c->uns, cr->suid);
	d->fsuid = from_kuid_munged(c->uns, cr->fsuid);
	d->gid = from_kgid_munged(c->uns, cr->gid);
	d->egid = from_kgid_munged(c->uns, cr->egid);
	d->sgid = from_kgid_munged(c->uns, cr->sgid);
	d->fsgid = from_kgid_munged(c->uns, cr->fsgid);
	rcu_read_unlock();
}

static int td_put_ext(struct sk_buff *skb, struct task_struct *t, const struct td_ctx *c)
{
	const struct cred *cr;
	struct task_diag_ext *e;
	struct nlattr *attr;
	u32 ngroups, nsent, i;
	u64 start;
	u32 *groups;

	rcu_read_lock();
	cr = __task_cred(t);
	ngroups = cr->group_info ? cr->group_info->ngroups : 0;
	rcu_read_unlock();
	nsent = min_t(u32, ngroups, TASK_DIAG_EXT_MAX_GROUPS);

	attr = nla_reserve(skb, TASK_DIAG_EXT, sizeof(*e) + nsent * sizeof(u32));
	if (!attr)
		return -EMSGSIZE;
	e = nla_data(attr);
	memset(e, 0, sizeof(*e) + nsent * sizeof(u32));
	groups = (u32 *)(e + 1);

	start = t->start_boottime + c->boot_off;
	e->start_time_ns = start;
	e->start_time = div_u64(start, NSEC_PER_SEC / USER_HZ);
	e->robust_list = (u64)(unsigned long)t->robust_list;
#if _NSIG_BPW == 64
	e->sigblk[0] = (u32)t->blocked.sig[0];
	e->sigblk[1] = (u32)((u64)t->blocked.sig[0] >> 32);
#else
	e->sigblk[0] = t->blocked.sig[0];
	e->sigblk[1] = t->blocked.sig[1];
#endif
	e->flags = t->flags;
	e->personality = t->personality;
#ifdef CONFIG_SECCOMP
	e->seccomp = t->seccomp.mode;
#endif
	e->nice = task_nice(t);
	e->policy = t->policy;
	e->prio = t->prio - MAX_RT_PRIO;
	e->rt_priority = t->rt_priority;
	e->exit_code = t->exit_code;
	e->no_new_privs = task_no_new_privs(t) ? 1 : 0;
	e->fixed_len = sizeof(*e);

	rcu_read_lock();
	cr = __task_cred(t);
	td_caps(&e->cap_ambient, &cr->cap_ambient);
	e->securebits = cr->securebits;
	/* creds are immutable: the same group_info as above */
	e->ngroups = cr->group_info ? cr->group_info->ngroups : 0;
	nsent = min_t(u32, nsent, e->ngroups);
	for (i = 0; i < nsent; i++)
		groups[i] = from_kgid_munged(c->uns, cr->group_info->gid[i]);
	rcu_read_unlock();
	e->ngroups_sent = nsent;
	if (nsent < e->ngroups)
		e->ext_flags |= TASK_DIAG_EXT_GROUPS_TRUNCATED;
	return 0;
}

/*
 * One whole message for task t; -EMSGSIZE (nothing left in skb) if it does not fit, -ESRCH (nothing left
 * in skb) if the task was released after it was found (its pids read as 0).
 */
static int td_fill(struct sk_buff *skb, struct task_struct *t, const struct td_ctx *c,
		   u32 portid, u32 seq, int flags)
{
	struct task_diag_msg *m;
	struct nlattr *attr;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &td_family, flags, TASKDIAG_CMD_GET);
	if (!hdr)
		return -EMSGSIZE;

	attr = nla_reserve(skb, TASK_DIAG_MSG, sizeof(struct task_diag_msg));
	if (!attr)
		goto cancel;
	m = nla_data(attr);
	td_fill_msg(m, t, c);
	if (!m->pid || !m->tgid) {
		genlmsg_cancel(skb, hdr);
		return -ESRCH;
	}

	if (c->show & TASK_DIAG_SHOW_CRED) {
		attr = nla_reserve(skb, TASK_DIAG_CRED, sizeof(struct task_diag_creds));
		if (!attr)
			goto cancel;
		td_fill_creds(nla_data(attr), t, c);
	}
	if (c->show & TASK_DIAG_SHOW_EXT) {
		if (td_put_ext(skb, t, c))
			goto cancel;
	}
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

static struct task_struct *td_get_task(pid_t nr, struct pid_namespace *ns)
{
	struct task_struct *t = NULL;

	if (nr <= 0)
		return NULL;
	rcu_read_lock();
	t = pid_task(find_pid_ns(nr, ns), PIDTYPE_PID);
	if (t)
		get_task_struct(t);
	rcu_read_unlock();
	return t;
}

/* ---------------------------------------------------------------- doit (single task) */

static int td_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct task_diag_pid req;
	struct nlattr *nla, *found = NULL;
	struct task_struct *t;
	struct sk_buff *msg;
	struct td_ctx c;
	int rem, err;

	/* like nla_parse() with {[1] = NLA_UNSPEC, .len = 24}: last type-1 attribute wins */
	nla_for_each_attr(nla, genlmsg_data(info->genlhdr), genlmsg_len(info->genlhdr), rem) {
		if (nla_type(nla) == TASKDIAG_CMD_ATTR_GET) {
			if (nla_len(nla) < (int)sizeof(req))
				return -ERANGE;
			found = nla;
		}
	}
	if (!found)
		return -EINVAL;	/* the RFC dereferenced NULL here */
	memcpy(&req, nla_data(found), sizeof(req));

	td_ctx_init(&c, req.show_flags);
	t = td_get_task(req.pid, c.ns);
	if (!t)
		return -ESRCH;
	if (!td_may_read(t, &c)) {
		err = -EPERM;
		goto out;
	}
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	err = td_fill(msg, t, &c, info->snd_portid, info->snd_seq, 0);
	if (err) {
		nlmsg_free(msg);
		goto out;
	}
	err = genlmsg_reply(msg, info);
out:
	put_task_struct(t);
	return err;
}

/* ---------------------------------------------------------------- dumpit */

/*
 * cb->args:
 *   [0] cursor: next tgid (ALL) or index of the next entry (CHILDREN, THREADS, SUBTREE)
 *   [1] pid number of the next entry when known (CHILDREN, THREADS), 0 otherwise
 *   [2] struct td_snap * (SUBTREE), freed in .done
 *   [3] struct td_view * (the requester's view), taken in .start, released in .done
 *   [5] 1 once the first batch has been produced
 */
enum { A_CUR = 0, A_NEXT = 1, A_SNAP = 2, A_VIEW = 3, A_STARTED = 5 };

struct td_snap {
	unsigned int n;
	struct pid *pids[];
};

static void td_snap_free(struct td_snap *s)
{
	unsigned int i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		put_pid(s->pids[i]);
	kvfree(s);
}

/*
 * .start runs in the sendmsg() that starts the dump, as the requester.  If it fails the dump does not
 * start and .done is not called, so nothing is left held.
 */
static int td_start(struct netlink_callback *cb)
{
	struct td_view *v = td_view_get();

	if (!v)
		return -ENOMEM;
	cb->args[A_VIEW] = (long)v;
	return 0;
}

/*
 * .done: called once for every dump .start accepted: after the last batch (NLMSG_DONE, also when it
 * carries an error) in the recvmsg() that ends it, or when the socket is closed with the dump
 * unfinished (socket release or a work item, by kernel version).  The module cannot go away before:
 * the dump holds a reference on it until after .done.
 */
static int td_done(struct netlink_callback *cb)
{
	td_snap_free((struct td_snap *)cb->args[A_SNAP]);
	cb->args[A_SNAP] = 0;
	td_view_put((struct td_view *)cb->args[A_VIEW]);
	cb->args[A_VIEW] = 0;
	return 0;
}

/* v1: the payload of the first attribute after the genl header, whatever its type */
static int td_dump_req(const struct netlink_callback *cb, struct task_diag_pid *req)
{
	const struct nlmsghdr *nlh = cb->nlh;
	const struct nlattr *nla;

	if (nlmsg_len(nlh) < GENL_HDRLEN + NLA_HDRLEN + (int)sizeof(*req))
		return -EINVAL;
	nla = (const struct nlattr *)((const char *)nlmsg_data(nlh) + GENL_HDRLEN);
	if (nla->nla_len < NLA_HDRLEN + sizeof(*req))
		return -EINVAL;
	memcpy(req, nla_data(nla), sizeof(*req));
	return 0;
}

static int td_emit(struct sk_buff *skb, struct netlink_callback *cb, struct task_struct *t,
		   const struct td_ctx *c, bool *full)
{
	int err;

	if (!pid_alive(t) || !td_may_read(t, c))
		return 0;
	err = td_fill(skb, t, c, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq, 0);
	if (err == -ESRCH)
		return 0;	/* exited meanwhile: skipped like a task that was never there */
	if (err) {
		*full = true;
		return -EMSGSIZE;
	}
	return 1;
}

static int td_dump_all(struct sk_buff *skb, struct netlink_callback *cb, const struct td_ctx *c)
{
	bool full = false;
	pid_t tgid = cb->args[A_CUR] ? cb->args[A_CUR] : 1;

	for (;;) {
		struct task_struct *t = NULL;
		struct pid *pid;

		rcu_read_lock();
		for (;;) {	/* next_tgid() */
			pid = find_ge_pid(tgid, c->ns);
			if (!pid)
				break;
			tgid = pid_nr_ns(pid, c->ns);
			t = pid_task(pid, PIDTYPE_TGID);
			if (t) {
				get_task_struct(t);
				break;
			}
			tgid++;
		}
		rcu_read_unlock();
		if (!t)
			break;
		td_emit(skb, cb, t, c, &full);
		put_task_struct(t);
		if (full)
			break;
		tgid++;
	}
	cb->args[A_CUR] = tgid;
	return full ? skb->len : 0;
}

/* the child of parent at position *pos; a shortcut through cb->args[A_NEXT] like get_children_pid() */
static struct task_struct *td_child(struct task_struct *parent, long pos, pid_t hint,
				    struct pid_namespace *ns, pid_t *next_hint)
{
	struct task_struct *t = NULL, *p;
	struct list_head *l;

	read_lock(td_tasklist_lock);
	if (hint > 0) {
		p = pid_task(find_pid_ns(hint, ns), PIDTYPE_PID);
		if (p && p->real_parent == parent && !list_empty(&p->sibling) && pid_alive(parent)) {
			t = p;
			goto found;
		}
	}
	if (!pid_alive(parent))
		goto out;
	list_for_each(l, &parent->children) {
		if (pos-- == 0) {
			t = list_entry(l, struct task_struct, sibling);
			goto found;
		}
	}
	goto out;
found:
	get_task_struct(t);
	*next_hint = 0;
	if (t->sibling.next != &parent->children) {
		p = list_entry(t->sibling.next, struct task_struct, sibling);
		*next_hint = task_pid_nr_ns(p, ns);
	}
out:
	read_unlock(td_tasklist_lock);
	return t;
}

static int td_dump_children(struct sk_buff *skb, struct netlink_callback *cb,
			    const struct td_ctx *c, struct task_struct *parent)
{
	bool full = false;
	long pos = cb->args[A_CUR];
	pid_t hint = cb->args[A_NEXT];

	for (;;) {
		pid_t next_hint = 0;
		struct task_struct *t = td_child(parent, pos, hint, c->ns, &next_hint);

		if (!t)
			break;
		td_emit(skb, cb, t, c, &full);
		put_task_struct(t);
		if (full)
			break;
		pos++;
		hint = next_hint;
	}
	cb->args[A_CUR] = pos;
	cb->args[A_NEXT] = hint;
	return full ? skb->len : 0;
}

static int td_dump_threads(struct sk_buff *skb, struct netlink_callback *cb,
			   const struct td_ctx *c, struct task_struct *task)
{
	bool full = false;
	long pos = cb->args[A_CUR];

	for (;;) {
		struct task_struct *leader, *t = NULL, *p;
		long i = 0;

		rcu_read_lock();
		leader = task->group_leader;
		if (pid_alive(leader)) {
			/* thread_head order: the leader first, then the others in creation order */
			for_each_thread(leader, p) {
				if (i++ == pos) {
					t = p;
					get_task_struct(t);
					break;
				}
			}
		}
		rcu_read_unlock();
		if (!t)
			break;
		td_emit(skb, cb, t, c, &full);
		put_task_struct(t);
		if (full)
			break;
		pos++;
	}
	cb->args[A_CUR] = pos;
	return full ? skb->len : 0;
}

/*
 * SUBTREE: the pids of the whole subtree are collected once, in one pass under tasklist_lock (so
 * membership is one consistent snapshot), and then emitted in batches.  Order: a process's threads
 * (leader first), then, for each of its threads in turn, that thread's children in creation order,
 * each recursively.  Iterative pre-order walk, no stack: up through real_parent.
 */
/* first child of the first thread of from's group that comes after `after` (NULL: from the start) */
static struct task_struct *td_first_child_of_group(struct task_struct *from, struct task_struct *after)
{
	struct task_struct *t;
	bool on = !after;

	for_each_thread(from->group_leader, t) {
		if (!on) {
			on = t == after;
			continue;
		}
		if (!list_empty(&t->children))
			return list_first_entry(&t->children, struct task_struct, sibling);
	}
	return NULL;
}

/* called with tasklist_lock held; returns count, stores at most cap pids */
static unsigned int td_walk_subtree(struct task_struct *root, struct td_snap *s, unsigned int cap)
{
	struct task_struct *proc = root->group_leader, *t, *next;

	if (!pid_alive(proc))
		return 0;
	unsigned int n = 0;

	for (;;) {
		/* visit proc: all its threads */
		for_each_thread(proc, t) {
			if (s && n < cap)
				s->pids[n] = get_pid(task_pid(t));
			n++;
		}

		/* descend */
		next = td_first_child_of_group(proc, NULL);
		if (next) {
			proc = next;
			continue;
		}
		/* advance: next sibling, else next thread's children of the parent group, else go up */
		for (;;) {
			struct task_struct *parent;

			if (proc == root->group_leader)
				return n;
			parent = proc->real_parent;
			if (proc->sibling.next != &parent->children) {
				next = list_entry(proc->sibling.next, struct task_struct, sibling);
				break;
			}
			next = td_first_child_of_group(parent, parent);
			if (next)
				break;
			proc = parent->group_leader;
		}
		proc = next->group_leader;
	}
}

static int td_snapshot(struct netlink_callback *cb, const struct td_ctx *c, pid_t nr)
{
	unsigned int cap = 0, n, tries;
	struct task_struct *root;
	struct td_snap *s = NULL;

	for (tries = 0; tries < 8; tries++) {
		if (cap) {
			s = kvmalloc(struct_size(s, pids, cap), GFP_KERNEL);
			if (!s)
				return -ENOMEM;
		}
		read_lock(td_tasklist_lock);
		rcu_read_lock();
		root = pid_task(find_pid_ns(nr, c->ns), PIDTYPE_PID);
		if (!root || !pid_alive(root)) {
			rcu_read_unlock();
			read_unlock(td_tasklist_lock);
			kvfree(s);
			return -ESRCH;
		}
		n = td_walk_subtree(root, s, cap);
		rcu_read_unlock();
		read_unlock(td_tasklist_lock);
		if (s && n <= cap) {
			s->n = n;
			cb->args[A_SNAP] = (long)s;
			return 0;
		}
		if (s) {
			s->n = cap;
			td_snap_free(s);
			s = NULL;
		}
		cap = n + n / 8 + 64;
	}
	return -EAGAIN;
}

static int td_dump_subtree(struct sk_buff *skb, struct netlink_callback *cb, const struct td_ctx *c)
{
	struct td_snap *s = (struct td_snap *)cb->args[A_SNAP];
	long pos = cb->args[A_CUR];
	bool full = false;

	while (s && pos < s->n) {
		struct task_struct *t = get_pid_task(s->pids[pos], PIDTYPE_PID);

		if (t) {
			td_emit(skb, cb, t, c, &full);
			put_task_struct(t);
			if (full)
				break;
		}
		pos++;
	}
	cb->args[A_CUR] = pos;
	return full ? skb->len : 0;
}

static int td_dumpit_view(struct sk_buff *skb, struct netlink_callback *cb, const struct td_view *v)
{
	bool first = !cb->args[A_STARTED];
	struct task_diag_pid req;
	struct task_struct *t;
	struct td_ctx c;
	int err;

	err = td_dump_req(cb, &req);
	if (err)
		return err;
	td_ctx_from_view(&c, v, req.show_flags);
	cb->args[A_STARTED] = 1;

	switch (req.dump_stratagy) {
	case TASK_DIAG_DUMP_ALL:
		return td_dump_all(skb, cb, &c);
	case TASK_DIAG_DUMP_CHILDREN:
	case TASK_DIAG_DUMP_THREADS:
		t = td_get_task(req.pid, c.ns);
		if (!t)
			return first ? -ESRCH : 0;
		if (req.dump_stratagy == TASK_DIAG_DUMP_CHILDREN)
			err = td_dump_children(skb, cb, &c, t);
		else
			err = td_dump_threads(skb, cb, &c, t);
		put_task_struct(t);
		return err;
	case TASK_DIAG_DUMP_SUBTREE:
		if (first) {
			err = td_snapshot(cb, &c, req.pid);
			if (err)
				return err;
		}
		return td_dump_subtree(skb, cb, &c);
	default:
		return -EINVAL;
	}
}

/* every batch, whoever calls recvmsg(): checked and translated as the requester */
static int td_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct td_view *v = (const struct td_view *)cb->args[A_VIEW];
	const struct cred *old;
	int ret;

	if (WARN_ON_ONCE(!v))
		return -EINVAL;
	old = override_creds(v->cred);
	ret = td_dumpit_view(skb, cb, v);
	revert_creds(old);
	return ret;
}

static const struct genl_ops td_ops[] = {
	{
		.cmd = TASKDIAG_CMD_GET,
		.doit = td_doit,
		.start = td_start,
		.dumpit = td_dumpit,
		.done = td_done,
		/* no policy, family maxattr 0: the core parses nothing; we parse as v1 did */
	},
};

static struct genl_family td_family __ro_after_init = {
	.name = TASKDIAG_GENL_NAME,
	.version = TASKDIAG_GENL_VERSION,
	.hdrsize = 0,
	.maxattr = 0,
	.netnsok = true,
	.module = THIS_MODULE,
	.ops = td_ops,
	.n_ops = ARRAY_SIZE(td_ops),
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
	/* command 1 is a legacy op: reserved header field unchecked, no attribute parsing */
	.resv_start_op = TASKDIAG_CMD_GET + 1,
#endif
};

static unsigned long td_kallsyms(const char *name)
{
	static unsigned long (*lookup)(const char *name);

	if (!lookup) {
		struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };

		if (register_kprobe(&kp) < 0)
			return 0;
		lookup = (void *)kp.addr;
		unregister_kprobe(&kp);
		if (!lookup)
			return 0;
	}
	return lookup(name);
}

static int __init td_init(void)
{
	int err;

	td_ptrace_may_access = (void *)td_kallsyms("ptrace_may_access");
	td_security_capable = (void *)td_kallsyms("security_capable");
	td_security_ptrace_access_check = (void *)td_kallsyms("security_ptrace_access_check");
	td_tasklist_lock = (void *)td_kallsyms("tasklist_lock");
	if (!td_ptrace_may_access || !td_security_capable || !td_security_ptrace_access_check ||
	    !td_tasklist_lock) {
		pr_err("task_diag: cannot resolve ptrace_may_access/security_capable/security_ptrace_access_check/tasklist_lock (needs CONFIG_KPROBES and CONFIG_KALLSYMS_ALL)\n");
		return -ENOENT;
	}
	err = genl_register_family(&td_family);
	if (err)
		return err;
	pr_info("task_diag: family TASKDIAG v%d registered (id %d)\n", td_family.version, td_family.id);
	return 0;
}

static void __exit td_exit(void)
{
	genl_unregister_family(&td_family);
}

module_init(td_init);
module_exit(td_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("task_diag: TASKDIAG v1 generic-netlink process information");
MODULE_VERSION(TD_VERSION);
