/**
 * A semantic diff of two Snapshots: pure data in, pure data out (no kernel, no files).
 *
 * Matching. Processes (thread-group leaders) are matched by pid AND start time, so a pid the kernel reused
 * for another process shows as one process removed and another added. When either side lacks a start time
 * the pair is matched by pid alone and the entry says so (`matchedBy: 'pid'`). Threads of a matched process
 * are matched the same way by tid (+ start time).
 *
 * Comparison. Every Task field except the identity (pid, tgid, startTime) is compared. A field that is
 * undefined on one side (the source could not read it) is not a difference: it is listed once in
 * `notCompared`. Fields this version does not know (kept by a newer image reader) are compared as values.
 * The dump headers (timings, createdAt, source, counts) are context, never differences.
 *
 * Output: a SnapshotDiff (the `--json` document, schema version DIFF_SCHEMA_VERSION) and formatDiff() for
 * the human form, grouped by process: one heading line (pid, comm), then one line per changed field.
 */
import { UsageError } from '../errors.js';
import { criuStateOf, NS_KINDS, type DumpInfo, type Mask64, type RecordedTask as Task, type Snapshot } from '../collector/task.js';
import { namespaceMoves, nsField, type NsMove } from './nsdiff.js';

export const DIFF_SCHEMA_VERSION = 1;

/** Capability names by bit number (include/uapi/linux/capability.h, up to CAP_LAST_CAP = 40 on 6.x). */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
  'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** Name of capability bit `bit`: CAP_* for 0..40, "bit N" for bits this version does not know. */
export function capabilityName(bit: number): string {
  return CAPABILITY_NAMES[bit] ?? `bit ${bit}`;
}

const SIGNAL_NAMES: readonly string[] = [
  'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1',
  'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP',
  'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH',
  'SIGIO', 'SIGPWR', 'SIGSYS',
];

/** Name of the signal blocked by mask bit `bit` (signal bit+1); real-time signals as "signal N". */
export function signalName(bit: number): string {
  return SIGNAL_NAMES[bit] ?? `signal ${bit + 1}`;
}

/** Bits set in a Mask64, ascending. */
export function maskBits(m: Mask64): number[] {
  const out: number[] = [];
  for (let w = 0; w < 2; w++) {
    let v = m[w] >>> 0;
    for (let b = 0; v !== 0; b++, v >>>= 1) if (v & 1) out.push(w * 32 + b);
  }
  return out;
}

/** Every Task field the diff compares, in report order. */
export const DIFF_FIELDS = [
  'ppid', 'tpid', 'sid', 'pgid', 'state', 'comm',
  'uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid',
  'capInh', 'capPrm', 'capEff', 'capBnd', 'capAmb', 'groups', 'securebits', 'noNewPrivs', 'seccomp',
  'personality', 'flags', 'sigBlk', 'nice', 'policy', 'priority', 'rtPriority', 'exitCode',
  'futexRla', 'futexRlaLen',
] as const satisfies readonly (keyof Task)[];
export type DiffField = (typeof DIFF_FIELDS)[number];

/** Names `--ignore` accepts besides the fields: each stands for a group of fields, or for thread membership. */
export const IGNORE_GROUPS: Readonly<Record<string, readonly string[]>> = {
  ids: ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid'],
  caps: ['capInh', 'capPrm', 'capEff', 'capBnd', 'capAmb'],
  creds: ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid', 'capInh', 'capPrm', 'capEff',
    'capBnd', 'capAmb', 'groups', 'securebits', 'noNewPrivs'],
  sched: ['nice', 'policy', 'priority', 'rtPriority'],
  futex: ['futexRla', 'futexRlaLen'],
  /** threads added to or removed from a process */
  threads: ['threads'],
  /** namespace membership, every kind */
  ns: NS_KINDS.map(nsField),
};

const IDENTITY = new Set(['pid', 'tgid', 'startTime']);
/**
 * compared through `state` (see Comparer.state), namespaces as a partition (nsdiff.ts); the collector's pid
 * view is context (choose the view with selectPidView first), nsPid never leaves the collector
 */
const STATE_FIELDS = new Set(['criuState', 'ns', 'collectorView', 'nsPid']);
const KNOWN = new Set<string>([...DIFF_FIELDS, ...IDENTITY, ...STATE_FIELDS]);
const MASK_FIELDS = new Set<string>(['capInh', 'capPrm', 'capEff', 'capBnd', 'capAmb', 'sigBlk']);
const HEX_FIELDS = new Set<string>(['flags', 'personality', 'securebits', 'futexRla']);

