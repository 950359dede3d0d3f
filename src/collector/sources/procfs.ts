/**
 * The procfs source: walks a tree the way CRIU's collect_pstree() does (/proc/PID/task for threads,
 * /proc/PID/task/TID/children of EVERY thread for children, so a child forked by a non-leader thread is
 * found), and reads each task's values from its own /proc/PID/task/TID files. It is the baseline every
 * other source is measured against, so it is written to be fast and honest:
 *
 *   per thread  stat (state, ids, flags, priority, nice, start time, rt priority, policy, exit code, comm)
 *               status (TracerPid, Uid, Gid, Groups, SigBlk, Cap*, NoNewPrivs, Seccomp)
 *               personality (hex text)
 *               children (tree walk only; its thread's child processes)
 *               get_robust_list(tid) (one syscall, src/sys/robust.ts)
 *   per process readdir(/proc/PID/task), only when stat's num_threads says there is more than one thread
 *   namespaces  when asked (TreeOptions.namespaces): readlink of ns/{pid,user,time} once per process and
 *               ns/{mnt,net,ipc,uts,cgroup} per thread (../nsread.ts)
 *   NSpid       when asked (TreeOptions.rootLevel > 0): taken from the status read above, no extra read
 *
 * Every file is read whole through the one /proc reader (../procfile.ts, shared with the freezers): opened,
 * read into one reusable buffer that grows as needed, closed (3 syscalls; `children`, a seq_file handed out a
 * page per read, takes one read per page).
 * Values are parsed from the bytes in place: no split, no regex, no per-line strings.
 * securebits is not in /proc, so it stays undefined and is listed in `missing`.
 *
 * The walk is one pass: on a frozen tree it is exact; on a live tree, tasks that vanish mid-walk
 * (ENOENT/ESRCH) are skipped and a child whose parent no longer matches (pid reused) is dropped.
 */
import { existsSync, readdirSync } from 'node:fs';
import { NoProcessError, PermissionError, UnavailableError } from '../../errors.js';
import { getRobustList, type RobustList } from '../../sys/robust.js';
import type { Mask64, OptionalField, Task, TaskState } from '../task.js';
import { nsReadCost, readNsIds } from '../nsread.js';
import type { Probe, Source, SourceFactory, SourceStats, TreeOptions } from './source.js';
import { DENIED, GONE, ProcFile, type ProcFileKind } from '../procfile.js';

const O_DIRECTORY_SCAN_SYSCALLS = 4;

const C_SPACE = 0x20, C_TAB = 0x09, C_NL = 0x0a, C_LPAREN = 0x28, C_RPAREN = 0x29, C_COLON = 0x3a;
const C_0 = 0x30, C_9 = 0x39;

/** task state by its /proc letter; unknown letters are kept as they are */
const STATE_BY_CODE: string[] = [];
for (let c = 0; c < 128; c++) STATE_BY_CODE.push(String.fromCharCode(c));

const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const K_TGID = bytes('Tgid');
const K_TRACERPID = bytes('TracerPid');
const K_UID = bytes('Uid');
const K_GID = bytes('Gid');
const K_GROUPS = bytes('Groups');
const K_SIGBLK = bytes('SigBlk');
const K_CAPINH = bytes('CapInh');
const K_CAPPRM = bytes('CapPrm');
const K_CAPEFF = bytes('CapEff');
const K_CAPBND = bytes('CapBnd');
const K_CAPAMB = bytes('CapAmb');
const K_NONEWPRIVS = bytes('NoNewPrivs');
const K_SECCOMP = bytes('Seccomp');
const K_NSPID = bytes('NSpid');

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The shared /proc reader (../procfile.ts) with the source's permission rule: a refused read is a
 * PermissionError naming CAP_SYS_PTRACE and the pid when `strict` (a tree walk), else the field is skipped.
 */
class ProcReader extends ProcFile {
  /** Read `path` whole; its length, or GONE (also for a refusal when not strict). */
  readTask(path: string, pid: number, kind: ProcFileKind, strict: boolean): number {
    const n = this.read(path, kind);
    if (n !== DENIED) return n;
    if (!strict) return GONE - 1;
    throw new PermissionError('CAP_SYS_PTRACE', pid,
      `cannot read ${path}: reading pid ${pid} needs CAP_SYS_PTRACE (or the same user)`);
  }
}

