/**
 * Snapshot <-> protobuf messages: the lossless tasks.img records (tdcollect.dump_header, tdcollect.task)
 * and the CRIU entries derived from them (inventory_entry, pstree_entry, core_entry).
 *
 * CRIU's required fields must be on the wire even where the source could not read the value; there a 0 is
 * written (exit_code, personality, flags, blk_sigset, futex_rla/len, secbits) and tasks.img keeps the
 * truth (the field absent). Everything optional in CRIU is written only when the Task has a value.
 */
import {
  NS_KINDS, OPTIONAL_FIELDS, REQUIRED_FIELDS, TASK_STATES,
  type NsIds, type PidView, type DumpInfo, type FreezeMethod, type Mask64, type OptionalField, type RecordedTask, type Snapshot,
  type SourceName, type Task, type TaskState,
} from '../collector/task.js';
import { ImageError, TdError, EXIT } from '../errors.js';
import type { Decoded } from './framing.js';

/** protobufjs accepts {low, high} for 64-bit fields: no BigInt, no precision loss. */
export interface LongBits { low: number; high: number; unsigned: true }
const long = (m: Mask64): LongBits => ({ low: m[0] >>> 0, high: m[1] >>> 0, unsigned: true });
const mask = (v: bigint): Mask64 => [Number(v & 0xffffffffn), Number(v >> 32n)];

export class ImageWriteError extends TdError {
  constructor(message: string) { super('internal', EXIT.INTERNAL, message); }
}

// ---------------------------------------------------------------------------------------------------------
// tasks.img: one table drives both directions, so a Task field cannot be written and then forgotten on read.

type Kind = 'u32' | 's32' | 'u64' | 'mask' | 'str' | 'state' | 'bool' | 'list' | 'view' | 'ns';
/** [Task key, proto field name, kind] */
export const TASK_FIELD_MAP: readonly (readonly [keyof Task, string, Kind])[] = [
  ['pid', 'pid', 'u32'], ['tgid', 'tgid', 'u32'], ['ppid', 'ppid', 'u32'], ['tpid', 'tpid', 'u32'],
  ['sid', 'sid', 'u32'], ['pgid', 'pgid', 'u32'], ['state', 'state', 'state'], ['comm', 'comm', 'str'],
  ['uid', 'uid', 'u32'], ['euid', 'euid', 'u32'], ['suid', 'suid', 'u32'], ['fsuid', 'fsuid', 'u32'],
  ['gid', 'gid', 'u32'], ['egid', 'egid', 'u32'], ['sgid', 'sgid', 'u32'], ['fsgid', 'fsgid', 'u32'],
  ['capInh', 'cap_inh', 'mask'], ['capPrm', 'cap_prm', 'mask'], ['capEff', 'cap_eff', 'mask'], ['capBnd', 'cap_bnd', 'mask'],
  ['capAmb', 'cap_amb', 'mask'], ['groups', 'groups', 'list'], ['securebits', 'securebits', 'u32'],
  ['noNewPrivs', 'no_new_privs', 'bool'], ['seccomp', 'seccomp', 'u32'], ['startTime', 'start_time', 'u64'],
  ['personality', 'personality', 'u32'], ['flags', 'flags', 'u32'], ['sigBlk', 'sig_blk', 'mask'],
  ['nice', 'nice', 's32'], ['policy', 'policy', 'u32'], ['priority', 'priority', 's32'],
  ['rtPriority', 'rt_priority', 'u32'], ['exitCode', 'exit_code', 's32'], ['futexRla', 'futex_rla', 'u64'],
  ['futexRlaLen', 'futex_rla_len', 'u32'], ['collectorView', 'collector_view', 'view'], ['ns', 'ns', 'ns'],
];
const VIEW_KEYS = ['pid', 'tgid', 'ppid', 'sid', 'pgid'] as const satisfies readonly (keyof PidView)[];
const isView = (v: unknown): v is PidView =>
  typeof v === 'object' && v !== null && VIEW_KEYS.every((k) => isU32((v as Record<string, unknown>)[k])) &&
  Object.keys(v).every((k) => (VIEW_KEYS as readonly string[]).includes(k));
const isNs = (v: unknown): v is NsIds =>
  typeof v === 'object' && v !== null && !Array.isArray(v) &&
  Object.entries(v).every(([k, x]) => (NS_KINDS as readonly string[]).includes(k) && (x === undefined || isU32(x)));
const KNOWN_TASK_KEYS = new Set<string>(TASK_FIELD_MAP.map((f) => f[0]));
const STATES = new Set<string>(TASK_STATES);
const OPTIONAL = new Set<string>(OPTIONAL_FIELDS);
const SOURCES = new Set<string>(['procfs', 'bpf', 'taskdiag'] satisfies SourceName[]);
const FREEZES = new Set<string>(['ptrace', 'cgroup', 'none'] satisfies FreezeMethod[]);

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isS32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff;
const isU64 = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isMask = (v: unknown): v is Mask64 => Array.isArray(v) && v.length === 2 && isU32(v[0]) && isU32(v[1]);

