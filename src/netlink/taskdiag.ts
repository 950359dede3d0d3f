/**
 * TASKDIAG v1 — the generic-netlink protocol of the February 2015 task_diag RFC, and its client.
 *
 * Request (one message):
 *   nlmsghdr   len, type = resolved family id, flags = NLM_F_REQUEST [| NLM_F_DUMP], seq, pid = our port
 *   genlmsghdr cmd = TASKDIAG_CMD_GET (1), version = 1, reserved = 0
 *   nlattr     type = TASKDIAG_CMD_ATTR_GET (1), len = 28 (the v1 selftest sends 29: see `quirk`)
 *   task_diag_pid (24 bytes)
 *     show_flags    u64 @0   bit n asks for attribute n (bit 0 = TASK_DIAG_CRED)
 *     dump_stratagy u64 @8   (RFC spelling) TASK_DIAG_DUMP_ALL 0, TASK_DIAG_DUMP_CHILDREN 1
 *     pid           u32 @16
 *     padding       4 bytes @20, sent as zero
 *
 * Reply (one message per task; dumps end with NLMSG_DONE whose int payload is 0 or -errno; v1 dump messages
 * carry nlmsg_flags 0, not NLM_F_MULTI):
 *   genlmsghdr cmd 1, version 1
 *   attr 64 TASK_DIAG_MSG, always first, 44 bytes:
 *     tgid u32 @0, pid u32 @4, ppid u32 @8, tpid u32 @12, sid u32 @16, pgid u32 @20, state u8 @24,
 *     comm char[16] @25, 3 bytes of padding @41 (not zeroed by the RFC kernel: ignored)
 *   attr 0 TASK_DIAG_CRED, when show_flags bit 0, 64 bytes:
 *     cap_inheritable, cap_permitted, cap_effective, cap_bset: u32[2] each (@0, @8, @16, @24; low word first),
 *     uid @32, euid @36, suid @40, fsuid @44, gid @48, egid @52, sgid @56, fsgid @60 (u32)
 *
 * Extensions of tdcollect's provider (kernel/task_diag/task_diag.h), in numbers v1 leaves free, detected at
 * run time (a v1 provider answers an unknown strategy with EINVAL and ignores unknown show_flags bits):
 *   strategies TASK_DIAG_DUMP_THREADS 2 (threads of pid's group, leader first) and TASK_DIAG_DUMP_SUBTREE 3
 *   (pid's process and every descendant with all their threads, depth first);
 *   show_flags bit 1 → attribute 65 TASK_DIAG_EXT: struct task_diag_ext (fixed_len bytes, 88 today) followed by
 *   ngroups_sent u32 group ids.
 *
 * Any other attribute is kept in `unknown`. Type 0 is data (the creds), never "unspecified".
 */
import {
  decodeAttrs, encodeAttr, encodeGenl, readCString, type NlAttr,
} from './codec.js';
import { NetlinkDecodeError, NetlinkError } from './errors.js';
import { GenlConn, type GenlFamily, type GenlMessage } from './genl.js';
import type { SocketOptions } from './transport.js';

export const TASKDIAG_GENL_NAME = 'TASKDIAG';
export const TASKDIAG_GENL_VERSION = 1;
export const TASKDIAG_CMD_GET = 1;
export const TASKDIAG_CMD_ATTR_GET = 1;

export const TASK_DIAG_CRED = 0;
export const TASK_DIAG_MSG = 64;
/** extension of tdcollect's provider */
export const TASK_DIAG_EXT = 65;

export const TASK_DIAG_SHOW_CRED = 0x1;
/** extension: show_flags bit 1 asks for attribute 65 */
export const TASK_DIAG_SHOW_EXT = 0x2;

export const TASK_DIAG_DUMP_ALL = 0;
export const TASK_DIAG_DUMP_CHILDREN = 1;
/** extension */
export const TASK_DIAG_DUMP_THREADS = 2;
/** extension */
export const TASK_DIAG_DUMP_SUBTREE = 3;

export const TASK_DIAG_PID_SIZE = 24;
export const TASK_DIAG_MSG_SIZE = 44;
export const TASK_DIAG_CREDS_SIZE = 64;
export const TASK_DIAG_EXT_MIN_SIZE = 88;
export const TASK_DIAG_COMM_LEN = 16;

/** /proc letters of the v1 state byte (0 R … 8 I). */
export const TASK_DIAG_STATES = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'] as const;
export type TaskDiagState = (typeof TASK_DIAG_STATES)[number];