/**
 * Resolve `--ignore` names (fields or group names, any case) to field names; unknown names are a
 * UsageError listing what is accepted.
 */
export function parseIgnore(names: readonly string[]): string[] {
  const byLower = new Map<string, readonly string[]>();
  for (const f of DIFF_FIELDS) byLower.set(f.toLowerCase(), [f]);
  for (const k of NS_KINDS) byLower.set(`ns.${k}`, [`ns.${k}`]);
  for (const [g, fs] of Object.entries(IGNORE_GROUPS)) byLower.set(g, fs);
  const out = new Set<string>();
  const unknown: string[] = [];
  for (const raw of names) {
    const n = raw.trim();
    if (n === '') continue;
    const fs = byLower.get(n.toLowerCase());
    if (!fs) unknown.push(n);
    else for (const f of fs) out.add(f);
  }
  if (unknown.length) {
    throw new UsageError(`unknown field${unknown.length > 1 ? 's' : ''} for --ignore: ${unknown.join(', ')} ` +
      `(fields: ${DIFF_FIELDS.join(', ')}; groups: ${Object.keys(IGNORE_GROUPS).join(', ')})`);
  }
  return [...out];
}

export interface DiffOptions {
  /** field or group names not to compare (see DIFF_FIELDS, IGNORE_GROUPS) */
  ignore?: readonly string[];
}

/** One changed field. */
export interface FieldChange {
  field: string;
  /**
   * value: any scalar; reparent: ppid changed; session: sid; pgroup: pgid; caps: a capability set (added /
   * removed hold CAP_* names); signals: sigBlk (names); groups: supplementary groups (numbers)
   */
  kind: 'value' | 'reparent' | 'session' | 'pgroup' | 'caps' | 'signals' | 'groups' | 'namespace';
  /** value in A (Mask64 as [lo, hi], groups as an array) */
  old: unknown;
  /** value in B */
  new: unknown;
  /** for caps / signals / groups: members present only in B */
  added?: (string | number)[];
  /** for caps / signals / groups: members present only in A */
  removed?: (string | number)[];
}

export interface ThreadRef {
  tid: number;
  comm: string;
  startTime?: number;
}

export interface ThreadChange extends ThreadRef {
  matchedBy: 'pid+startTime' | 'pid';
  changes: FieldChange[];
}

/** One process that differs: added, removed or changed. */
export interface ProcessDiff {
  status: 'added' | 'removed' | 'changed';
  pid: number;
  /** comm in B (in A when removed) */
  comm: string;
  /** start time in B (in A when removed) */
  startTime?: number;
  /** for added / removed: the parent and the threads the process had */
  ppid?: number;
  threads?: number[];
  /** for changed: how the two sides were matched */
  matchedBy?: 'pid+startTime' | 'pid';
  /** for changed: fields of the leader that differ */
  changes?: FieldChange[];
  threadsAdded?: ThreadRef[];
  threadsRemoved?: ThreadRef[];
  /** for changed: non-leader threads present on both sides whose fields differ */
  threadChanges?: ThreadChange[];
}

/** What each side was (context only, never compared). */
export interface DiffSide {
  path?: string;
  /** what the side is: "tdcollect dump", "CRIU image set", "checkpoint archive (tar.zst)", "live tree" */
  kind?: string;
  root: number;
  /** absent for image sets that do not record it (CRIU's) */
  source?: string;
  freeze?: string;
  live: boolean;
  createdAt?: number;
  processes: number;
  threads: number;
}

/** The `--json` document. */
export interface SnapshotDiff {
  version: typeof DIFF_SCHEMA_VERSION;
  equal: boolean;
  a: DiffSide;
  b: DiffSide;
  /** fields not compared because they were ignored */
  ignored: string[];
  /** fields not compared for at least one task because one side did not record them */
  notCompared: string[];
  /** true when at least one pair was matched by pid alone (a start time missing on a side) */
  matchedByPidOnly: boolean;
  summary: { added: number; removed: number; changed: number };
  /** by pid ascending; for one pid a removed entry precedes the added one */
  processes: ProcessDiff[];
}

