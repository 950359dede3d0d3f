/**
 * The taskdiag source: task data from the TASKDIAG generic-netlink family (task_diag v1, provided by the
 * module in kernel/task_diag/).
 *
 * Walk with a plain v1 provider (strategies ALL and CHILDREN, attributes 64 and 0):
 *   1. TASKDIAG get(root)                                  the root process (ESRCH → no such process)
 *   2. for every process P: readdir /proc/P/task            its threads (v1 lists no threads) and
 *      TASKDIAG get(tid) for each non-leader thread         their identity and creds
 *   3. for every thread T of P: dump CHILDREN(T)            children hang off the thread that forked them
 *   4. per task, /proc/P/task/T/stat and /status            the fields v1 does not carry: start time, PF
 *      (one open+read+close each)                           flags, priority, nice, policy, rt priority, exit
 *                                                           code (stat); groups, CapAmb, NoNewPrivs, Seccomp,
 *                                                           SigBlk (status). Never read: personality,
 *                                                           securebits, robust futex list.
 * With the provider's extensions (detected once per open): DUMP_THREADS replaces step 2 by one dump per
 * process, DUMP_SUBTREE replaces steps 1–3 by a single dump, and attribute 65 (show_flags bit 1) carries every
 * field of step 4 plus personality, securebits and the robust list head, so no /proc file is read at all.
 *
 * Round trips = datagrams received on the netlink socket (a single-task request costs 1, a dump one per
 * datagram); syscalls = netlink system calls (counted exactly) + /proc reads (open/read/close = 3,
 * readdir = 5, as strace shows for node:fs).
 */
import { closeSync, openSync, readSync, readdirSync } from 'node:fs';
import { NoProcessError, PermissionError, UnavailableError } from '../../errors.js';
import { NetlinkError } from '../../netlink/errors.js';
import {
  TASK_DIAG_DUMP_ALL, TASK_DIAG_DUMP_CHILDREN, TASK_DIAG_DUMP_SUBTREE, TASK_DIAG_DUMP_THREADS,
  TASK_DIAG_SHOW_CRED, TASK_DIAG_SHOW_EXT, TaskDiagClient, type TaskDiagFeatures, type TaskDiagReply,
} from '../../netlink/taskdiag.js';
import { ROBUST_LIST_HEAD_SIZE, type Mask64, type OptionalField, type Task } from '../task.js';
import type { Probe, Source, SourceFactory, SourceStats, TreeOptions } from './source.js';
import { fillFromProc } from '../nsread.js';

import { TASKDIAG_HINT, TASKDIAG_MISSING } from './taskdiag-probe.js';

export { TASKDIAG_HINT };

/** Fields a plain v1 provider + the stat/status reads leave undefined. */
export const V1_MISSING: readonly OptionalField[] = ['securebits', 'personality', 'futexRla', 'futexRlaLen'];
/**
 * Fields the provider's attribute 65 leaves undefined: none (it sends the robust list head; the length is
 * the one set_robust_list(2) accepts).
 */
export const EXT_MISSING: readonly OptionalField[] = [];

function missingFamily(e: unknown): boolean {
  return e instanceof NetlinkError && e.code === 'ENOENT' && e.operation.startsWith('nlctrl getfamily');
}

export interface TaskDiagSourceOptions {
  /** use the provider's extensions when present (default true); false = plain v1 walk */
  extensions?: boolean;
}

export class TaskDiagSource implements Source {
  readonly name = 'taskdiag' as const;
  readonly missing: readonly OptionalField[];
  readonly features: TaskDiagFeatures;
  private readonly client: TaskDiagClient;
  private readonly show: number;
  private procSyscalls = 0;
  private readonly buf = Buffer.alloc(8192);

  constructor(client: TaskDiagClient, opts: TaskDiagSourceOptions = {}) {
    this.client = client;
    const f = client.features();
    this.features = opts.extensions === false ? { threads: false, subtree: false, ext: false } : f;
    this.show = TASK_DIAG_SHOW_CRED | (this.features.ext ? TASK_DIAG_SHOW_EXT : 0);
    this.missing = this.features.ext ? EXT_MISSING : V1_MISSING;
  }

  stats(): SourceStats {
    const s = this.client.stats();
    return { syscalls: s.syscalls + this.procSyscalls, roundTrips: s.datagrams };
  }

  close(): void { this.client.close(); }

  /**
   * The v1 family answers in the caller's pid namespace and carries no namespace identities: what `opts`
   * asks for beyond that (pids at the root's level, namespace ids) is read from /proc in user space.
   */
  async collectTree(root: number, opts: TreeOptions = {}): Promise<Task[]> {
    const tasks = await this.walkTree(root);
    this.procSyscalls += fillFromProc(tasks, opts.rootLevel ?? 0, opts.namespaces === true);
    return tasks;
  }

