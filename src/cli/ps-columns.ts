/**
 * The columns of tdcollect ps (-o fields, named like ps(1)'s where one exists) and their rendering from Task
 * records; ps-records.ts renders the same columns straight from BPF records.
 */
import { UsageError } from '../errors.js';
import type { Mask64, Task } from '../collector/task.js';

/** How a column's value is shown. */
type Kind =
  | 'dec'    // decimal, '-' when the source could not fill it
  | 'hex8'   // 8 hex digits
  | 'hex'    // hex without padding
  | 'mask'   // a Mask64 as 16 hex digits
  | 'state'  // the state letter
  | 'text'   // comm
  | 'groups' // comma-separated, '-' when none
  | 'cls'    // scheduling policy as ps(1) names it
  | 'bool';  // 1 or 0

export interface Column {
  header: string;
  /** minimum width; numbers are right-aligned, text left-aligned */
  width: number;
  right: boolean;
  /** the Task field shown */
  field: keyof Task;
  kind: Kind;
}

const POLICY = ['TS', 'FF', 'RR', 'B', 'ISO', 'IDL', 'DLN'];
const hex64 = (m: Mask64): string => m[1].toString(16).padStart(8, '0') + m[0].toString(16).padStart(8, '0');
export const policyName = (p: number): string => POLICY[p] ?? String(p);

/** The text of a column for one task. */
export function cellText(c: Column, t: Task): string {
  const v = t[c.field];
  if (v === undefined) return '-';
  switch (c.kind) {
    case 'dec': return String(v);
    case 'hex8': return (v as number).toString(16).padStart(8, '0');
    case 'hex': return (v as number).toString(16);
    case 'mask': return hex64(v as Mask64);
    case 'state':
    case 'text': return v as string;
    case 'groups': return (v as number[]).join(',') || '-';
    case 'cls': return policyName(v as number);
    case 'bool': return v ? '1' : '0';
  }
}

const col = (header: string, width: number, right: boolean, field: keyof Task, kind: Kind): Column =>
  ({ header, width, right, field, kind });
const id = (header: string, field: keyof Task): Column => col(header, 7, true, field, 'dec');
const cred = (header: string, field: keyof Task): Column => col(header, 5, true, field, 'dec');
const mask = (header: string, field: keyof Task): Column => col(header, 16, false, field, 'mask');

/** Every -o field: name → column. */
export const COLUMNS: Readonly<Record<string, Column>> = {
  pid: id('PID', 'tgid'),
  tid: id('TID', 'pid'),
  ppid: id('PPID', 'ppid'),
  pgid: id('PGID', 'pgid'),
  sid: id('SID', 'sid'),
  tpid: id('TPID', 'tpid'),
  stat: col('S', 1, false, 'state', 'state'),
  comm: col('COMMAND', 0, false, 'comm', 'text'),
  // as in ps(1): uid and gid are the effective ids, ruid and rgid the real ones
  uid: cred('UID', 'euid'),
  ruid: cred('RUID', 'uid'),
  euid: cred('EUID', 'euid'),
  suid: cred('SUID', 'suid'),
  fsuid: cred('FSUID', 'fsuid'),
  gid: cred('GID', 'egid'),
  rgid: cred('RGID', 'gid'),
  egid: cred('EGID', 'egid'),
  sgid: cred('SGID', 'sgid'),
  fsgid: cred('FSGID', 'fsgid'),
  groups: col('GROUPS', 6, false, 'groups', 'groups'),
  capinh: mask('CAPINH', 'capInh'),
  capprm: mask('CAPPRM', 'capPrm'),
  capeff: mask('CAPEFF', 'capEff'),
  capbnd: mask('CAPBND', 'capBnd'),
  capamb: mask('CAPAMB', 'capAmb'),
  securebits: col('SECBITS', 7, true, 'securebits', 'dec'),
  nnp: col('NNP', 3, true, 'noNewPrivs', 'bool'),
  seccomp: col('SECCOMP', 7, true, 'seccomp', 'dec'),
  start: col('START', 8, true, 'startTime', 'dec'),
  personality: col('PERS', 8, false, 'personality', 'hex8'),
  flags: col('F', 8, false, 'flags', 'hex8'),
  sigblk: mask('BLOCKED', 'sigBlk'),
  ni: col('NI', 3, true, 'nice', 'dec'),
  pri: col('PRI', 3, true, 'priority', 'dec'),
  rtprio: col('RTPRIO', 6, true, 'rtPriority', 'dec'),
  cls: col('CLS', 3, false, 'policy', 'cls'),
  exit: col('EXIT', 4, true, 'exitCode', 'dec'),
  robust: col('ROBUST', 12, false, 'futexRla', 'hex'),
};

