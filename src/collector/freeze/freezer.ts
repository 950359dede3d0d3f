/**
 * The interface every freezer implements: ptrace (seize + interrupt every thread), cgroup (the v2
 * cgroup.freeze or the v1 freezer) and none (a live, racy snapshot).
 */
import type { FreezeMethod, TaskScan, TaskState } from '../task.js';

export interface FrozenTree {
  /** state of each task (by tid) before our freeze, for every task the freezer saw */
  readonly states: ReadonlyMap<number, TaskState>;
  /** the cgroup frozen, for the cgroup freezer */
  readonly cgroup?: string;
  /**
   * Pid of the tracer that seized the tree (ptrace freezer: the collector itself). A task whose TracerPid
   * is this pid was traced only by us, so its tpid is recorded as 0 (what it was before the freeze).
   */
  readonly tracerPid?: number;
  /**
   * The tids this freeze holds stopped or frozen (zombies excluded), when the freezer knows them exactly.
   * collect() then checks the snapshot against it: every live task the source returned must be frozen (else
   * it was not held still), and every frozen task must be in the snapshot (else the freeze held a task that
   * is not part of the tree).
   */
  readonly frozen?: ReadonlySet<number>;
  /**
   * The last scan the freezer took (FreezeOptions.scan) saw the whole tree held still: every task in it was
   * stopped or a zombie, and the freezer seized nothing after it. The source may build its records from
   * that iteration instead of a new one (TreeOptions.lastScan).
   */
  readonly scanned?: boolean;
  /** Put every task back as it was. Idempotent; tasks that vanished meanwhile are not an error. */
  thaw(): Promise<void>;
}

export interface FreezeOptions {
  /** cgroup freezer: the cgroup to freeze (default: the root task's cgroup) */
  cgroup?: string;
  /** bound on waiting for the tree to stop or the cgroup to freeze, in ms (default 10,000) */
  timeoutMs?: number;
  /**
   * cgroup freezer: read the tree's tasks (pid, tgid, ppid, state) just before the freeze in one go, instead
   * of one /proc/TID/stat read per task. collect() passes its source here when the source reads a whole
   * tree in a few round trips (bpf, taskdiag).
   */
  preRead?: () => Promise<ReadonlyArray<PreReadTask>>;
  /**
   * ptrace freezer: read the tree's tasks (pid, tgid, ppid, state) in one pass, synchronously. A level of
   * at least `scanMin` processes is then found and checked from one scan instead of one children list per
   * thread and one /proc/PID/stat per task. collect() passes its source's scanTree here when it has one.
   */
  scan?: () => TaskScan;
  /** ptrace freezer: the smallest level read with `scan` (default DEFAULT_SCAN_MIN) */
  scanMin?: number;
}

/** What the cgroup freezer needs of each task before freezing. */
export interface PreReadTask {
  pid: number;
  tgid: number;
  ppid: number;
  state: TaskState;
}

export interface Freezer {
  readonly method: FreezeMethod;
  freeze(root: number, opts?: FreezeOptions): Promise<FrozenTree>;
}