/** The Task fields parsed from stat, kept between the stat and status reads of one thread. */
interface StatFields {
  comm: string;
  state: TaskState;
  ppid: number;
  pgid: number;
  sid: number;
  flags: number;
  priority: number;
  nice: number;
  numThreads: number;
  startTime: number;
  rtPriority: number;
  policy: number;
  exitCode: number;
}

const MISSING: readonly OptionalField[] = ['securebits'];

export class ProcfsSource implements Source {
  readonly name = 'procfs' as const;
  readonly missing = MISSING;
  private readonly r = new ProcReader();
  private readonly st: StatFields = {
    comm: '', state: 'S', ppid: 0, pgid: 0, sid: 0, flags: 0, priority: 0, nice: 0, numThreads: 0,
    startTime: 0, rtPriority: 0, policy: 0, exitCode: 0,
  };
  private readonly robust: RobustList = { head: 0, len: 0 };
  private readonly kids: number[] = [];
  private closed = false;
  /** Tgid: of the last status parsed */
  private statusTgid = 0;
  /** TreeOptions of the walk under way: NSpid level to keep (0: none), namespace ids wanted */
  private level = 0;
  private wantNs = false;

  async collectTree(root: number, opts: TreeOptions = {}): Promise<Task[]> {
    this.check();
    this.level = opts.rootLevel ?? 0;
    this.wantNs = opts.namespaces === true;
    try {
      return this.walk(root);
    } finally {
      this.level = 0;
      this.wantNs = false;
    }
  }

  private walk(root: number): Task[] {
    const tasks: Task[] = [];
    const seen = new Set<number>();
    // depth-first: pending processes with the parent they were found under
    const stack: number[] = [root, -1];
    while (stack.length) {
      const parent = stack.pop()!;
      const tgid = stack.pop()!;
      if (seen.has(tgid)) continue;
      seen.add(tgid);
      if (!this.readProcess(tgid, parent, true, true, tasks, stack)) {
        if (tgid === root) throw new NoProcessError(root);
        continue;
      }
      // /proc/TID/... also answers for a thread id: a thread cannot root a tree
      if (tgid === root && this.statusTgid !== root) {
        throw new NoProcessError(root, `pid ${root} is a thread of process ${this.statusTgid}; give the process id`);
      }
    }
    return tasks;
  }

  async collectAll(opts: { threads: boolean }): Promise<Task[]> {
    this.check();
    const r = this.r;
    r.syscalls += O_DIRECTORY_SCAN_SYSCALLS; // open, getdents64 until empty, close (approximately: a big /proc takes more getdents)
    const names = readdirSync('/proc');
    const tasks: Task[] = [];
    for (const name of names) {
      const c = name.charCodeAt(0);
      if (c < C_0 || c > C_9) continue;
      const tgid = Number(name);
      this.readProcess(tgid, -1, opts.threads, false, tasks, undefined);
    }
    return tasks;
  }

  stats(): SourceStats {
    return { syscalls: this.r.syscalls };
  }

  close(): void {
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new UnavailableError('procfs', 'the procfs source is closed');
  }

