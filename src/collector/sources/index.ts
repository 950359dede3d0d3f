import { readFileSync } from 'node:fs';
import { ProcFile } from '../procfile.js';
import type { SourceName } from '../task.js';
import type { Probe, SourceFactory } from './source.js';
import { procfsFactory } from './procfs.js';
import { taskdiagMissing } from './taskdiag-probe.js';

export type { Source, SourceFactory, SourceStats, Probe, TreeOptions } from './source.js';

/**
 * A source whose module is loaded (and initialised) when it is first probed or opened, so that a command
 * which ends up with another source does not pay for it. `precheck` may answer the probe without the module.
 */
function lazySource(
  name: SourceName, load: () => Promise<SourceFactory>, precheck?: () => Probe | undefined,
): SourceFactory {
  return {
    name,
    async probe() {
      const early = precheck?.();
      return early ?? (await load()).probe();
    },
    async open() {
      return (await load()).open();
    },
  };
}

/** Every source, by name. A new source is one file plus one line here. */
export const SOURCES: Partial<Record<SourceName, SourceFactory>> = {
  procfs: procfsFactory,
  bpf: lazySource('bpf', async () => (await import('./bpf/bpf.js')).bpfFactory),
  // most kernels have no TASKDIAG family: said in four system calls, without the netlink client
  taskdiag: lazySource('taskdiag', async () => (await import('./taskdiag.js')).taskdiagFactory, taskdiagMissing),
};

/**
 * The order `--source auto` considers them in, cheapest first for the job at hand: a readable pinned BPF
 * iterator (no load), the TASKDIAG family (one netlink dump), procfs for a small tree (SMALL_TREE), loading the
 * BPF iterator, and procfs as the universal fallback. See chooseAuto in collect.ts.
 */
export const AUTO_ORDER: readonly SourceName[] = ['taskdiag', 'bpf', 'procfs'];

/**
 * A tree of at most this many processes is read from /proc when neither a pinned iterator nor TASKDIAG is
 * there: loading the BPF iterator (libbpf, CO-RE, verifier, attach: 25-60 ms on this project's 6.18 machines,
 * plus one iteration over every task of the system) costs more than /proc's 75-140 µs per task up to about
 * 300-600 tasks (bench/startup.mjs measures both). Threads are not counted, so the bound is kept lower.
 */
export const SMALL_TREE = 200;

/**
 * Is the job small enough for procfs, found cheaply: every task of the system (root undefined) is counted from
 * /proc/loadavg (one read); a subtree by following the group leaders' /proc/PID/task/PID/children lists, giving
 * up as soon as more than SMALL_TREE processes are found (so at most that many reads for a large tree, one for a
 * wide one; `processes` is then the count found so far). Approximate by design (a child forked by a non-leader
 * thread is not followed); a cost estimate, never a correctness question.
 * Undefined when the root cannot be read (the sources report that themselves), or when maxReads children lists
 * did not settle it.
 */
export function estimateTree(root?: number, limit = SMALL_TREE, maxReads = Infinity): { processes: number; small: boolean } | undefined {
  if (root === undefined) {
    try {
      // "0.31 0.42 0.40 2/10233 12345": the fourth field is runnable/total scheduling entities (threads)
      const total = Number(readFileSync('/proc/loadavg', 'latin1').split(' ')[3].split('/')[1]);
      return Number.isFinite(total) ? { processes: total, small: total <= limit } : undefined;
    } catch {
      return undefined;
    }
  }
  const queue = [root];
  const r = new ProcFile(1 << 13);
  for (let i = 0; i < queue.length; i++) {
    if (i >= maxReads) return undefined;
    const pid = queue[i];
    let n: number;
    try {
      n = r.readPids(`/proc/${pid}/task/${pid}/children`, queue);
    } catch {
      n = -1;
    }
    if (n < 0) {
      if (i === 0) return undefined;
      continue;
    }
    // every process found so far counts, read or not: a wide tree is known to be large after one read
    if (queue.length > limit) return { processes: queue.length, small: false };
  }
  return { processes: queue.length, small: queue.length <= limit };
}