/** Aliases accepted by -o, as ps(1) spells them. */
const ALIASES: Readonly<Record<string, string>> = {
  tgid: 'pid', lwp: 'tid', spid: 'tid', pgrp: 'pgid', sess: 'sid', session: 'sid', s: 'stat', state: 'stat',
  ucmd: 'comm', nice: 'ni', prio: 'pri', priority: 'pri', policy: 'cls',
  blocked: 'sigblk', sigmask: 'sigblk', starttime: 'start', f: 'flags', tracerpid: 'tpid',
};

export const DEFAULT_FIELDS = 'pid,ppid,pgid,sid,stat,uid,comm';
export const DEFAULT_THREAD_FIELDS = 'pid,tid,ppid,pgid,sid,stat,uid,comm';

/** Parse `-o a,b,c` (also `-o a -o b`, and `name=HEADER` for the last field, like ps). */
export function parseFields(list: string[]): Column[] {
  const cols: Column[] = [];
  for (const item of list) {
    for (const raw of item.split(',')) {
      const spec = raw.trim();
      if (!spec) continue;
      const eq = spec.indexOf('=');
      const name = (eq < 0 ? spec : spec.slice(0, eq)).toLowerCase();
      const col = COLUMNS[ALIASES[name] ?? name];
      if (!col) {
        throw new UsageError(`unknown field '${name}' for -o; known: ${Object.keys(COLUMNS).join(',')}`);
      }
      cols.push(eq < 0 ? col : { ...col, header: spec.slice(eq + 1) });
    }
  }
  if (cols.length === 0) throw new UsageError('-o needs at least one field');
  return cols;
}

export function headerLine(cols: readonly Column[]): string {
  let line = '';
  for (let i = 0; i < cols.length; i++) line += (i ? ' ' : '') + cell(cols[i], cols[i].header, i === cols.length - 1);
  return `${line}\n`;
}

/** A cell padded to its column's width (the last column, when left-aligned, is not padded). */
function cell(c: Column, v: string, last: boolean): string {
  return (last && !c.right) ? v : c.right ? v.padStart(c.width) : v.padEnd(c.width);
}

/** Write the listing: a header line (unless disabled) and one line per task. */
export function renderPs(tasks: readonly Task[], cols: readonly Column[], headers: boolean, out: { write(s: string): void }): void {
  const last = cols.length - 1;
  if (headers) out.write(headerLine(cols));
  for (const t of tasks) {
    let line = '';
    for (let i = 0; i < cols.length; i++) line += (i ? ' ' : '') + cell(cols[i], cellText(cols[i], t), i === last);
    out.write(`${line}\n`);
  }
}

/** Sort by process id, then leader first, then thread id (a no-op for the bpf source, which is in order). */
export function sortTasks(tasks: Task[]): Task[] {
  const key = (t: Task) => t.tgid * 4_194_304 + (t.pid === t.tgid ? 0 : t.pid);
  let sorted = true;
  for (let i = 1; i < tasks.length && sorted; i++) if (key(tasks[i - 1]) > key(tasks[i])) sorted = false;
  if (!sorted) tasks.sort((a, b) => key(a) - key(b));
  return tasks;
}