  /**
   * Append the tasks of process tgid (its leader first, then its other threads when `threads`).
   * With `children`, push each child found in the threads' children files onto `queue` as
   * (child, tgid) pairs. Returns false when the process is gone.
   */
  private readProcess(
    tgid: number, parent: number, threads: boolean, strict: boolean, out: Task[], queue: number[] | undefined,
  ): boolean {
    const leader = this.readTask(tgid, tgid, parent, strict, queue);
    if (!leader) return false;
    out.push(leader);
    const wantNs = this.wantNs;
    if (wantNs) {
      this.r.syscalls += nsReadCost().leader;
      leader.ns = readNsIds(tgid, tgid);
    }
    if (!threads || this.st.numThreads <= 1) return true;
    // the leader's stat said there are more threads: list them
    let names: string[];
    this.r.syscalls += O_DIRECTORY_SCAN_SYSCALLS;
    try {
      names = readdirSync(`/proc/${tgid}/task`);
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOENT' || code === 'ESRCH') return true;
      if (code === 'EACCES' || code === 'EPERM') {
        if (!strict) return true;
        throw new PermissionError('CAP_SYS_PTRACE', tgid, `cannot list /proc/${tgid}/task: needs CAP_SYS_PTRACE for pid ${tgid}`);
      }
      throw e;
    }
    for (const name of names) {
      const tid = Number(name);
      if (tid === tgid) continue;
      const t = this.readTask(tgid, tid, -1, strict, queue);
      if (!t) continue;
      if (wantNs) {
        this.r.syscalls += nsReadCost().thread;
        t.ns = readNsIds(tgid, tid, leader.ns);
      }
      out.push(t);
    }
    return true;
  }

  /** One thread's Task, or undefined when it vanished. */
  private readTask(tgid: number, tid: number, parent: number, strict: boolean, queue: number[] | undefined): Task | undefined {
    const r = this.r;
    const base = `/proc/${tgid}/task/${tid}/`;
    if (r.readTask(base + 'stat', tgid, 'single', strict) < 0) return undefined;
    const st = this.st;
    this.parseStat(st);
    // a pid found in a children file whose parent is now someone else was reused meanwhile
    if (parent >= 0 && st.ppid !== parent) return undefined;
    if (r.readTask(base + 'status', tgid, 'single', strict) < 0) return undefined;
    const t: Task = {
      pid: tid,
      tgid,
      ppid: st.ppid,
      tpid: 0,
      sid: st.sid,
      pgid: st.pgid,
      state: st.state,
      comm: st.comm,
      uid: 0, euid: 0, suid: 0, fsuid: 0,
      gid: 0, egid: 0, sgid: 0, fsgid: 0,
      capInh: ZERO64, capPrm: ZERO64, capEff: ZERO64, capBnd: ZERO64,
      startTime: st.startTime,
      flags: st.flags,
      nice: st.nice,
      policy: st.policy,
      priority: st.priority,
      rtPriority: st.rtPriority,
      exitCode: st.exitCode,
    };
    // status fills the ids, caps, groups, sigBlk, noNewPrivs, seccomp; optional keys appear only when read
    this.parseStatus(t);
    // personality needs PTRACE_MODE_ATTACH: without it the field stays undefined outside a tree walk
    const pn = r.readTask(base + 'personality', tgid, 'single', strict);
    if (pn === GONE) return undefined;
    if (pn > 0) {
      r.pos = 0;
      t.personality = r.mask64()[0];
    }
    if (queue) {
      if (r.readTask(base + 'children', tgid, 'records', strict) < 0) return undefined;
      const kids = this.kids;
      kids.length = 0;
      r.numbers(kids);
      for (const c of kids) queue.push(c, tgid);
    }
    r.syscalls++;
    const rb = this.robust;
    if (getRobustList(tid, rb) === 0) {
      t.futexRla = rb.head;
      t.futexRlaLen = rb.len;
    }
    return t;
  }

  /** /proc/PID/task/TID/stat: comm between the first '(' and the LAST ')', then fields 3.. */
  private parseStat(st: StatFields): void {
    const r = this.r;
    const b = r.buf;
    let open = 0;
    while (b[open] !== C_LPAREN) open++;
    let close = r.len - 1;
    while (close > open && b[close] !== C_RPAREN) close--;
    st.comm = b.toString('utf8', open + 1, close);
    r.pos = close + 2;
    st.state = STATE_BY_CODE[b[r.pos]] as TaskState;
    r.pos += 2;
    st.ppid = r.int(); // 4
    st.pgid = r.int(); // 5
    st.sid = r.int(); // 6
    r.skip(2); // 7 tty_nr, 8 tpgid
    st.flags = r.int() >>> 0; // 9
    r.skip(8); // 10..17 faults and times
    st.priority = r.int(); // 18
    st.nice = r.int(); // 19
    st.numThreads = r.int(); // 20
    r.skip(1); // 21 itrealvalue
    st.startTime = r.int(); // 22
    r.skip(17); // 23..39
    st.rtPriority = r.int(); // 40
    st.policy = r.int(); // 41
    r.skip(10); // 42..51
    st.exitCode = r.int(); // 52
  }