function bad(t: RecordedTask, key: string, v: unknown): never {
  throw new ImageWriteError(`cannot write task ${t.pid}: field ${key} = ${JSON.stringify(v)} is out of range`);
}

/** Task -> tdcollect.task message object. Refuses values it could not store losslessly. */
export function taskToPb(t: RecordedTask): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  for (const key of Object.keys(t)) {
    if (!KNOWN_TASK_KEYS.has(key) && (t as unknown as Record<string, unknown>)[key] !== undefined) {
      throw new ImageWriteError(`cannot write task ${t.pid}: field ${key} has no place in tasks.img`);
    }
  }
  for (const [key, pb, kind] of TASK_FIELD_MAP) {
    const v = t[key];
    if (v === undefined) continue;
    switch (kind) {
      case 'u32': if (!isU32(v)) bad(t, key, v); m[pb] = v; break;
      case 's32': if (!isS32(v)) bad(t, key, v); m[pb] = v; break;
      case 'u64': if (!isU64(v)) bad(t, key, v); m[pb] = v; break;
      case 'mask': if (!isMask(v)) bad(t, key, v); m[pb] = long(v); break;
      case 'str': if (typeof v !== 'string') bad(t, key, v); m[pb] = v; break;
      case 'state': if (typeof v !== 'string' || !STATES.has(v)) bad(t, key, v); m[pb] = v; break;
      case 'bool': if (typeof v !== 'boolean') bad(t, key, v); m[pb] = v; break;
      case 'list': if (!Array.isArray(v) || !v.every(isU32)) bad(t, key, v); m[pb] = { values: v }; break;
      case 'view': if (!isView(v)) bad(t, key, v); m[pb] = { ...v }; break;
      case 'ns': {
        if (!isNs(v)) bad(t, key, v);
        const o: Record<string, number> = {};
        for (const k of NS_KINDS) if (v[k] !== undefined) o[k] = v[k]!;
        m[pb] = o;
        break;
      }
    }
  }
  for (const key of REQUIRED_FIELDS) if (t[key] === undefined) bad(t, key, undefined);
  return m;
}

function u64ToNumber(file: string, offset: number, what: string, v: unknown): number {
  const b = v as bigint;
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(file, offset, 'corrupt', `${what} ${b} exceeds 2^53`);
  return Number(b);
}

/** tdcollect.task message -> Task; absent optional fields stay absent. */
export function pbToTask(file: string, offset: number, m: Decoded): Task {
  const t: Record<string, unknown> = {};
  for (const [key, pb, kind] of TASK_FIELD_MAP) {
    const v = m[pb];
    if (v === undefined) continue;
    switch (kind) {
      case 'u32': case 's32': case 'str': case 'bool': t[key] = v; break;
      case 'u64': t[key] = u64ToNumber(file, offset, `task ${pb}`, v); break;
      case 'mask': t[key] = mask(v as bigint); break;
      case 'state':
        if (!STATES.has(v as string)) throw new ImageError(file, offset, 'corrupt', `task state '${v}' is not a /proc state letter`);
        t[key] = v;
        break;
      case 'list': t[key] = ((v as Decoded).values as number[] | undefined) ?? []; break;
      case 'view': {
        const d = v as Decoded;
        t[key] = { pid: d.pid, tgid: d.tgid, ppid: d.ppid, sid: d.sid, pgid: d.pgid };
        break;
      }
      case 'ns': {
        const d = v as Decoded;
        const o: NsIds = {};
        for (const k of NS_KINDS) if (d[k] !== undefined) o[k] = d[k] as number;
        t[key] = o;
        break;
      }
    }
  }
  return t as unknown as Task;
}

const TIMING_KEYS = ['freeze', 'collect', 'write', 'thaw'] as const;