export interface TaskDiagPid {
  /** bit mask of TASK_DIAG_SHOW_* (bits 0..52) */
  showFlags: number;
  /** TASK_DIAG_DUMP_* (ignored by single-task requests) */
  strategy: number;
  pid: number;
}

/** The 24-byte struct task_diag_pid, padding zeroed. */
export function encodeTaskDiagPid(r: TaskDiagPid): Buffer {
  const b = Buffer.alloc(TASK_DIAG_PID_SIZE);
  b.writeBigUInt64LE(BigInt(r.showFlags), 0);
  b.writeBigUInt64LE(BigInt(r.strategy), 8);
  b.writeUInt32LE(r.pid >>> 0, 16);
  return b;
}

export function decodeTaskDiagPid(b: Buffer): TaskDiagPid {
  if (b.length < TASK_DIAG_PID_SIZE) {
    throw new NetlinkDecodeError('eof', 'task_diag_pid', 0, `need ${TASK_DIAG_PID_SIZE} bytes, have ${b.length}`);
  }
  return { showFlags: Number(b.readBigUInt64LE(0)), strategy: Number(b.readBigUInt64LE(8)), pid: b.readUInt32LE(16) };
}

/**
 * The generic-netlink payload of a TASKDIAG_CMD_GET request (genl header + attribute 1). With `quirk` the
 * attribute's nla_len is one more than its payload (29), as the v1 selftest (after getdelays.c) sends it; the
 * message is then 16 + 4 + NLA_ALIGN(29) = 52 bytes long.
 */
export function encodeGetPayload(r: TaskDiagPid, opts: { quirk?: boolean } = {}): Buffer {
  return encodeGenl(TASKDIAG_CMD_GET, TASKDIAG_GENL_VERSION, [
    encodeAttr(TASKDIAG_CMD_ATTR_GET, encodeTaskDiagPid(r), opts.quirk ? { lenDelta: 1 } : {}),
  ]);
}

export interface TaskDiagMsg {
  tgid: number;
  pid: number;
  ppid: number;
  tpid: number;
  sid: number;
  pgid: number;
  /** the raw state byte */
  stateIndex: number;
  state: TaskDiagState;
  comm: string;
}

export type Mask64 = [lo: number, hi: number];

export interface TaskDiagCreds {
  capInh: Mask64; capPrm: Mask64; capEff: Mask64; capBnd: Mask64;
  uid: number; euid: number; suid: number; fsuid: number;
  gid: number; egid: number; sgid: number; fsgid: number;
}

export interface TaskDiagExt {
  startTimeNs: bigint;
  /** clock ticks after boot (/proc/PID/stat field 22) */
  startTime: number;
  robustList: bigint;
  capAmb: Mask64;
  sigBlk: Mask64;
  flags: number;
  personality: number;
  securebits: number;
  seccomp: number;
  nice: number;
  policy: number;
  prio: number;
  rtPriority: number;
  exitCode: number;
  noNewPrivs: boolean;
  extFlags: number;
  fixedLen: number;
  ngroups: number;
  groups: number[];
}

export interface TaskDiagReply {
  msg: TaskDiagMsg;
  creds?: TaskDiagCreds;
  ext?: TaskDiagExt;
  /** attributes this client does not know, as they came (copied) */
  unknown: { type: number; payload: Buffer }[];
}

export function decodeTaskDiagMsg(b: Buffer): TaskDiagMsg {
  if (b.length < TASK_DIAG_MSG_SIZE) {
    throw new NetlinkDecodeError('eof', 'task_diag_msg', 0, `need ${TASK_DIAG_MSG_SIZE} bytes, have ${b.length}`);
  }
  const stateIndex = b[24];
  const state = TASK_DIAG_STATES[stateIndex];
  if (state === undefined) throw new NetlinkDecodeError('corrupt', 'task_diag_msg', 24, `unknown task state ${stateIndex}`);
  return {
    tgid: b.readUInt32LE(0),
    pid: b.readUInt32LE(4),
    ppid: b.readUInt32LE(8),
    tpid: b.readUInt32LE(12),
    sid: b.readUInt32LE(16),
    pgid: b.readUInt32LE(20),
    stateIndex,
    state,
    comm: readCString(b, 25, TASK_DIAG_COMM_LEN),
  };
}

const mask = (b: Buffer, off: number): Mask64 => [b.readUInt32LE(off), b.readUInt32LE(off + 4)];