  /** /proc/PID/task/TID/status: "Key:\tvalue\n" lines, matched by key bytes */
  private parseStatus(t: Task): void {
    const r = this.r;
    const b = r.buf;
    const end = r.len;
    let p = 0;
    while (p < end) {
      let colon = p;
      while (colon < end && b[colon] !== C_COLON && b[colon] !== C_NL) colon++;
      if (colon >= end) break;
      let v = colon + 1;
      while (b[v] === C_TAB || b[v] === C_SPACE) v++;
      r.pos = v;
      switch (b[p]) {
        case 0x54: // T
          if (r.isKey(K_TRACERPID, p, colon)) t.tpid = r.int();
          else if (r.isKey(K_TGID, p, colon)) this.statusTgid = r.int();
          break;
        case 0x55: // U
          if (r.isKey(K_UID, p, colon)) {
            t.uid = r.int(); t.euid = r.int(); t.suid = r.int(); t.fsuid = r.int();
          }
          break;
        case 0x47: // G
          if (r.isKey(K_GID, p, colon)) {
            t.gid = r.int(); t.egid = r.int(); t.sgid = r.int(); t.fsgid = r.int();
          } else if (r.isKey(K_GROUPS, p, colon)) {
            const groups: number[] = [];
            let q = v;
            while (b[q] !== C_NL && q < end) {
              const c = b[q];
              if (c >= C_0 && c <= C_9) { r.pos = q; groups.push(r.int()); q = r.pos - 1; }
              q++;
            }
            t.groups = groups;
          }
          break;
        case 0x53: // S
          if (r.isKey(K_SIGBLK, p, colon)) t.sigBlk = r.mask64();
          else if (r.isKey(K_SECCOMP, p, colon)) t.seccomp = r.int();
          break;
        case 0x43: // C
          if (colon - p === 6 && b[p + 1] === 0x61 && b[p + 2] === 0x70) {
            if (r.isKey(K_CAPINH, p, colon)) t.capInh = r.mask64();
            else if (r.isKey(K_CAPPRM, p, colon)) t.capPrm = r.mask64();
            else if (r.isKey(K_CAPEFF, p, colon)) t.capEff = r.mask64();
            else if (r.isKey(K_CAPBND, p, colon)) t.capBnd = r.mask64();
            else if (r.isKey(K_CAPAMB, p, colon)) t.capAmb = r.mask64();
          }
          break;
        case 0x4e: // N
          if (r.isKey(K_NONEWPRIVS, p, colon)) t.noNewPrivs = r.int() !== 0;
          else if (this.level > 0 && r.isKey(K_NSPID, p, colon)) {
            // NSpid:\tOUTER\t...\tOWN: the pid at the asked level (the tree is at that level or deeper)
            for (let i = 0; i < this.level; i++) r.int();
            t.nsPid = r.int();
          }
          break;
      }
      // next line
      p = colon;
      while (p < end && b[p] !== C_NL) p++;
      p++;
    }
  }
}

const ZERO64: Mask64 = [0, 0];

let probed: Probe | undefined;

export const procfsFactory: SourceFactory = {
  name: 'procfs',
  async probe(): Promise<Probe> {
    if (probed) return probed;
    if (!existsSync('/proc/self/stat')) {
      probed = { ok: false, reason: '/proc is not mounted' };
    } else if (!existsSync(`/proc/self/task/${process.pid}/children`)) {
      probed = { ok: false, reason: '/proc/PID/task/TID/children is missing (kernel without CONFIG_PROC_CHILDREN)' };
    } else {
      probed = { ok: true };
    }
    return probed;
  },
  async open(): Promise<Source> {
    const p = await procfsFactory.probe();
    if (!p.ok) throw new UnavailableError('procfs', `procfs source: ${p.reason}`);
    return new ProcfsSource();
  },
};
