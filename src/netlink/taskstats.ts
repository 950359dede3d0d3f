/**
 * TASKSTATS (the kernel's per-task accounting family, include/uapi/linux/taskstats.h): a per-pid query.
 * Used to prove the genl layer on every kernel and by `tdcollect check`.
 *
 * struct taskstats is append-only; the fields read here sit at the same offsets from version 1 of the
 * struct with ac_* fields (offsets checked against TASKSTATS_VERSION 13 here and the kernel's v16):
 *   version u16 @0, ac_exitcode u32 @4, ac_flag u8 @8, ac_nice u8 @9, ac_comm char[32] @80,
 *   ac_sched u8 @112, ac_uid u32 @120, ac_gid u32 @124, ac_pid u32 @128, ac_ppid u32 @132, ac_btime u32 @136.
 */
import { attrU32, decodeAttrs, findAttr, readCString, readU32 } from './codec.js';
import { NetlinkDecodeError } from './errors.js';
import type { GenlConn, GenlMessage } from './genl.js';

export const TASKSTATS_GENL_NAME = 'TASKSTATS';
export const TASKSTATS_CMD_GET = 1;
export const TASKSTATS_CMD_NEW = 2;
export const TASKSTATS_TYPE_PID = 1;
export const TASKSTATS_TYPE_TGID = 2;
export const TASKSTATS_TYPE_STATS = 3;
export const TASKSTATS_TYPE_AGGR_PID = 4;
export const TASKSTATS_TYPE_AGGR_TGID = 5;
export const TASKSTATS_CMD_ATTR_PID = 1;
export const TASKSTATS_CMD_ATTR_TGID = 2;
/** bytes of struct taskstats this decoder needs (through ac_btime) */
export const TASKSTATS_MIN_SIZE = 140;

export interface TaskStats {
  version: number;
  exitCode: number;
  flag: number;
  nice: number;
  comm: string;
  sched: number;
  uid: number;
  gid: number;
  pid: number;
  ppid: number;
  btime: number;
}

export function decodeTaskStats(b: Buffer): TaskStats {
  if (b.length < TASKSTATS_MIN_SIZE) {
    throw new NetlinkDecodeError('eof', 'struct taskstats', 0, `need ${TASKSTATS_MIN_SIZE} bytes, have ${b.length}`);
  }
  return {
    version: b.readUInt16LE(0),
    exitCode: b.readUInt32LE(4),
    flag: b[8],
    nice: b.readInt8(9),
    comm: readCString(b, 80, 32),
    sched: b[112],
    uid: b.readUInt32LE(120),
    gid: b.readUInt32LE(124),
    pid: b.readUInt32LE(128),
    ppid: b.readUInt32LE(132),
    btime: b.readUInt32LE(136),
  };
}

/** Decode a TASKSTATS_CMD_NEW reply: AGGR_PID (or AGGR_TGID) nesting PID/TGID + STATS. */
export function decodeTaskStatsReply(g: GenlMessage): { id: number; stats: TaskStats } {
  const aggr = findAttr(g.attrs, TASKSTATS_TYPE_AGGR_PID) ?? findAttr(g.attrs, TASKSTATS_TYPE_AGGR_TGID);
  if (!aggr) throw new NetlinkDecodeError('corrupt', 'taskstats reply', 20, 'no AGGR_PID/AGGR_TGID attribute');
  const inner = decodeAttrs(aggr.payload);
  const id = findAttr(inner, TASKSTATS_TYPE_PID) ?? findAttr(inner, TASKSTATS_TYPE_TGID);
  const st = findAttr(inner, TASKSTATS_TYPE_STATS);
  if (!id || !st) throw new NetlinkDecodeError('corrupt', 'taskstats reply', 24, 'PID or STATS attribute missing');
  return { id: readU32(id), stats: decodeTaskStats(st.payload) };
}

/** TASKSTATS_CMD_GET for one thread id. */
export function taskStatsForPid(c: GenlConn, pid: number): TaskStats {
  const f = c.family(TASKSTATS_GENL_NAME);
  const replies = c.request(f, TASKSTATS_CMD_GET, [attrU32(TASKSTATS_CMD_ATTR_PID, pid)], `TASKSTATS get pid ${pid}`);
  if (replies.length !== 1) {
    throw new NetlinkDecodeError('corrupt', 'taskstats reply', 0, `expected one reply, got ${replies.length}`);
  }
  return decodeTaskStatsReply(replies[0]).stats;
}