function side(info: DumpInfo): DiffSide {
  const d: DiffSide = { root: info.root, live: info.live, processes: info.processes, threads: info.threads };
  if (info.source !== undefined) d.source = info.source;
  if (info.freeze !== undefined) d.freeze = info.freeze;
  if (info.createdAt !== undefined) d.createdAt = info.createdAt;
  return d;
}

interface Proc {
  leader: Task;
  threads: Map<number, Task>;
}

function groupProcesses(tasks: readonly Task[]): Map<number, Proc> {
  const procs = new Map<number, Proc>();
  for (const t of tasks) {
    if (t.pid === t.tgid) {
      const p = procs.get(t.pid);
      if (p) p.leader = t;
      else procs.set(t.pid, { leader: t, threads: new Map() });
    }
  }
  for (const t of tasks) {
    if (t.pid === t.tgid) continue;
    let p = procs.get(t.tgid);
    if (!p) {
      // a thread whose leader is absent (not possible in a whole tree): keep it under its tgid
      p = { leader: { ...t, pid: t.tgid }, threads: new Map() };
      procs.set(t.tgid, p);
    }
    p.threads.set(t.pid, t);
  }
  return procs;
}

/** 'same', 'different' (reused id), or 'pid' (matched by id alone: a start time is missing). */
function matchKind(a: Task, b: Task): 'pid+startTime' | 'pid' | 'reused' {
  if (a.startTime === undefined || b.startTime === undefined) return 'pid';
  return a.startTime === b.startTime ? 'pid+startTime' : 'reused';
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a as object), kb = Object.keys(b as object);
    if (ka.length !== kb.length) return false;
    for (const k of ka) if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    return true;
  }
  return false;
}

function setDiff<T>(a: readonly T[], b: readonly T[]): { added: T[]; removed: T[] } {
  const sa = new Set(a), sb = new Set(b);
  return { added: b.filter((x) => !sa.has(x)), removed: a.filter((x) => !sb.has(x)) };
}

class Comparer {
  readonly notCompared = new Set<string>();
  /** namespace moves by side-A task (namespaceMoves over every matched pair) */
  nsMoves = new Map<Task, NsMove[]>();
  constructor(private readonly ignore: ReadonlySet<string>) {}

  fields(a: Task, b: Task): FieldChange[] {
    const out: FieldChange[] = [];
    const ra = a as unknown as Record<string, unknown>, rb = b as unknown as Record<string, unknown>;
    for (const f of DIFF_FIELDS) {
      if (f === 'state') this.state(a, b, out);
      else this.one(f, ra[f], rb[f], out);
    }
    for (const m of this.nsMoves.get(a) ?? []) out.push({ field: nsField(m.kind), kind: 'namespace', old: m.old, new: m.new });
    // fields a newer reader kept that this version does not know
    const extra = new Set<string>();
    for (const k of Object.keys(ra)) if (!KNOWN.has(k)) extra.add(k);
    for (const k of Object.keys(rb)) if (!KNOWN.has(k)) extra.add(k);
    for (const k of [...extra].sort()) this.one(k, ra[k], rb[k], out);
    return out;
  }

  /**
   * The /proc letters when both sides have one; otherwise CRIU's coarse states (alive, dead, stopped), one
   * side's letter mapped onto them (Z and X dead, T and t stopped, the rest alive).
   */
  private state(a: Task, b: Task, out: FieldChange[]): void {
    if (this.ignore.has('state')) return;
    if (a.state !== undefined && b.state !== undefined) { this.one('state', a.state, b.state, out); return; }
    const ca = criuStateOf(a), cb = criuStateOf(b);
    if (ca === undefined || cb === undefined) { if (ca !== undefined || cb !== undefined) this.notCompared.add('state'); return; }
    if (ca !== cb) {
      out.push({ field: 'state', kind: 'value', old: a.state !== undefined ? `${a.state} (${ca})` : ca, new: b.state !== undefined ? `${b.state} (${cb})` : cb });
    }
  }

