/**
 * The Task record: one per thread, the union of task_diag v1's task_diag_msg + task_diag_creds and what
 * CRIU's pstree/core images need. Every source fills every field it can; a field a source cannot read is
 * `undefined` (never a made-up 0), and the source lists it in `Source.missing`.
 *
 * 64-bit masks (capability sets, blocked signals) are kept as two u32 words, low word first — the layout
 * of CRIU's creds_entry and of task_diag_caps — so no BigInt is needed on the hot path and nothing is lost.
 */

/** A 64-bit mask as [bits 0..31, bits 32..63]. */
export type Mask64 = readonly [lo: number, hi: number];

/**
 * sizeof(struct robust_list_head) on x86_64: the only length set_robust_list(2) accepts, so the length
 * get_robust_list(2) reports for every task (CRIU's futex_rla_len).
 */
export const ROBUST_LIST_HEAD_SIZE = 24;

/**
 * Task state as the /proc letter (fs/proc/array.c task_state_array): R running, S sleeping, D disk sleep,
 * T stopped, t tracing stop, X dead, Z zombie, P parked, I idle.
 */
export type TaskState = 'R' | 'S' | 'D' | 'T' | 't' | 'X' | 'Z' | 'P' | 'I';
export const TASK_STATES: readonly TaskState[] = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'];

/**
 * Every task of a tree reduced to what a freezer needs before it stops them, in columns (one row per thread,
 * in any order): pid, tgid, ppid (the parent process's tgid) and state, all read in one pass. Sources that
 * read a whole tree in a few round trips give it (Source.scanTree).
 */
export interface TaskScan {
  count: number;
  pid: Uint32Array;
  tgid: Uint32Array;
  ppid: Uint32Array;
  state: TaskState[];
}

export interface Task {
  // identity (task_diag_msg)
  /** thread id */
  pid: number;
  /** thread-group id (the process id) */
  tgid: number;
  /** tgid of the real parent, 0 when it lies outside the reader's pid namespace */
  ppid: number;
  /** thread id of the ptrace tracer, 0 if none (TracerPid) */
  tpid: number;
  sid: number;
  pgid: number;
  /** state before any freeze of ours */
  state: TaskState;
  /** task->comm, at most 15 bytes */
  comm: string;

  // credentials (task_diag_creds + what CRIU's creds_entry holds)
  uid: number; euid: number; suid: number; fsuid: number;
  gid: number; egid: number; sgid: number; fsgid: number;
  capInh: Mask64; capPrm: Mask64; capEff: Mask64; capBnd: Mask64;
  capAmb?: Mask64;
  /** supplementary groups, in the kernel's (sorted) order */
  groups?: number[];
  /** SECBIT_* bits; /proc does not expose them */
  securebits?: number;
  noNewPrivs?: boolean;
  /** 0 disabled, 1 strict, 2 filter */
  seccomp?: number;

  // core
  /** start time in clock ticks after boot (stat field 22): with pid, identifies a task across pid reuse */
  startTime?: number;
  personality?: number;
  /** PF_* flags (stat field 9) */
  flags?: number;
  /** blocked signals of this thread */
  sigBlk?: Mask64;
  nice?: number;
  /** SCHED_* policy (stat field 41) */
  policy?: number;
  /** kernel priority as /proc/PID/stat field 18 shows it */
  priority?: number;
  /** real-time priority (stat field 40) */
  rtPriority?: number;
  /** exit code as waitpid would report it (stat field 52), meaningful for zombies */
  exitCode?: number;
  /** robust futex list head and length (get_robust_list) */
  futexRla?: number;
  /** always ROBUST_LIST_HEAD_SIZE for a 64-bit task: set_robust_list(2) accepts no other length */
  futexRlaLen?: number;

  // pid views and namespaces
  /**
   * The pid fields as the collector saw them, kept when the root lives in a pid namespace other than the
   * collector's: then pid, tgid, ppid, sid and pgid above are in the root's pid-namespace view (what CRIU
   * writes) and this holds the collector's. tpid stays in the collector's view (a tracer is outside the tree).
   */
  collectorView?: PidView;
  /** namespace identities: the inode numbers /proc/PID/ns/* show, per namespace kind the source could read */
  ns?: NsIds;
  /**
   * Transient, never stored: this thread's pid at the pid-namespace level the collector asked the source for
   * (TreeOptions.rootLevel). collect.ts consumes it in its one translation step and deletes it.
   */
  nsPid?: number;
}

/** The pid fields of a Task in one pid-namespace view. */
export interface PidView {
  pid: number;
  tgid: number;
  ppid: number;
  sid: number;
  pgid: number;
}

