/**
 * The binary record the BPF task iterator (task_iter.bpf.c, struct td_task) emits, one per task, and its
 * decoding into Task records. Pure functions over a Buffer: no kernel access.
 *
 * Grammar (all little-endian, no padding): a 232-byte header, then min(ngroups, 32) u32 groups, so a record
 * is 232..360 bytes and the next one follows at once:
 *   off  size field
 *     0  6×u32 tgid pid ppid tpid sid pgid   (reader's pid namespace; 0 = no number there)
 *    24  u32 state        raw task->__state
 *    28  u32 exit_state   raw task->exit_state (EXIT_ZOMBIE 0x20, EXIT_DEAD 0x10)
 *    32  u32 flags        PF_*
 *    36  u32 ptrace       PT_* (tpid is filled when non-zero)
 *    40  8×u32 uid euid suid fsuid gid egid sgid fsgid (kernel ids, init user namespace)
 *    72  u32 securebits
 *    76  u32 ngroups      the true number of supplementary groups
 *    80  u32 personality
 *    84  i32 exit_code    raw task->exit_code
 *    88  i32 prio         task->prio (0..139)
 *    92  i32 static_prio  task->static_prio (100..139)
 *    96  u32 rt_priority
 *   100  u32 policy       SCHED_*
 *   104  u32 seccomp      task->seccomp.mode
 *   108  u32 bits         1 no_new_privs, 2 undecided (ancestor walk hit its bound), 4 no seccomp field
 *   112  5×u64 cap inh prm eff bnd amb
 *   152  u64 blocked      blocked signal mask
 *   160  u64 start_time   clock ticks after boot (start_boottime / 10,000,000 ns)
 *   168  u64 robust_list  user address of the robust futex list head
 *   176  16×u8 comm       NUL-padded
 *   192  u32 ns_depth     pid-namespace levels between the reader's namespace and the task's own
 *   196  u32 ns_pid       the task's pid in its own pid namespace
 *   200  8×u32 ns         namespace inode numbers: pid mnt net ipc uts user cgroup time (0 = none: a zombie
 *                         has no mnt..time, a kernel without time namespaces no time)
 *   232  n×u32 groups     the first n = min(ngroups, 32) groups
 *   232 + 4n
 */
import { NS_KINDS, ROBUST_LIST_HEAD_SIZE, type Mask64, type NsIds, type Task, type TaskState } from '../../task.js';

/** size of the fixed part; the groups follow */
export const HEADER_SIZE = 232;
/** the largest record: header and MAX_GROUPS groups */
export const MAX_RECORD_SIZE = 360;
/** bumped whenever the layout or what the program emits changes; part of the pin path, so a pinned iterator
 * left by an older version is never read (3: pid 1 of the namespace is emitted on kernels whose iterator skips
 * it; 4: pid-namespace depth, own pid and namespace identities) */
export const RECORD_VERSION = 4;
export const MAX_GROUPS = 32;
export const BIT_NO_NEW_PRIVS = 0x1;
export const BIT_UNDECIDED = 0x2;
export const BIT_NO_SECCOMP = 0x4;

/** Byte offset of every member of struct td_task, by its C name (checked against the object's DWARF). */
export const FIELD_OFFSETS = {
  tgid: 0, pid: 4, ppid: 8, tpid: 12, sid: 16, pgid: 20, state: 24, exit_state: 28, flags: 32, ptrace: 36,
  uid: 40, euid: 44, suid: 48, fsuid: 52, gid: 56, egid: 60, sgid: 64, fsgid: 68,
  securebits: 72, ngroups: 76, personality: 80, exit_code: 84, prio: 88, static_prio: 92,
  rt_priority: 96, policy: 100, seccomp: 104, bits: 108,
  cap_inh: 112, cap_prm: 120, cap_eff: 128, cap_bnd: 136, cap_amb: 144, blocked: 152, start_time: 160,
  robust_list: 168, comm: 176, ns_depth: 192, ns_pid: 196, ns: 200, groups: 232,
} as const;

