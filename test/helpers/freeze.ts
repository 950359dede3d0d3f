/** Independent /proc readings and child-process plumbing for the freezer tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const FREEZE_CHILD = join(HERE, '..', 'fixtures', 'freeze-child.mjs');
export const CLI = join(HERE, '..', '..', 'bin', 'tdcollect.js');

/** State letter of a task from /proc/TID/stat ('-' when gone). */
export function procState(tid: number): string {
  try {
    const s = readFileSync(`/proc/${tid}/stat`, 'latin1');
    return s[s.lastIndexOf(')') + 2];
  } catch {
    return '-';
  }
}

export function tracerPid(tid: number): number {
  try {
    const s = readFileSync(`/proc/${tid}/status`, 'latin1');
    const m = /\nTracerPid:\s*(\d+)/.exec(s);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export function ppidOf(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Every task (tid) of the tree rooted at root, walking /proc children files of every thread. */
export function walkTree(root: number): { pids: number[]; tids: number[] } {
  const pids: number[] = [];
  const tids: number[] = [];
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    pids.push(pid);
    for (const t of threads) {
      tids.push(Number(t));
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1').split(' ')) {
          if (c.trim()) stack.push(Number(c));
        }
      } catch { /* gone */ }
    }
  }
  return { pids, tids };
}

export interface Child {
  proc: ChildProcess;
  lines: string[];
  stderr(): string;
  /** resolves when a line equal to `line` has been printed */
  waitLine(line: string, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnNode(args: string[], env: Record<string, string> = {}, wrap: string[] = []): Child {
  const cmd = wrap.length ? wrap[0] : process.execPath;
  const argv = wrap.length ? [...wrap.slice(1), process.execPath, ...args] : args;
  return spawnLines(cmd, argv, env);
}

/** Start cmd with argv (stdin /dev/null), collecting its stdout lines and its stderr. */
export function spawnLines(cmd: string, argv: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let err = '';
  let buf = '';
  const waiters: Array<{ line: string; resolve: () => void }> = [];
  proc.stdout!.on('data', (b) => {
    buf += b;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(l);
      for (const w of waiters) if (w.line === l) w.resolve();
    }
  });
  proc.stderr!.on('data', (b) => { err += b; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('exit', (code, signal) => r({ code, signal })));
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    waitLine(line, timeoutMs = 120_000) {
      if (lines.includes(line)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line '${line}' after ${timeoutMs} ms; got ${lines.join('|')}; stderr ${err}`)), timeoutMs);
        waiters.push({ line, resolve: () => { clearTimeout(t); resolve(); } });
        void exited.then((x) => {
          clearTimeout(t);
          if (!lines.includes(line)) reject(new Error(`child exited ${x.code ?? x.signal} before '${line}': ${err}`));
        });
      });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Tasks of the tree in a stopped/traced state or traced by anyone. */
export function stoppedOrTraced(tids: number[], except: Set<number> = new Set()): string[] {
  const bad: string[] = [];
  for (const t of tids) {
    if (except.has(t)) continue;
    const s = procState(t);
    const tp = tracerPid(t);
    if (s === 't' || s === 'T' || tp !== 0) bad.push(`${t}:${s}:tracer=${tp}`);
  }
  return bad;
}

/** Every task of the system traced by this process (any of its threads), as "TID:STATE". */
export function tracedByUs(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks.map(Number)) if (tracerPid(t) === process.pid) out.push(`${t}:${procState(t)}`);
  }
  return out;
}