export function decodeTaskDiagCreds(b: Buffer): TaskDiagCreds {
  if (b.length < TASK_DIAG_CREDS_SIZE) {
    throw new NetlinkDecodeError('eof', 'task_diag_creds', 0, `need ${TASK_DIAG_CREDS_SIZE} bytes, have ${b.length}`);
  }
  return {
    capInh: mask(b, 0), capPrm: mask(b, 8), capEff: mask(b, 16), capBnd: mask(b, 24),
    uid: b.readUInt32LE(32), euid: b.readUInt32LE(36), suid: b.readUInt32LE(40), fsuid: b.readUInt32LE(44),
    gid: b.readUInt32LE(48), egid: b.readUInt32LE(52), sgid: b.readUInt32LE(56), fsgid: b.readUInt32LE(60),
  };
}

export function decodeTaskDiagExt(b: Buffer): TaskDiagExt {
  if (b.length < TASK_DIAG_EXT_MIN_SIZE) {
    throw new NetlinkDecodeError('eof', 'task_diag_ext', 0, `need ${TASK_DIAG_EXT_MIN_SIZE} bytes, have ${b.length}`);
  }
  const fixedLen = b.readUInt16LE(78);
  if (fixedLen < TASK_DIAG_EXT_MIN_SIZE || fixedLen % 4 !== 0) {
    throw new NetlinkDecodeError('corrupt', 'task_diag_ext', 78, `fixed_len ${fixedLen}`);
  }
  const sent = b.readUInt32LE(84);
  if (fixedLen + 4 * sent > b.length) {
    throw new NetlinkDecodeError('eof', 'task_diag_ext', fixedLen,
      `${sent} groups announced, ${Math.max(0, b.length - fixedLen)} bytes present`);
  }
  const groups: number[] = new Array(sent);
  for (let i = 0; i < sent; i++) groups[i] = b.readUInt32LE(fixedLen + 4 * i);
  return {
    startTimeNs: b.readBigUInt64LE(0),
    startTime: Number(b.readBigUInt64LE(8)),
    robustList: b.readBigUInt64LE(16),
    capAmb: mask(b, 24),
    sigBlk: mask(b, 32),
    flags: b.readUInt32LE(40),
    personality: b.readUInt32LE(44),
    securebits: b.readUInt32LE(48),
    seccomp: b.readUInt32LE(52),
    nice: b.readInt32LE(56),
    policy: b.readUInt32LE(60),
    prio: b.readInt32LE(64),
    rtPriority: b.readUInt32LE(68),
    exitCode: b.readUInt32LE(72),
    noNewPrivs: b[76] !== 0,
    extFlags: b[77],
    fixedLen,
    ngroups: b.readUInt32LE(80),
    groups,
  };
}

/** Decode the attributes of one reply message (after the genl header). */
export function decodeTaskDiagAttrs(attrs: readonly NlAttr[]): TaskDiagReply {
  let msg: TaskDiagMsg | undefined;
  let creds: TaskDiagCreds | undefined;
  let ext: TaskDiagExt | undefined;
  const unknown: TaskDiagReply['unknown'] = [];
  for (const a of attrs) {
    if (a.type === TASK_DIAG_MSG && !a.nested) msg = decodeTaskDiagMsg(a.payload);
    else if (a.type === TASK_DIAG_CRED && !a.nested) creds = decodeTaskDiagCreds(a.payload);
    else if (a.type === TASK_DIAG_EXT && !a.nested) ext = decodeTaskDiagExt(a.payload);
    else unknown.push({ type: a.type, payload: Buffer.from(a.payload) });
  }
  if (!msg) throw new NetlinkDecodeError('corrupt', 'TASKDIAG reply', 20, 'no TASK_DIAG_MSG (64) attribute');
  const r: TaskDiagReply = { msg, unknown };
  if (creds) r.creds = creds;
  if (ext) r.ext = ext;
  return r;
}

/** Decode a TASKDIAG reply message (genl header + attributes). */
export function decodeTaskDiagReply(g: GenlMessage): TaskDiagReply {
  return decodeTaskDiagAttrs(g.attrs);
}

/** Decode the generic-netlink payload of one reply (genl header + attribute stream), e.g. in tests. */
export function decodeTaskDiagPayload(payload: Buffer): TaskDiagReply {
  if (payload.length < 4) throw new NetlinkDecodeError('eof', 'genlmsghdr', 16, `need 4 bytes, have ${payload.length}`);
  return decodeTaskDiagAttrs(decodeAttrs(payload.subarray(4), 20));
}

