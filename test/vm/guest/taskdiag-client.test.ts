/**
 * tdcollect's TASKDIAG client (src/netlink/taskdiag.ts over src/netlink/transport.ts) and the taskdiag source
 * against the real provider (kernel/task_diag, loaded by setup.sh). Runs inside the QEMU guest only; REQUIRES
 * the TASKDIAG family (fails, never skips, without it). Every field is checked against /proc read by the
 * guest test library (independent of src/).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { GenlConn } from '../../../src/netlink/genl.js';
import { KernelSocket, type NetlinkSocket } from '../../../src/netlink/transport.js';
import { NetlinkError } from '../../../src/netlink/errors.js';
import { decodeMessages, NLMSG_DONE, NLMSG_ERROR } from '../../../src/netlink/codec.js';
import { NETLINK_GENERIC } from '../../../src/sys/netlink.js';
import {
  TASK_DIAG_DUMP_ALL, TASK_DIAG_DUMP_CHILDREN, TASK_DIAG_DUMP_SUBTREE, TASK_DIAG_DUMP_THREADS, TASK_DIAG_SHOW_CRED,
  TASK_DIAG_SHOW_EXT, TaskDiagClient, type TaskDiagReply,
} from '../../../src/netlink/taskdiag.js';
import { TaskDiagSource, taskdiagFactory } from '../../../src/collector/sources/taskdiag.js';
import { SOURCES } from '../../../src/collector/sources/index.js';
import { REQUIRED_FIELDS, OPTIONAL_FIELDS, type Task } from '../../../src/collector/task.js';
import {
  procChildren, procStat, procStatus, procThreads, startTree, STATE_LETTERS, type Fixture, type TreeInfo,
} from './lib.js';

/** A kernel socket that keeps a copy of every datagram sent and received. */
class Recording implements NetlinkSocket {
  readonly inner = new KernelSocket(NETLINK_GENERIC);
  readonly sent: Buffer[] = [];
  readonly received: Buffer[] = [];
  get port(): number { return this.inner.port; }
  get syscalls(): number { return this.inner.syscalls; }
  send(d: Buffer): void { this.sent.push(Buffer.from(d)); this.inner.send(d); }
  recv(): Buffer { const d = this.inner.recv(); this.received.push(d); return d; }
  close(): void { this.inner.close(); }
}

const hex16 = (m: readonly [number, number]): string => m[1].toString(16).padStart(8, '0') + m[0].toString(16).padStart(8, '0');

/** Compare one reply with /proc/TGID/task/TID/{stat,status}. */
function expectProc(r: TaskDiagReply): void {
  const { tgid, pid } = r.msg;
  const st = procStat(tgid, pid);
  const ss = procStatus(tgid, pid);
  expect({ tgid, pid, ppid: r.msg.ppid, tpid: r.msg.tpid, sid: r.msg.sid, pgid: r.msg.pgid, state: r.msg.state, comm: r.msg.comm },
    `task ${pid}`).toEqual({
    tgid: Number(ss.get('Tgid')), pid, ppid: st.ppid, tpid: Number(ss.get('TracerPid')), sid: st.session, pgid: st.pgrp,
    state: st.state, comm: st.comm,
  });
  expect(STATE_LETTERS[r.msg.stateIndex]).toBe(r.msg.state);
  const c = r.creds!;
  expect([c.uid, c.euid, c.suid, c.fsuid].join(' '), `uids of ${pid}`).toBe(ss.get('Uid')!.split(/\s+/).join(' '));
  expect([c.gid, c.egid, c.sgid, c.fsgid].join(' '), `gids of ${pid}`).toBe(ss.get('Gid')!.split(/\s+/).join(' '));
  expect([hex16(c.capInh), hex16(c.capPrm), hex16(c.capEff), hex16(c.capBnd)], `caps of ${pid}`)
    .toEqual([ss.get('CapInh'), ss.get('CapPrm'), ss.get('CapEff'), ss.get('CapBnd')]);
}

/** every pid directory of /proc (numeric names), ascending */
function procPids(): number[] {
  return readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n)).map(Number).sort((a, b) => a - b);
}

let tree: Fixture<TreeInfo>;
let client: TaskDiagClient;
beforeAll(async () => {
  tree = await startTree<TreeInfo>(['tree']);
  client = TaskDiagClient.open();
});
afterAll(async () => {
  client?.close();
  await tree?.stop();
});

/** every tid of the fixture tree (leader's process and descendants), from /proc */
function treeTids(): number[] {
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const tid of procThreads(pid)) {
      out.push(tid);
      for (const c of procChildren(pid, tid)) walk(c);
    }
  };
  walk(tree.info.leader);
  return out.sort((a, b) => a - b);
}