const O = FIELD_OFFSETS;
/** u32 word offsets */
const W = {
  tgid: O.tgid / 4, pid: O.pid / 4, ppid: O.ppid / 4, tpid: O.tpid / 4, sid: O.sid / 4, pgid: O.pgid / 4,
  state: O.state / 4, exitState: O.exit_state / 4, flags: O.flags / 4, ptrace: O.ptrace / 4,
  uid: O.uid / 4, euid: O.euid / 4, suid: O.suid / 4, fsuid: O.fsuid / 4,
  gid: O.gid / 4, egid: O.egid / 4, sgid: O.sgid / 4, fsgid: O.fsgid / 4,
  securebits: O.securebits / 4, ngroups: O.ngroups / 4, personality: O.personality / 4,
  exitCode: O.exit_code / 4, prio: O.prio / 4, staticPrio: O.static_prio / 4,
  rtPriority: O.rt_priority / 4, policy: O.policy / 4, seccomp: O.seccomp / 4, bits: O.bits / 4,
  capInh: O.cap_inh / 4, capPrm: O.cap_prm / 4, capEff: O.cap_eff / 4, capBnd: O.cap_bnd / 4,
  capAmb: O.cap_amb / 4, blocked: O.blocked / 4, startTime: O.start_time / 4, robustList: O.robust_list / 4,
  comm: O.comm / 4, nsDepth: O.ns_depth / 4, nsPid: O.ns_pid / 4, ns: O.ns / 4, groups: O.groups / 4,
} as const;

// include/linux/sched.h state bits (6.1+)
const TASK_REPORT = 0x7f;
const TASK_IDLE = 0x402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
const TASK_REPORT_IDLE = 0x80;
const TASK_UNINTERRUPTIBLE = 0x2;
const TASK_RTLOCK_WAIT = 0x1000;
const TASK_FROZEN = 0x8000;
/** fs/proc/array.c task_state_array, indexed by fls(state) */
const STATE_LETTERS: readonly TaskState[] = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'];

/**
 * The /proc state letter of a raw (__state, exit_state) pair, exactly as the kernel's __task_state_index():
 * TASK_IDLE reports I, TASK_RTLOCK_WAIT and TASK_FROZEN report D, anything else the highest TASK_REPORT bit.
 */
export function decodeState(state: number, exitState: number): TaskState {
  let s = (state | exitState) & TASK_REPORT;
  if ((state & TASK_IDLE) === TASK_IDLE) s = TASK_REPORT_IDLE;
  if ((state & TASK_RTLOCK_WAIT) !== 0 || (state & TASK_FROZEN) !== 0) s = TASK_UNINTERRUPTIBLE;
  return STATE_LETTERS[s === 0 ? 0 : 32 - Math.clz32(s)];
}

/** Word views over the iterator's output and where each record starts. */
export interface RecordView {
  u32: Uint32Array;
  i32: Int32Array;
  bytes: Buffer;
  count: number;
  /** u32 index of the start of each record */
  start: Uint32Array;
}

let starts = new Uint32Array(0);

/**
 * Index the records of the iterator's output (length bytes of buf). Throws RangeError when the bytes do not
 * end exactly at a record boundary. The view shares buf (copied once when buf is not 4-byte aligned) and a
 * module-level index: use it before the next call.
 */
export function viewRecords(buf: Buffer, length: number): RecordView {
  let b = buf;
  if (b.byteOffset % 4 !== 0) {
    b = Buffer.alloc(length);
    buf.copy(b, 0, 0, length);
  }
  const u32 = new Uint32Array(b.buffer, b.byteOffset, length >>> 2);
  const words = length >>> 2;
  let count = 0;
  let w = 0;
  while (w < words) {
    if (w + HEADER_SIZE / 4 > words) break;
    if (count === starts.length) {
      const bigger = new Uint32Array(Math.max(16384, starts.length * 2));
      bigger.set(starts);
      starts = bigger;
    }
    starts[count++] = w;
    const ng = u32[w + W.ngroups];
    w += HEADER_SIZE / 4 + (ng < MAX_GROUPS ? ng : MAX_GROUPS);
  }
  if (w * 4 !== length) {
    throw new RangeError(`BPF iterator output of ${length} bytes does not end at a record boundary (record ${count})`);
  }
  return { u32, i32: new Int32Array(b.buffer, b.byteOffset, words), bytes: b, count, start: starts };
}

