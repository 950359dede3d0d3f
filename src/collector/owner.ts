/**
 * Who a tdcollect process is, beyond its pid, and whether the process that wrote a leftover is gone: the
 * image writer's WriteOwner (src/image/write.ts) for the CLI. The tag is `<start time>.<pid namespace inode>`:
 * a pid alone can be reused, and a pid of another pid namespace names another process here.
 *
 * gone() is conservative: true only when no process has that pid here (kill(pid, 0) gives ESRCH), or the
 * process that has it started at another time than the writer did (the pid was reused). A tag from another
 * pid namespace, or a name without a tag whose pid is alive, is not judged (false).
 */
import { statSync } from 'node:fs';
import { readStat } from './freeze/procread.js';
import { kill } from '../sys/ptrace.js';
import { ESRCH } from '../sys/libc.js';


function pidNamespace(): number | undefined {
  try {
    return statSync('/proc/self/ns/pid').ino;
  } catch {
    return undefined;
  }
}

let selfTag: string | undefined;

/** This process's tag: `<start time in clock ticks>.<pid namespace inode>`. */
export function ownerTag(): string {
  if (selfTag === undefined) {
    const st = readStat(`/proc/${process.pid}/stat`);
    selfTag = `${st?.startTime ?? 0}.${pidNamespace() ?? 0}`;
  }
  return selfTag;
}

/** True only when the process (pid, tag) is certainly not running. */
export function ownerGone(pid: number, tag: string | undefined): boolean {
  if (tag !== undefined) {
    const m = /^([0-9]+)\.([0-9]+)$/.exec(tag);
    if (!m) return false;
    const ns = pidNamespace();
    if (ns === undefined || Number(m[2]) !== ns) return false;
    const st = readStat(`/proc/${pid}/stat`);
    if (st) return st.startTime !== Number(m[1]);
  }
  return kill(pid, 0) === -ESRCH;
}

export const processOwner = {
  get tag(): string { return ownerTag(); },
  gone: ownerGone,
};
