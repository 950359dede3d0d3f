/**
 * Orders the tasks of a tree the way pstree.img lists them and checks the tree is whole: root first,
 * depth first, children by ascending pid, each leader followed by its threads in ascending tid order.
 */
import { TdError, EXIT } from '../errors.js';
import type { Task } from './task.js';

export class InconsistentTreeError extends TdError {
  constructor(message: string) { super('freeze', EXIT.FREEZE, message); }
}

export interface Process {
  leader: Task;
  threads: Task[];
  children: Process[];
}

/** Group tasks into processes and link them; throws InconsistentTreeError on duplicates or orphans. */
export function buildTree(tasks: readonly Task[], root: number): Process {
  const byTgid = new Map<number, Process>();
  const seen = new Set<number>();
  const lone: Task[] = [];
  for (const t of tasks) {
    if (seen.has(t.pid)) throw new InconsistentTreeError(`task ${t.pid} appears twice`);
    seen.add(t.pid);
    if (t.pid === t.tgid) {
      byTgid.set(t.tgid, { leader: t, threads: [], children: [] });
    } else {
      lone.push(t);
    }
  }
  for (const t of lone) {
    const p = byTgid.get(t.tgid);
    if (!p) throw new InconsistentTreeError(`thread ${t.pid} of process ${t.tgid}, which is missing`);
    p.threads.push(t);
  }
  const top = byTgid.get(root);
  if (!top) throw new InconsistentTreeError(`root process ${root} is missing`);
  for (const p of byTgid.values()) {
    if (p === top) continue;
    const parent = byTgid.get(p.leader.ppid);
    if (!parent) {
      throw new InconsistentTreeError(`process ${p.leader.pid} has parent ${p.leader.ppid}, which is not in the tree`);
    }
    parent.children.push(p);
  }
  for (const p of byTgid.values()) {
    p.threads.sort((a, b) => a.pid - b.pid);
    p.children.sort((a, b) => a.leader.pid - b.leader.pid);
  }
  // every process must be reachable from the root (no cycles through reused pids)
  let reached = 0;
  const stack = [top];
  while (stack.length) {
    const p = stack.pop()!;
    reached++;
    for (const c of p.children) stack.push(c);
  }
  if (reached !== byTgid.size) {
    throw new InconsistentTreeError(`${byTgid.size - reached} processes are not reachable from root ${root}`);
  }
  return top;
}

/** Processes in pre-order (depth first). */
export function* processes(top: Process): Generator<Process> {
  const stack: Process[] = [top];
  while (stack.length) {
    const p = stack.pop()!;
    yield p;
    for (let i = p.children.length - 1; i >= 0; i--) stack.push(p.children[i]);
  }
}

/** Tasks in pstree order: each process's leader then its threads, processes depth first. */
export function orderTasks(tasks: readonly Task[], root: number): Task[] {
  const out: Task[] = new Array(tasks.length);
  let n = 0;
  const stack: Process[] = [buildTree(tasks, root)];
  while (stack.length) {
    const p = stack.pop()!;
    out[n++] = p.leader;
    for (let i = 0; i < p.threads.length; i++) out[n++] = p.threads[i];
    for (let i = p.children.length - 1; i >= 0; i--) stack.push(p.children[i]);
  }
  out.length = n;
  return out;
}

/**
 * Check a snapshot against the set of tasks a freezer holds: every live task the source returned must be
 * frozen (otherwise it could change under the walk), and every frozen task must be in the snapshot
 * (otherwise the freeze held a task outside the tree, or the walk missed a thread or a process).
 * Zombies are not frozen by any freezer and are exempt from the first rule.
 */
export function checkFrozen(tasks: readonly Task[], frozen: ReadonlySet<number>, method: string): void {
  const seen = new Set<number>();
  for (const t of tasks) {
    seen.add(t.pid);
    if (t.state !== 'Z' && t.state !== 'X' && !frozen.has(t.pid)) {
      throw new InconsistentTreeError(
        `task ${t.pid} (${t.comm}) of the tree was not frozen by the ${method} freezer` +
        (method === 'cgroup' ? ': it is outside the frozen cgroup' : ''));
    }
  }
  for (const tid of frozen) {
    if (!seen.has(tid)) {
      throw new InconsistentTreeError(
        `task ${tid} was frozen by the ${method} freezer but is not in the collected tree` +
        (method === 'cgroup' ? ': the cgroup holds tasks outside the tree' : ''));
    }
  }
}