/*
 * Decoding 10,000 tasks allocates megabytes, and every garbage collection costs system calls (mprotect,
 * madvise, futex). Two small direct-mapped caches keep the common values shared: masks (most tasks have the
 * same capability sets and an empty signal mask) as frozen arrays, and comm strings (a tree is mostly made
 * of a few programs). A hit is verified word for word, so the cache never changes a result.
 */
const CACHE = 256;
const maskLo = new Uint32Array(CACHE);
const maskHi = new Uint32Array(CACHE);
const maskVal: (Mask64 | undefined)[] = new Array(CACHE).fill(undefined);

function mask(u32: Uint32Array, w: number): Mask64 {
  const lo = u32[w];
  const hi = u32[w + 1];
  const h = (Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) >>> 24) & (CACHE - 1);
  const v = maskVal[h];
  if (v !== undefined && maskLo[h] === lo && maskHi[h] === hi) return v;
  const m = Object.freeze([lo, hi] as const);
  maskVal[h] = m;
  maskLo[h] = lo;
  maskHi[h] = hi;
  return m;
}

const commWords = new Uint32Array(CACHE * 4);
const commVal: (string | undefined)[] = new Array(CACHE).fill(undefined);

function cachedComm(v: RecordView, w: number): string {
  const u32 = v.u32;
  const a = u32[w], b = u32[w + 1], c = u32[w + 2], d = u32[w + 3];
  const h = (Math.imul(a ^ Math.imul(b, 31) ^ Math.imul(c, 961) ^ Math.imul(d, 29791), 0x9e3779b1) >>> 24) & (CACHE - 1);
  const k = h * 4;
  const s = commVal[h];
  if (s !== undefined && commWords[k] === a && commWords[k + 1] === b && commWords[k + 2] === c && commWords[k + 3] === d) return s;
  const t = comm(v.bytes, w * 4);
  commVal[h] = t;
  commWords[k] = a; commWords[k + 1] = b; commWords[k + 2] = c; commWords[k + 3] = d;
  return t;
}

/** task->comm: ASCII built char by char (faster than a Buffer slice for 15 bytes), else UTF-8. */
function comm(bytes: Buffer, off: number): string {
  let s = '';
  const lim = off + 16;
  for (let i = off; i < lim; i++) {
    const c = bytes[i];
    if (c === 0) return s;
    if (c > 127) {
      let end = i;
      while (end < lim && bytes[end] !== 0) end++;
      return bytes.toString('utf8', off, end);
    }
    s += String.fromCharCode(c);
  }
  return s;
}

/** Fields of record i needed before deciding whether to decode it. */
export function recTgid(v: RecordView, i: number): number { return v.u32[v.start[i] + W.tgid]; }
export function recPid(v: RecordView, i: number): number { return v.u32[v.start[i] + W.pid]; }
export function recPpid(v: RecordView, i: number): number { return v.u32[v.start[i] + W.ppid]; }
export function recBits(v: RecordView, i: number): number { return v.u32[v.start[i] + W.bits]; }
export function recNgroups(v: RecordView, i: number): number { return v.u32[v.start[i] + W.ngroups]; }
/** pid-namespace levels between the reader's namespace and the task's own (0: the reader's) */
export function recNsDepth(v: RecordView, i: number): number { return v.u32[v.start[i] + W.nsDepth]; }
/** the task's pid in its own pid namespace */
export function recNsPid(v: RecordView, i: number): number { return v.u32[v.start[i] + W.nsPid]; }

/*
 * The tasks of a tree mostly share one set of namespaces: a direct-mapped cache of the eight inode numbers
 * gives them one frozen NsIds object (verified word for word, so it never changes a result).
 */
const NS_CACHE = 64;
const nsWords = new Uint32Array(NS_CACHE * NS_KINDS.length);
const nsVal: (NsIds | undefined)[] = new Array(NS_CACHE).fill(undefined);

/**
 * Task.ns of record i: the namespace inode numbers the kernel gave (0 = none), undefined when none. The
 * object is frozen and may be shared by tasks with the same namespaces.
 */