  private async walkTree(root: number): Promise<Task[]> {
    if (this.features.subtree) {
      const out: Task[] = [];
      try {
        for (const r of this.client.dumpSync(TASK_DIAG_DUMP_SUBTREE, root, this.show)) out.push(this.toTask(r));
      } catch (e) {
        throw this.mapRootError(e, root);
      }
      if (!out.length) throw new NoProcessError(root);
      return out;
    }
    let top: TaskDiagReply;
    try {
      top = this.client.get(root, this.show);
    } catch (e) {
      throw this.mapRootError(e, root);
    }
    const out: Task[] = [];
    const seen = new Set<number>();
    const queue: TaskDiagReply[] = [top];
    while (queue.length) {
      const p = queue.pop()!;
      if (seen.has(p.msg.pid)) continue;
      const threads = this.threadsOf(p);
      for (const t of threads) {
        if (seen.has(t.msg.pid)) continue;
        seen.add(t.msg.pid);
        out.push(this.toTask(t));
      }
      for (const t of threads) {
        try {
          for (const c of this.client.dumpSync(TASK_DIAG_DUMP_CHILDREN, t.msg.pid, this.show)) {
            if (!seen.has(c.msg.pid)) queue.push(c);
          }
        } catch (e) {
          if (e instanceof NetlinkError && e.code === 'ESRCH') continue; // the thread exited meanwhile
          throw e;
        }
      }
    }
    return out;
  }

  async collectAll(opts: { threads: boolean }): Promise<Task[]> {
    const leaders = [...this.client.dumpSync(TASK_DIAG_DUMP_ALL, 0, this.show)];
    const out: Task[] = [];
    for (const l of leaders) {
      if (!opts.threads) { out.push(this.toTask(l)); continue; }
      for (const t of this.threadsOf(l)) out.push(this.toTask(t));
    }
    return out;
  }

  /** The leader's reply first, then every other thread of its group. */
  private threadsOf(leader: TaskDiagReply): TaskDiagReply[] {
    const tgid = leader.msg.tgid;
    if (this.features.threads) {
      try {
        const all = [...this.client.dumpSync(TASK_DIAG_DUMP_THREADS, tgid, this.show)];
        return all.length ? all : [leader];
      } catch (e) {
        if (e instanceof NetlinkError && e.code === 'ESRCH') return [leader];
        throw e;
      }
    }
    const out = [leader];
    let names: string[];
    try {
      names = readdirSync(`/proc/${tgid}/task`);
      this.procSyscalls += 5;
    } catch {
      this.procSyscalls += 1;
      return out; // the process is gone (or a zombie whose task dir cannot be read)
    }
    for (const n of names) {
      const tid = Number(n);
      if (tid === tgid || !(tid > 0)) continue;
      try {
        out.push(this.client.get(tid, this.show));
      } catch (e) {
        if (e instanceof NetlinkError && e.code === 'ESRCH') continue; // exited meanwhile
        throw e;
      }
    }
    return out;
  }

  private mapRootError(e: unknown, root: number): unknown {
    if (e instanceof NetlinkError && e.code === 'ESRCH') return new NoProcessError(root);
    if (e instanceof NetlinkError && e.code === 'EPERM') {
      return new PermissionError('CAP_SYS_PTRACE', root,
        `TASKDIAG refused pid ${root} (ptrace read access): needs CAP_SYS_PTRACE for pid ${root}`);
    }
    return e;
  }

  private toTask(r: TaskDiagReply): Task {
    const m = r.msg;
    const c = r.creds;
    if (!c) throw new UnavailableError('TASKDIAG', `TASKDIAG reply for task ${m.pid} carries no credentials attribute`);
    const t: Task = {
      pid: m.pid, tgid: m.tgid, ppid: m.ppid, tpid: m.tpid, sid: m.sid, pgid: m.pgid, state: m.state, comm: m.comm,
      uid: c.uid, euid: c.euid, suid: c.suid, fsuid: c.fsuid, gid: c.gid, egid: c.egid, sgid: c.sgid, fsgid: c.fsgid,
      capInh: c.capInh, capPrm: c.capPrm, capEff: c.capEff, capBnd: c.capBnd,
    };
    const x = r.ext;
    if (x) {
      t.capAmb = x.capAmb;
      t.groups = x.groups;
      t.securebits = x.securebits;
      t.noNewPrivs = x.noNewPrivs;
      t.seccomp = x.seccomp;
      t.startTime = x.startTime;
      t.personality = x.personality;
      t.flags = x.flags;
      t.sigBlk = x.sigBlk;
      t.nice = x.nice;
      t.policy = x.policy;
      t.priority = x.prio;
      t.rtPriority = x.rtPriority;
      t.exitCode = x.exitCode;
      t.futexRla = Number(x.robustList);
      t.futexRlaLen = ROBUST_LIST_HEAD_SIZE;
    } else if (this.features.ext === false) {
      this.complement(t);
    }
    return t;
  }

