/**
 * Pid-namespace chains and namespace identities read from /proc, for the collector's pid-view translation
 * and for the sources whose kernel interface does not carry them (the TASKDIAG v1 family answers in the
 * caller's pid namespace only and has no namespace attribute).
 *
 *   NSpid (in /proc/PID/status): the task's pid in every pid namespace from the one /proc belongs to down to
 *   its own; its length - 1 is the task's level below the reader's namespace.
 *   /proc/PID/task/TID/ns/KIND: a symlink "KIND:[INODE]"; INODE identifies the namespace machine-wide.
 *
 * Threads: pid, user and time namespaces are per process (NS_PER_PROCESS); a thread's mnt, net, ipc, uts and
 * cgroup namespaces can differ from its leader's, so those are read for every thread and the others once
 * per process.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { PermissionError } from '../errors.js';
import { ProcFile, statusNumbers } from './procfile.js';
import { NS_KINDS, NS_PER_PROCESS, NS_PER_THREAD, type NsIds, type NsKind, type Task } from './task.js';

let available: { process: NsKind[]; thread: NsKind[] } | undefined;

/** The namespace kinds this kernel shows in /proc/self/ns (time needs 5.6, cgroup 4.6), probed once. */
export function nsKinds(): { process: NsKind[]; thread: NsKind[] } {
  if (available) return available;
  let names: Set<string>;
  try {
    names = new Set(readdirSync('/proc/self/ns'));
  } catch {
    names = new Set();
  }
  available = {
    process: NS_PER_PROCESS.filter((k) => names.has(k)),
    thread: NS_PER_THREAD.filter((k) => names.has(k)),
  };
  return available;
}

const C_LBRACKET = 0x5b;

function gone(code: string | undefined): boolean {
  return code === 'ENOENT' || code === 'ESRCH';
}

/**
 * One thread's namespace identities. For a thread other than the leader, pass the leader's ids as
 * `leader`: the per-process kinds are copied from it and only the per-thread kinds are read. A kind /proc
 * does not give for this task is absent: a zombie has no nsproxy any more, so only its pid and user
 * namespaces remain. Returns undefined when none could be read (the task is gone). Throws PermissionError
 * when the caller may not inspect the task.
 */
export function readNsIds(tgid: number, tid: number, leader?: NsIds): NsIds | undefined {
  const kinds = nsKinds();
  const ids: NsIds = {};
  const base = `/proc/${tgid}/task/${tid}/ns/`;
  let read = 0;
  const one = (k: NsKind): void => {
    let link: string;
    try {
      link = readlinkSync(base + k);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (gone(code)) return;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new PermissionError('CAP_SYS_PTRACE', tid,
          `cannot read ${base}${k}: reading pid ${tid} needs CAP_SYS_PTRACE (or the same user)`);
      }
      throw e;
    }
    // "net:[4026531840]"
    let i = k.length;
    while (i < link.length && link.charCodeAt(i) !== C_LBRACKET) i++;
    ids[k] = parseInt(link.slice(i + 1), 10);
    read++;
  };
  if (leader && tid !== tgid) {
    for (const k of kinds.process) if (leader[k] !== undefined) ids[k] = leader[k];
  } else {
    for (const k of kinds.process) one(k);
  }
  for (const k of kinds.thread) one(k);
  return read ? ordered(ids) : undefined;
}

/** the same ids with keys in NS_KINDS order, so records from every source have one shape */
function ordered(ids: NsIds): NsIds {
  const o: NsIds = {};
  for (const k of NS_KINDS) if (ids[k] !== undefined) o[k] = ids[k];
  return o;
}

/** Number of readlink calls readNsIds makes for a leader and for another thread (for syscall counts). */
export function nsReadCost(): { leader: number; thread: number } {
  const k = nsKinds();
  return { leader: k.process.length + k.thread.length, thread: k.thread.length };
}

/** Parse the NSpid line out of a /proc/PID/status text: every pid of the chain, outermost first. */
export function parseNsPid(status: string): number[] | undefined {
  return statusNumbers(Buffer.from(status, 'latin1'), status.length, 'NSpid');
}

let statusFile: ProcFile | undefined;

/**
 * A task's NSpid chain (its pid in the reader's pid namespace first, its own namespace's last), or
 * undefined when the task is gone or /proc cannot be read for it.
 */
export function readNsPidChain(pid: number, tgid?: number): number[] | undefined {
  const path = tgid !== undefined && tgid !== pid ? `/proc/${tgid}/task/${pid}/status` : `/proc/${pid}/status`;
  statusFile ??= new ProcFile(4096);
  try {
    return statusFile.read(path) > 0 ? statusFile.keyNumbers('NSpid') : undefined;
  } catch {
    return undefined;
  }
}

/** A thread's pid at pid-namespace level `level` below the reader's, or undefined (gone, or not that deep). */
export function readNsPid(tgid: number, tid: number, level: number): number | undefined {
  const chain = readNsPidChain(tid, tgid);
  return chain && chain.length > level ? chain[level] : undefined;
}

/**
 * Fill, from /proc, what TreeOptions asks for and a source's kernel interface does not carry: `nsPid` at
 * `rootLevel` (one status read per task, only when rootLevel > 0) and `ns` (readlinks, per process for the
 * per-process kinds). Tasks are in the reader's view. Returns the number of system calls made (approximate:
 * 3 per file read, 1 per readlink). A task gone meanwhile keeps its fields undefined.
 */
export function fillFromProc(tasks: readonly Task[], rootLevel: number, namespaces: boolean): number {
  let syscalls = 0;
  if (rootLevel > 0) {
    for (const t of tasks) {
      t.nsPid = readNsPid(t.tgid, t.pid, rootLevel);
      syscalls += 3;
    }
  }
  if (namespaces) {
    const cost = nsReadCost();
    const byTgid = new Map<number, NsIds | undefined>();
    for (const t of tasks) {
      if (t.pid !== t.tgid) continue;
      t.ns = readNsIds(t.tgid, t.pid);
      byTgid.set(t.tgid, t.ns);
      syscalls += cost.leader;
    }
    for (const t of tasks) {
      if (t.pid === t.tgid) continue;
      const leader = byTgid.get(t.tgid);
      t.ns = leader ? readNsIds(t.tgid, t.pid, leader) : readNsIds(t.tgid, t.pid);
      syscalls += leader ? cost.thread : cost.leader;
    }
  }
  return syscalls;
}