export function recNsIds(v: RecordView, i: number): NsIds | undefined {
  const u32 = v.u32;
  const w = v.start[i] + W.ns;
  const n = NS_KINDS.length;
  let h = 0;
  for (let k = 0; k < n; k++) h = Math.imul(h ^ u32[w + k], 0x9e3779b1);
  h = (h >>> 26) & (NS_CACHE - 1);
  const c = h * n;
  const hit = nsVal[h];
  if (hit !== undefined) {
    let same = true;
    for (let k = 0; k < n; k++) if (nsWords[c + k] !== u32[w + k]) { same = false; break; }
    if (same) return hit;
  }
  let ids: NsIds | undefined;
  for (let k = 0; k < n; k++) {
    const inum = u32[w + k];
    if (inum !== 0) (ids ??= {})[NS_KINDS[k]] = inum;
  }
  if (ids === undefined) return undefined;
  Object.freeze(ids);
  nsVal[h] = ids;
  for (let k = 0; k < n; k++) nsWords[c + k] = u32[w + k];
  return ids;
}

/**
 * Fields read straight from a record, for readers that render without building Task records (tdcollect ps
 * on 10,000 tasks spends more on allocating and collecting Task objects than on the kernel's iteration).
 * Each reader returns exactly what decodeRecord puts in the Task field of the same name (a test holds
 * them equal); w is the record's u32 start (v.start[i]).
 */
export type RawNumberField =
  | 'pid' | 'tgid' | 'ppid' | 'tpid' | 'sid' | 'pgid'
  | 'uid' | 'euid' | 'suid' | 'fsuid' | 'gid' | 'egid' | 'sgid' | 'fsgid'
  | 'securebits' | 'seccomp' | 'startTime' | 'personality' | 'flags' | 'nice' | 'policy' | 'priority'
  | 'rtPriority' | 'exitCode' | 'futexRla';
export const RAW_NUMBERS: { readonly [K in RawNumberField]: (v: RecordView, w: number) => number | undefined } = {
  pid: (v, w) => v.u32[w + W.pid],
  tgid: (v, w) => v.u32[w + W.tgid],
  ppid: (v, w) => v.u32[w + W.ppid],
  tpid: (v, w) => (v.u32[w + W.ptrace] !== 0 ? v.u32[w + W.tpid] : 0),
  sid: (v, w) => v.u32[w + W.sid],
  pgid: (v, w) => v.u32[w + W.pgid],
  uid: (v, w) => v.u32[w + W.uid],
  euid: (v, w) => v.u32[w + W.euid],
  suid: (v, w) => v.u32[w + W.suid],
  fsuid: (v, w) => v.u32[w + W.fsuid],
  gid: (v, w) => v.u32[w + W.gid],
  egid: (v, w) => v.u32[w + W.egid],
  sgid: (v, w) => v.u32[w + W.sgid],
  fsgid: (v, w) => v.u32[w + W.fsgid],
  securebits: (v, w) => v.u32[w + W.securebits],
  seccomp: (v, w) => ((v.u32[w + W.bits] & BIT_NO_SECCOMP) !== 0 ? undefined : v.u32[w + W.seccomp]),
  startTime: (v, w) => v.u32[w + W.startTime] + v.u32[w + W.startTime + 1] * 0x1_0000_0000,
  personality: (v, w) => v.u32[w + W.personality],
  flags: (v, w) => v.u32[w + W.flags],
  nice: (v, w) => v.i32[w + W.staticPrio] - 120,
  policy: (v, w) => v.u32[w + W.policy],
  priority: (v, w) => v.i32[w + W.prio] - 100,
  rtPriority: (v, w) => v.u32[w + W.rtPriority],
  exitCode: (v, w) => (v.u32[w + W.exitState] !== 0 ? v.i32[w + W.exitCode] : 0),
  futexRla: (v, w) => v.u32[w + W.robustList] + v.u32[w + W.robustList + 1] * 0x1_0000_0000,
};

/** The fields of RAW_NUMBERS that are a plain u32 of the record, by word: RAW_NUMBERS[f](v, w) = v.u32[w + word]. */
export const RAW_U32_WORDS: { readonly [K in RawNumberField]?: number } = {
  pid: W.pid, tgid: W.tgid, ppid: W.ppid, sid: W.sid, pgid: W.pgid,
  uid: W.uid, euid: W.euid, suid: W.suid, fsuid: W.fsuid, gid: W.gid, egid: W.egid, sgid: W.sgid, fsgid: W.fsgid,
  securebits: W.securebits, personality: W.personality, flags: W.flags, policy: W.policy, rtPriority: W.rtPriority,
};

