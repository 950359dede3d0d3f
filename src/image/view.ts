/**
 * Pid views of a Snapshot. A Task's pid fields (pid, tgid, ppid, sid, pgid) are in the root's pid-namespace
 * view, which is what CRIU writes; when the root lived in a pid namespace other than the collector's, the
 * collector's view is kept in Task.collectorView. selectPidView() gives the snapshot in either view, so
 * show and diff (and library users) can look at a container's tree as the container sees it or as the host
 * does. Pure data: no kernel, no files.
 */
import type { RecordedTask, Snapshot } from '../collector/task.js';
import { UsageError } from '../errors.js';

export const PID_VIEWS = ['root', 'collector'] as const;
export type PidViewName = (typeof PID_VIEWS)[number];

/** Parse a `--pid-view` argument (any case). */
export function parsePidView(text: string): PidViewName {
  const v = text.trim().toLowerCase();
  if ((PID_VIEWS as readonly string[]).includes(v)) return v as PidViewName;
  throw new UsageError(`invalid pid view '${text}': expected ${PID_VIEWS.join(' or ')}`);
}

/** True when some task of the snapshot carries the collector's view (the two views differ). */
export const hasCollectorView = (s: Snapshot): boolean => s.tasks.some((t) => t.collectorView !== undefined);

/**
 * The snapshot in the given view. 'root' is the snapshot as stored. 'collector' puts each task's
 * collectorView into its pid fields and keeps the root's view in collectorView, so the operation is its own
 * inverse; a task without collectorView (a tree in the collector's own namespace, or a snapshot read from a
 * CRIU image set, which records only the root's view) is left as it is. The input is not modified. O(n).
 */
export function selectPidView<S extends Snapshot>(s: S, view: PidViewName): S {
  if (view === 'root' || !hasCollectorView(s)) return s;
  const tasks = s.tasks.map((t): RecordedTask => {
    const cv = t.collectorView;
    // only tdcollect's own records carry collectorView, and those always have a ppid
    if (!cv || t.ppid === undefined) return t;
    return {
      ...t,
      pid: cv.pid, tgid: cv.tgid, ppid: cv.ppid, sid: cv.sid, pgid: cv.pgid,
      collectorView: { pid: t.pid, tgid: t.tgid, ppid: t.ppid, sid: t.sid, pgid: t.pgid },
    };
  });
  return { ...s, tasks };
}
