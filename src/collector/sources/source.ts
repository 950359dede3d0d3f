/**
 * The interface every source implements. A source returns Task records and nothing else; ordering,
 * consistency checks and the snapshot header are the collector's business (walk.ts, collect.ts).
 */
import type { OptionalField, SourceName, Task, TaskScan } from '../task.js';

export interface SourceStats {
  /** system calls issued since open(), where the source counts them */
  syscalls?: number;
  /** netlink round trips (taskdiag) or read() calls on the iterator (bpf) */
  roundTrips?: number;
}

/** What the collector asks of a tree walk beyond the Task fields every walk fills. */
export interface TreeOptions {
  /**
   * The root's pid-namespace level counted from the reader's (0 = the reader's own namespace, which needs
   * nothing more). When above 0, every Task carries `nsPid`: its pid at that level, i.e. NSpid[rootLevel]
   * of /proc/PID/status. Every task of the tree lives at that level or deeper, so every task has one.
   */
  rootLevel?: number;
  /** fill Task.ns (namespace inode numbers) for every task */
  namespaces?: boolean;
  /**
   * The tree has not changed since this source's last scanTree(root) (a freezer took it with every task
   * stopped): a source that kept that iteration builds the tasks from it instead of reading the tree again.
   */
  lastScan?: boolean;
}

export interface Source {
  readonly name: SourceName;
  /** Task fields this source leaves undefined */
  readonly missing: readonly OptionalField[];
  /**
   * Every thread of every process of the subtree rooted at process `root` (a tgid, in the reader's pid
   * namespace), in any order, with what `opts` asks for. Throws NoProcessError when root does not exist.
   */
  collectTree(root: number, opts?: TreeOptions): Promise<Task[]>;
  /**
   * Optional, for sources that read a whole tree in one round trip: the subtree's pid, tgid, ppid and state
   * only, synchronously (the ptrace freezer reads it between its stops, on the thread that holds the
   * tracees). Throws NoProcessError when root does not exist.
   */
  scanTree?(root: number): TaskScan;
  /** Every task the caller may see (for `ps`); threads only when asked. */
  collectAll(opts: { threads: boolean }): Promise<Task[]>;
  stats(): SourceStats;
  close(): void;
  /** set by openSource('auto'): why this source was chosen */
  autoReason?: string;
}

export type Probe = { ok: true; detail?: string } | { ok: false; reason: string };

export interface SourceFactory {
  readonly name: SourceName;
  /** Cheap check whether the source can work here; cached by the caller. Never throws. */
  probe(): Promise<Probe>;
  /** Throws UnavailableError (or PermissionError) naming what is missing. */
  open(): Promise<Source>;
}
