/**
 * The taskdiag source's tree walk on real process trees of this host, over an emulated TASKDIAG provider
 * (test/helpers/taskdiag-fake.ts answers the v1 protocol from /proc, since this kernel has no TASKDIAG
 * family): plain v1 walk (readdir for threads, CHILDREN per thread, stat/status complement) and the
 * extension path (one SUBTREE dump with attribute 65). Tasks are checked against /proc parsed here.
 * The real provider is tested in the guest (test/vm/guest/taskdiag-client.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { GenlConn } from '../../src/netlink/genl.js';
import { TaskDiagClient } from '../../src/netlink/taskdiag.js';
import { TaskDiagSource } from '../../src/collector/sources/taskdiag.js';
import { NoProcessError } from '../../src/errors.js';
import { getRobustList } from '../../src/sys/robust.js';
import type { Task } from '../../src/collector/task.js';
import { fakeTaskDiagSocket } from '../helpers/taskdiag-fake.js';
import { spawnTree, type Tree } from '../helpers/tree.js';

function status(tgid: number, tid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of readFileSync(`/proc/${tgid}/task/${tid}/status`, 'latin1').split('\n')) {
    const i = l.indexOf(':');
    if (i > 0) m.set(l.slice(0, i), l.slice(i + 1).trim());
  }
  return m;
}
function stat(tgid: number, tid: number): string[] {
  const s = readFileSync(`/proc/${tgid}/task/${tid}/stat`, 'latin1');
  return ['', '', ...s.slice(s.lastIndexOf(')') + 2).trim().split(' ')]; // [n - 1] = proc(5) field n
}
const hex16 = (m: readonly [number, number]): string => m[1].toString(16).padStart(8, '0') + m[0].toString(16).padStart(8, '0');

function expectProc(t: Task): void {
  const ss = status(t.tgid, t.pid);
  const st = stat(t.tgid, t.pid);
  const f = (n: number): number => Number(st[n - 1]); // st[2] is field 3 (state)
  const w = `task ${t.pid}`;
  expect({ tgid: t.tgid, ppid: t.ppid, tpid: t.tpid, pgid: t.pgid, sid: t.sid, state: t.state }, w).toEqual({
    tgid: Number(ss.get('Tgid')), ppid: Number(ss.get('PPid')), tpid: Number(ss.get('TracerPid')), pgid: f(5), sid: f(6), state: st[2] });
  expect(t.comm, w).toBe(readFileSync(`/proc/${t.tgid}/task/${t.pid}/comm`, 'latin1').trimEnd());
  expect([t.uid, t.euid, t.suid, t.fsuid].join('\t'), w).toBe(ss.get('Uid'));
  expect([t.gid, t.egid, t.sgid, t.fsgid].join('\t'), w).toBe(ss.get('Gid'));
  expect([hex16(t.capInh), hex16(t.capPrm), hex16(t.capEff), hex16(t.capBnd), hex16(t.capAmb!), hex16(t.sigBlk!)], w)
    .toEqual([ss.get('CapInh'), ss.get('CapPrm'), ss.get('CapEff'), ss.get('CapBnd'), ss.get('CapAmb'), ss.get('SigBlk')]);
  expect({ startTime: t.startTime, flags: t.flags, priority: t.priority, nice: t.nice, rt: t.rtPriority, policy: t.policy }, w)
    .toEqual({ startTime: f(22), flags: f(9), priority: f(18), nice: f(19), rt: f(40), policy: f(41) });
  expect([t.noNewPrivs ? '1' : '0', String(t.seccomp), t.groups!.join(' ')], w)
    .toEqual([ss.get('NoNewPrivs'), ss.get('Seccomp'), (ss.get('Groups') ?? '').split(/\s+/).filter(Boolean).join(' ')]);
}

let tree: Tree;
beforeAll(async () => { tree = await spawnTree({ procs: 6, fanout: 2, threads: 2, all: true }); });
afterAll(async () => { await tree?.kill(); });

const open = (extensions: boolean, perDatagram = 8): TaskDiagSource =>
  new TaskDiagSource(TaskDiagClient.over(new GenlConn(fakeTaskDiagSocket({ extensions, perDatagram }))));

describe('taskdiag source over an emulated provider', () => {
  for (const extensions of [false, true]) {
    it(`collectTree (${extensions ? 'SUBTREE + attribute 65' : 'plain v1 walk + /proc complement'}): every thread of the tree, each matching /proc`, async () => {
      const src = open(extensions);
      try {
        expect(src.features).toEqual({ threads: extensions, subtree: extensions, ext: extensions });
        const opened = src.stats(); // open(): family lookup + the three feature probes
        expect(opened.roundTrips).toBe(4);
        const tasks = await src.collectTree(tree.root);
        expect(tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
        for (const t of tasks) expectProc(t);
        // the child forked by a non-leader thread is found (children hang off threads)
        const tc = tree.one('thread-child');
        expect(tasks.some((t) => t.pid === tc)).toBe(true);
        const all = src.stats();
        const st = { roundTrips: all.roundTrips! - opened.roundTrips!, syscalls: all.syscalls! - opened.syscalls! };
        if (extensions) {
          expect(src.missing).toEqual([]);
          // the robust list length is the one get_robust_list(2) reports for the same thread
          for (const t of tasks) {
            const rb = { head: 0, len: 0 };
            expect(getRobustList(t.pid, rb), `get_robust_list(${t.pid})`).toBe(0);
            expect(t.futexRlaLen, `futexRlaLen of ${t.pid}`).toBe(rb.len);
          }
          expect(st.roundTrips).toBe(Math.ceil(tasks.length / 8)); // one dump, 8 tasks per datagram here
        } else {
          expect(src.missing).toEqual(['securebits', 'personality', 'futexRla', 'futexRlaLen']);
          for (const t of tasks) for (const f of src.missing) expect((t as unknown as Record<string, unknown>)[f]).toBeUndefined();
          const threads = tasks.length;
          const procs = tasks.filter((t) => t.pid === t.tgid).length;
          // get(root) + get(each non-leader thread) + ≥ 1 CHILDREN datagram per thread
          expect(st.roundTrips).toBeGreaterThanOrEqual(1 + (threads - procs) + threads);
          expect(st.syscalls).toBeGreaterThanOrEqual(st.roundTrips + 2 * 3 * threads + 5 * procs);
        }
      } finally {
        src.close();
      }
    });
  }

  it('collectAll: every process of the machine (threads on request)', async () => {
    const src = open(false, 50);
    try {
      const leaders = await src.collectAll({ threads: false });
      expect(leaders.every((t) => t.pid === t.tgid)).toBe(true);
      for (const p of tree.pids) expect(leaders.some((t) => t.pid === p)).toBe(true);
      const all = await src.collectAll({ threads: true });
      for (const tid of tree.tids) expect(all.some((t) => t.pid === tid)).toBe(true);
    } finally {
      src.close();
    }
  });

  it('a missing root → NoProcessError (ESRCH from get, and from SUBTREE\'s NLMSG_DONE)', async () => {
    for (const ext of [false, true]) {
      const src = open(ext);
      try {
        await expect(src.collectTree(0x3ffffff0)).rejects.toBeInstanceOf(NoProcessError);
      } finally {
        src.close();
      }
    }
  });
});
