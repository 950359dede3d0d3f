/**
 * Faithfulness of the task_diag module to the 2015 v1 protocol (../shared/spec/taskdiag.md §1, §2, §5, §6),
 * checked byte by byte with the selftest's own request layout and against /proc read independently.
 * Runs inside the QEMU guest (test/vm/run.sh), as root, with task_diag.ko loaded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  ATTR_CRED, ATTR_EXT, ATTR_MSG, DUMP_ALL, DUMP_CHILDREN, DUMP_SUBTREE, DUMP_THREADS, NLMSG_DONE, NLMSG_ERROR,
  NLM_F_ACK, NLM_F_MULTI, NLM_F_REQUEST, REQ_PID_OFFSET, SHOW_CRED, SHOW_EXT, TDPROBE, decodeAll, expectMatchesProc,
  messages, parseProbe, probe, procChildren, procPids, procStat, procStatus, procThreads, request, startTree, tgidOf,
  type Fixture, type TreeInfo,
} from './lib.js';

const eq = (a: unknown, b: unknown, what: string): void => { expect(a, what).toEqual(b); };
const ESRCH = 3, EPERM = 1, EINVAL = 22, ERANGE = 34;

let tree: Fixture<TreeInfo>;
beforeAll(async () => { tree = await startTree<TreeInfo>(['tree']); });
afterAll(async () => { await tree?.stop(); });

describe('single task (doit)', () => {
  it('answers the selftest request bytes (nla_len 29, nlmsg_len 52, SHOW_CRED) with one 136-byte message', () => {
    const { leader } = tree.info;
    const req = request({ dump: false, show: SHOW_CRED, pid: leader, seq: 0 });
    // nlmsghdr: len 52 | type (family) | flags REQUEST | seq 0 | pid (getpid, -P)
    expect(req.length).toBe(52);
    expect(req.readUInt32LE(0)).toBe(52);
    expect(req.readUInt16LE(20)).toBe(29); // nla_len = 24 + 1 + 4
    expect(req.readUInt16LE(22)).toBe(1); // TASKDIAG_CMD_ATTR_GET
    const r = probe(req, ['-P']);
    expect(r.end).toBe('single');
    expect(r.dgrams).toHaveLength(1);
    const ms = messages(r.dgrams[0]!);
    expect(ms).toHaveLength(1);
    const m = ms[0]!;
    expect(m.len).toBe(16 + 4 + 48 + 68); // 136
    expect(m.type).toBe(r.family);
    expect(m.flags).toBe(0);
    expect(m.seq).toBe(0);
    const d = decodeAll(r);
    const t = d.tasks[0]!;
    expect([t.cmd, t.version, t.reserved]).toEqual([1, 1, 0]);
    expect(t.attrs.map((a) => [a.type, a.len])).toEqual([[ATTR_MSG, 48], [ATTR_CRED, 68]]);
    expect(t.task.pid).toBe(leader);
    expect(t.task.tgid).toBe(leader);
    expectMatchesProc(t, eq);
  });

  it('a non-leader thread id gives that thread (find_task_by_vpid)', () => {
    const { leader, forkerThread } = tree.info;
    const d = decodeAll(probe(request({ dump: false, show: SHOW_CRED, pid: forkerThread })));
    expect(d.tasks).toHaveLength(1);
    expect(d.tasks[0]!.task).toMatchObject({ pid: forkerThread, tgid: leader, comm: 'vmt-forker' });
    expectMatchesProc(d.tasks[0]!, eq);
  });

  it('stopped, zombie and split-credential tasks are reported as /proc shows them', () => {
    const { stopped, zombie, user } = tree.info;
    for (const pid of [stopped, zombie, user]) {
      const d = decodeAll(probe(request({ dump: false, show: SHOW_CRED, pid })));
      expect(d.tasks, `pid ${pid}`).toHaveLength(1);
      expectMatchesProc(d.tasks[0]!, eq);
    }
    const z = decodeAll(probe(request({ dump: false, show: 0n, pid: zombie }))).tasks[0]!;
    expect(z.task.state).toBe(6); // Z
    expect(z.attrs.map((a) => a.type)).toEqual([ATTR_MSG]); // no creds without SHOW_CRED: 68-byte message
    expect(z.msg.len).toBe(68);
    const s = decodeAll(probe(request({ dump: false, show: 0n, pid: stopped }))).tasks[0]!;
    expect(s.task.state).toBe(3); // T
    const u = decodeAll(probe(request({ dump: false, show: SHOW_CRED, pid: user }))).tasks[0]!;
    expect([u.creds!.uid, u.creds!.euid, u.creds!.suid, u.creds!.gid, u.creds!.sgid]).toEqual([65534, 65534, 0, 65534, 0]);
  });

  it('missing pid -> NLMSG_ERROR -ESRCH echoing the request header; no reply message', () => {
    const r = probe(request({ dump: false, show: SHOW_CRED, pid: 0x3ffffff0, seq: 77 }));
    expect(r.end).toBe('error');
    const ms = messages(r.dgrams[0]!);
    expect(ms).toHaveLength(1);
    expect(ms[0]!.type).toBe(NLMSG_ERROR);
    expect(ms[0]!.seq).toBe(77);
    expect(ms[0]!.payload.readInt32LE(0)).toBe(-ESRCH);
    // nlmsgerr.msg: a copy of the request's nlmsghdr
    expect(ms[0]!.payload.readUInt32LE(4)).toBe(52);
    expect(ms[0]!.payload.readUInt16LE(8)).toBe(r.family);
  });

  it('a request without attribute 1 is -EINVAL (the RFC dereferenced NULL), a short one -ERANGE', () => {
    expect(decodeAll(probe(request({ dump: false, pid: 1, noAttr: true }))).error).toBe(-EINVAL);
    expect(decodeAll(probe(request({ dump: false, pid: 1, attrType: 5 }))).error).toBe(-EINVAL);
    expect(decodeAll(probe(request({ dump: false, pid: 1, payloadLen: 20, nlaLen: 24 }))).error).toBe(-ERANGE);
  });

  it('NLM_F_ACK adds a trailing NLMSG_ERROR 0; dump_stratagy is ignored by doit', () => {
    const { leader } = tree.info;
    const r = probe(request({ dump: false, pid: leader, strategy: 99n, flags: NLM_F_REQUEST | NLM_F_ACK }));
    const d = decodeAll(r);
    expect(d.tasks).toHaveLength(1);
    expect(d.error).toBe(0);
  });

  it('a task the caller may not ptrace-read is -EPERM (unprivileged caller)', () => {
    const r = probe(request({ dump: false, pid: 1 }), [], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(decodeAll(r).error).toBe(-EPERM);
    // ... but the caller itself is readable (pid patched in by tdprobe -p)
    const self = probe(request({ dump: false, show: SHOW_CRED, pid: 0 }), ['-p', String(REQ_PID_OFFSET)],
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    const t = decodeAll(self).tasks[0]!;
    expect(t.task.pid).toBe(self.pid);
    expect([t.creds!.uid, t.creds!.euid, t.creds!.gid]).toEqual([65534, 65534, 65534]);
  });
});

describe('dump ALL', () => {
  it('selftest bytes: every visible leader, ascending tgid, flags 0, whole messages, NLMSG_DONE 0 with NLM_F_MULTI', () => {
    const before = procPids();
    const r = probe(request({ dump: true, show: 0n, strategy: DUMP_ALL, pid: 1, seq: 0 }), ['-P', '-b', '4096']);
    const after = procPids();
    expect(r.end).toBe('done');
    expect(r.truncated).toBe(false);
    const d = decodeAll(r);
    expect(d.done).toBe(0);
    expect(d.doneFlags).toBe(NLM_F_MULTI);
    const tgids = d.tasks.map((t) => t.task.tgid);
    for (let i = 1; i < tgids.length; i++) expect(tgids[i]!).toBeGreaterThan(tgids[i - 1]!);
    for (const t of d.tasks) {
      expect(t.msg.flags).toBe(0);
      expect(t.msg.len).toBe(68);
      expect(t.task.pid).toBe(t.task.tgid); // leaders only
      expect([...t.task.pad]).toEqual([0, 0, 0]);
    }
    // present before and after -> must be listed (short-lived tasks in between may or may not be)
    const listed = new Set(tgids);
    for (const p of before) if (after.includes(p)) expect(listed.has(p), `pid ${p}`).toBe(true);
    expect(listed.has(r.pid)).toBe(true); // the dumper itself
    // the fixture's processes field by field
    const mine = d.tasks.filter((t) => Object.values(tree.info).includes(t.task.tgid));
    expect(mine.length).toBeGreaterThanOrEqual(6);
    for (const t of mine) expectMatchesProc(t, eq);
    // the first batch is one skb of about a page: several datagrams were needed
    expect(r.dgrams.length).toBeGreaterThan(1);
  });

  it('with SHOW_CRED every message is 136 bytes and matches /proc', () => {
    const d = decodeAll(probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 })));
    expect(d.done).toBe(0);
    const { leader, b, user, stopped } = tree.info;
    for (const t of d.tasks) expect(t.msg.len).toBe(136);
    for (const pid of [leader, b, user, stopped]) {
      const t = d.tasks.find((x) => x.task.tgid === pid);
      expect(t, `pid ${pid}`).toBeDefined();
      expectMatchesProc(t!, eq);
    }
  });

  it('unprivileged caller: tasks it may not ptrace-read are skipped silently', () => {
    const r = probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 }), [],
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    const d = decodeAll(r);
    expect(d.done).toBe(0);
    // only the caller itself: the fixture's uid-65534 child kept suid 0 and is not dumpable
    expect(d.tasks.map((t) => t.task.pid)).toEqual([r.pid]);
    expect(procStatus(tree.info.user).get('Uid')).toBe('65534\t65534\t0\t65534');
  });

  it('inside unshare -pf --mount-proc: namespace-local pids, ppid/sid 0 for tasks outside', () => {
    const hex = request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 }).toString('hex');
    const script = `sleep 60 & ${TDPROBE} ${hex}; for f in /proc/[0-9]*/stat; do cat $f; done; kill $!`;
    const out = execFileSync('unshare', ['-pf', '--mount-proc', 'sh', '-c', script], { encoding: 'utf8' });
    const lines = out.split('\n');
    const probeOut = lines.filter((l) => /^(FAMILY|PID|DGRAM|END|TRUNC) /.test(l)).join('\n');
    const d = decodeAll(parseProbe(probeOut));
    expect(d.done).toBe(0);
    const pids = d.tasks.map((t) => t.task.pid);
    expect(pids).toEqual([1, 2, 3]); // sh, sleep, tdprobe
    const statLines = lines.filter((l) => /^\d+ \(/.test(l));
    for (const t of d.tasks.slice(0, 2)) { // sh and sleep are still there when /proc is read; tdprobe is not
      const line = statLines.find((l) => l.startsWith(`${t.task.pid} (`))!;
      const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
      expect([t.task.ppid, t.task.pgid, t.task.sid], `pid ${t.task.pid}`).toEqual([Number(f[1]), Number(f[2]), Number(f[3])]);
    }
    expect(d.tasks[0]!.task.ppid).toBe(0); // parent outside the namespace
    expect(d.tasks[1]!.task.ppid).toBe(1);
    expect(d.tasks[2]!.task).toMatchObject({ pid: 3, tgid: 3, ppid: 1, pgid: d.tasks[0]!.task.pgid, comm: 'tdprobe' });
  });
});

describe('dump CHILDREN', () => {
  it('of a non-leader thread lists exactly the children that thread forked', () => {
    const { leader, forkerThread, threadChild } = tree.info;
    const d = decodeAll(probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_CHILDREN, pid: forkerThread })));
    expect(d.done).toBe(0);
    expect(d.tasks.map((t) => t.task.pid)).toEqual([threadChild]);
    expect(procChildren(leader, forkerThread)).toEqual([threadChild]); // independent reading
    expectMatchesProc(d.tasks[0]!, eq);
    expect(d.tasks[0]!.task.ppid).toBe(leader); // ppid is the tgid of real_parent
  });

  it('of the leader: its own children in creation order (zombie and stopped included, not the thread\'s)', () => {
    const { leader, b, stopped, zombie, user } = tree.info;
    const d = decodeAll(probe(request({ dump: true, show: 0n, strategy: DUMP_CHILDREN, pid: leader })));
    expect(d.done).toBe(0);
    const got = d.tasks.map((t) => t.task.pid);
    expect(got).toEqual([b, stopped, zombie, user]);
    expect(got).toEqual(procChildren(leader, leader));
    for (const t of d.tasks) { expect(t.msg.flags).toBe(0); expectMatchesProc(t, eq); }
  });

  it('missing pid -> NLMSG_DONE payload -ESRCH (no NLMSG_ERROR); unknown strategy -> -EINVAL', () => {
    const r = probe(request({ dump: true, strategy: DUMP_CHILDREN, pid: 0x3ffffff0 }));
    const d = decodeAll(r);
    expect(r.end).toBe('done');
    expect(d.error).toBeUndefined();
    expect(d.done).toBe(-ESRCH);
    expect(d.tasks).toHaveLength(0);
    for (const s of [4n, 7n, 0x100000000n]) expect(decodeAll(probe(request({ dump: true, strategy: s, pid: 1 }))).done).toBe(-EINVAL);
  });

  it('a dump request shorter than genl + nlattr + 24 bytes -> NLMSG_DONE -EINVAL; any first attribute type is used', () => {
    expect(decodeAll(probe(request({ dump: true, pid: 1, noAttr: true }))).done).toBe(-EINVAL);
    expect(decodeAll(probe(request({ dump: true, pid: 1, payloadLen: 20, nlaLen: 24 }))).done).toBe(-EINVAL);
    const { leader, b } = tree.info;
    const d = decodeAll(probe(request({ dump: true, strategy: DUMP_CHILDREN, pid: leader, attrType: 9 })));
    expect(d.done).toBe(0);
    expect(d.tasks[0]!.task.pid).toBe(b);
  });

  it('unprivileged: children it may not read are skipped, the dump still ends with 0', () => {
    const d = decodeAll(probe(request({ dump: true, strategy: DUMP_CHILDREN, pid: tree.info.leader }), [],
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']));
    expect(d.done).toBe(0);
    expect(d.tasks).toHaveLength(0);
  });
});

describe('extensions (never change v1)', () => {
  it('THREADS: every thread of the group, leader first, in thread-list order', () => {
    const { leader, forkerThread, b } = tree.info;
    const d = decodeAll(probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_THREADS, pid: forkerThread })));
    expect(d.done).toBe(0);
    const got = d.tasks.map((t) => t.task.pid);
    expect(got[0]).toBe(leader);
    expect([...got].sort((x, y) => x - y)).toEqual(procThreads(leader));
    for (const t of d.tasks) expectMatchesProc(t, eq);
    const db = decodeAll(probe(request({ dump: true, strategy: DUMP_THREADS, pid: b })));
    expect(db.tasks.map((t) => t.task.pid)[0]).toBe(b);
    expect(db.tasks).toHaveLength(2);
    expect(decodeAll(probe(request({ dump: true, strategy: DUMP_THREADS, pid: 0x3ffffff0 }))).done).toBe(-ESRCH);
  });

  it('SUBTREE: the whole tree (processes and threads) in one dump, depth first as /proc/*/task/*/children', () => {
    const { leader } = tree.info;
    // expected order computed from /proc: threads of a process, then each thread's children recursively
    const expected: number[] = [];
    const visit = (tgid: number): void => {
      const threads = procThreads(tgid).filter((t) => t !== tgid);
      expected.push(tgid, ...threads);
      for (const th of [tgid, ...threads]) for (const c of procChildren(tgid, th)) visit(c);
    };
    visit(leader);
    const d = decodeAll(probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_SUBTREE, pid: leader }), ['-b', '4096']));
    expect(d.done).toBe(0);
    const got = d.tasks.map((t) => t.task.pid);
    // thread order inside a group is thread-list (creation) order; compare groups as sets, sequence of groups exactly
    const groupsOf = (ids: number[]): number[][] => {
      const out: number[][] = [];
      for (const id of ids) {
        const g = tgidOf(id);
        if (out.length && tgidOf(out[out.length - 1]![0]!) === g) out[out.length - 1]!.push(id);
        else out.push([id]);
      }
      return out.map((x) => [x[0]!, ...x.slice(1).sort((p, q) => p - q)]);
    };
    expect(groupsOf(got)).toEqual(groupsOf(expected));
    expect(got).toHaveLength(10); // leader+2 threads, b+thread, grand, stopped, zombie, user, threadChild
    for (const t of d.tasks) expectMatchesProc(t, eq);
    expect(decodeAll(probe(request({ dump: true, strategy: DUMP_SUBTREE, pid: 0x3ffffff0 }))).done).toBe(-ESRCH);
  });

  it('show_flags bit 1 adds attribute 65 after the v1 attributes; its fields match /proc', () => {
    const { leader, zombie, forkerThread } = tree.info;
    for (const pid of [leader, zombie, forkerThread]) {
      const d = decodeAll(probe(request({ dump: false, show: SHOW_CRED | SHOW_EXT, pid })));
      const t = d.tasks[0]!;
      expect(t.attrs.map((a) => a.type)).toEqual([ATTR_MSG, ATTR_CRED, ATTR_EXT]);
      const e = t.ext!;
      const tgid = t.task.tgid;
      const st = procStat(tgid, pid);
      const ss = procStatus(tgid, pid);
      expect(e.fixedLen).toBe(88);
      expect(e.startTime, 'start time').toBe(st.starttime);
      expect(e.startTimeNs / 10_000_000n).toBe(e.startTime);
      expect(e.flags, 'flags').toBe(st.flags);
      expect(e.nice).toBe(st.nice);
      expect(e.prio).toBe(st.priority);
      expect(e.policy).toBe(st.policy);
      expect(e.rtPriority).toBe(st.rtPriority);
      expect(e.exitCode, 'exit code').toBe(st.exitCode);
      expect(e.capAmb).toBe(ss.get('CapAmb'));
      expect(e.sigBlk).toBe(ss.get('SigBlk'));
      expect(e.noNewPrivs).toBe(Number(ss.get('NoNewPrivs')));
      expect(e.seccomp).toBe(Number(ss.get('Seccomp')));
      const groups = (ss.get('Groups') ?? '').split(' ').filter((x) => x !== '').map(Number);
      expect(e.groups).toEqual(groups);
      expect(e.ngroups).toBe(groups.length);
      expect(e.personality).toBe(parseInt(execFileSync('cat', [`/proc/${pid}/personality`], { encoding: 'utf8' }), 16));
    }
    // the zombie exited with 7: stat field 52 shows the raw wait status
    expect(decodeAll(probe(request({ dump: false, show: SHOW_EXT, pid: zombie }))).tasks[0]!.ext!.exitCode).toBe(7 << 8);
  });

  it('a v1 request (show_flags 0 or 1) never carries attribute 65', () => {
    const d = decodeAll(probe(request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 1 })));
    for (const t of d.tasks) expect(t.attrs.map((a) => a.type)).toEqual([ATTR_MSG, ATTR_CRED]);
  });
});

describe('wire details', () => {
  it('NLMSG_DONE of a dump is the only control message and comes last', () => {
    const r = probe(request({ dump: true, strategy: DUMP_ALL, pid: 1 }));
    const all = r.dgrams.flatMap((g) => messages(g));
    const ctl = all.filter((m) => m.type === NLMSG_DONE || m.type === NLMSG_ERROR);
    expect(ctl).toHaveLength(1);
    expect(all[all.length - 1]!.type).toBe(NLMSG_DONE);
    expect(all[all.length - 1]!.len).toBe(20);
  });
});