export function headerToPb(info: DumpInfo): Record<string, unknown> {
  const m: Record<string, unknown> = {
    format_version: info.formatVersion,
    tool: info.tool,
    source: info.source,
    freeze: info.freeze,
    live: info.live,
    kernel: info.kernel,
    hostname: info.hostname,
    root: info.root,
    created_at: info.createdAt,
    processes: info.processes,
    threads: info.threads,
    timings: {},
    missing: [...info.missing],
  };
  const timings = m.timings as Record<string, number>;
  for (const k of TIMING_KEYS) if (info.timings[k] !== undefined) timings[k] = info.timings[k]!;
  if (info.syscalls !== undefined) m.syscalls = info.syscalls;
  if (info.roundTrips !== undefined) m.round_trips = info.roundTrips;
  if (info.cgroup !== undefined) m.cgroup = info.cgroup;
  if (info.rootNsPid !== undefined) {
    if (!isU32(info.rootNsPid)) throw new ImageWriteError(`cannot write dump header: rootNsPid = ${JSON.stringify(info.rootNsPid)} is out of range`);
    m.root_ns_pid = info.rootNsPid;
  }
  for (const [k, v] of [['formatVersion', info.formatVersion], ['root', info.root], ['processes', info.processes], ['threads', info.threads]] as const) {
    if (!isU32(v)) throw new ImageWriteError(`cannot write dump header: ${k} = ${JSON.stringify(v)} is out of range`);
  }
  for (const [k, v] of [['createdAt', info.createdAt], ['syscalls', info.syscalls], ['roundTrips', info.roundTrips]] as const) {
    if (v !== undefined && !isU64(v)) throw new ImageWriteError(`cannot write dump header: ${k} = ${JSON.stringify(v)} is out of range`);
  }
  return m;
}

