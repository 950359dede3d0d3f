/**
 * The cgroup freezer's file operations: finding the v2 mount and the v1 freezer mount, resolving a cgroup,
 * freezing (v2 cgroup.freeze + cgroup.events, v1 freezer.state), thawing, and listing member tasks.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FreezeError, UnavailableError, UsageError } from '../../errors.js';
import { now } from '../../sys/clock.js';

export type Hierarchy = 'v2' | 'v1';

export interface Cgroup {
  hierarchy: Hierarchy;
  /** directory of the cgroup, e.g. /sys/fs/cgroup/unified/mytree */
  dir: string;
  /** path inside its hierarchy, e.g. /mytree */
  path: string;
}

export interface Mounts {
  v2?: string;
  v1freezer?: string;
}

let mountsCache: Mounts | undefined;

/** Mount points of the cgroup2 hierarchy and of the v1 freezer hierarchy (from /proc/self/mountinfo). */
export function cgroupMounts(): Mounts {
  if (mountsCache) return mountsCache;
  const m: Mounts = {};
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const mountPoint = pre[4];
    if (post[0] === 'cgroup2' && !m.v2) m.v2 = mountPoint;
    if (post[0] === 'cgroup' && post[2]?.split(',').includes('freezer') && !m.v1freezer) m.v1freezer = mountPoint;
  }
  mountsCache = m;
  return m;
}

/** The v2 path and v1 freezer path of a process, from /proc/PID/cgroup. */
export function procCgroups(pid: number): { v2?: string; v1freezer?: string } {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return {};
  }
  const out: { v2?: string; v1freezer?: string } = {};
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const ctrl = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (line.slice(0, a) === '0' && ctrl === '') out.v2 = path;
    else if (ctrl.split(',').includes('freezer')) out.v1freezer = path;
  }
  return out;
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};
const exists = (p: string): boolean => {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
};

const HOW = 'move the tree into a cgroup of its own (for cgroup v2: mkdir /sys/fs/cgroup/unified/NAME, ' +
  'then echo ROOTPID > /sys/fs/cgroup/unified/NAME/cgroup.procs before it forks) or pass --freeze cgroup=PATH';

/**
 * Resolve --freeze cgroup[=PATH]. PATH is a cgroup directory (holding cgroup.freeze or freezer.state) or a
 * path inside the v2 hierarchy, else inside the v1 freezer hierarchy. Without PATH: the root task's v2
 * cgroup, else its v1 freezer cgroup. The root cgroup of a hierarchy is refused.
 */
export function resolveCgroup(root: number, path?: string): Cgroup {
  const m = cgroupMounts();
  if (!m.v2 && !m.v1freezer) {
    throw new UnavailableError('freeze:cgroup', 'no cgroup v2 hierarchy and no v1 freezer hierarchy is mounted');
  }
  if (path !== undefined) {
    if (path === '') throw new UsageError('--freeze cgroup=PATH: empty PATH');
    const candidates: Cgroup[] = [];
    for (const [h, mnt] of [['v2', m.v2], ['v1', m.v1freezer]] as const) {
      if (!mnt) continue;
      if (path === mnt || path.startsWith(mnt + '/')) {
        candidates.push({ hierarchy: h, dir: path.replace(/\/+$/, ''), path: path.slice(mnt.length) || '/' });
      }
    }
    if (!candidates.length) {
      for (const [h, mnt] of [['v2', m.v2], ['v1', m.v1freezer]] as const) {
        if (!mnt) continue;
        const rel = ('/' + path).replace(/\/+/g, '/').replace(/\/$/, '') || '/';
        candidates.push({ hierarchy: h, dir: rel === '/' ? mnt : join(mnt, rel), path: rel });
      }
    }
    for (const c of candidates) {
      if (!isDir(c.dir)) continue;
      checkNotRoot(c);
      return c;
    }
    throw new UsageError(`--freeze cgroup=${path}: no such cgroup (looked in ${candidates.map((c) => c.dir).join(', ')})`);
  }
  const pc = procCgroups(root);
  if (m.v2 && pc.v2 !== undefined && pc.v2 !== '/') {
    return { hierarchy: 'v2', dir: join(m.v2, pc.v2), path: pc.v2 };
  }
  if (m.v1freezer && pc.v1freezer !== undefined && pc.v1freezer !== '/') {
    return { hierarchy: 'v1', dir: join(m.v1freezer, pc.v1freezer), path: pc.v1freezer };
  }
  throw new FreezeError(
    `process ${root} is in the root cgroup (v2 ${pc.v2 ?? 'n/a'}, v1 freezer ${pc.v1freezer ?? 'n/a'}): ` +
    `freezing it would freeze the whole system; ${HOW}`, root);
}

