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
import type { Writer } from './pbwriter.js';

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
function isNs(v: unknown): v is NsIds {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const x = o[k];
    if (!(NS_KINDS as readonly string[]).includes(k) || (x !== undefined && !isU32(x))) return false;
  }
  return true;
}
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

// writeTask's field writers: module functions (closures made per task would be garbage per task). Each is
// handed the value its caller read by name: a read by a key passed in (t[key]) is a keyed load, which V8
// cannot make cheap in functions that run once per task of one dump, before they are optimized.
let missingField: string | undefined;

function wU32(w: Writer, t: RecordedTask, tag: number, key: keyof Task, v: unknown): void {
  if (v === undefined) { missingField ??= key; return; }
  if (!isU32(v)) bad(t, key, v);
  w.uint32(tag).uint32(v);
}

function wStr(w: Writer, t: RecordedTask, tag: number, key: 'state' | 'comm', v: unknown): void {
  if (v === undefined) { missingField ??= key; return; }
  if (typeof v !== 'string' || (key === 'state' && !STATES.has(v))) bad(t, key, v);
  w.uint32(tag).string(v);
}

function wMask(w: Writer, t: RecordedTask, tag: number, key: keyof Task, v: unknown, required: boolean): void {
  if (v === undefined) { if (required) missingField ??= key; return; }
  if (!isMask(v)) bad(t, key, v);
  w.uint32(tag).fixed64Words(v[0] >>> 0, v[1] >>> 0);
}

function wOptU32(w: Writer, t: RecordedTask, tag: number, key: keyof Task, v: unknown): void {
  if (v === undefined) return;
  if (!isU32(v)) bad(t, key, v);
  w.uint32(tag).uint32(v);
}

function wOptS32(w: Writer, t: RecordedTask, tag: number, key: keyof Task, v: unknown): void {
  if (v === undefined) return;
  if (!isS32(v)) bad(t, key, v);
  w.uint32(tag).sint32(v);
}

function wOptU64(w: Writer, t: RecordedTask, tag: number, key: keyof Task, v: unknown): void {
  if (v === undefined) return;
  if (!isU64(v)) bad(t, key, v);
  w.uint32(tag).uint64(v);
}

/**
 * The frozen namespace-identity objects found valid: a source hands the same frozen object to every task of
 * the same namespaces (10,000 tasks, a handful of objects), so each is checked once.
 */
const nsChecked = new WeakSet<object>();

function checkNs(t: RecordedTask, ns: unknown): void {
  if (typeof ns === 'object' && ns !== null && nsChecked.has(ns)) return;
  if (!isNs(ns)) bad(t, 'ns', ns);
  if (Object.isFrozen(ns)) nsChecked.add(ns);
}

/**
 * Task -> the bytes of its tdcollect.task message, appended to w: the same bytes as
 * MESSAGES['tdcollect.task'].encode(taskToPb(t), w), and the same refusals, without the message object in
 * between (a 10,000-task tasks.img took 180-220 ms through taskToPb, most of it making and walking those
 * objects). Fields go out in field-number order, the order of TASK_FIELD_MAP; the tag of field n with wire
 * type k is n << 3 | k, written as the varint the constants below hold.
 */
