/**
 * What `tdcollect show <set> [--json] [--no-verify]` does once its options are parsed, apart from their
 * registration with commander (show.ts): its fast path (fastShow, main.ts) runs it without loading commander.
 * It prints an image set as a process tree, or as JSON. The set is
 * a tdcollect dump (read from tasks.img; by default the CRIU images beside it are decoded strictly and
 * cross-checked too), a directory CRIU wrote, or a checkpoint archive (tar, tar.gz, tar.zst). The first
 * lines say which, and for an archive name the container, as `checkpointctl show` does.
 */
import type { RecordedTask, Snapshot } from '../collector/task.js';
import { groupProcesses, type ProcessGroup } from '../image/codec.js';
import { snapshotToJson } from '../image/json.js';
import type { ImageOrigin, ImageSetSnapshot } from '../image/imageset.js';
import { selectPidView, type PidViewName } from '../image/view.js';
import { BufferedWriter } from './common.js';

/** Threads listed by id on a process line before the rest are only counted. */
const THREADS_LISTED = 4;
/** Tree depth beyond which indentation is collapsed into "(depth N)". */
const MAX_INDENT = 32;

/** The state as /proc prints it, or CRIU's word for it (alive, dead, stopped) when that is all there is. */
const stateOf = (t: RecordedTask): string => t.state ?? t.criuState ?? '?';

function describeTask(t: RecordedTask): string {
  let s = `${t.pid} ${stateOf(t)}`;
  s += t.uid === undefined ? ' uid=?' : ` uid=${t.uid}`;
  if (t.euid !== undefined && t.euid !== t.uid) s += ` euid=${t.euid}`;
  return `${s} ${t.comm}`;
}

function describeThreads(g: ProcessGroup): string {
  const n = g.threads.length;
  if (n === 0) return '';
  const listed = g.threads.slice(0, THREADS_LISTED).map((t) => `${t.pid} ${stateOf(t)}`).join(', ');
  return `  [+${n} thread${n === 1 ? '' : 's'}: ${listed}${n > THREADS_LISTED ? `, … ${n - THREADS_LISTED} more` : ''}]`;
}

/** The tree as text lines, pstree style. Iterative: a 10,000-deep chain must not overflow the stack. */
const COMPRESSION: Record<string, string> = { none: 'tar', gzip: 'tar.gz', zstd: 'tar.zst' };

/** The lines naming the input: its kind, and for an archive its container (checkpointctl show's fields). */
export function renderOrigin(o: ImageOrigin, out: { write(s: string): void }): void {
  const who = o.writer === 'criu' ? 'CRIU image set' : 'tdcollect dump';
  if (o.form === 'directory') {
    out.write(`${who} (directory) ${o.path}\n`);
  } else {
    const where = o.imageDir ? ` in ${o.imageDir}/` : '';
    out.write(`checkpoint archive ${o.path} (${COMPRESSION[o.compression ?? 'none']}): ${who}${where}\n`);
    const c = o.container;
    if (c) {
      const rows: [string, string | undefined][] = [
        ['container', c.name], ['id', c.id], ['image', c.image], ['runtime', c.runtime], ['engine', c.engine],
        ['created', c.created], ['namespace', c.namespace], ['pod', c.pod],
      ];
      out.write(`  ${rows.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
    } else {
      out.write('  no container metadata (config.dump, spec.dump)\n');
    }
  }
}

export function renderTree(s: Snapshot, out: { write(s: string): void }): void {
  const i = s.info;
  if (i.source !== undefined) {
    const when = i.createdAt !== undefined ? new Date(i.createdAt).toISOString() : 'time not recorded';
    out.write(
      `root ${i.root}: ${i.processes} processes, ${i.threads} threads; source ${i.source}, freeze ${i.freeze ?? 'not recorded'}` +
        `${i.live ? ' (live)' : ''}; ${when} on ${i.hostname ?? '?'} (${i.kernel ?? '?'})\n`,
    );
  } else {
    // an image set CRIU wrote: no dump header; say what is not there
    out.write(`root ${i.root}: ${i.processes} processes, ${i.threads} threads; ` +
      `not recorded: ${i.missing.length ? `${i.missing.join(', ')}, ` : ''}tpid, exact state, dump time, kernel\n`);
  }
  const groups = groupProcesses(s.tasks);
  if (groups.length === 0) return;
  const children = new Map<number, ProcessGroup[]>();
  const pids = new Set(groups.map((g) => g.leader.pid));
  const tops: ProcessGroup[] = [groups[0]];
  for (const g of groups.slice(1)) {
    const p = g.leader.ppid;
    if (p === undefined || !pids.has(p)) { tops.push(g); continue; }
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

export interface ShowCliOptions {
  json?: boolean;
  /** root (default): pids as the root's pid namespace sees them, as CRIU writes them; collector: as the collector saw them */
  pidView?: PidViewName;
  /** false with --no-verify */
  verify: boolean;
}

export async function runShow(path: string, opts: ShowCliOptions): Promise<number> {
  const { readImageSet } = await import('../image/imageset.js');
  const snapshot: ImageSetSnapshot = selectPidView(await readImageSet(path, { verify: opts.verify }), opts.pidView ?? 'root');
  const out = new BufferedWriter();
  if (opts.json) out.write(`${JSON.stringify(snapshotToJson(snapshot, snapshot.origin), null, 2)}\n`);
  else {
    renderOrigin(snapshot.origin, out);
    renderTree(snapshot, out);
  }
  out.flush();
  return 0;
}


const PID_VIEWS_ALLOWED: readonly string[] = ['root', 'collector'];

/**
 * show's arguments as commander would give them (show.ts registers them), for the common forms only: the
 * set, --json, --no-verify and --pid-view (`--pid-view V` or `--pid-view=V`), in any order, each option as
 * often as wanted. Undefined for anything else (help, an unknown option, a second argument, a value not
 * offered): commander then parses the command line and says what is wrong with it.
 */
export function fastShow(args: readonly string[]): { path: string; opts: ShowCliOptions } | undefined {
  let path: string | undefined;
  const opts: ShowCliOptions = { verify: true, pidView: 'root' };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--json') opts.json = true;
    else if (arg === '--no-verify') opts.verify = false;
    else if (arg === '--pid-view' || arg.startsWith('--pid-view=')) {
      const value = arg === '--pid-view' ? args[++i] : arg.slice('--pid-view='.length);
      if (value === undefined || !PID_VIEWS_ALLOWED.includes(value)) return undefined;
      opts.pidView = value as PidViewName;
    } else if (arg.startsWith('-') || arg === '' || path !== undefined) return undefined;
    else path = arg;
  }
  return path === undefined ? undefined : { path, opts };
}