export function pbToHeader(file: string, offset: number, m: Decoded): DumpInfo {
  const fail = (detail: string): never => { throw new ImageError(file, offset, 'corrupt', `dump header: ${detail}`); };
  const source = m.source as string;
  const freeze = m.freeze as string;
  if (!SOURCES.has(source)) fail(`unknown source '${source}'`);
  if (!FREEZES.has(freeze)) fail(`unknown freeze method '${freeze}'`);
  const missing = (m.missing as string[] | undefined) ?? [];
  for (const f of missing) if (!OPTIONAL.has(f)) fail(`unknown Task field '${f}' in missing`);
  const timings: DumpInfo['timings'] = {};
  const tm = m.timings as Decoded;
  for (const k of TIMING_KEYS) if (tm[k] !== undefined) timings[k] = tm[k] as number;
  const info: DumpInfo = {
    formatVersion: m.format_version as number,
    tool: m.tool as string,
    source: source as SourceName,
    freeze: freeze as FreezeMethod,
    live: m.live as boolean,
    kernel: m.kernel as string,
    hostname: m.hostname as string,
    root: m.root as number,
    createdAt: u64ToNumber(file, offset, 'created_at', m.created_at),
    processes: m.processes as number,
    threads: m.threads as number,
    timings,
    missing: missing as OptionalField[],
  };
  if (m.syscalls !== undefined) info.syscalls = u64ToNumber(file, offset, 'syscalls', m.syscalls);
  if (m.round_trips !== undefined) info.roundTrips = u64ToNumber(file, offset, 'round_trips', m.round_trips);
  if (m.cgroup !== undefined) info.cgroup = m.cgroup as string;
  if (m.root_ns_pid !== undefined) info.rootNsPid = m.root_ns_pid as number;
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// CRIU entries

/** CRIU's task_state values (compel/include/uapi/task-state.h). */
export const TASK_STATE = { ALIVE: 1, DEAD: 2, STOPPED: 3 } as const;

/** core_entry.march by Node's process.arch. */
export const MARCH: Readonly<Record<string, number>> = {
  x64: 1, arm: 2, arm64: 3, ppc64: 4, s390x: 5, mips: 6, mipsel: 6, loong64: 7, riscv64: 8,
};
export const hostMarch = (): number => MARCH[process.arch] ?? 0;

/**
 * inventory.img's root_ids. CRIU numbers each kind of kernel object (vm, files, fs, sighand) from 1 in its
 * own id space, so the root task of a dump has 1 for each. Namespace ids are left out: tdcollect dumps no
 * namespace images they could refer to.
 */
export const ROOT_IDS = { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1 } as const;

export function inventoryEntry(): Record<string, unknown> {
  return {
    img_version: 2, // CRTOOLS_IMAGES_V1_1
    fdinfo_per_id: true,
    root_ids: { ...ROOT_IDS },
    ns_per_id: true,
    lsmtype: 0, // NO_LSM: no LSM profiles are dumped (the image layer does not probe the host)
  };
}

/** A process: its leader and its other threads, in snapshot order. */
export interface ProcessGroup { leader: RecordedTask; threads: RecordedTask[] }

/**
 * Group snapshot tasks by process, keeping snapshot order (pstree order). Threads must follow their
 * leader's process somewhere in the snapshot; a thread of a process without a leader is refused.
 */
export function groupProcesses(tasks: readonly RecordedTask[]): ProcessGroup[] {
  const out: ProcessGroup[] = [];
  const byTgid = new Map<number, ProcessGroup>();
  for (const t of tasks) {
    if (t.pid === t.tgid) {
      if (byTgid.has(t.tgid)) throw new ImageWriteError(`cannot write images: process ${t.pid} appears twice`);
      const g = { leader: t, threads: [] };
      byTgid.set(t.tgid, g);
      out.push(g);
    }
  }
  for (const t of tasks) {
    if (t.pid === t.tgid) continue;
    const g = byTgid.get(t.tgid);
    if (!g) throw new ImageWriteError(`cannot write images: thread ${t.pid} belongs to process ${t.tgid}, which is not in the snapshot`);
    g.threads.push(t);
  }
  return out;
}

/** Dead = a zombie (or dying) leader with no thread left: CRIU writes mtype + tc only. */
export const isDead = (g: ProcessGroup): boolean =>
  g.threads.length === 0 && (g.leader.state === 'Z' || g.leader.state === 'X' || (g.leader.state === undefined && g.leader.criuState === 'dead'));

export function pstreeEntry(g: ProcessGroup, isRoot: boolean): Record<string, unknown> {
  const l = g.leader;
  return {
    pid: l.pid,
    ppid: isRoot ? 0 : l.ppid,
    pgid: l.pgid,
    sid: l.sid,
    // CRIU lists the leader first; for a dead task it is the only id (CRIU itself writes garbage there)
    threads: [l.pid, ...g.threads.map((t) => t.pid)],
  };
}

function taskState(t: RecordedTask, dead: boolean): number {
  if (dead) return TASK_STATE.DEAD;
  if (t.state === 'T' || (t.state === undefined && t.criuState === 'stopped')) return TASK_STATE.STOPPED;
  return TASK_STATE.ALIVE;
}

export function credsEntry(t: RecordedTask): Record<string, unknown> {
  const need = (k: 'capInh' | 'capPrm' | 'capEff' | 'capBnd'): Mask64 => {
    const v = t[k];
    if (v === undefined) throw new ImageWriteError(`cannot write images: task ${t.pid} has no ${k} recorded`);
    return v;
  };
  const c: Record<string, unknown> = {
    uid: t.uid, gid: t.gid, euid: t.euid, egid: t.egid, suid: t.suid, sgid: t.sgid, fsuid: t.fsuid, fsgid: t.fsgid,
    cap_inh: [need('capInh')[0], need('capInh')[1]],
    cap_prm: [need('capPrm')[0], need('capPrm')[1]],
    cap_eff: [need('capEff')[0], need('capEff')[1]],
    cap_bnd: [need('capBnd')[0], need('capBnd')[1]],
    secbits: t.securebits ?? 0, // not in /proc: 0 when the source could not read it
    groups: t.groups ?? [],
  };
  if (t.noNewPrivs) c.no_new_privs = 1;
  if (t.capAmb) c.cap_amb = [t.capAmb[0], t.capAmb[1]];
  return c;
}

const SCHED_FIFO = 1;
const SCHED_RR = 2;

export function threadCoreEntry(t: RecordedTask): Record<string, unknown> {
  const tc: Record<string, unknown> = {
    futex_rla: t.futexRla ?? 0,
    futex_rla_len: t.futexRlaLen ?? 0,
  };
  if (t.nice !== undefined) tc.sched_nice = t.nice;
  if (t.policy !== undefined) tc.sched_policy = t.policy;
  // CRIU's sched_prio is sched_getparam()'s sched_priority, set only for real-time policies
  if ((t.policy === SCHED_FIFO || t.policy === SCHED_RR) && t.rtPriority !== undefined) tc.sched_prio = t.rtPriority;
  if (t.sigBlk) tc.blk_sigset = long(t.sigBlk);
  tc.creds = credsEntry(t);
  if (t.seccomp !== undefined && t.seccomp >= 0 && t.seccomp <= 2) tc.seccomp_mode = t.seccomp;
  tc.comm = t.comm;
  return tc;
}

/** The core_entry of one thread: tc for a leader, thread_core for every live thread. */
export function coreEntry(t: RecordedTask, g: ProcessGroup, mtype: number): Record<string, unknown> {
  const core: Record<string, unknown> = { mtype };
  const dead = isDead(g);
  if (t === g.leader) {
    core.tc = {
      task_state: taskState(t, dead),
      exit_code: (t.exitCode ?? 0) >>> 0,
      personality: t.personality ?? 0,
      flags: t.flags ?? 0,
      blk_sigset: long(t.sigBlk ?? [0, 0]),
      comm: t.comm,
    };
  }
  if (!dead) core.thread_core = threadCoreEntry(t);
  return core;
}

/** Check a snapshot is something we can write (every required Task field present). */
export function checkSnapshot(s: Snapshot): void {
  if (!s || !s.info || !Array.isArray(s.tasks)) throw new ImageWriteError('cannot write images: not a snapshot');
  if (s.tasks.length === 0) throw new ImageWriteError('cannot write images: the snapshot has no tasks');
}

export type { TaskState };