export interface TaskDiagFeatures {
  /** TASK_DIAG_DUMP_THREADS is answered */
  threads: boolean;
  /** TASK_DIAG_DUMP_SUBTREE is answered */
  subtree: boolean;
  /** show_flags bit 1 yields attribute 65 */
  ext: boolean;
}

export interface TaskDiagStats {
  requests: number;
  datagrams: number;
  messages: number;
  syscalls: number;
}

/** A TASKDIAG client over one NETLINK_GENERIC socket. */
export class TaskDiagClient {
  readonly genl: GenlConn;
  readonly family: GenlFamily;
  private feats: TaskDiagFeatures | undefined;

  private constructor(genl: GenlConn, family: GenlFamily) {
    this.genl = genl;
    this.family = family;
  }

  /**
   * Open a socket and resolve the family. Throws NetlinkError ENOENT when the kernel has no TASKDIAG family
   * (the socket is closed on every failure path).
   */
  static open(opts?: SocketOptions): TaskDiagClient {
    const genl = GenlConn.open(opts);
    try {
      return new TaskDiagClient(genl, genl.family(TASKDIAG_GENL_NAME));
    } catch (e) {
      genl.close();
      throw e;
    }
  }

  /** Wrap an existing connection (e.g. over a fake socket in tests). */
  static over(genl: GenlConn): TaskDiagClient {
    return new TaskDiagClient(genl, genl.family(TASKDIAG_GENL_NAME));
  }

  close(): void { this.genl.close(); }

  stats(): TaskDiagStats {
    const s = this.genl.conn.stats;
    return { requests: s.requests, datagrams: s.datagrams, messages: s.messages, syscalls: this.genl.conn.sock.syscalls };
  }

  /** One task by thread id (doit). ESRCH / EPERM come as NetlinkError. */
  get(pid: number, showFlags = TASK_DIAG_SHOW_CRED, opts: { quirk?: boolean } = {}): TaskDiagReply {
    const replies = this.genl.conn.request(
      { type: this.family.id, payload: encodeGetPayload({ showFlags, strategy: 0, pid }, opts) }, `TASKDIAG get ${pid}`);
    if (replies.length !== 1) {
      throw new NetlinkDecodeError('corrupt', 'TASKDIAG reply', 0, `expected one reply message, got ${replies.length}`);
    }
    return decodeTaskDiagPayload(replies[0].payload);
  }

  /** A dump (NLM_F_DUMP) with a strategy: every reply, ending at NLMSG_DONE; errors from its payload. */
  *dumpSync(strategy: number, pid: number, showFlags = TASK_DIAG_SHOW_CRED, opts: { quirk?: boolean } = {}): Generator<TaskDiagReply, void, undefined> {
    const payload = encodeGetPayload({ showFlags, strategy, pid }, opts);
    for (const m of this.genl.conn.dumpSync({ type: this.family.id, payload }, `TASKDIAG dump strategy ${strategy} pid ${pid}`)) {
      yield decodeTaskDiagPayload(m.payload);
    }
  }

  async *dump(strategy: number, pid: number, showFlags = TASK_DIAG_SHOW_CRED, opts: { quirk?: boolean } = {}): AsyncGenerator<TaskDiagReply, void, undefined> {
    yield* this.dumpSync(strategy, pid, showFlags, opts);
  }

  /**
   * Whether the provider knows a dump strategy: ask for it with pid 0 (no such task). ESRCH or success means
   * it knows the strategy; EINVAL means it does not (v1 rejects unknown strategies with EINVAL).
   */
  supportsStrategy(strategy: number): boolean {
    try {
      for (const _ of this.dumpSync(strategy, 0, 0)) { /* drained */ }
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'EINVAL') return false;
      if (e instanceof NetlinkError && e.code === 'ESRCH') return true;
      throw e;
    }
  }

  /** Which extensions this provider has (probed once per client). */
  features(): TaskDiagFeatures {
    if (this.feats) return this.feats;
    const self = process.pid;
    const r = this.get(self, TASK_DIAG_SHOW_CRED | TASK_DIAG_SHOW_EXT);
    this.feats = {
      threads: this.supportsStrategy(TASK_DIAG_DUMP_THREADS),
      subtree: this.supportsStrategy(TASK_DIAG_DUMP_SUBTREE),
      ext: r.ext !== undefined,
    };
    return this.feats;
  }
}

