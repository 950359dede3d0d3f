/**
 * The few /proc reads the freezers need, through the one /proc reader (../procfile.ts, shared with the procfs
 * source): the state/ppid/num_threads of a task (stat), the thread ids of a process (task/), the children of
 * a thread (task/TID/children), and TracerPid/Tgid (status, only on rare paths).
 */
import { readdirSync } from 'node:fs';
import type { TaskState } from '../task.js';
import { TASK_STATES } from '../task.js';
import { ProcFile } from '../procfile.js';

const f = new ProcFile();
const CLOSE_PAREN = 0x29;

export interface StatInfo {
  state: TaskState;
  ppid: number;
  numThreads: number;
  /** start time in clock ticks after boot (field 22): identifies a task across pid reuse */
  startTime: number;
}

const STATE_BY_CODE = new Map<number, TaskState>(TASK_STATES.map((s) => [s.charCodeAt(0), s]));

/**
 * State, ppid, num_threads and start time from /proc/PID/stat or /proc/PID/task/TID/stat; undefined when the
 * task is gone. comm ends at the LAST ')' (a comm can hold ')' and spaces).
 */
export function readStat(path: string): StatInfo | undefined {
  const n = f.read(path);
  if (n <= 0) return undefined;
  const close = f.buf.lastIndexOf(CLOSE_PAREN, n - 1);
  if (close < 0) return undefined;
  const state = STATE_BY_CODE.get(f.buf[close + 2]) ?? 'R';
  f.pos = close + 4;
  const ppid = f.int(); // 4
  f.skip(15); // 5 pgrp .. 19 nice
  const numThreads = f.int(); // 20
  f.skip(1); // 21 itrealvalue
  const startTime = f.int(); // 22
  return { state, ppid, numThreads, startTime };
}

/** Thread ids of process pid (from /proc/PID/task); empty when the process is gone. */
export function listThreads(pid: number): number[] {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/task`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return [];
    throw e;
  }
  const out = new Array<number>(names.length);
  for (let k = 0; k < names.length; k++) out[k] = +names[k];
  return out;
}

/** Children of thread tid of process pid (/proc/PID/task/TID/children, read whole), appended to out. */
export function readChildren(pid: number, tid: number, out: number[]): void {
  f.readPids(`/proc/${pid}/task/${tid}/children`, out);
}

/** The value of "\nKey:" in the status text, parsed as a decimal. */
function statusField(text: string, key: string): number | undefined {
  const i = text.indexOf(`\n${key}:`);
  return i < 0 ? undefined : parseInt(text.slice(i + key.length + 2), 10);
}

function readStatusText(tid: number): string | undefined {
  return f.read(`/proc/${tid}/status`) > 0 ? f.text() : undefined;
}

/** TracerPid and State letter from /proc/TID/status (rare paths only). */
export function readTracer(tid: number): { tracerPid: number; state: string } | undefined {
  const text = readStatusText(tid);
  if (text === undefined) return undefined;
  const s = text.indexOf('\nState:');
  return {
    tracerPid: statusField(text, 'TracerPid') ?? 0,
    state: s < 0 ? '?' : text.slice(s + 7).trimStart().charAt(0),
  };
}

/** Tgid of a task (rare paths only). */
export function readTgid(tid: number): number | undefined {
  const text = readStatusText(tid);
  return text === undefined ? undefined : statusField(text, 'Tgid');
}

/** comm of a task, for messages. */
export function readComm(pid: number): string {
  return f.read(`/proc/${pid}/comm`) >= 0 ? f.text().trimEnd() : '?';
}

/** wchan of a task, for messages about tasks that do not stop. */
export function readWchan(pid: number): string {
  return f.read(`/proc/${pid}/wchan`) >= 0 ? f.text().trim() || '0' : '?';
}
