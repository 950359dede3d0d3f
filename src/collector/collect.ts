/**
 * collect(): validate the root, pick a source, freeze the tree, walk it, thaw it, and return a Snapshot.
 * The tree is thawed on every path out of here (success, error, exception); signal handling lives in the
 * freezers, which also register their own clean-up for SIGINT/SIGTERM/SIGHUP.
 */
import { hostName, kernelRelease } from '../sys/uts.js';
import { NoProcessError, UnavailableError, UsageError, PermissionError } from '../errors.js';
import { FREEZERS } from './freeze/index.js';
import type { FreezeOptions } from './freeze/freezer.js';
import { openSource } from './open-source.js';
import type { Source } from './sources/source.js';
import { checkFrozen, orderTasks } from './walk.js';
import { readNsPidChain } from './nsread.js';
import { DENIED, GONE, ProcFile } from './procfile.js';
import type { FreezeMethod, Snapshot, SourceName, Task, TaskState } from './task.js';
import { VERSION } from '../version.js';
import { now } from '../sys/clock.js';

export const FORMAT_VERSION = 1;
const PF_KTHREAD = 0x00200000;
let rootFile: ProcFile | undefined;

export interface CollectOptions {
  /** root process id (a tgid) */
  root: number;
  source?: SourceName | 'auto';
  /** default 'ptrace', as the CLI: the tree is held still while it is read, then released */
  freeze?: FreezeMethod;
  freezeOptions?: FreezeOptions;
  /** called as phases start, for progress reporting */
  onPhase?: (phase: 'freeze' | 'collect' | 'thaw', detail?: string) => void;
  /** record every task's namespace identities (Task.ns); default true */
  namespaces?: boolean;
  /**
   * Called with the collected tasks (final: in tree order, in the root's pid view) while the tree is still
   * frozen, just before the thaw: work it starts (a dump begins writing its images) overlaps the thaw. What
   * it throws is collect()'s error; the tree is thawed all the same.
   */
  onCollected?: (tasks: readonly Task[]) => void | Promise<void>;
}

/** Parse a pid argument: a positive decimal integer. */
export function parsePid(text: string | number): number {
  const s = String(text).trim();
  if (!/^[0-9]+$/.test(s)) throw new UsageError(`invalid pid '${text}': expected a positive integer`);
  const n = Number(s);
  if (n <= 0 || n > 0x3fffffff) throw new UsageError(`invalid pid '${text}': expected a positive integer`);
  return n;
}

/**
 * Check the root exists, is a process (not a thread) and is not a kernel thread. Returns its NSpid chain
 * (outermost first) when /proc shows one.
 */
export function checkRoot(root: number): number[] | undefined {
  const f = (rootFile ??= new ProcFile(4096));
  const n = f.read(`/proc/${root}/stat`);
  if (n === GONE || n === 0) throw new NoProcessError(root);
  if (n === DENIED) {
    throw new PermissionError('CAP_SYS_PTRACE', root, `cannot read /proc/${root}/stat: needs CAP_SYS_PTRACE for pid ${root}`);
  }
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm ends at the last ')'
  f.pos = f.buf.lastIndexOf(0x29, n - 1) + 2;
  f.skip(6);
  const flags = f.int();
  if (flags & PF_KTHREAD) {
    throw new NoProcessError(root, `pid ${root} is a kernel thread; only user-space trees can be dumped`);
  }
  // /proc/TID/stat exists for threads too, but a thread cannot root a process tree
  if (f.read(`/proc/${root}/status`) <= 0) return undefined;
  const tgid = f.keyNumbers('Tgid')?.[0];
  if (tgid !== undefined && tgid !== root) {
    throw new NoProcessError(root, `pid ${root} is a thread of process ${tgid}; give the process id`);
  }
  return f.keyNumbers('NSpid');
}

/**
 * The one pid-view translation. `tasks` come from a source in the reader's view, each with `nsPid` (its pid
 * at the root's pid-namespace level). Afterwards pid, tgid, ppid, sid and pgid are in the root's view,
 * `collectorView` holds the reader's, and `nsPid` is cleared. O(n) with one Map; /proc is read only for a
 * session or group leader that is not in the tree (at most once per distinct leader):
 *
 *   - the root's parent is outside its namespace: ppid 0 (what getppid() returns there, and what CRIU writes);
 *   - a leader inside the root's namespace but outside the tree: its pid there (NSpid of /proc/LEADER/status);
 *   - a leader outside the root's namespace: 0, which is what getsid()/getpgid() return inside it and what
 *     CRIU's parasite records (CRIU then refuses a session leader outside; it writes such a pgid as 0).
 *
 * Throws when a task lacks nsPid: a source that was asked for the root's level must give it for every task.
 */
