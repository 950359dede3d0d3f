/**
 * The ptrace freezer (the default): PTRACE_SEIZE + PTRACE_INTERRUPT every thread of every process of the
 * tree, the way CRIU's collect_pstree() does, then PTRACE_DETACH them all to thaw.
 *
 * Algorithm (breadth first, one level of the tree at a time, so the tasks of a level stop in parallel):
 *   1. for each process of the level: PTRACE_SEIZE its leader (with PTRACE_O_TRACECLONE), read its state
 *      from /proc — still the state before our freeze: a seized task runs on until interrupted; only a
 *      job-control-stopped one turns 't' at once, and its group-stop report tells us it was 'T' — then
 *      PTRACE_INTERRUPT it; then wait until every leader of the level has stopped;
 *   2. for each process with more than one thread: list /proc/PID/task, seize + interrupt the threads not
 *      seen yet, wait; repeat until a listing finds nothing new (a process whose threads are all stopped
 *      cannot create threads). A thread created by a task after we seized it is attached by the kernel
 *      (PTRACE_O_TRACECLONE) and reported as PTRACE_EVENT_CLONE, so a single-threaded process needs no
 *      listing at all;
 *   3. read /proc/PID/task/TID/children of every (stopped) thread: the children not seen yet form the next
 *      level (a stopped process cannot fork any more; a fork in progress completes before the stop).
 *   With a scan (FreezeOptions.scan: the bpf source reads every task's pid, tgid, ppid and state in one
 *   iteration), a level of DEFAULT_SCAN_MIN processes or more is found and checked from one scan taken while
 *   every task seized so far is stopped, instead of step 3's children files and step 1's stat files: a
 *   process whose parent in the scan is a process of the tree is in the next level, and its state there is
 *   its state before our freeze. Such a scan also shows a thread created between the scan that found its
 *   process and the seize; it is seized (step 2) before the children are looked for.
 *   When a task exited or was found a zombie during the seize, its children may have been reparented to a
 *   subreaper of the tree already scanned, so the children of every process are read once more, and again
 *   until a pass finds nothing new. The number of scans of one level and of these passes is bounded by
 *   MAX_PASSES; past it the freeze fails with FreezeError (exit 7) after releasing every task.
 *
 * Waiting: waitpid(tid, __WALL|WNOHANG) for the PTRACE_EVENT_STOP, backing off with short sleeps, bounded by
 * a timeout. A signal-delivery-stop (a signal the task dequeued before the trap) is re-injected with
 * PTRACE_CONT(sig) and the task interrupted again, as compel_wait_task does, so pending signals stay intact.
 * A task in job-control stop reports a group-stop (WSTOPSIG = its stop signal); PTRACE_DETACH(0) leaves it in
 * group stop (the kernel re-arms JOBCTL_STOP_PENDING in __ptrace_unlink), so it stays stopped after the thaw.
 *
 * A traced task's exit is reported to its tracer first: its parent can reap it only once the tracer has.
 * So every seized task that exits is waited for by us: at once when it is reported, or by release() for a
 * leader that died while seized and stays a zombie until its last thread is gone (its exit is reported
 * only then). release() also waits for a task still on its way to its stop (a freeze that failed
 * part-way), and detaches a thread such a task created meanwhile, which the kernel attached to us.
 *
 * Zombies cannot be seized (EPERM): they are recorded with state Z. A task already traced by another tracer
 * is a FreezeError naming both pids. EPERM for a live, untraced task is a PermissionError naming
 * CAP_SYS_PTRACE and the pid. All ptrace and waitpid calls come from the calling thread.
 */
import { FreezeError, PermissionError } from '../../errors.js';
import * as pt from '../../sys/ptrace.js';
import { ECHILD, EPERM, ESRCH, SysError } from '../../sys/libc.js';
import type { TaskScan, TaskState } from '../task.js';
import type { Freezer, FreezeOptions, FrozenTree } from './freezer.js';
import { guardFreeze } from './guard.js';
import { listThreads, readChildren, readStat, readTgid, readTracer, readWchan, type StatInfo } from './procread.js';
import { recoverStaleFreezes } from './statefile.js';
import { now } from '../../sys/clock.js';

