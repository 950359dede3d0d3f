/**
 * An image set CRIU wrote (criu dump, runc/podman/CRI-O checkpoints; CRIU 3.x and 4.x) -> Snapshot.
 *
 * Read, strictly (framing, wire format, every proto2 required field; see framing.ts):
 *   inventory.img      img_version (must be 2), dump_criu_run_id where present
 *   pstree.img         per process: pid, ppid (0 for the root), pgid, sid, threads
 *   core-<tid>.img     per thread: tc (leaders: task_state, comm, old_seccomp_mode; personality, flags and
 *                      blk_sigset of live tasks; exit_code of zombies), thread_core (futex_rla/len, sched_nice/policy/prio, blk_sigset,
 *                      creds, seccomp_mode, comm), ids (older CRIU)
 *   ids-<pid>.img      namespace ids of each process (CRIU's own numbering, not inode numbers)
 *   creds-<pid>.img    the legacy credentials image, when a leader's core has no creds
 * Every other file of the directory (mm, pagemap, pages, fdinfo, files, stats, ...) is ignored.
 *
 * What CRIU does not record stays undefined, never 0: start time, tpid, the /proc state letter (CRIU keeps
 * alive / dead / stopped: `criuState`), kernel priority, the root's parent, a zombie's credentials,
 * personality, flags and blocked signals (CRIU writes 0 placeholders there), a live task's exit code (0
 * placeholder), the per-thread personality and flags (CRIU has them per process), cap_amb and no_new_privs from
 * CRIU releases that predate them. The DumpInfo fields that only tdcollect writes (source, freeze, kernel,
 * hostname, tool, createdAt, timings) stay unset too.
 */
import { ImageError } from '../errors.js';
import type { CriuState, DumpInfo, Mask64, NsIds, OptionalField, RecordedTask, Snapshot } from '../collector/task.js';
import { decodeImage, KIND, type Decoded } from './framing.js';
import { schemas } from './schema.js';
import type { ImageFiles } from './read.js';

/** What an image set tells about the CRIU that wrote it. */
export interface CriuSetInfo {
  /** inventory_entry.img_version (2) */
  imgVersion: number;
  /** inventory_entry.dump_criu_run_id (CRIU 4.x) */
  runId?: string;
  /** core_entry.mtype of the root (1 x86_64, 3 aarch64, ...) */
  march?: number;
}

const STATE: Readonly<Record<number, CriuState>> = { 1: 'alive', 2: 'dead', 3: 'stopped' };

/** A CRIU namespace-id field name -> Task ns key. */
const NS_FIELDS = [
  ['pid_ns_id', 'pid'], ['net_ns_id', 'net'], ['ipc_ns_id', 'ipc'], ['uts_ns_id', 'uts'],
  ['mnt_ns_id', 'mnt'], ['user_ns_id', 'user'], ['cgroup_ns_id', 'cgroup'], ['time_ns_id', 'time'],
] as const;

export type CriuNsIds = NsIds;

function mask64(file: string, at: number, what: string, v: unknown): Mask64 | undefined {
  if (v === undefined) return undefined;
  const words = v as number[];
  // CRIU writes exactly CR_CAP_SIZE = 2 words; more would hold bits a Mask64 cannot
  if (words.length !== 2) throw new ImageError(file, at, 'corrupt', `${what} has ${words.length} words, expected 2`);
  return [words[0] >>> 0, words[1] >>> 0];
}

function u64Mask(v: unknown): Mask64 | undefined {
  if (v === undefined) return undefined;
  const b = BigInt.asUintN(64, v as bigint);
  return [Number(b & 0xffffffffn), Number(b >> 32n)];
}

function u64Number(file: string, at: number, what: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const b = v as bigint;
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(file, at, 'corrupt', `${what} ${b} exceeds 2^53`);
  return Number(b);
}

function readOne(files: ImageFiles, name: string, kind: (typeof KIND)[keyof typeof KIND], type: Parameters<typeof decodeImage>[3]): Decoded {
  return decodeImage(files.label(name), files.read(name), kind, type)[0].msg;
}