export function writeTask(w: Writer, t: RecordedTask): void {
  const rec = t as unknown as Record<string, unknown>;
  for (const key in rec) {
    if (!KNOWN_TASK_KEYS.has(key) && rec[key] !== undefined) {
      throw new ImageWriteError(`cannot write task ${t.pid}: field ${key} has no place in tasks.img`);
    }
  }
  missingField = undefined;
  wU32(w, t, 8, 'pid', t.pid); wU32(w, t, 16, 'tgid', t.tgid); wU32(w, t, 24, 'ppid', t.ppid);
  wU32(w, t, 32, 'tpid', t.tpid); wU32(w, t, 40, 'sid', t.sid); wU32(w, t, 48, 'pgid', t.pgid);
  wStr(w, t, 58, 'state', t.state); wStr(w, t, 66, 'comm', t.comm);
  // fields 9 to 25, the credentials: the bytes of the previous task's when its values were the same
  const seen = taskCreds;
  if (seen !== undefined && sameCreds(seen, t)) w.raw(seen.bytes);
  else writeTaskCreds(w, t);
  wOptU64(w, t, 208, 'startTime', t.startTime);
  wOptU32(w, t, 216, 'personality', t.personality); wOptU32(w, t, 224, 'flags', t.flags);
  wMask(w, t, 233, 'sigBlk', t.sigBlk, false);
  wOptS32(w, t, 240, 'nice', t.nice); wOptU32(w, t, 248, 'policy', t.policy); wOptS32(w, t, 256, 'priority', t.priority);
  wOptU32(w, t, 264, 'rtPriority', t.rtPriority); wOptS32(w, t, 272, 'exitCode', t.exitCode);
  wOptU64(w, t, 280, 'futexRla', t.futexRla); wOptU32(w, t, 288, 'futexRlaLen', t.futexRlaLen);
  const view = t.collectorView;
  if (view !== undefined) {
    if (!isView(view)) bad(t, 'collectorView', view);
    // pid_view: five required uint32s
    w.uint32(298).fork().uint32(8).uint32(view.pid).uint32(16).uint32(view.tgid).uint32(24).uint32(view.ppid)
      .uint32(32).uint32(view.sid).uint32(40).uint32(view.pgid).ldelim();
  }
  const ns = t.ns;
  if (ns !== undefined) {
    checkNs(t, ns);
    // ns_ids: optional uint32s, field i + 1 for NS_KINDS[i]
    w.uint32(306).fork();
    for (let i = 0; i < NS_KINDS.length; i++) {
      const v = ns[NS_KINDS[i]];
      if (v !== undefined) w.uint32((i + 1) << 3).uint32(v);
    }
    w.ldelim();
  }
  if (missingField !== undefined) bad(t, missingField, undefined);
}

/**
 * A task's credential values, copied when bytes were written from them (writeCore's creds_entry, writeTask's
 * fields 9 to 25), with those bytes: the tasks of a tree mostly share their credentials, and comparing these
 * values costs far less than encoding (and checking) them again (a dump of 10,000 tasks writes one or a few
 * distinct sets, 10,000 times). sameCreds compares exactly (===, a capability set as an array of two words,
 * the groups element by element), so equal values give equal bytes in either encoder, and a value equal to
 * one writeTask checked is valid; the values are copies, so a task changed afterwards cannot meet stale bytes.
 */
interface CredsSeen {
  /** uid, euid, suid, fsuid, gid, egid, sgid, fsgid, securebits, seccomp */
  v: (number | undefined)[];
  /** capInh, capPrm, capEff, capBnd, capAmb */
  masks: (Mask64 | undefined)[];
  groups: number[] | undefined;
  nnp: boolean | undefined;
  bytes: Buffer;
}
/** the last set writeCore wrote, and the last writeTask wrote whole and valid */
let coreCreds: CredsSeen | undefined;
let taskCreds: CredsSeen | undefined;

function credsSeen(t: RecordedTask, bytes: Buffer): CredsSeen {
  const copy = (m: Mask64 | undefined): Mask64 | undefined => (Array.isArray(m) ? [m[0], m[1]] : undefined);
  return {
    v: [t.uid, t.euid, t.suid, t.fsuid, t.gid, t.egid, t.sgid, t.fsgid, t.securebits, t.seccomp],
    masks: [copy(t.capInh), copy(t.capPrm), copy(t.capEff), copy(t.capBnd), copy(t.capAmb)],
    groups: Array.isArray(t.groups) ? [...t.groups] : undefined,
    nnp: t.noNewPrivs,
    bytes,
  };
}

function sameMask(a: unknown, b: Mask64 | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Array.isArray(a) && a.length === 2 && a[0] === b[0] && a[1] === b[1];
}