/** Scans of one level (threads) and extra children passes before we give up on a tree that keeps changing. */
export const MAX_PASSES = 8;
/** Default bound on waiting for one batch of tasks to stop. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Bound on waiting, at the release, for tasks that had not reached their stop yet. */
export const RELEASE_WAIT_MS = 2_000;
/** Bound on waiting, at the release, for a seized leader that became a zombie to be reported exited. */
const ZOMBIE_WAIT_MS = 200;
/**
 * Tasks a release() could not let go of in time: still running to their interrupt stop, or zombies whose
 * exit is not reported yet. They stay traced by this thread; every later release() tries them again.
 */
const leftOver = new Set<number>();
/**
 * With a scan (FreezeOptions.scan), a level of at least this many processes is read from one scan of the
 * tree: one pass costs about as much as a hundred or two /proc reads (a 10,000-task iteration is ~10 ms,
 * a stat or children file ~10-20 µs).
 */
export const DEFAULT_SCAN_MIN = 128;


const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

interface Proc {
  tgid: number;
  /** the parent we found it under (undefined for the root) */
  parent: number | undefined;
  /** every tid of it we seized (or recorded as zombie) */
  threads: Set<number>;
  /** the leader was a zombie when found, or exited during the seize */
  dead: boolean;
  /** more than one thread when seized: its thread list must be read */
  multi: boolean;
}

const enum St { Pending, Stopped }

/** A scan with its rows indexed by pid. */
interface Scan {
  scan: TaskScan;
  /** row of each tid */
  row: Map<number, number>;
  /** tgids with more than one thread in the scan */
  multi: Set<number>;
}

/** The next level of processes, and the scan it was found in (taken while their parents were stopped). */
interface Next {
  level: number[];
  scan: Scan | undefined;
}

interface Seized {
  tgid: number;
  st: St;
  /** the task reported a group-stop (it was, or became, job-control stopped) */
  groupStop: boolean;
}

export interface PtraceFreezeStats {
  passes: number;
  seized: number;
  zombies: number;
  /** tasks that exited during the seize */
  vanished: number;
  /** signal-delivery-stops re-injected */
  reinjected: number;
  /** tasks the kernel attached for us at a clone (PTRACE_O_TRACECLONE) */
  cloned: number;
  /** scans of the whole tree (FreezeOptions.scan) */
  scans: number;
}

/** One seize of one tree. Exported for tests and the benchmark; use ptraceFreezer.freeze(). */
export class PtraceSession {
  readonly states = new Map<number, TaskState>();
  readonly procs = new Map<number, Proc>();
  readonly seized = new Map<number, Seized>();
  readonly stats: PtraceFreezeStats = { passes: 0, seized: 0, zombies: 0, vanished: 0, reinjected: 0, cloned: 0, scans: 0 };
  private dirty = false;
  private released = false;
  /** the last scan found nothing new and nothing was seized after it (FrozenTree.scanned) */
  settledScan = false;
  private readonly timeoutMs: number;
  private readonly self = process.pid;
  private readonly scanTree: (() => TaskScan) | undefined;
  private readonly scanMin: number;

  constructor(readonly root: number, opts: FreezeOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.scanTree = opts.scan;
    this.scanMin = Math.max(1, opts.scanMin ?? DEFAULT_SCAN_MIN);
  }

