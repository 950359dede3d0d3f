/**
 * The JSON form of a snapshot (`tdcollect show --json`), schema version 2:
 *
 *   { "version": 2,
 *     "origin": { path, form: "directory" | "archive", writer: "tdcollect" | "criu", compression?, imageDir?,
 *                 container?: { engine?, name?, id?, image?, runtime?, created?, namespace?, pod? },
 *                 metadata?, criu?: { imgVersion, runId?, march? } },      (when read from an image set)
 *     "info":  { ...DumpInfo, every field as in the library type; absent optional fields omitted },
 *     "tasks": [ { ...Task, in pstree order; absent optional fields omitted;
 *                  64-bit masks (capInh, capPrm, capEff, capBnd, capAmb, sigBlk) as 16 lowercase hex digits,
 *                  the way /proc/PID/status prints them } ] }
 *
 * Version 2 only adds to version 1: the "origin" object, and for image sets CRIU wrote a task's
 * "criuState" ("alive" | "dead" | "stopped") in place of "state" and "ns" (namespace ids by kind, in CRIU's
 * own numbering: only equality between tasks means anything), fields CRIU does not record (tpid, the
 * root's ppid, a zombie's credentials, ...) and the dump-header fields only tdcollect writes (source,
 * freeze, kernel, hostname, tool, createdAt, formatVersion) left out. A tdcollect dump prints exactly what
 * version 1 printed, plus "origin".
 *
 * Like crit's `decode --pretty`, masks are hex strings; every other value is a JSON number, string or bool.
 */
import type { Mask64, RecordedTask, Snapshot } from '../collector/task.js';
import { TASK_FIELD_MAP } from './codec.js';

export const JSON_SCHEMA_VERSION = 2;

export const maskHex = (m: Mask64): string =>
  (m[1] >>> 0).toString(16).padStart(8, '0') + (m[0] >>> 0).toString(16).padStart(8, '0');

export type TaskJson = Record<string, number | string | boolean | number[] | Record<string, number>>;

export interface SnapshotJson {
  version: number;
  origin?: unknown;
  info: Record<string, unknown>;
  tasks: TaskJson[];
}

export function taskToJson(t: RecordedTask): TaskJson {
  const o: TaskJson = {};
  for (const [key, , kind] of TASK_FIELD_MAP) {
    const v = t[key];
    if (v === undefined) continue;
    o[key] = kind === 'mask' ? maskHex(v as Mask64) : kind === 'list' ? [...(v as number[])]
      : kind === 'view' || kind === 'ns' ? { ...(v as Record<string, number>) } : (v as number | string | boolean);
  }
  if (t.criuState !== undefined) o.criuState = t.criuState;
  if (t.ns !== undefined) o.ns = { ...t.ns } as Record<string, number>;
  return o;
}

export function snapshotToJson(s: Snapshot, origin?: object): SnapshotJson {
  const info: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.info)) {
    if (v === undefined) continue;
    info[k] = k === 'timings' ? Object.fromEntries(Object.entries(v as object).filter(([, x]) => x !== undefined)) : v;
  }
  return {
    version: JSON_SCHEMA_VERSION, ...(origin ? { origin } : {}), info, tasks: s.tasks.map(taskToJson),
  };
}
