/**
 * tdcollect ps [--root PID] [--source S] [-o FIELDS] [--threads] [--no-headers]: a live listing of every
 * task (or of the subtree of --root) from any source, one line per process (or per thread), sorted by pid.
 * Columns are named like ps(1)'s where one exists; the list is FIELDS below.
 */
import { Command, Option } from 'commander';
import { action, BufferedWriter } from './common.js';
import { addStreamOptions, streamToStdout, type StreamCliOptions } from './stream.js';
import { UsageError } from '../errors.js';
import type { Mask64, SourceName, Task } from '../collector/task.js';
import type { Source } from '../collector/sources/source.js';
import { BpfSource } from '../collector/sources/bpf/bpf.js';

/** A pid argument: a positive decimal integer (the rules of collect.parsePid, without loading the collector). */
function parseRoot(text: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text.trim()) || n <= 0 || n > 0x3fffffff) {
    throw new UsageError(`invalid pid '${text}': expected a positive integer`);
  }
  return n;
}

/**
 * The source for ps: a pinned BPF iterator when one is readable (for --source bpf and auto: reading it needs
 * no load and no privilege), else the collector's choice.
 */
async function psSource(name: SourceName | 'auto'): Promise<Source> {
  if (name === 'bpf' || name === 'auto') {
    const pinned = BpfSource.openPinned();
    if (pinned) return pinned;
  }
  const { openSource } = await import('../collector/collect.js');
  return openSource(name);
}

interface Column {
  header: string;
  /** minimum width; numbers are right-aligned, text left-aligned */
  width: number;
  right: boolean;
  get(t: Task): string;
}

const num = (v: number | undefined): string => (v === undefined ? '-' : String(v));
const hex64 = (m: Mask64 | undefined): string =>
  m === undefined ? '-' : m[1].toString(16).padStart(8, '0') + m[0].toString(16).padStart(8, '0');
const POLICY = ['TS', 'FF', 'RR', 'B', 'ISO', 'IDL', 'DLN'];