/** The u32 word of each 64-bit mask in a record (low word first, as Mask64). */
export type RawMaskField = 'capInh' | 'capPrm' | 'capEff' | 'capBnd' | 'capAmb' | 'sigBlk';
export const RAW_MASK_WORDS: { readonly [K in RawMaskField]: number } = {
  capInh: W.capInh, capPrm: W.capPrm, capEff: W.capEff, capBnd: W.capBnd, capAmb: W.capAmb, sigBlk: W.blocked,
};

/** The u32 word where task->comm (16 NUL-padded bytes) starts. */
export const RAW_COMM_WORD = W.comm;

/** Task.comm of the record at w. */
export function rawComm(v: RecordView, w: number): string {
  return cachedComm(v, w + W.comm);
}

/** Task.state of the record at w. */
export function rawState(v: RecordView, w: number): TaskState {
  return decodeState(v.u32[w + W.state], v.u32[w + W.exitState]);
}

/** Task.noNewPrivs of the record at w. */
export function rawNoNewPrivs(v: RecordView, w: number): boolean {
  return (v.u32[w + W.bits] & BIT_NO_NEW_PRIVS) !== 0;
}

/**
 * Decode record i into a Task. When the task has more than MAX_GROUPS groups, `groups` holds only the
 * first MAX_GROUPS and the caller completes it (recNgroups tells the true count).
 */
export function decodeRecord(v: RecordView, i: number): Task {
  const u32 = v.u32;
  const w = v.start[i];
  const ng = u32[w + W.ngroups];
  const bits = u32[w + W.bits];
  const exitState = u32[w + W.exitState];
  const g = w + W.groups;
  const groups: number[] = new Array(ng < MAX_GROUPS ? ng : MAX_GROUPS);
  for (let k = 0; k < groups.length; k++) groups[k] = u32[g + k];
  return {
    pid: u32[w + W.pid],
    tgid: u32[w + W.tgid],
    ppid: u32[w + W.ppid],
    tpid: u32[w + W.ptrace] !== 0 ? u32[w + W.tpid] : 0,
    sid: u32[w + W.sid],
    pgid: u32[w + W.pgid],
    state: decodeState(u32[w + W.state], exitState),
    comm: cachedComm(v, w + W.comm),
    uid: u32[w + W.uid], euid: u32[w + W.euid], suid: u32[w + W.suid], fsuid: u32[w + W.fsuid],
    gid: u32[w + W.gid], egid: u32[w + W.egid], sgid: u32[w + W.sgid], fsgid: u32[w + W.fsgid],
    capInh: mask(u32, w + W.capInh),
    capPrm: mask(u32, w + W.capPrm),
    capEff: mask(u32, w + W.capEff),
    capBnd: mask(u32, w + W.capBnd),
    capAmb: mask(u32, w + W.capAmb),
    groups,
    securebits: u32[w + W.securebits],
    noNewPrivs: (bits & BIT_NO_NEW_PRIVS) !== 0,
    seccomp: (bits & BIT_NO_SECCOMP) !== 0 ? undefined : u32[w + W.seccomp],
    startTime: u32[w + W.startTime] + u32[w + W.startTime + 1] * 0x1_0000_0000,
    personality: u32[w + W.personality],
    flags: u32[w + W.flags],
    sigBlk: mask(u32, w + W.blocked),
    nice: v.i32[w + W.staticPrio] - 120,
    policy: u32[w + W.policy],
    priority: v.i32[w + W.prio] - 100,
    rtPriority: u32[w + W.rtPriority],
    // /proc stat field 52 shows exit_code only once the task has exited
    exitCode: exitState !== 0 ? v.i32[w + W.exitCode] : 0,
    futexRla: u32[w + W.robustList] + u32[w + W.robustList + 1] * 0x1_0000_0000,
    futexRlaLen: ROBUST_LIST_HEAD_SIZE,
  };
}
