/**
 * tdcollect show <dir> [--json] [--no-verify]: print a dump as a process tree (from tasks.img), or as JSON.
 * By default the CRIU images beside tasks.img are decoded strictly and cross-checked too, so a dump that
 * `show` accepts is one CRIU's own decoder accepts.
 */
import type { Command } from './commander.js';
import type { Snapshot, Task } from '../collector/task.js';
import { readImages } from '../image/read.js';
import { groupProcesses, type ProcessGroup } from '../image/codec.js';
import { snapshotToJson } from '../image/json.js';
import { action, BufferedWriter } from './common.js';

/** Threads listed by id on a process line before the rest are only counted. */
const THREADS_LISTED = 4;
/** Tree depth beyond which indentation is collapsed into "(depth N)". */
const MAX_INDENT = 32;

function describeTask(t: Task): string {
  let s = `${t.pid} ${t.state} uid=${t.uid}`;
  if (t.euid !== t.uid) s += ` euid=${t.euid}`;
  return `${s} ${t.comm}`;
}

function describeThreads(g: ProcessGroup): string {
  const n = g.threads.length;
  if (n === 0) return '';
  const listed = g.threads.slice(0, THREADS_LISTED).map((t) => `${t.pid} ${t.state}`).join(', ');
  return `  [+${n} thread${n === 1 ? '' : 's'}: ${listed}${n > THREADS_LISTED ? `, … ${n - THREADS_LISTED} more` : ''}]`;
}

/** The tree as text lines, pstree style. Iterative: a 10,000-deep chain must not overflow the stack. */
export function renderTree(s: Snapshot, out: { write(s: string): void }): void {
  const i = s.info;
  out.write(
    `root ${i.root}: ${i.processes} processes, ${i.threads} threads; source ${i.source}, freeze ${i.freeze}` +
      `${i.live ? ' (live)' : ''}; ${new Date(i.createdAt).toISOString()} on ${i.hostname} (${i.kernel})\n`,
  );
  const groups = groupProcesses(s.tasks);
  if (groups.length === 0) return;
  const children = new Map<number, ProcessGroup[]>();
  const pids = new Set(groups.map((g) => g.leader.pid));
  const tops: ProcessGroup[] = [groups[0]];
  for (const g of groups.slice(1)) {
    const p = g.leader.ppid;
    if (!pids.has(p)) { tops.push(g); continue; }
    let list = children.get(p);
    if (!list) children.set(p, (list = []));
    list.push(g);
  }
  // stack of [group, prefix for its line, prefix for its children, depth]
  const stack: [ProcessGroup, string, string, number][] = [];
  for (let k = tops.length - 1; k >= 0; k--) stack.push([tops[k], '', '', 0]);
  while (stack.length) {
    const [g, linePrefix, childPrefix, depth] = stack.pop()!;
    out.write(`${linePrefix}${describeTask(g.leader)}${describeThreads(g)}\n`);
    const kids = children.get(g.leader.pid) ?? [];
    for (let k = kids.length - 1; k >= 0; k--) {
      const last = k === kids.length - 1;
      let base = childPrefix;
      if (depth + 1 > MAX_INDENT) base = `(depth ${depth + 1}) `;
      stack.push([kids[k], `${base}${last ? '└─ ' : '├─ '}`, depth + 1 > MAX_INDENT ? '' : `${base}${last ? '   ' : '│  '}`, depth + 1]);
    }
  }
}

export function register(program: Command): void {
  program
    .command('show')
    .description('print a dump directory as a process tree (or JSON); exits 2 on a corrupt or truncated image')
    .argument('<dir>', 'directory written by tdcollect dump')
    .option('--json', 'print the snapshot as JSON (schema version 1, see README)')
    .option('--no-verify', 'read tasks.img only; skip decoding and cross-checking the CRIU images')
    .action(
      action((dir: string, opts: { json?: boolean; verify: boolean }) => {
        const snapshot = readImages(dir, { verify: opts.verify });
        const out = new BufferedWriter();
        if (opts.json) out.write(`${JSON.stringify(snapshotToJson(snapshot), null, 2)}\n`);
        else renderTree(snapshot, out);
        out.flush();
      }),
    );
}