function checkNotRoot(c: Cgroup): void {
  if (c.path === '/') {
    throw new FreezeError(`${c.dir} is the root cgroup: freezing it would freeze the whole system; ${HOW}`);
  }
  const probe = c.hierarchy === 'v2' ? 'cgroup.freeze' : 'freezer.state';
  if (!exists(join(c.dir, probe))) {
    throw new UnavailableError('freeze:cgroup', `${c.dir} has no ${probe}: the ${c.hierarchy === 'v2' ? 'cgroup v2 freezer' : 'v1 freezer'} is not available there`);
  }
}

export { HOW as CGROUP_HOW };

/** Directories of the cgroup and all its descendants (a freeze applies to the whole subtree). */
export function subtree(dir: string): string[] {
  const out = [dir];
  for (let i = 0; i < out.length; i++) {
    let ents;
    try {
      ents = readdirSync(out[i], { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of ents) if (e.isDirectory()) out.push(join(out[i], e.name));
  }
  return out;
}

function readIds(file: string, into: number[]): void {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return;
  }
  let v = 0;
  let any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) { v = v * 10 + c - 48; any = true; }
    else if (any) { into.push(v); v = 0; any = false; }
  }
  if (any) into.push(v);
}

/** Processes (tgids, unless tasksOnly) and tasks (tids) of the cgroup subtree. */
export function members(c: Cgroup, tasksOnly = false): { procs: number[]; tasks: number[] } {
  const procs: number[] = [];
  const tasks: number[] = [];
  for (const d of subtree(c.dir)) {
    if (!tasksOnly) readIds(join(d, 'cgroup.procs'), procs);
    readIds(join(d, c.hierarchy === 'v2' ? 'cgroup.threads' : 'tasks'), tasks);
  }
  return { procs, tasks };
}

/** Whether the cgroup is frozen now (v2: cgroup.events frozen 1; v1: freezer.state FROZEN). */
export function isFrozen(c: Cgroup): boolean {
  if (c.hierarchy === 'v2') {
    const ev = readFileSync(join(c.dir, 'cgroup.events'), 'latin1');
    return ev.includes('frozen 1');
  }
  return readFileSync(join(c.dir, 'freezer.state'), 'latin1').startsWith('FROZEN');
}

/** Whether a freeze was requested on this cgroup itself or an ancestor (so it is not ours to undo). */
export function freezeRequested(c: Cgroup): boolean {
  if (c.hierarchy === 'v2') {
    return readFileSync(join(c.dir, 'cgroup.freeze'), 'latin1').startsWith('1') || isFrozen(c);
  }
  const st = readFileSync(join(c.dir, 'freezer.state'), 'latin1');
  if (!st.startsWith('THAWED')) return true;
  try {
    return readFileSync(join(c.dir, 'freezer.parent_freezing'), 'latin1').startsWith('1');
  } catch {
    return false;
  }
}

export function requestFreeze(c: Cgroup): void {
  if (c.hierarchy === 'v2') writeFileSync(join(c.dir, 'cgroup.freeze'), '1');
  else writeFileSync(join(c.dir, 'freezer.state'), 'FROZEN');
}

/** Thaw (synchronous; a cgroup that disappeared is not an error). */
export function thawCgroup(hierarchy: Hierarchy, dir: string): void {
  try {
    if (hierarchy === 'v2') writeFileSync(join(dir, 'cgroup.freeze'), '0');
    else writeFileSync(join(dir, 'freezer.state'), 'THAWED');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw e;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Wait until the cgroup reports frozen; false on timeout. Polls with a short backoff. */
export function waitFrozen(c: Cgroup, timeoutMs: number): boolean {
  const deadline = now() + timeoutMs;
  let backoff = 0.05;
  let lastKick = now();
  for (;;) {
    if (isFrozen(c)) return true;
    const t = now();
    if (t > deadline) return false;
    // v1: FREEZING can stall on a task that was busy; writing FROZEN again retries it (CRIU does the same)
    if (c.hierarchy === 'v1' && t - lastKick > 100) {
      requestFreeze(c);
      lastKick = t;
    }
    Atomics.wait(sleepCell, 0, 0, backoff);
    backoff = Math.min(backoff * 2, 1);
  }
}