  private one(f: string, va: unknown, vb: unknown, out: FieldChange[]): void {
    if (this.ignore.has(f)) return;
    if (va === undefined && vb === undefined) return;
    if (va === undefined || vb === undefined) { this.notCompared.add(f); return; }
    if (sameValue(va, vb)) return;
    if (MASK_FIELDS.has(f) && Array.isArray(va) && Array.isArray(vb)) {
      const d = setDiff(maskBits(va as unknown as Mask64), maskBits(vb as unknown as Mask64));
      const name = f === 'sigBlk' ? signalName : capabilityName;
      out.push({
        field: f, kind: f === 'sigBlk' ? 'signals' : 'caps', old: va, new: vb,
        added: d.added.map(name), removed: d.removed.map(name),
      });
      return;
    }
    if (f === 'groups' && Array.isArray(va) && Array.isArray(vb)) {
      const d = setDiff(va as number[], vb as number[]);
      out.push({ field: f, kind: 'groups', old: va, new: vb, added: d.added, removed: d.removed });
      return;
    }
    const kind = f === 'ppid' ? 'reparent' : f === 'sid' ? 'session' : f === 'pgid' ? 'pgroup' : 'value';
    out.push({ field: f, kind, old: va, new: vb });
  }
}

function ref(t: Task): ThreadRef {
  return { tid: t.pid, comm: t.comm, ...(t.startTime !== undefined ? { startTime: t.startTime } : {}) };
}

function procEntry(status: 'added' | 'removed', p: Proc): ProcessDiff {
  const l = p.leader;
  return {
    status, pid: l.pid, comm: l.comm, ...(l.startTime !== undefined ? { startTime: l.startTime } : {}),
    ppid: l.ppid, threads: [l.pid, ...[...p.threads.keys()].sort((x, y) => x - y)],
  };
}

/** Compare two snapshots. Pure; never throws except UsageError for unknown `ignore` names. */
export function diffSnapshots(a: Snapshot, b: Snapshot, opts: DiffOptions = {}): SnapshotDiff {
  const ignored = parseIgnore(opts.ignore ?? []);
  const ignore = new Set(ignored);
  const cmp = new Comparer(ignore);
  const pa = groupProcesses(a.tasks), pb = groupProcesses(b.tasks);
  const entries: ProcessDiff[] = [];
  let byPidOnly = false;
  // namespaces are compared over every matched pair at once (a partition, nsdiff.ts), threads included
  const pairs: [Task, Task][] = [];
  for (const [pid, A] of pa) {
    const B = pb.get(pid);
    if (!B || matchKind(A.leader, B.leader) === 'reused') continue;
    pairs.push([A.leader, B.leader]);
    for (const [tid, ta] of A.threads) {
      const tb = B.threads.get(tid);
      if (tb && matchKind(ta, tb) !== 'reused') pairs.push([ta, tb]);
    }
  }
  const ns = namespaceMoves(pairs, ignore);
  for (const [i, m] of ns.moves) cmp.nsMoves.set(pairs[i][0], m);
  for (const f of ns.notCompared) cmp.notCompared.add(f);

  for (const [pid, A] of pa) {
    const B = pb.get(pid);
    if (!B) { entries.push(procEntry('removed', A)); continue; }
    const m = matchKind(A.leader, B.leader);
    if (m === 'reused') {
      entries.push(procEntry('removed', A), procEntry('added', B));
      continue;
    }
    if (m === 'pid') byPidOnly = true;
    const changes = cmp.fields(A.leader, B.leader);
    const threadsAdded: ThreadRef[] = [], threadsRemoved: ThreadRef[] = [], threadChanges: ThreadChange[] = [];
    for (const [tid, ta] of A.threads) {
      const tb = B.threads.get(tid);
      const tm = tb ? matchKind(ta, tb) : 'reused';
      if (!tb || tm === 'reused') { threadsRemoved.push(ref(ta)); continue; }
      if (tm === 'pid') byPidOnly = true;
      const tc = cmp.fields(ta, tb);
      if (tc.length) threadChanges.push({ ...ref(tb), matchedBy: tm, changes: tc });
    }
    for (const [tid, tb] of B.threads) {
      const ta = A.threads.get(tid);
      if (!ta || matchKind(ta, tb) === 'reused') threadsAdded.push(ref(tb));
    }
    if (ignore.has('threads')) { threadsAdded.length = 0; threadsRemoved.length = 0; }
    if (changes.length || threadsAdded.length || threadsRemoved.length || threadChanges.length) {
      const byTid = (x: ThreadRef, y: ThreadRef) => x.tid - y.tid;
      entries.push({
        status: 'changed', pid, comm: B.leader.comm,
        ...(B.leader.startTime !== undefined ? { startTime: B.leader.startTime } : {}),
        matchedBy: m, changes,
        threadsAdded: threadsAdded.sort(byTid), threadsRemoved: threadsRemoved.sort(byTid),
        threadChanges: threadChanges.sort(byTid),
      });
    }
  }
  for (const [pid, B] of pb) if (!pa.has(pid)) entries.push(procEntry('added', B));

  const rank = { removed: 0, changed: 1, added: 2 } as const;
  entries.sort((x, y) => x.pid - y.pid || rank[x.status] - rank[y.status]);
  const summary = { added: 0, removed: 0, changed: 0 };
  for (const e of entries) summary[e.status]++;
  return {
    version: DIFF_SCHEMA_VERSION,
    equal: entries.length === 0,
    a: side(a.info),
    b: side(b.info),
    ignored,
    notCompared: [...cmp.notCompared].sort(),
    matchedByPidOnly: byPidOnly,
    summary,
    processes: entries,
  };
}