describe('TASKDIAG client against the provider', () => {
  it('resolves the family and detects the provider\'s extensions', () => {
    expect(client.family.name).toBe('TASKDIAG');
    expect(client.family.version).toBe(1);
    expect(client.features()).toEqual({ threads: true, subtree: true, ext: true });
  });

  it('single task (doit) with creds for every thread of the tree matches /proc', () => {
    const tids = treeTids();
    expect(tids.length).toBeGreaterThan(4);
    for (const tid of tids) expectProc(client.get(tid, TASK_DIAG_SHOW_CRED));
    // without SHOW_CRED: no attribute 0
    expect(client.get(tree.info.leader, 0).creds).toBeUndefined();
  });

  it('the selftest\'s exact request bytes (nla_len 29, nlmsg_len 52) are answered', () => {
    const sock = new Recording();
    const c = TaskDiagClient.over(new GenlConn(sock));
    try {
      const r = c.get(tree.info.leader, TASK_DIAG_SHOW_CRED, { quirk: true });
      const req = sock.sent[sock.sent.length - 1];
      expect(req.length).toBe(52);
      expect(req.readUInt32LE(0)).toBe(52);       // nlmsg_len
      expect(req.readUInt16LE(6)).toBe(1);        // NLM_F_REQUEST
      expect(req.readUInt16LE(20)).toBe(29);      // nla_len with the +1 quirk
      expect(req.readUInt16LE(22)).toBe(1);       // TASKDIAG_CMD_ATTR_GET
      expectProc(r);
      // one reply of 136 bytes: 16 + 4 + 48 + 68
      const last = decodeMessages(sock.received[sock.received.length - 1]);
      expect(last.map((m) => m.header.len)).toEqual([136]);
    } finally {
      c.close();
    }
  });

  it('DUMP_ALL lists every process once (no threads), ascending, like /proc', () => {
    const sock = new Recording();
    const c = TaskDiagClient.over(new GenlConn(sock));
    try {
      const before = procPids();
      const all = [...c.dumpSync(TASK_DIAG_DUMP_ALL, 0, TASK_DIAG_SHOW_CRED, { quirk: true })];
      const after = procPids();
      const tg = all.map((r) => r.msg.tgid);
      expect(all.every((r) => r.msg.pid === r.msg.tgid)).toBe(true);
      expect([...tg].sort((a, b) => a - b)).toEqual(tg);
      const stable = before.filter((p) => after.includes(p));
      for (const p of stable) expect(tg, `pid ${p}`).toContain(p);
      // a pid in neither /proc listing was a short-lived process that came and went during the dump
      for (const p of tg) if (!before.includes(p) && !after.includes(p)) expect(existsSync(`/proc/${p}`), `pid ${p}`).toBe(false);
      // v1 dump messages carry nlmsg_flags 0; the dump ends with NLMSG_DONE 0
      const msgs = sock.received.slice(1).flatMap((d) => decodeMessages(d)); // [0] is the family lookup
      const data = msgs.filter((m) => m.header.type !== NLMSG_DONE);
      expect(data.length).toBe(all.length);
      expect(data.every((m) => m.header.flags === 0)).toBe(true);
      const done = msgs[msgs.length - 1];
      expect(done.header.type).toBe(NLMSG_DONE);
      expect(done.payload.readInt32LE(0)).toBe(0);
      for (const r of all.filter((x) => x.msg.tgid === tree.info.leader || x.msg.tgid === tree.info.b)) expectProc(r);
    } finally {
      c.close();
    }
  });

  it('DUMP_CHILDREN of a non-leader thread lists the child it forked (and the leader does not)', () => {
    const { leader, forkerThread, threadChild } = tree.info;
    expect(forkerThread).not.toBe(leader);
    const ofThread = [...client.dumpSync(TASK_DIAG_DUMP_CHILDREN, forkerThread)].map((r) => r.msg.pid);
    expect(ofThread).toEqual(procChildren(leader, forkerThread));
    expect(ofThread).toContain(threadChild);
    const ofLeader = [...client.dumpSync(TASK_DIAG_DUMP_CHILDREN, leader)].map((r) => r.msg.pid);
    expect(ofLeader).toEqual(procChildren(leader, leader));
    expect(ofLeader).not.toContain(threadChild);
  });

  it('ESRCH for a missing pid: NLMSG_ERROR for a single task, NLMSG_DONE -3 for CHILDREN', () => {
    const missing = 0x3ffffff0;
    expect(() => client.get(missing)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    const sock = new Recording();
    const c = TaskDiagClient.over(new GenlConn(sock));
    try {
      expect(() => [...c.dumpSync(TASK_DIAG_DUMP_CHILDREN, missing)]).toThrow(expect.objectContaining({ code: 'ESRCH', errno: 3 }));
      const last = decodeMessages(sock.received[sock.received.length - 1]);
      expect(last[last.length - 1].header.type).toBe(NLMSG_DONE);
      expect(last[last.length - 1].payload.readInt32LE(0)).toBe(-3);
      // unknown strategy → EINVAL, also in NLMSG_DONE
      expect(() => [...c.dumpSync(7, 1)]).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      const l2 = decodeMessages(sock.received[sock.received.length - 1]);
      expect(l2[l2.length - 1].header.type).toBe(NLMSG_DONE);
      expect(l2[l2.length - 1].payload.readInt32LE(0)).toBe(-22);
      // a single-task error is an NLMSG_ERROR
      expect(() => c.get(missing)).toThrow(NetlinkError);
      expect(decodeMessages(sock.received[sock.received.length - 1])[0].header.type).toBe(NLMSG_ERROR);
    } finally {
      c.close();
    }
  });

  it('extensions: THREADS of the leader = /proc task list; SUBTREE = the whole tree; attribute 65 = stat/status', () => {
    const { leader } = tree.info;
    const th = [...client.dumpSync(TASK_DIAG_DUMP_THREADS, leader)].map((r) => r.msg.pid);
    expect([...th].sort((a, b) => a - b)).toEqual(procThreads(leader));
    expect(th[0]).toBe(leader);
    const sub = [...client.dumpSync(TASK_DIAG_DUMP_SUBTREE, leader, TASK_DIAG_SHOW_CRED | TASK_DIAG_SHOW_EXT)];
    expect(sub.map((r) => r.msg.pid).sort((a, b) => a - b)).toEqual(treeTids());
    for (const r of sub) {
      expectProc(r);
      const st = procStat(r.msg.tgid, r.msg.pid);
      const ss = procStatus(r.msg.tgid, r.msg.pid);
      const x = r.ext!;
      expect({ startTime: x.startTime, flags: x.flags, nice: x.nice, policy: x.policy, prio: x.prio, rt: x.rtPriority },
        `ext of ${r.msg.pid}`).toEqual({ startTime: Number(st.starttime), flags: st.flags, nice: st.nice, policy: st.policy,
        prio: st.priority, rt: st.rtPriority });
      expect(hex16(x.sigBlk)).toBe(ss.get('SigBlk'));
      expect(hex16(x.capAmb)).toBe(ss.get('CapAmb'));
      expect(x.noNewPrivs ? '1' : '0').toBe(ss.get('NoNewPrivs'));
      expect(String(x.seccomp)).toBe(ss.get('Seccomp'));
      expect(x.groups.join(' ')).toBe(ss.get('Groups') ?? '');
    }
  });
});

describe('taskdiag source', () => {
  const norm = (ts: Task[]): Task[] => [...ts].sort((a, b) => a.pid - b.pid);

  it('probe() is ok and names the extensions', async () => {
    const p = await taskdiagFactory.probe();
    expect(p).toMatchObject({ ok: true });
    expect(p.ok && p.detail).toContain('DUMP_SUBTREE');
  });

  /** A Task against /proc/TGID/task/TID/{stat,status} (guest library readings). */
  function expectTaskProc(t: Task, missing: readonly string[]): void {
    const st = procStat(t.tgid, t.pid);
    const ss = procStatus(t.tgid, t.pid);
    const w = `task ${t.pid}`;
    expect({ tgid: t.tgid, ppid: t.ppid, tpid: t.tpid, sid: t.sid, pgid: t.pgid, state: t.state, comm: t.comm }, w).toEqual({
      tgid: Number(ss.get('Tgid')), ppid: st.ppid, tpid: Number(ss.get('TracerPid')), sid: st.session, pgid: st.pgrp,
      state: st.state, comm: st.comm });
    expect([t.uid, t.euid, t.suid, t.fsuid].join(' '), w).toBe(ss.get('Uid')!.split(/\s+/).join(' '));
    expect([t.gid, t.egid, t.sgid, t.fsgid].join(' '), w).toBe(ss.get('Gid')!.split(/\s+/).join(' '));
    expect([hex16(t.capInh), hex16(t.capPrm), hex16(t.capEff), hex16(t.capBnd), hex16(t.capAmb!)], w)
      .toEqual([ss.get('CapInh'), ss.get('CapPrm'), ss.get('CapEff'), ss.get('CapBnd'), ss.get('CapAmb')]);
    expect({ startTime: t.startTime, flags: t.flags, nice: t.nice, policy: t.policy, priority: t.priority,
      rtPriority: t.rtPriority, exitCode: t.exitCode }, w).toEqual({ startTime: Number(st.starttime), flags: st.flags,
      nice: st.nice, policy: st.policy, priority: st.priority, rtPriority: st.rtPriority, exitCode: st.exitCode });
    expect([hex16(t.sigBlk!), t.noNewPrivs ? '1' : '0', String(t.seccomp), t.groups!.join(' ')], w)
      .toEqual([ss.get('SigBlk'), ss.get('NoNewPrivs'), ss.get('Seccomp'), ss.get('Groups') ?? '']);
    for (const f of missing) expect((t as unknown as Record<string, unknown>)[f], `${f} of ${t.pid}`).toBeUndefined();
  }

  for (const extensions of [true, false]) {
    it(`collectTree (${extensions ? 'extensions' : 'plain v1 walk'}) matches /proc field by field`, async () => {
      const src = new TaskDiagSource(TaskDiagClient.open(), { extensions });
      try {
        const a = norm(await src.collectTree(tree.info.leader));
        expect(a.map((t) => t.pid)).toEqual(treeTids());
        for (const t of a) expectTaskProc(t, src.missing);
        const states = new Set(a.map((t) => t.state));
        expect(states.has('T') && states.has('Z')).toBe(true); // the fixture's stopped child and zombie
      } finally {
        src.close();
      }
    });

    it(`collectTree (${extensions ? 'extensions: one SUBTREE dump' : 'plain v1 walk: CHILDREN per thread + /proc complement'}) = procfs source on the same tree`, async () => {
      const src = new TaskDiagSource(TaskDiagClient.open(), { extensions });
      const pf = SOURCES.procfs!;
      const probe = await pf.probe();
      expect(probe, 'the procfs source must work in the guest').toMatchObject({ ok: true });
      const proc = await pf.open();
      try {
        const opened = src.stats(); // family lookup + three feature probes
        expect(opened.roundTrips).toBe(4);
        const a = norm(await src.collectTree(tree.info.leader));
        const b = norm(await proc.collectTree(tree.info.leader));
        expect(a.map((t) => t.pid)).toEqual(treeTids());
        expect(a.map((t) => t.pid)).toEqual(b.map((t) => t.pid));
        for (let i = 0; i < a.length; i++) {
          for (const f of REQUIRED_FIELDS) expect(a[i][f], `${f} of ${a[i].pid}`).toEqual(b[i][f]);
          for (const f of OPTIONAL_FIELDS) {
            if (a[i][f] !== undefined && b[i][f] !== undefined) expect(a[i][f], `${f} of ${a[i].pid}`).toEqual(b[i][f]);
            // ns is filled only when asked for (below)
            if (!src.missing.includes(f) && f !== 'futexRla' && f !== 'ns') expect(a[i][f], `${f} of ${a[i].pid} filled`).not.toBeUndefined();
          }
        }
        const all = src.stats();
        const st = { roundTrips: all.roundTrips! - opened.roundTrips!, syscalls: all.syscalls! - opened.syscalls! };
        if (extensions) {
          expect(src.missing).toEqual([]);
          expect(st.roundTrips).toBe(1); // the whole tree in one SUBTREE datagram
          expect(st.syscalls).toBe(2); // sendto + recvfrom
        } else {
          expect(src.missing).toEqual(['securebits', 'personality', 'futexRla', 'futexRlaLen']);
          // one get per process root + one get per non-leader thread + one CHILDREN dump per thread
          expect(st.roundTrips).toBeGreaterThanOrEqual(a.length);
        }
        if (!extensions) expect(st.syscalls).toBeGreaterThan(st.roundTrips);
        // asked for namespace identities (as collect() asks), both sources fill them for every task, alike
        const an = norm(await src.collectTree(tree.info.leader, { namespaces: true }));
        const bn = norm(await proc.collectTree(tree.info.leader, { namespaces: true }));
        expect(an.map((t) => t.pid)).toEqual(bn.map((t) => t.pid));
        for (let i = 0; i < an.length; i++) {
          expect(an[i].ns, `ns of ${an[i].pid}`).toBeDefined();
          expect(an[i].ns, `ns of ${an[i].pid}`).toEqual(bn[i].ns);
        }
      } finally {
        src.close();
        proc.close();
      }
    });
  }

  it('collectTree of a missing pid → NoProcessError; sockets closed', async () => {
    const before = readdirSync('/proc/self/fd').length;
    const src = await taskdiagFactory.open();
    await expect(src.collectTree(0x3ffffff0)).rejects.toMatchObject({ kind: 'no-process' });
    src.close();
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });
});
