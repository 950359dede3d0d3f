/**
 * The few /proc reads the freezers need, done with one shared buffer and no text splitting:
 * the state/ppid/num_threads of a task (stat), the thread ids of a process (task/), the children of a
 * thread (task/TID/children), and TracerPid (status, only on the rare EPERM path).
 */
import { closeSync, openSync, readSync, readdirSync, readFileSync } from 'node:fs';
import type { TaskState } from '../task.js';
import { TASK_STATES } from '../task.js';

const buf = Buffer.alloc(1 << 16);
const SPACE = 0x20;
const CLOSE_PAREN = 0x29;

/** Read a whole /proc file into the shared buffer; returns its length, or -1 when the task is gone. */
function readProc(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return -1;
    throw e;
  }
  try {
    let n = 0;
    for (;;) {
      let r: number;
      try {
        r = readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ESRCH' || code === 'ENOENT') return -1;
        throw e;
      }
      if (r === 0 || n + r >= buf.length) return n + r;
      n += r;
    }
  } finally {
    closeSync(fd);
  }
}

/** Parse an unsigned decimal at buf[i..]; returns [value, index after it]. */
function num(i: number, end: number): [number, number] {
  let v = 0;
  let c = buf[i];
  let neg = false;
  if (c === 0x2d) { neg = true; i++; c = buf[i]; }
  while (i < end && c >= 0x30 && c <= 0x39) {
    v = v * 10 + (c - 0x30);
    c = buf[++i];
  }
  return [neg ? -v : v, i];
}

export interface StatInfo {
  state: TaskState;
  ppid: number;
  numThreads: number;
}

const STATE_BY_CODE = new Map<number, TaskState>(TASK_STATES.map((s) => [s.charCodeAt(0), s]));

/**
 * State, ppid and num_threads from /proc/PID/stat or /proc/PID/task/TID/stat; undefined when the task is
 * gone. comm ends at the LAST ')' (a comm can hold ')' and spaces).
 */
export function readStat(path: string): StatInfo | undefined {
  const n = readProc(path);
  if (n <= 0) return undefined;
  const close = buf.lastIndexOf(CLOSE_PAREN, n - 1);
  if (close < 0) return undefined;
  const code = buf[close + 2];
  const state = STATE_BY_CODE.get(code) ?? 'R';
  let [ppid, i] = num(close + 4, n);
  // skip fields 5..19 (pgrp .. nice): 15 spaces
  let spaces = 0;
  while (i < n && spaces < 16) if (buf[i++] === SPACE) spaces++;
  const [numThreads] = num(i, n);
  return { state, ppid, numThreads };
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

/** Children of thread tid of process pid (/proc/PID/task/TID/children), appended to out. */
export function readChildren(pid: number, tid: number, out: number[]): void {
  const n = readProc(`/proc/${pid}/task/${tid}/children`);
  let i = 0;
  while (i < n) {
    if (buf[i] === SPACE || buf[i] === 0x0a) { i++; continue; }
    const [v, j] = num(i, n);
    if (j === i) { i++; continue; }
    out.push(v);
    i = j;
  }
}

/** TracerPid and State letter from /proc/TID/status (rare paths only). */
export function readTracer(tid: number): { tracerPid: number; state: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${tid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const t = text.indexOf('\nTracerPid:');
  const s = text.indexOf('\nState:');
  return {
    tracerPid: t < 0 ? 0 : parseInt(text.slice(t + 11), 10),
    state: s < 0 ? '?' : text.slice(s + 7).trimStart().charAt(0),
  };
}

/** Tgid of a task (rare paths only). */
export function readTgid(tid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${tid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const i = text.indexOf('\nTgid:');
  return i < 0 ? undefined : parseInt(text.slice(i + 6), 10);
}

/** comm of a task, for messages. */
export function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trimEnd();
  } catch {
    return '?';
  }
}

/** wchan of a task, for messages about tasks that do not stop. */
export function readWchan(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'latin1').trim() || '0';
  } catch {
    return '?';
  }
}