function show(field: string, v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' && HEX_FIELDS.has(field)) return `0x${v.toString(16)}`;
  if (Array.isArray(v)) return `[${v.join(',')}]`;
  return String(v);
}

const KIND_NOTE: Partial<Record<FieldChange['kind'], string>> = {
  reparent: ' (reparented)', session: ' (session changed)', pgroup: ' (process group changed)',
  namespace: ' (moved to another namespace)',
};

/** One line for a field change, without indentation: "capEff: -CAP_SYS_ADMIN +CAP_NET_RAW". */
export function formatChange(c: FieldChange): string {
  if (c.added !== undefined && c.removed !== undefined) {
    const parts = [...c.removed.map((x) => `-${x}`), ...c.added.map((x) => `+${x}`)];
    // a change that moves no member (cannot happen for well-formed values): show the raw values
    return `${c.field}: ${parts.length ? parts.join(' ') : `${show(c.field, c.old)} -> ${show(c.field, c.new)}`}`;
  }
  return `${c.field}: ${show(c.field, c.old)} -> ${show(c.field, c.new)}${KIND_NOTE[c.kind] ?? ''}`;
}

function tref(t: ThreadRef): string {
  return `${t.tid} (${t.comm})`;
}

/**
 * The human form, grouped by process:
 *
 *   process 1234 (sleep): removed (ppid 1200, threads 1234)
 *   process 1240 (treegen):
 *     ppid: 1200 -> 1 (reparented)
 *     capEff: -CAP_SYS_ADMIN
 *     threads added: 1250 (worker)
 *     thread 1241 (worker): state: S -> T
 *
 * followed by notes (fields not compared, pid-only matches) and a summary line. Empty for equal snapshots
 * unless notes apply.
 */
export function formatDiff(d: SnapshotDiff): string {
  const out: string[] = [];
  for (const e of d.processes) {
    const head = `process ${e.pid} (${e.comm})`;
    if (e.status !== 'changed') {
      const thr = e.threads && e.threads.length > 1 ? `, threads ${e.threads.join(' ')}` : '';
      const st = e.startTime !== undefined ? `, start ${e.startTime}` : '';
      out.push(`${head}: ${e.status} (ppid ${e.ppid}${st}${thr})`);
      continue;
    }
    out.push(`${head}:${e.matchedBy === 'pid' ? ' [matched by pid only: no start time]' : ''}`);
    for (const c of e.changes ?? []) out.push(`  ${formatChange(c)}`);
    if (e.threadsRemoved?.length) out.push(`  threads removed: ${e.threadsRemoved.map(tref).join(', ')}`);
    if (e.threadsAdded?.length) out.push(`  threads added: ${e.threadsAdded.map(tref).join(', ')}`);
    for (const t of e.threadChanges ?? []) {
      for (const c of t.changes) out.push(`  thread ${tref(t)}: ${formatChange(c)}`);
    }
  }
  if (d.notCompared.length) out.push(`note: not compared where one side did not record them: ${d.notCompared.join(', ')}`);
  if (d.matchedByPidOnly) out.push('note: some tasks were matched by pid alone (start time not recorded on a side)');
  if (!d.equal) {
    const s = d.summary;
    out.push(`${d.processes.length} process${d.processes.length === 1 ? '' : 'es'} differ: ` +
      `${s.removed} removed, ${s.added} added, ${s.changed} changed`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}