/** Every -o field: name → column. */
export const COLUMNS: Readonly<Record<string, Column>> = {
  pid: { header: 'PID', width: 7, right: true, get: (t) => String(t.tgid) },
  tid: { header: 'TID', width: 7, right: true, get: (t) => String(t.pid) },
  ppid: { header: 'PPID', width: 7, right: true, get: (t) => String(t.ppid) },
  pgid: { header: 'PGID', width: 7, right: true, get: (t) => String(t.pgid) },
  sid: { header: 'SID', width: 7, right: true, get: (t) => String(t.sid) },
  tpid: { header: 'TPID', width: 7, right: true, get: (t) => String(t.tpid) },
  stat: { header: 'S', width: 1, right: false, get: (t) => t.state },
  comm: { header: 'COMMAND', width: 0, right: false, get: (t) => t.comm },
  // as in ps(1): uid and gid are the effective ids, ruid and rgid the real ones
  uid: { header: 'UID', width: 5, right: true, get: (t) => String(t.euid) },
  ruid: { header: 'RUID', width: 5, right: true, get: (t) => String(t.uid) },
  euid: { header: 'EUID', width: 5, right: true, get: (t) => String(t.euid) },
  suid: { header: 'SUID', width: 5, right: true, get: (t) => String(t.suid) },
  fsuid: { header: 'FSUID', width: 5, right: true, get: (t) => String(t.fsuid) },
  gid: { header: 'GID', width: 5, right: true, get: (t) => String(t.egid) },
  rgid: { header: 'RGID', width: 5, right: true, get: (t) => String(t.gid) },
  egid: { header: 'EGID', width: 5, right: true, get: (t) => String(t.egid) },
  sgid: { header: 'SGID', width: 5, right: true, get: (t) => String(t.sgid) },
  fsgid: { header: 'FSGID', width: 5, right: true, get: (t) => String(t.fsgid) },
  groups: { header: 'GROUPS', width: 6, right: false, get: (t) => (t.groups === undefined ? '-' : t.groups.join(',') || '-') },
  capinh: { header: 'CAPINH', width: 16, right: false, get: (t) => hex64(t.capInh) },
  capprm: { header: 'CAPPRM', width: 16, right: false, get: (t) => hex64(t.capPrm) },
  capeff: { header: 'CAPEFF', width: 16, right: false, get: (t) => hex64(t.capEff) },
  capbnd: { header: 'CAPBND', width: 16, right: false, get: (t) => hex64(t.capBnd) },
  capamb: { header: 'CAPAMB', width: 16, right: false, get: (t) => hex64(t.capAmb) },
  securebits: { header: 'SECBITS', width: 7, right: true, get: (t) => num(t.securebits) },
  nnp: { header: 'NNP', width: 3, right: true, get: (t) => (t.noNewPrivs === undefined ? '-' : t.noNewPrivs ? '1' : '0') },
  seccomp: { header: 'SECCOMP', width: 7, right: true, get: (t) => num(t.seccomp) },
  start: { header: 'START', width: 8, right: true, get: (t) => num(t.startTime) },
  personality: {
    header: 'PERS', width: 8, right: false,
    get: (t) => (t.personality === undefined ? '-' : t.personality.toString(16).padStart(8, '0')),
  },
  flags: { header: 'F', width: 8, right: false, get: (t) => (t.flags === undefined ? '-' : t.flags.toString(16).padStart(8, '0')) },
  sigblk: { header: 'BLOCKED', width: 16, right: false, get: (t) => hex64(t.sigBlk) },
  ni: { header: 'NI', width: 3, right: true, get: (t) => num(t.nice) },
  pri: { header: 'PRI', width: 3, right: true, get: (t) => num(t.priority) },
  rtprio: { header: 'RTPRIO', width: 6, right: true, get: (t) => num(t.rtPriority) },
  cls: { header: 'CLS', width: 3, right: false, get: (t) => (t.policy === undefined ? '-' : POLICY[t.policy] ?? String(t.policy)) },
  exit: { header: 'EXIT', width: 4, right: true, get: (t) => num(t.exitCode) },
  robust: { header: 'ROBUST', width: 12, right: false, get: (t) => (t.futexRla === undefined ? '-' : t.futexRla.toString(16)) },
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

/** Write the listing: a header line (unless disabled) and one line per task. */
export function renderPs(tasks: readonly Task[], cols: readonly Column[], headers: boolean, out: { write(s: string): void }): void {
  const last = cols.length - 1;
  const cell = (c: Column, v: string, i: number): string =>
    (i === last && !c.right) ? v : c.right ? v.padStart(c.width) : v.padEnd(c.width);
  if (headers) {
    let line = '';
    for (let i = 0; i < cols.length; i++) line += (i ? ' ' : '') + cell(cols[i], cols[i].header, i);
    out.write(`${line}\n`);
  }
  for (const t of tasks) {
    let line = '';
    for (let i = 0; i < cols.length; i++) line += (i ? ' ' : '') + cell(cols[i], cols[i].get(t), i);
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

interface PsCliOptions {
  root?: string;
  source: SourceName | 'auto';
  output?: string[];
  stdout?: boolean;
  format: StreamCliOptions['format'];
  threads?: boolean;
  headers: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('ps')
    .description('list live tasks (all, or the subtree of --root) from any source, like ps(1)')
    .option('-r, --root <pid>', 'only this process and its descendants')
    .addOption(new Option('-s, --source <name>', 'where task data comes from')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']).default('auto'))
    .option('-o, --output <fields...>', `comma-separated columns (default ${DEFAULT_FIELDS}); known: ${Object.keys(COLUMNS).join(',')}`)
    .option('-T, --threads', 'one line per thread (adds the TID column to the default)')
    .option('--no-headers', 'omit the header line');
  addStreamOptions(cmd);
  cmd.action(action(async (opts: PsCliOptions) => {
      const threads = !!opts.threads;
      const cols = parseFields(opts.output ?? [threads ? DEFAULT_THREAD_FIELDS : DEFAULT_FIELDS]);
      const root = opts.root !== undefined ? parseRoot(opts.root) : undefined;
      const source = await psSource(opts.source);
      let tasks: Task[];
      try {
        if (root !== undefined) {
          tasks = await source.collectTree(root);
          if (!threads) tasks = tasks.filter((t) => t.pid === t.tgid);
        } else {
          tasks = await source.collectAll({ threads });
        }
      } finally {
        source.close();
      }
      if (opts.stdout) {
        const { hostname, release } = await import('node:os');
        const { VERSION } = await import('../version.js');
        await streamToStdout({
          source: source.name, tool: `tdcollect ${VERSION}`, kernel: release(), hostname: hostname(),
          createdAt: Date.now(), live: true, freeze: 'none', ...(root !== undefined ? { root } : {}),
        }, sortTasks(tasks), opts.format);
        return;
      }
      const out = new BufferedWriter(1);
      renderPs(sortTasks(tasks), cols, opts.headers, out);
      out.flush();
    }));
}
