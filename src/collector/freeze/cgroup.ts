/**
 * The cgroup freezer: freeze the cgroup that holds the tree (the container case) instead of each task.
 * cgroup v2: write 1 to cgroup.freeze, wait for `frozen 1` in cgroup.events; v1: write FROZEN to
 * freezer.state, wait for FROZEN. Thaw writes 0 / THAWED — only when the freeze was ours: a cgroup already
 * frozen (by itself or an ancestor) is left frozen.
 *
 * Refused (FreezeError, exit 7, before anything is frozen): the root cgroup, and a cgroup holding processes
 * outside the tree. After the freeze, collect() checks that every live task of the tree is among the frozen
 * tasks (a tree process outside the cgroup would not be frozen).
 *
 * The state of each task is read from /proc just before the freeze (frozen tasks show S under v2, D under
 * v1). The freeze is recorded in a state file (statefile.ts) before it happens and the file is removed after
 * the thaw, so a freeze left behind by a killed collector is undone by `tdcollect thaw` or the next run.
 */
import { FreezeError } from '../../errors.js';
import type { TaskState } from '../task.js';
import {
  CGROUP_HOW, freezeRequested, isFrozen, members, requestFreeze, resolveCgroup, thawCgroup, waitFrozen, type Cgroup,
} from './cgroupfs.js';
import type { Freezer, FreezeOptions, FrozenTree, PreReadTask } from './freezer.js';
import { guardFreeze } from './guard.js';
import { readComm, readStat } from './procread.js';
import { DEFAULT_TIMEOUT_MS } from './ptrace.js';
import {
  listRecords, ownerAlive, recordFile, recoverStaleFreezes, removeRecord, startTimeOf, writeRecord,
} from './statefile.js';

/**
 * Pre-freeze states of the cgroup's tasks; throws when a process of the cgroup is outside the tree.
 * With pre-read tasks (a whole-tree read by the source) only tasks the pre-read did not see are read from
 * /proc one by one (those forked since, or outside the tree).
 */
async function inspect(c: Cgroup, root: number, preRead?: FreezeOptions['preRead']): Promise<Map<number, TaskState>> {
  const pre = new Map<number, PreReadTask>();
  if (preRead) for (const t of await preRead()) pre.set(t.pid, t);
  const { procs, tasks } = members(c);
  const procSet = new Set(procs);
  if (!procSet.has(root)) {
    throw new FreezeError(`process ${root} is not in cgroup ${c.dir}; pass the cgroup that holds the tree`, root);
  }
  const states = new Map<number, TaskState>();
  const ppid = new Map<number, number>();
  for (const tid of tasks) {
    const known = pre.get(tid);
    if (known) {
      states.set(tid, known.state);
      if (procSet.has(tid)) ppid.set(tid, known.ppid);
      continue;
    }
    const st = readStat(`/proc/${tid}/stat`);
    if (!st) continue;
    states.set(tid, st.state);
    if (procSet.has(tid)) ppid.set(tid, st.ppid);
  }
  // the cgroup holds exactly a tree rooted at root iff every other process's parent is in it too
  for (const [pid, pp] of ppid) {
    if (pid !== root && !procSet.has(pp)) {
      throw new FreezeError(
        `cgroup ${c.dir} holds process ${pid} (${readComm(pid)}), which is not in the tree of ${root}: ` +
        `freezing the cgroup would freeze it too; ${CGROUP_HOW}`, pid);
    }
  }
  return states;
}

export const cgroupFreezer: Freezer = {
  method: 'cgroup',
  async freeze(root: number, opts: FreezeOptions = {}): Promise<FrozenTree> {
    recoverStaleFreezes();
    const c = resolveCgroup(root, opts.cgroup);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const file = recordFile(c.dir);
    for (const { file: f, rec } of listRecords()) {
      if (f === file && ownerAlive(rec) && rec.pid !== process.pid) {
        throw new FreezeError(`cgroup ${c.dir} is being frozen by another tdcollect (pid ${rec.pid})`, rec.pid);
      }
    }
    const states = await inspect(c, root, opts.preRead);
    const already = freezeRequested(c);
    let ours = false;
    let guard: ReturnType<typeof guardFreeze> | undefined;
    const thawSync = (): void => {
      if (!ours) return;
      ours = false;
      thawCgroup(c.hierarchy, c.dir);
      removeRecord(file);
    };
    try {
      if (!already) {
        writeRecord({
          cgroup: c.dir, hierarchy: c.hierarchy, pid: process.pid, pidStart: startTimeOf(process.pid) ?? 0,
          root, time: new Date().toISOString(),
        });
        guard = guardFreeze(thawSync);
        ours = true;
        requestFreeze(c);
      }
      if (!waitFrozen(c, timeoutMs)) {
        throw new FreezeError(
          `cgroup ${c.dir} did not reach frozen within ${timeoutMs} ms` + (already ? ' (it was being frozen by someone else)' : ''));
      }
      // the authoritative member list, now that nothing in the cgroup can fork or exit
      const frozen = new Set(members(c, true).tasks);
      for (const tid of [...states.keys()]) if (!frozen.has(tid)) states.delete(tid);
      return {
        states,
        cgroup: c.dir,
        frozen,
        async thaw(): Promise<void> {
          thawSync();
          guard?.release();
        },
      };
    } catch (e) {
      thawSync();
      guard?.release();
      throw e;
    }
  },
};

export { isFrozen };