  /** Fill what v1 lacks from /proc/TGID/task/TID/stat and status (a vanished task keeps them undefined). */
  private complement(t: Task): void {
    const dir = `/proc/${t.tgid}/task/${t.pid}`;
    const stat = this.readSmall(`${dir}/stat`);
    if (stat !== undefined) applyStat(t, stat);
    const status = this.readSmall(`${dir}/status`);
    if (status !== undefined) applyStatus(t, status);
  }

  private readSmall(path: string): string | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      this.procSyscalls += 1;
      return undefined;
    }
    try {
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      return this.buf.toString('latin1', 0, n);
    } catch {
      return undefined;
    } finally {
      closeSync(fd);
      this.procSyscalls += 3;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// /proc text for the v1 complement: scanned by position, no splitting or regexes.

/** Fields of /proc/PID/stat after the comm, numbered as proc(5) does (3 = state). */
export function statFields(stat: string): Map<number, string> {
  const out = new Map<number, string>();
  let i = stat.lastIndexOf(')');
  if (i < 0) return out;
  i += 2;
  let field = 3;
  while (i < stat.length) {
    let j = stat.indexOf(' ', i);
    if (j < 0) j = stat.length;
    let end = j;
    if (stat.charCodeAt(end - 1) === 10) end--;
    out.set(field++, stat.slice(i, end));
    i = j + 1;
  }
  return out;
}

function num(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

export function applyStat(t: Task, stat: string): void {
  const f = statFields(stat);
  const set = <K extends OptionalField>(k: K, v: number | undefined): void => {
    if (v !== undefined) (t as unknown as Record<string, number>)[k] = v;
  };
  set('flags', num(f.get(9)));
  set('priority', num(f.get(18)));
  set('nice', num(f.get(19)));
  set('startTime', num(f.get(22)));
  set('rtPriority', num(f.get(40)));
  set('policy', num(f.get(41)));
  set('exitCode', num(f.get(52)));
}

/** The value of one "Key:\tvalue" line of /proc/PID/status, or undefined. */
export function statusValue(status: string, key: string): string | undefined {
  let i: number;
  if (status.startsWith(`${key}:`)) {
    i = 0;
  } else {
    i = status.indexOf(`\n${key}:`);
    if (i < 0) return undefined;
    i += 1;
  }
  i += key.length + 1;
  let end = status.indexOf('\n', i);
  if (end < 0) end = status.length;
  return status.slice(i, end).trim();
}

export function hexMask(s: string | undefined): Mask64 | undefined {
  if (s === undefined || s.length !== 16) return undefined;
  const hi = parseInt(s.slice(0, 8), 16);
  const lo = parseInt(s.slice(8), 16);
  return Number.isNaN(hi) || Number.isNaN(lo) ? undefined : [lo, hi];
}

export function applyStatus(t: Task, status: string): void {
  const groups = statusValue(status, 'Groups');
  if (groups !== undefined) {
    const out: number[] = [];
    let i = 0;
    while (i < groups.length) {
      let j = groups.indexOf(' ', i);
      if (j < 0) j = groups.length;
      if (j > i) out.push(Number(groups.slice(i, j)));
      i = j + 1;
    }
    t.groups = out;
  }
  const amb = hexMask(statusValue(status, 'CapAmb'));
  if (amb) t.capAmb = amb;
  const nnp = statusValue(status, 'NoNewPrivs');
  if (nnp !== undefined) t.noNewPrivs = nnp === '1';
  const sec = num(statusValue(status, 'Seccomp'));
  if (sec !== undefined) t.seccomp = sec;
  const blk = hexMask(statusValue(status, 'SigBlk'));
  if (blk) t.sigBlk = blk;
}

// ---------------------------------------------------------------------------------------------------------

/** One line naming TASKDIAG and what to do. */
export function taskdiagUnavailable(cause?: unknown): UnavailableError {
  return new UnavailableError('TASKDIAG',
    `source taskdiag: this kernel has no TASKDIAG generic-netlink family; ${TASKDIAG_HINT}`, { cause });
}

export const taskdiagFactory: SourceFactory = {
  name: 'taskdiag',
  async probe(): Promise<Probe> {
    let c: TaskDiagClient | undefined;
    try {
      c = TaskDiagClient.open();
      const f = c.features();
      const ext = [f.threads && 'DUMP_THREADS', f.subtree && 'DUMP_SUBTREE', f.ext && 'attribute 65'].filter(Boolean);
      return { ok: true, detail: `TASKDIAG family ${c.family.id} v${c.family.version}` +
        (ext.length ? `, extensions: ${ext.join(', ')}` : ', plain v1') };
    } catch (e) {
      if (missingFamily(e)) return TASKDIAG_MISSING;
      return { ok: false, reason: `TASKDIAG: ${(e as Error).message}` };
    } finally {
      c?.close();
    }
  },
  async open(): Promise<Source> {
    let c: TaskDiagClient;
    try {
      c = TaskDiagClient.open();
    } catch (e) {
      if (missingFamily(e)) throw taskdiagUnavailable(e);
      throw e;
    }
    try {
      return new TaskDiagSource(c);
    } catch (e) {
      c.close();
      throw e;
    }
  },
};