/** The namespace kinds /proc/PID/ns/ shows, in the order tasks.img and the docs list them. */
export const NS_KINDS = ['pid', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;
export type NsKind = (typeof NS_KINDS)[number];
/**
 * Namespace kinds a thread shares with its whole process: a thread cannot unshare or setns its own pid,
 * user or time namespace (unshare(CLONE_NEWUSER) and setns of a user or time namespace need a single-threaded
 * caller; a new pid or time namespace applies to children only). mnt, net, ipc, uts and cgroup are per thread.
 */
export const NS_PER_PROCESS: readonly NsKind[] = ['pid', 'user', 'time'];
export const NS_PER_THREAD: readonly NsKind[] = ['mnt', 'net', 'ipc', 'uts', 'cgroup'];
/** Namespace inode numbers by kind; a kind the kernel does not have (time before 5.6) is absent. */
export type NsIds = Partial<Record<NsKind, number>>;

/** Fields every source must fill; the rest are optional. */
export const REQUIRED_FIELDS = [
  'pid', 'tgid', 'ppid', 'tpid', 'sid', 'pgid', 'state', 'comm',
  'uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid',
  'capInh', 'capPrm', 'capEff', 'capBnd',
] as const satisfies readonly (keyof Task)[];

export const OPTIONAL_FIELDS = [
  'capAmb', 'groups', 'securebits', 'noNewPrivs', 'seccomp', 'startTime', 'personality', 'flags', 'sigBlk',
  'nice', 'policy', 'priority', 'rtPriority', 'exitCode', 'futexRla', 'futexRlaLen', 'ns',
] as const satisfies readonly (keyof Task)[];

export type OptionalField = (typeof OPTIONAL_FIELDS)[number];

/** CRIU's task_state values, by name (core_entry.tc.task_state 1 alive, 2 dead = zombie, 3 stopped). */
export type CriuState = 'alive' | 'dead' | 'stopped';

/** Task fields that every source fills but an image set CRIU wrote may not record. */
export type CriuUnrecordedField =
  | 'ppid' | 'tpid' | 'state'
  | 'uid' | 'euid' | 'suid' | 'fsuid' | 'gid' | 'egid' | 'sgid' | 'fsgid'
  | 'capInh' | 'capPrm' | 'capEff' | 'capBnd';

/**
 * A task as a Snapshot holds it. From tdcollect (a source, tasks.img, a stream) it is a whole Task. From an
 * image set CRIU wrote, fewer fields are recorded and the rest stay undefined (never a made-up 0):
 *   - ppid of the root (CRIU writes 0 there), tpid (not recorded);
 *   - state: CRIU keeps only `criuState` (alive, dead, stopped), not the /proc letter;
 *   - the ids and capability sets of a zombie (CRIU writes no credentials for dead tasks).
 */
export type RecordedTask = Omit<Task, CriuUnrecordedField> & Partial<Pick<Task, CriuUnrecordedField>> & {
  /** CRIU's coarse state, set only by image sets that do not record the /proc letter */
  criuState?: CriuState;
  /**
   * Namespace identities, where the set records them: inode numbers from a source, CRIU's own numbering
   * from ids-PID.img. Only which tasks share a namespace is comparable across formats.
   */
  ns?: NsIds;
};


/** The coarse CRIU state of a task: its criuState, else derived from its /proc letter. */
export function criuStateOf(t: RecordedTask): CriuState | undefined {
  if (t.criuState !== undefined) return t.criuState;
  if (t.state === undefined) return undefined;
  if (t.state === 'Z' || t.state === 'X') return 'dead';
  if (t.state === 'T' || t.state === 't') return 'stopped';
  return 'alive';
}

export const isLeader = (t: RecordedTask): boolean => t.pid === t.tgid;

export type SourceName = 'procfs' | 'bpf' | 'taskdiag';
export type FreezeMethod = 'ptrace' | 'cgroup' | 'none';

/** Phase timings of one dump, in milliseconds. */
export interface Timings {
  freeze?: number;
  collect?: number;
  write?: number;
  thaw?: number;
}

/**
 * What a dump header records: where the snapshot came from and what it cost. A tdcollect dump records
 * every field but the optional ones at the end; an image set CRIU wrote records none of formatVersion,
 * tool, source, freeze, kernel, hostname, createdAt or timings (they stay undefined / empty).
 */
export interface DumpInfo {
  /** version of the tasks.img header layout */
  formatVersion?: number;
  /** tdcollect version that wrote it */
  tool?: string;
  source?: SourceName;
  /** with --source auto: why that source was chosen (a non-enumerable note for --stats; never written) */
  sourceChoice?: string;
  freeze?: FreezeMethod;
  /** true for a live (unfrozen, racy) snapshot */
  live: boolean;
  /** uname -r */
  kernel?: string;
  hostname?: string;
  /** root pid as given by the user (a tgid) */
  root: number;
  /** wall-clock time the dump started, ms since the epoch */
  createdAt?: number;
  processes: number;
  threads: number;
  timings: Timings;
  /** system calls the source issued, where it counts them */
  syscalls?: number;
  /** netlink round trips (taskdiag) or read() calls (bpf) */
  roundTrips?: number;
  /** Task fields the source could not fill */
  missing: OptionalField[];
  /** cgroup path when the cgroup freezer was used */
  cgroup?: string;
  /**
   * The root's pid as its own pid namespace sees it, present when that namespace is not the collector's
   * (the Task pid fields are then in the root's view and Task.collectorView holds the collector's; `root`
   * above stays the pid the user gave)
   */
  rootNsPid?: number;
}

/** Plain data: the tasks of one tree in pstree order (depth first, each leader followed by its threads). */
export interface Snapshot {
  info: DumpInfo;
  tasks: RecordedTask[];
}
