/**
 * State files of cgroup freezes. Before freezing a cgroup, the cgroup freezer writes
 * <state dir>/freeze-<hash of the cgroup directory>.json = { cgroup, hierarchy, pid, pidStart, root, time };
 * it removes the file after thawing. A collector killed with SIGKILL cannot thaw, so the file stays:
 * `tdcollect thaw` and the next freeze by any tdcollect find files whose owner (pid + start time) is no
 * longer running and thaw those cgroups.
 *
 * State dir: $TDCOLLECT_STATE_DIR, else /run/tdcollect for root, else $XDG_RUNTIME_DIR/tdcollect or
 * /tmp/tdcollect-<uid>.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { thawCgroup, type Hierarchy } from './cgroupfs.js';
import { readStat } from './procread.js';

export interface FreezeRecord {
  /** cgroup directory */
  cgroup: string;
  hierarchy: Hierarchy;
  /** the collector that froze it */
  pid: number;
  /** its start time (clock ticks after boot, /proc/PID/stat field 22), to tell a reused pid apart */
  pidStart: number;
  /** root of the tree being dumped */
  root: number;
  /** ISO time of the freeze */
  time: string;
}

export function stateDir(): string {
  const env = process.env.TDCOLLECT_STATE_DIR;
  if (env) return env;
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/tdcollect';
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? join(xdg, 'tdcollect') : `/tmp/tdcollect-${uid}`;
}

export function recordFile(cgroupDir: string): string {
  const h = createHash('sha256').update(cgroupDir).digest('hex').slice(0, 16);
  return join(stateDir(), `freeze-${h}.json`);
}

/** Start time of a process (stat field 22), undefined when it does not exist. */
export function startTimeOf(pid: number): number | undefined {
  return readStat(`/proc/${pid}/stat`)?.startTime;
}

/** Write the record atomically (temp file + rename). Returns the file. */
export function writeRecord(rec: FreezeRecord): string {
  const dir = stateDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = recordFile(rec.cgroup);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

export function removeRecord(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}

export function readRecord(file: string): FreezeRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as FreezeRecord;
    if (typeof r.cgroup !== 'string' || (r.hierarchy !== 'v1' && r.hierarchy !== 'v2') || typeof r.pid !== 'number') {
      return undefined;
    }
    return r;
  } catch {
    return undefined;
  }
}

/** Every record in the state dir, with its file. */
export function listRecords(): { file: string; rec: FreezeRecord }[] {
  const dir = stateDir();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { file: string; rec: FreezeRecord }[] = [];
  for (const n of names) {
    if (!n.startsWith('freeze-') || !n.endsWith('.json')) continue;
    const file = join(dir, n);
    const rec = readRecord(file);
    if (rec) out.push({ file, rec });
  }
  return out;
}

/** Whether the collector that wrote rec is still running. */
export function ownerAlive(rec: FreezeRecord): boolean {
  const st = startTimeOf(rec.pid);
  return st !== undefined && st === rec.pidStart;
}

/**
 * Thaw every cgroup whose freeze record was left by a collector that is no longer running, and remove the
 * records. Returns what was thawed.
 */
export function recoverStaleFreezes(): FreezeRecord[] {
  const done: FreezeRecord[] = [];
  for (const { file, rec } of listRecords()) {
    if (ownerAlive(rec)) continue;
    thawCgroup(rec.hierarchy, rec.cgroup);
    removeRecord(file);
    done.push(rec);
  }
  return done;
}