function sameCreds(m: CredsSeen, t: RecordedTask): boolean {
  const v = m.v;
  if (t.uid !== v[0] || t.euid !== v[1] || t.suid !== v[2] || t.fsuid !== v[3] || t.gid !== v[4] ||
    t.egid !== v[5] || t.sgid !== v[6] || t.fsgid !== v[7] || t.securebits !== v[8] || t.seccomp !== v[9] ||
    t.noNewPrivs !== m.nnp) {
    return false;
  }
  const k = m.masks;
  if (!sameMask(t.capInh, k[0]) || !sameMask(t.capPrm, k[1]) || !sameMask(t.capEff, k[2]) ||
    !sameMask(t.capBnd, k[3]) || !sameMask(t.capAmb, k[4])) {
    return false;
  }
  const g = t.groups;
  const mg = m.groups;
  if (g === undefined || mg === undefined) return g === mg;
  if (!Array.isArray(g) || g.length !== mg.length) return false;
  for (let i = 0; i < g.length; i++) if (g[i] !== mg[i]) return false;
  return true;
}

/** writeTask's fields 9 to 25, checked; remembered in taskCreds when every required one was there. */
function writeTaskCreds(w: Writer, t: RecordedTask): void {
  const start = w.len;
  wU32(w, t, 72, 'uid', t.uid); wU32(w, t, 80, 'euid', t.euid); wU32(w, t, 88, 'suid', t.suid);
  wU32(w, t, 96, 'fsuid', t.fsuid); wU32(w, t, 104, 'gid', t.gid); wU32(w, t, 112, 'egid', t.egid);
  wU32(w, t, 120, 'sgid', t.sgid); wU32(w, t, 128, 'fsgid', t.fsgid);
  wMask(w, t, 137, 'capInh', t.capInh, true); wMask(w, t, 145, 'capPrm', t.capPrm, true);
  wMask(w, t, 153, 'capEff', t.capEff, true); wMask(w, t, 161, 'capBnd', t.capBnd, true);
  wMask(w, t, 169, 'capAmb', t.capAmb, false);
  const groups = t.groups;
  if (groups !== undefined) {
    if (!Array.isArray(groups) || !groups.every(isU32)) bad(t, 'groups', groups);
    // u32_list: its values unpacked, one tag (field 1, varint) each
    w.uint32(178).fork();
    for (let i = 0; i < groups.length; i++) w.uint32(8).uint32(groups[i]);
    w.ldelim();
  }
  wOptU32(w, t, 184, 'securebits', t.securebits);
  if (t.noNewPrivs !== undefined) {
    if (typeof t.noNewPrivs !== 'boolean') bad(t, 'noNewPrivs', t.noNewPrivs);
    w.uint32(192).bool(t.noNewPrivs);
  }
  wOptU32(w, t, 200, 'seccomp', t.seccomp);
  // a required field missing here is reported at the end of writeTask; such bytes are not for reuse
  if (t.uid === undefined || t.euid === undefined || t.suid === undefined || t.fsuid === undefined ||
    t.gid === undefined || t.egid === undefined || t.sgid === undefined || t.fsgid === undefined ||
    t.capInh === undefined || t.capPrm === undefined || t.capEff === undefined || t.capBnd === undefined) {
    return;
  }
  taskCreds = credsSeen(t, w.since(start));
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

/**
 * The core_entry of one thread appended to w: the same bytes as
 * MESSAGES.core_entry.encode(coreEntry(t, g, mtype), w), and the same refusal (a task without a capability
 * set), without the message objects in between (a dump encodes one per thread while the tree is frozen).
 * Tags as in writeTask: field n with wire type k is n << 3 | k.
 */
export function writeCore(w: Writer, t: RecordedTask, g: ProcessGroup, mtype: number): void {
  const dead = isDead(g);
  w.uint32(8).int32(mtype);
  if (t === g.leader) {
    // task_core_entry: task_state, exit_code, personality, flags, blk_sigset, comm (the required ones)
    const blk = t.sigBlk;
    w.uint32(26).fork()
      .uint32(8).uint32(taskState(t, dead))
      .uint32(16).uint32((t.exitCode ?? 0) >>> 0)
      .uint32(24).uint32(t.personality ?? 0)
      .uint32(32).uint32(t.flags ?? 0)
      .uint32(40).uint64Words(blk ? blk[0] >>> 0 : 0, blk ? blk[1] >>> 0 : 0)
      .uint32(50).string(t.comm)
      .ldelim();
  }
  if (dead) return;
  // thread_core_entry
  w.uint32(42).fork().uint32(8).uint64(t.futexRla ?? 0).uint32(16).uint32(t.futexRlaLen ?? 0);
  if (t.nice != null) w.uint32(24).sint32(t.nice);
  if (t.policy != null) w.uint32(32).uint32(t.policy);
  if ((t.policy === SCHED_FIFO || t.policy === SCHED_RR) && t.rtPriority != null) w.uint32(40).uint32(t.rtPriority);
  if (t.sigBlk) w.uint32(48).uint64Words(t.sigBlk[0] >>> 0, t.sigBlk[1] >>> 0);
  // creds_entry: the ids, then each capability set as two unpacked uint32s
  const inh = t.capInh, prm = t.capPrm, eff = t.capEff, bnd = t.capBnd;
  if (!inh || !prm || !eff || !bnd) {
    const k = !inh ? 'capInh' : !prm ? 'capPrm' : !eff ? 'capEff' : 'capBnd';
    throw new ImageWriteError(`cannot write images: task ${t.pid} has no ${k} recorded`);
  }
  const seen = coreCreds;
  if (seen !== undefined && sameCreds(seen, t)) w.raw(seen.bytes);
  else writeCreds(w, t, inh, prm, eff, bnd);
  if (t.seccomp !== undefined && t.seccomp >= 0 && t.seccomp <= 2) w.uint32(88).int32(t.seccomp);
  if (t.comm != null) w.uint32(106).string(t.comm);
  w.ldelim();
}

/** A thread_core_entry's creds_entry (field 10), remembered in coreCreds. */
function writeCreds(w: Writer, t: RecordedTask, inh: Mask64, prm: Mask64, eff: Mask64, bnd: Mask64): void {
  const start = w.len;
  w.uint32(82).fork()
    .uint32(8).uint32(t.uid ?? 0).uint32(16).uint32(t.gid ?? 0).uint32(24).uint32(t.euid ?? 0)
    .uint32(32).uint32(t.egid ?? 0).uint32(40).uint32(t.suid ?? 0).uint32(48).uint32(t.sgid ?? 0)
    .uint32(56).uint32(t.fsuid ?? 0).uint32(64).uint32(t.fsgid ?? 0);
  w.uint32(72).uint32(inh[0]).uint32(72).uint32(inh[1]).uint32(80).uint32(prm[0]).uint32(80).uint32(prm[1])
    .uint32(88).uint32(eff[0]).uint32(88).uint32(eff[1]).uint32(96).uint32(bnd[0]).uint32(96).uint32(bnd[1]);
  w.uint32(104).uint32(t.securebits ?? 0);
  const groups = t.groups;
  if (groups) for (let i = 0; i < groups.length; i++) w.uint32(112).uint32(groups[i]);
  if (t.noNewPrivs) w.uint32(144).uint32(1);
  if (t.capAmb) w.uint32(152).uint32(t.capAmb[0]).uint32(152).uint32(t.capAmb[1]);
  w.ldelim();
  coreCreds = credsSeen(t, w.since(start));
}

/**
 * The pstree_entry of a process appended to w: the same bytes as
 * MESSAGES.pstree_entry.encode(pstreeEntry(g, isRoot)).
 */
export function writePstree(w: Writer, g: ProcessGroup, isRoot: boolean): void {
  const l = g.leader;
  w.uint32(8).uint32(l.pid).uint32(16).uint32(isRoot ? 0 : (l.ppid ?? 0)).uint32(24).uint32(l.pgid ?? 0)
    .uint32(32).uint32(l.sid ?? 0);
  // the leader first, then every thread (unpacked)
  w.uint32(40).uint32(l.pid);
  const threads = g.threads;
  for (let i = 0; i < threads.length; i++) w.uint32(40).uint32(threads[i].pid);
}

/** Check a snapshot is something we can write (every required Task field present). */
export function checkSnapshot(s: Snapshot): void {
  if (!s || !s.info || !Array.isArray(s.tasks)) throw new ImageWriteError('cannot write images: not a snapshot');
  if (s.tasks.length === 0) throw new ImageWriteError('cannot write images: the snapshot has no tasks');
}

export type { TaskState };