/** creds_entry -> the Task's credential fields. */
function applyCreds(t: Record<string, unknown>, c: Decoded, file: string): void {
  for (const k of ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid'] as const) t[k] = c[k];
  t.capInh = mask64(file, 8, 'cap_inh', c.cap_inh ?? []);
  t.capPrm = mask64(file, 8, 'cap_prm', c.cap_prm ?? []);
  t.capEff = mask64(file, 8, 'cap_eff', c.cap_eff ?? []);
  t.capBnd = mask64(file, 8, 'cap_bnd', c.cap_bnd ?? []);
  if (c.cap_amb !== undefined) t.capAmb = mask64(file, 8, 'cap_amb', c.cap_amb);
  t.groups = [...((c.groups as number[] | undefined) ?? [])];
  t.securebits = c.secbits;
  // no_new_privs is written only when set, by the CRIU releases that also write cap_amb: with cap_amb
  // present an absent no_new_privs means 0; without it the release did not record the flag at all
  if (c.no_new_privs !== undefined) t.noNewPrivs = (c.no_new_privs as number) > 0;
  else if (c.cap_amb !== undefined) t.noNewPrivs = false;
}

/** Decode an image set CRIU wrote into a Snapshot. */
export function decodeCriuSet(files: ImageFiles): { snapshot: Snapshot; info: CriuSetInfo; ns: Map<number, CriuNsIds> } {
  const s = schemas();
  const invName = 'inventory.img';
  const inventory = readOne(files, invName, KIND.inventory, s.inventory);
  if (inventory.img_version !== 2) {
    throw new ImageError(files.label(invName), 8, 'corrupt', `img_version ${String(inventory.img_version)} is not supported (expected 2)`);
  }
  const psName = 'pstree.img';
  const psFile = files.label(psName);
  const pstree = decodeImage(psFile, files.read(psName), KIND.pstree, s.pstree);
  if (pstree.length === 0) throw new ImageError(psFile, 8, 'eof', 'premature end of file: pstree image has no entry');

  const pids = new Set<number>();
  for (const { entry, msg } of pstree) {
    const pid = msg.pid as number;
    if (pids.has(pid)) throw new ImageError(psFile, entry.offset, 'corrupt', `process ${pid} appears twice`);
    pids.add(pid);
  }
  if (pstree[0].msg.ppid !== 0) {
    throw new ImageError(psFile, pstree[0].entry.offset, 'corrupt', `the first entry (the root, ${String(pstree[0].msg.pid)}) has ppid ${String(pstree[0].msg.ppid)}, not 0`);
  }

  const tasks: RecordedTask[] = [];
  const ns = new Map<number, CriuNsIds>();
  const tids = new Set<number>();
  let march: number | undefined;
  let anyCapAmb = false, anyNoNewPrivs = false, anySecbits = false, anyNice = false, anyPolicy = false;
  let anySeccomp = false, anyFutex = false, anyGroups = false;

  pstree.forEach(({ entry, msg }, i) => {
    const pid = msg.pid as number;
    const ppid = msg.ppid as number;
    if (i > 0 && !pids.has(ppid)) {
      throw new ImageError(psFile, entry.offset, 'corrupt', `process ${pid} has parent ${ppid}, which is not in the image`);
    }
    const coreName = `core-${pid}.img`;
    const leaderCore = readOne(files, coreName, KIND.core, s.core);
    const leaderFile = files.label(coreName);
    march ??= leaderCore.mtype as number;
    const tc = leaderCore.tc as Decoded | undefined;
    if (!tc) throw new ImageError(leaderFile, 8, 'corrupt', `core of process ${pid} has no tc (task_core_entry)`);
    const state = STATE[tc.task_state as number];
    if (!state) throw new ImageError(leaderFile, 8, 'corrupt', `task_state ${String(tc.task_state)} is not alive (1), dead (2) or stopped (3)`);
    // CRIU leaves a dead task's thread id unset (garbage on disk): a zombie has exactly its own pid
    let threads = state === 'dead' ? [pid] : [...((msg.threads as number[] | undefined) ?? [])];
    if (threads.length === 0) threads = [pid];
    if (threads[0] !== pid) {
      if (!threads.includes(pid)) throw new ImageError(psFile, entry.offset, 'corrupt', `process ${pid}: its own id is not among its threads`);
      threads = [pid, ...threads.filter((t) => t !== pid)];
    }
    // namespace ids: ids-<pid>.img (CRIU >= 1.x writes it), else core.ids
    const idsName = `ids-${pid}.img`;
    const ids = files.has(idsName) ? readOne(files, idsName, KIND.ids, s.kobjIds) : (leaderCore.ids as Decoded | undefined);
    let nsIds: CriuNsIds | undefined;
    if (ids) {
      const n: CriuNsIds = {};
      for (const [f, k] of NS_FIELDS) if (ids[f] !== undefined) n[k] = ids[f] as number;
      ns.set(pid, n);
      if (Object.keys(n).length) nsIds = n;
    }
    // legacy credentials: creds-<pid>.img for the leader when its core carries none
    let legacyCreds: Decoded | undefined;
    const credsName = `creds-${pid}.img`;
    const leaderTc = leaderCore.thread_core as Decoded | undefined;
    if (state !== 'dead' && !leaderTc?.creds && files.has(credsName)) legacyCreds = readOne(files, credsName, KIND.creds, s.creds);

    for (const tid of threads) {
      if (tids.has(tid)) throw new ImageError(psFile, entry.offset, 'corrupt', `thread ${tid} appears twice`);
      tids.add(tid);
      const leader = tid === pid;
      const name = `core-${tid}.img`;
      const file = files.label(name);
      const core = leader ? leaderCore : readOne(files, name, KIND.core, s.core);
      if (!leader && core.tc !== undefined) throw new ImageError(file, 8, 'corrupt', `core of thread ${tid} (not a leader) has a tc`);
      const th = core.thread_core as Decoded | undefined;
      if (state !== 'dead' && !th) throw new ImageError(file, 8, 'corrupt', `core of live thread ${tid} has no thread_core`);
      const t: Record<string, unknown> = { pid: tid, tgid: pid };
      if (i > 0) t.ppid = ppid; // the root's parent is not recorded (CRIU writes 0)
      t.sid = msg.sid;
      t.pgid = msg.pgid;
      t.criuState = state;
      const comm = (th?.comm as string | undefined) ?? (leader ? (tc.comm as string) : undefined);
      if (comm === undefined) throw new ImageError(file, 8, 'corrupt', `thread ${tid} has no comm (thread_core.comm)`);
      t.comm = comm;
      // a zombie's tc holds only comm, task_state and exit_code: CRIU leaves personality, flags and
      // blk_sigset at 0 there (required fields), and writes exit_code 0 for every live task
      if (leader && state !== 'dead') {
        t.personality = tc.personality;
        t.flags = tc.flags;
      }
      if (leader && state === 'dead') t.exitCode = tc.exit_code;
      t.sigBlk = u64Mask(th?.blk_sigset) ?? (leader && state !== 'dead' ? u64Mask(tc.blk_sigset) : undefined);
      if (th) {
        if (th.sched_nice !== undefined) { t.nice = th.sched_nice; anyNice = true; }
        if (th.sched_policy !== undefined) { t.policy = th.sched_policy; anyPolicy = true; }
        if (th.sched_prio !== undefined) t.rtPriority = th.sched_prio;
        t.futexRla = u64Number(file, 8, 'futex_rla', th.futex_rla);
        t.futexRlaLen = th.futex_rla_len;
        anyFutex = true;
        const creds = (th.creds as Decoded | undefined) ?? (leader ? legacyCreds : undefined);
        if (creds) {
          applyCreds(t, creds, leader && !th.creds ? files.label(credsName) : file);
          anyGroups = true;
          anySecbits = true;
          if (t.capAmb !== undefined) anyCapAmb = true;
          if (t.noNewPrivs !== undefined) anyNoNewPrivs = true;
        }
        const sec = (th.seccomp_mode as number | undefined) ?? (leader ? (tc.old_seccomp_mode as number | undefined) : undefined);
        if (sec !== undefined) { t.seccomp = sec; anySeccomp = true; }
      }
      if (nsIds) t.ns = { ...nsIds };
      for (const k of Object.keys(t)) if (t[k] === undefined) delete t[k];
      tasks.push(t as unknown as RecordedTask);
    }
  });

  const missing: OptionalField[] = ['startTime', 'priority'];
  if (!anyCapAmb) missing.push('capAmb');
  if (!anyNoNewPrivs) missing.push('noNewPrivs');
  if (!anySecbits) missing.push('securebits');
  if (!anyGroups) missing.push('groups');
  if (!anyNice) missing.push('nice');
  if (!anyPolicy) missing.push('policy');
  if (!anySeccomp) missing.push('seccomp');
  if (!anyFutex) missing.push('futexRla', 'futexRlaLen');
  const info: DumpInfo = {
    live: false, // CRIU seizes (freezes) the tree it dumps
    root: pstree[0].msg.pid as number,
    processes: pstree.length,
    threads: tasks.length,
    timings: {},
    missing,
  };
  const setInfo: CriuSetInfo = { imgVersion: 2 };
  if (inventory.dump_criu_run_id !== undefined) setInfo.runId = inventory.dump_criu_run_id as string;
  if (march !== undefined) setInfo.march = march;
  return { snapshot: { info, tasks }, info: setInfo, ns };
}