  /** Seize the whole tree. On failure everything seized so far is released before the error is thrown. */
  run(): void {
    if (this.root === this.self) {
      throw new FreezeError(`cannot freeze the tree of ${this.root}: it is tdcollect itself; run it from outside the tree`, this.root);
    }
    try {
      this.procs.set(this.root, { tgid: this.root, parent: undefined, threads: new Set(), dead: false, multi: false });
      let next: Next = { level: [this.root], scan: undefined };
      while (next.level.length) next = this.doLevel(next);
      for (let pass = 0; this.dirty; pass++) {
        if (pass >= MAX_PASSES) {
          throw new FreezeError(
            `tree of ${this.root} still changing after ${MAX_PASSES} passes (tasks keep exiting and being reparented)`,
            this.root);
        }
        this.dirty = false;
        this.stats.passes++;
        next = this.findNext([...this.procs.keys()]);
        while (next.level.length) next = this.doLevel(next);
      }
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /**
   * Seize one level of processes (already registered in procs); returns the next level. A level of at least
   * scanMin processes found in a scan is checked against that scan (parent and state of each, read while
   * the parents were stopped); a smaller one against /proc/PID/stat just before each seize.
   */
  private doLevel({ level, scan }: Next): Next {
    this.stats.passes++;
    const pre = level.length >= this.scanMin ? scan : undefined;
    // 1. leaders
    const batch: number[] = [];
    for (const pid of level) {
      const p = this.procs.get(pid)!;
      this.attach(pid, pid, p.parent, batch, pre);
    }
    this.waitAll(batch);
    // 2. threads of multi-threaded processes, until a listing finds nothing new
    this.threadRounds(level.filter((pid) => {
      const p = this.procs.get(pid);
      return p !== undefined && (p.multi || p.dead);
    }));
    // 3. children of every thread
    return this.findNext(level);
  }

  /**
   * The processes below these (stopped) ones that are not known yet. A large set of parents is read from
   * one scan (it also finds a process reparented to any process of the tree); a small one from the children
   * list of each thread, and when that finds many children, one scan gives their parents and states.
   */
  private findNext(pids: number[]): Next {
    this.settledScan = false;
    if (this.scanTree && pids.length >= this.scanMin) return this.nextFromScan();
    const level = this.scanChildren(pids);
    return { level, scan: this.scanTree && level.length >= this.scanMin ? this.takeScan() : undefined };
  }

  private takeScan(): Scan {
    const scan = this.scanTree!();
    this.stats.scans++;
    const row = new Map<number, number>();
    const multi = new Set<number>();
    for (let k = 0; k < scan.count; k++) {
      const tid = scan.pid[k];
      row.set(tid, k);
      if (tid !== scan.tgid[k]) multi.add(scan.tgid[k]);
    }
    return { scan, row, multi };
  }

  /**
   * One scan while every seized task is stopped: a thread of a seized process that is not ours yet (created
   * between the scan its process was found in and the seize) is seized first, and the tree scanned again;
   * then every process whose parent is a process of the tree and that is not known yet is the next level.
   */
  private nextFromScan(): Next {
    for (let round = 0; ; round++) {
      const sc = this.takeScan();
      const { count, pid, tgid, ppid } = sc.scan;
      const grew: number[] = [];
      for (let k = 0; k < count; k++) {
        const tid = pid[k];
        if (tid === tgid[k]) continue;
        const p = this.procs.get(tgid[k]);
        if (p && !p.threads.has(tid) && !grew.includes(p.tgid)) grew.push(p.tgid);
      }
      if (grew.length) {
        if (round >= MAX_PASSES) {
          throw new FreezeError(
            `process ${grew[0]} keeps creating threads: still new ones after ${MAX_PASSES} scans`, grew[0]);
        }
        this.threadRounds(grew);
        continue;
      }
      const level: number[] = [];
      for (let k = 0; k < count; k++) {
        const c = pid[k];
        if (c !== tgid[k] || this.procs.has(c) || !this.procs.has(ppid[k])) continue;
        this.register(c, ppid[k], level);
      }
      this.settledScan = level.length === 0;
      return { level, scan: sc };
    }
  }

  /** Register process c, found below parent, in procs and the level. */
  private register(c: number, parent: number, level: number[]): void {
    if (c === this.self) {
      throw new FreezeError(
        `tdcollect itself (pid ${c}) is inside the tree of ${this.root}: run it from outside the tree`, c);
    }
    // a process the kernel attached at a clone() may have threads we have not listed
    this.procs.set(c, { tgid: c, parent, threads: new Set(), dead: false, multi: this.seized.has(c) });
    level.push(c);
  }

  /** Seize the threads of these processes not seized yet, until a listing finds nothing new. */
  private threadRounds(todo: number[]): void {
    for (let round = 0; todo.length; round++) {
      if (round >= MAX_PASSES) {
        throw new FreezeError(
          `process ${todo[0]} keeps creating threads: still new ones after ${MAX_PASSES} scans`, todo[0]);
      }
      const more: number[] = [];
      const grew: number[] = [];
      for (const pid of todo) {
        const p = this.procs.get(pid);
        if (!p) continue;
        const before = more.length;
        for (const tid of listThreads(pid)) {
          if (p.threads.has(tid)) continue;
          this.attach(tid, pid, undefined, more);
        }
        if (more.length > before) grew.push(pid);
      }
      if (!more.length) break;
      this.waitAll(more);
      todo = grew;
    }
  }

  /** Read the children of every thread of these processes; register and return those not seen yet. */
  private scanChildren(pids: number[]): number[] {
    const next: number[] = [];
    const kids: number[] = [];
    for (const pid of pids) {
      const p = this.procs.get(pid);
      if (!p) continue;
      for (const tid of p.threads) {
        kids.length = 0;
        readChildren(pid, tid, kids);
        for (const c of kids) {
          if (!this.procs.has(c)) this.register(c, pid, next);
        }
      }
    }
    return next;
  }

  /**
   * Check that tid belongs to the tree, seize it, read its pre-freeze state, interrupt it; push it to batch
   * when there is a stop to wait for. expectPpid: for a leader found in a children list, the parent it must
   * have. It is checked BEFORE the seize, so a task outside the tree is never touched. (For the pid to name
   * another task at the seize, the child would have to exit, be reaped by a parent that is stopped, and its
   * pid be handed out again after a whole cycle of the pid space, in the microseconds between the read and
   * the seize; collect() would still refuse the snapshot: every frozen task must be in it.)
   */
  private attach(tid: number, tgid: number, expectPpid: number | undefined, batch: number[], pre?: Scan): void {
    const p = this.procs.get(tgid)!;
    if (this.seized.has(tid)) {
      // attached by the kernel at a clone of a task we had seized (PTRACE_O_TRACECLONE)
      p.threads.add(tid);
      return;
    }
    let state: TaskState, ppid: number, multi: boolean;
    if (pre) {
      // parent and state from the scan, read while the parents were stopped
      const k = pre.row.get(tid);
      if (k === undefined) return this.vanish(tid, tgid);
      state = pre.scan.state[k];
      ppid = pre.scan.ppid[k];
      multi = pre.multi.has(tid);
    } else {
      const path = tid === tgid ? `/proc/${tid}/stat` : `/proc/${tgid}/task/${tid}/stat`;
      const before: StatInfo | undefined = readStat(path);
      if (!before) return this.vanish(tid, tgid);
      state = before.state;
      ppid = before.ppid;
      multi = before.numThreads > 1;
    }
    if (expectPpid !== undefined && ppid !== expectPpid) return this.notOurs(tid, tgid);
    if (state === 'Z' || state === 'X') return this.exited(tid, p);
    const r = pt.seize(tid, pt.PTRACE_O_TRACECLONE);
    if (r < 0) {
      if (r === -ESRCH) return this.vanish(tid, tgid);
      if (r === -EPERM) return this.seizeDenied(tid, p);
      throw new SysError('ptrace(PTRACE_SEIZE)', -r, tid);
    }
    this.stats.seized++;
    this.settledScan = false;
    this.seized.set(tid, { tgid, st: St.Pending, groupStop: false });
    p.threads.add(tid);
    // the state read just before the seize; a job-control stop ('T') is confirmed by its group-stop report
    this.states.set(tid, state === 't' ? 'T' : state);
    if (tid === tgid && multi) p.multi = true;
    const ri = pt.interrupt(tid);
    if (ri < 0 && ri !== -ESRCH) throw new SysError('ptrace(PTRACE_INTERRUPT)', -ri, tid);
    // on ESRCH it is exiting; waitpid reports the exit
    batch.push(tid);
  }

  /** A pid from a children list whose parent is now another task: its pid was reused; never seized. */
  private notOurs(tid: number, tgid: number): void {
    this.stats.vanished++;
    const p = this.procs.get(tgid);
    if (p && tid === tgid && p.threads.size === 0) this.procs.delete(tgid);
    // the task we listed exited; its own children may have moved to a subreaper of the tree
    this.dirty = true;
  }

  /**
   * A task found dead (Z or X) before the seize. A leader stays, a zombie, until its parent reaps it; a thread
   * other than the leader is released by the kernel as it exits (nobody waits for it), so it is about to leave
   * the thread list and is not part of the tree.
   */
  private exited(tid: number, p: Proc): void {
    if (tid === p.tgid) this.zombie(tid, p);
    else this.vanish(tid, p.tgid);
  }

  private zombie(tid: number, p: Proc): void {
    this.stats.zombies++;
    p.threads.add(tid);
    this.states.set(tid, 'Z');
    if (tid === p.tgid) p.dead = true;
    this.dirty = true;
  }

  /** EPERM from PTRACE_SEIZE: a zombie, a task traced by someone else, or a missing privilege. */
  private seizeDenied(tid: number, p: Proc): void {
    const info = readTracer(tid);
    if (!info) return this.vanish(tid, p.tgid);
    if (info.state === 'Z' || info.state === 'X') return this.exited(tid, p);
    if (info.tracerPid !== 0) {
      throw new FreezeError(
        `cannot freeze task ${tid}: it is already traced by pid ${info.tracerPid} (detach that debugger or tracer, or use --freeze cgroup)`,
        tid);
    }
    throw new PermissionError('CAP_SYS_PTRACE', tid,
      `cannot seize pid ${tid}: PTRACE_SEIZE needs CAP_SYS_PTRACE (or the same uid) for pid ${tid}`);
  }

  /** The task is gone (exited, or not in the tree any more). */
  private vanish(tid: number, tgid: number): void {
    this.stats.vanished++;
    this.seized.delete(tid);
    this.states.delete(tid);
    const p = this.procs.get(tgid);
    if (!p) return;
    p.threads.delete(tid);
    if (tid === tgid) {
      this.dirty = true;
      // an exited leader may stay visible as a zombie (its parent is frozen and cannot reap it)
      const st = readStat(`/proc/${tid}/stat`);
      if (st && (st.state === 'Z' || st.state === 'X') && (p.parent === undefined || st.ppid === p.parent)) {
        this.zombie(tid, p);
        this.stats.zombies--;
        return;
      }
      if (p.threads.size === 0) this.procs.delete(tgid);
    }
  }

  /** Wait until every task of batch has stopped (or is gone), re-injecting signals; bounded by the timeout. */
  private waitAll(batch: number[]): void {
    let pending = batch;
    const deadline = now() + this.timeoutMs;
    let backoff = 0;
    const opts = pt.__WALL | pt.WNOHANG;
    while (pending.length) {
      const next: number[] = [];
      let progressed = false;
      for (const tid of pending) {
        const s = this.seized.get(tid);
        if (!s) continue;
        const w = pt.waitpid(tid, opts);
        if (w.pid === 0) { next.push(tid); continue; }
        progressed = true;
        if (w.pid < 0) {
          if (w.pid === -ECHILD) { this.vanish(tid, s.tgid); continue; }
          throw new SysError('waitpid', -w.pid, tid);
        }
        if (!this.onStatus(tid, s, w.status)) next.push(tid);
      }
      if (this.adopted.length) {
        for (const t of this.adopted) next.push(t);
        this.adopted.length = 0;
      }
      pending = next;
      if (!pending.length) break;
      if (now() > deadline) this.stuck(pending);
      if (progressed) {
        backoff = 0;
      } else {
        backoff = backoff ? Math.min(backoff * 2, 2) : 0.02;
        // a leader that exited while other threads live is a zombie whose exit is not reported yet
        if (backoff >= 2) pending = pending.filter((tid) => !this.becameZombie(tid));
        sleepMs(backoff);
      }
    }
  }

  /** tasks attached by the kernel at a clone, to be waited for */
  private readonly adopted: number[] = [];

  /** A task the kernel attached for us at a clone (PTRACE_O_TRACECLONE): a thread, or a clone()d process. */
  private adopt(child: number, parentTgid: number): void {
    const tgid = readTgid(child) ?? parentTgid;
    this.stats.seized++;
    this.settledScan = false;
    this.stats.cloned++;
    this.seized.set(child, { tgid, st: St.Pending, groupStop: false });
    this.states.set(child, 'R');
    if (tgid === parentTgid) this.procs.get(parentTgid)?.threads.add(child);
    // a clone()d process is found again in its parent's children list, registered then, and scanned
    this.adopted.push(child);
  }

  /** Handle one wait status; true when the task is settled (stopped or gone). */
  private onStatus(tid: number, s: Seized, status: number): boolean {
    if (pt.WIFEXITED(status) || pt.WIFSIGNALED(status)) {
      this.vanish(tid, s.tgid);
      return true;
    }
    if (!pt.WIFSTOPPED(status)) return false;
    const sig = pt.WSTOPSIG(status);
    const ev = pt.WPTRACEEVENT(status);
    if (ev === pt.PTRACE_EVENT_STOP) {
      s.st = St.Stopped;
      s.groupStop = sig !== pt.SIGTRAP;
      // read as 't' just after the seize but no group stop: it was in a signal-delivery-stop, not stopped
      if (!s.groupStop && this.states.get(tid) === 'T') this.states.set(tid, 'S');
      return true;
    }
    if (ev === pt.PTRACE_EVENT_CLONE) {
      // a new thread (or clone()d process) of a task we seized: the kernel attached it; it will report its
      // own PTRACE_EVENT_STOP. Resume the parent so it reaches the interrupt stop.
      const child = pt.getEventMsg(tid);
      if (child > 0 && !this.seized.has(child)) this.adopt(child, s.tgid);
      const r = pt.cont(tid, 0);
      // ESRCH: killed meanwhile; waitpid reports its exit (and reaps it from us)
      if (r < 0 && r !== -ESRCH) throw new SysError('ptrace(PTRACE_CONT)', -r, tid);
      pt.interrupt(tid);
      return false;
    }
    // a signal-delivery-stop (ev 0) or another event: let the task take the signal, then trap it again
    this.stats.reinjected++;
    const r = pt.cont(tid, ev === 0 ? sig : 0);
    if (r < 0 && r !== -ESRCH) throw new SysError('ptrace(PTRACE_CONT)', -r, tid);
    pt.interrupt(tid);
    return false;
  }

  private becameZombie(tid: number): boolean {
    const s = this.seized.get(tid);
    if (!s || tid !== s.tgid) return false;
    const st = readStat(`/proc/${tid}/stat`);
    if (!st || (st.state !== 'Z' && st.state !== 'X')) return false;
    const p = this.procs.get(tid);
    this.seized.delete(tid);
    // still ours: its exit is reported to us once its last thread is gone, and its parent can reap it only
    // after we have (release() waits for it)
    this.unreaped.push(tid);
    if (p) this.zombie(tid, p);
    return true;
  }

  /** seized leaders found zombies before their exit could be reported: release() reaps them from us */
  private readonly unreaped: number[] = [];

  private stuck(pending: number[]): never {
    const tid = pending[0];
    const st = readStat(`/proc/${tid}/stat`);
    throw new FreezeError(
      `${pending.length} task(s) did not stop within ${this.timeoutMs} ms, e.g. pid ${tid} ` +
      `(state ${st?.state ?? '?'}, wchan ${readWchan(tid)}); a task in uninterruptible sleep or a vfork parent ` +
      'cannot be seized until it wakes: retry, or use --freeze cgroup',
      tid);
  }

  /**
   * Detach every seized task (synchronous, idempotent). A task still on its way to the interrupt stop (a
   * freeze that failed part-way) is waited for, up to RELEASE_WAIT_MS, so it can be detached: a signal it
   * dequeued meanwhile is delivered by the detach, and a thread it created meanwhile, which the kernel
   * attached to us (PTRACE_O_TRACECLONE), is waited for and detached in turn. A task that exited while ours
   * is reaped from us, so that its parent can reap it: a traced task's exit goes to its tracer first.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const pending: number[] = [];
    const dead: number[] = [];
    for (const [tid, s] of this.seized) {
      if (s.st === St.Stopped) {
        if (pt.detach(tid, 0) === -ESRCH) dead.push(tid);
      } else {
        pending.push(tid);
      }
    }
    this.seized.clear();
    const opts = pt.__WALL | pt.WNOHANG;
    // left over by an earlier release of this thread: let go of those that have stopped or exited since
    for (const tid of leftOver) {
      const w = pt.waitpid(tid, opts);
      if (w.pid === 0) continue;
      leftOver.delete(tid);
      if (w.pid > 0 && pt.WIFSTOPPED(w.status)) detachStopped(tid, w.status, pending);
    }
    const start = now();
    let list = pending.concat(dead, this.unreaped);
    let zombies = this.unreaped.length > 0;
    while (list.length) {
      const next: number[] = [];
      for (const tid of list) {
        const w = pt.waitpid(tid, opts);
        if (w.pid === 0) { next.push(tid); continue; }
        // not ours, or exited and now reaped from us
        if (w.pid > 0 && pt.WIFSTOPPED(w.status)) detachStopped(tid, w.status, next);
      }
      list = next;
      if (!list.length) break;
      const waited = now() - start;
      if (zombies && waited > ZOMBIE_WAIT_MS) {
        // a leader whose other threads live on (it called pthread_exit): its exit is reported when they end
        zombies = false;
        list = list.filter((tid) => {
          if (!this.unreaped.includes(tid)) return true;
          leftOver.add(tid);
          return false;
        });
        continue;
      }
      if (waited > RELEASE_WAIT_MS) break;
      sleepMs(0.1);
    }
    // a task still not stopped (asleep in the kernel all this while) stops when it wakes; the next release
    // of this thread tries again, and this thread's exit detaches whatever is left
    for (const tid of list) leftOver.add(tid);
    this.leftTraced = leftOver.size;
  }

  /** tasks still traced after release() (0 after a normal thaw): see leftOver */
  leftTraced = 0;
}

/**
 * Detach a task that reported this stop, delivering the signal of a signal-delivery-stop; push to more the
 * thread it created (PTRACE_EVENT_CLONE: attached to us by the kernel), and the task itself when it was
 * killed meanwhile (its exit is to be reaped).
 */
function detachStopped(tid: number, status: number, more: number[]): void {
  const ev = pt.WPTRACEEVENT(status);
  if (ev === pt.PTRACE_EVENT_CLONE) {
    const child = pt.getEventMsg(tid);
    if (child > 0) more.push(child);
  }
  if (pt.detach(tid, ev === 0 ? pt.WSTOPSIG(status) : 0) === -ESRCH) more.push(tid);
}

export const ptraceFreezer: Freezer = {
  method: 'ptrace',
  async freeze(root: number, opts: FreezeOptions = {}): Promise<FrozenTree> {
    recoverStaleFreezes();
    const session = new PtraceSession(root, opts);
    const guard = guardFreeze(() => session.release());
    try {
      session.run();
    } catch (e) {
      guard.release();
      throw e;
    }
    return {
      states: session.states,
      tracerPid: process.pid,
      frozen: new Set(session.seized.keys()),
      scanned: session.settledScan,
      async thaw(): Promise<void> {
        session.release();
        guard.release();
      },
    };
  },
};
