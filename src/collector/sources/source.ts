/**
 * The interface every source implements. A source returns Task records and nothing else; ordering,
 * consistency checks and the snapshot header are the collector's business (walk.ts, collect.ts).
 */
import type { OptionalField, SourceName, Task } from '../task.js';

export interface SourceStats {
  /** system calls issued since open(), where the source counts them */
  syscalls?: number;
  /** netlink round trips (taskdiag) or read() calls on the iterator (bpf) */
  roundTrips?: number;
}

export interface Source {
  readonly name: SourceName;
  /** Task fields this source leaves undefined */
  readonly missing: readonly OptionalField[];
  /**
   * Every thread of every process of the subtree rooted at process `root` (a tgid, in the reader's pid
   * namespace), in any order. Throws NoProcessError when root does not exist.
   */
  collectTree(root: number): Promise<Task[]>;
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