export function translatePids(tasks: Task[], root: number, rootLevel: number): void {
  const map = new Map<number, number>();
  for (const t of tasks) {
    if (t.nsPid === undefined) {
      throw new Error(`task ${t.pid}: the source gave no pid for the root's pid-namespace level ${rootLevel}`);
    }
    map.set(t.pid, t.nsPid);
  }
  const outside = (pid: number): number => {
    if (pid === 0) return 0;
    let v = map.get(pid);
    if (v !== undefined) return v;
    const chain = readNsPidChain(pid);
    v = chain && chain.length > rootLevel ? chain[rootLevel] : 0;
    map.set(pid, v);
    return v;
  };
  for (const t of tasks) {
    const cv = { pid: t.pid, tgid: t.tgid, ppid: t.ppid, sid: t.sid, pgid: t.pgid };
    t.pid = t.nsPid!;
    t.tgid = map.get(cv.tgid) ?? outside(cv.tgid);
    t.ppid = cv.tgid === root ? 0 : outside(cv.ppid);
    t.sid = outside(cv.sid);
    t.pgid = outside(cv.pgid);
    t.collectorView = cv;
    delete t.nsPid;
  }
}

export { openSource, planAuto, type SourceHint } from './open-source.js';

/**
 * Each task's state before the freeze (the freezer's record), and no tracer where the tracer was the freezer.
 * A function of its own: a loop over every task inside collect() itself would have V8 compile all of
 * collect() on the loop's behalf (on-stack replacement), 50-90 ms of a CPU for a 10,000-task dump.
 */
function applyFreeze(tasks: Task[], frozen: { states: ReadonlyMap<number, TaskState>; tracerPid?: number }): void {
  const tracer = frozen.tracerPid;
  for (const t of tasks) {
    const s = frozen.states.get(t.pid);
    if (s !== undefined) t.state = s;
    if (tracer !== undefined && t.tpid === tracer) t.tpid = 0;
  }
}

export async function collect(opts: CollectOptions): Promise<Snapshot> {
  const root = opts.root;
  const rootChain = checkRoot(root);
  // the root's level below the reader's pid namespace: 0 (the common case) needs no translation at all
  const rootLevel = rootChain ? rootChain.length - 1 : 0;
  const namespaces = opts.namespaces ?? true;
  const method = opts.freeze ?? 'ptrace';
  const freezer = FREEZERS[method];
  if (!freezer) throw new UnavailableError(`freeze:${method}`, `freeze method ${method} is not available`);
  const source = await openSource(opts.source ?? 'auto', { root });
  const createdAt = Date.now();
  const timings: Snapshot['info']['timings'] = {};
  try {
    opts.onPhase?.('freeze');
    let t0 = now();
    const freezeOptions: FreezeOptions = { ...opts.freezeOptions };
    // the cgroup freezer needs every task's state before the freeze: a source that reads the whole tree in
    // a few round trips gives them far cheaper than one /proc read per task
    if (method === 'cgroup' && source.name !== 'procfs' && !freezeOptions.preRead) {
      freezeOptions.preRead = () => source.collectTree(root);
    }
    // the ptrace freezer finds and checks a large level of the tree in one scan instead of two /proc files
    // per task
    if (method === 'ptrace' && source.scanTree && !freezeOptions.scan) {
      freezeOptions.scan = () => source.scanTree!(root);
    }
    const frozen = await freezer.freeze(root, freezeOptions);
    timings.freeze = now() - t0;
    let tasks: Task[];
    try {
      opts.onPhase?.('collect');
      t0 = now();
      // when the freezer's last scan already saw the tree held still, the source builds the tasks from it
      tasks = await source.collectTree(root, { rootLevel, namespaces, lastScan: frozen.scanned === true });
      if (frozen.frozen) checkFrozen(tasks, frozen.frozen, method);
      applyFreeze(tasks, frozen);
      tasks = orderTasks(tasks, root);
      if (rootLevel > 0) translatePids(tasks, root, rootLevel);
      timings.collect = now() - t0;
      await opts.onCollected?.(tasks);
    } finally {
      opts.onPhase?.('thaw');
      t0 = now();
      await frozen.thaw();
      timings.thaw = now() - t0;
    }
    let processes = 0;
    for (const t of tasks) if (t.pid === t.tgid) processes++;
    const st = source.stats();
    const snapshot: Snapshot = {
      info: {
        formatVersion: FORMAT_VERSION,
        tool: `tdcollect ${VERSION}`,
        source: source.name,
        freeze: method,
        live: method === 'none',
        kernel: kernelRelease(),
        hostname: hostName(),
        root,
        createdAt,
        processes,
        threads: tasks.length,
        timings,
        ...(st.syscalls !== undefined ? { syscalls: st.syscalls } : {}),
        ...(st.roundTrips !== undefined ? { roundTrips: st.roundTrips } : {}),
        missing: [...source.missing],
        ...(frozen.cgroup !== undefined ? { cgroup: frozen.cgroup } : {}),
        ...(rootLevel > 0 ? { rootNsPid: rootChain![rootLevel] } : {}),
      },
      tasks,
    };
    // why --source auto chose the source: for --stats, about this run and not part of the snapshot (not
    // enumerable, so neither images, JSON nor comparisons of snapshots see it)
    if (source.autoReason !== undefined) {
      Object.defineProperty(snapshot.info, 'sourceChoice', { value: source.autoReason, enumerable: false });
    }
    return snapshot;
  } finally {
    source.close();
  }
}
