/**
 * The JSON form of a snapshot (`tdcollect show --json`), schema version 1:
 *
 *   { "version": 1,
 *     "info":  { ...DumpInfo, every field as in the library type; absent optional fields omitted },
 *     "tasks": [ { ...Task, in pstree order; absent optional fields omitted;
 *                  64-bit masks (capInh, capPrm, capEff, capBnd, capAmb, sigBlk) as 16 lowercase hex digits,
 *                  the way /proc/PID/status prints them } ] }
 *
 * Like crit's `decode --pretty`, masks are hex strings; every other value is a JSON number, string or bool.
 */
import type { Mask64, Snapshot, Task } from '../collector/task.js';
import { TASK_FIELD_MAP } from './codec.js';

export const JSON_SCHEMA_VERSION = 1;

export const maskHex = (m: Mask64): string =>
  (m[1] >>> 0).toString(16).padStart(8, '0') + (m[0] >>> 0).toString(16).padStart(8, '0');

export type TaskJson = Record<string, number | string | boolean | number[] | Record<string, number>>;

export interface SnapshotJson {
  version: number;
  info: Record<string, unknown>;
  tasks: TaskJson[];
}

export function taskToJson(t: Task): TaskJson {
  const o: TaskJson = {};
  for (const [key, , kind] of TASK_FIELD_MAP) {
    const v = t[key];
    if (v === undefined) continue;
    o[key] = kind === 'mask' ? maskHex(v as Mask64) : kind === 'list' ? [...(v as number[])]
      : kind === 'view' || kind === 'ns' ? { ...(v as Record<string, number>) } : (v as number | string | boolean);
  }
  return o;
}

export function snapshotToJson(s: Snapshot): SnapshotJson {
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.info)) {
    if (v === undefined) continue;
    info[k] = k === 'timings' ? Object.fromEntries(Object.entries(v as object).filter(([, x]) => x !== undefined)) : v;
  }
  return { version: JSON_SCHEMA_VERSION, info, tasks: s.tasks.map(taskToJson) };
}
