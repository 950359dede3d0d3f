/** tdcollect diff: a semantic diff of two image directories, or of one and the live tree. */
import { Command, Option } from './commander.js';
import { existsSync, statSync } from 'node:fs';
import { action, BufferedWriter, reportError } from './common.js';
import { manual } from './manual.js';
import { Progress } from './progress.js';
import { collect } from '../collector/collect.js';
import { readImages } from '../image/index.js';
import { diffSnapshots, formatDiff, parseIgnore, DIFF_FIELDS, IGNORE_GROUPS, type SnapshotDiff } from '../image/diff.js';
import { EXIT, ImageError, NoProcessError, UsageError } from '../errors.js';
import type { FreezeMethod, Snapshot, SourceName } from '../collector/task.js';

export interface DiffCliOptions {
  json?: boolean;
  ignore?: string[];
  live?: boolean;
  source?: SourceName | 'auto';
  freeze: 'none' | 'ptrace';
  quiet?: boolean;
  /** false with --no-verify */
  verify: boolean;
}

/** Read one image directory; a missing path is one clear line (exit 2). */
export async function loadImages(dir: string, verify = true): Promise<Snapshot> {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ImageError(dir, 0, 'missing', 'no such image directory');
    throw new ImageError(dir, 0, 'io', `cannot read: ${code}`);
  }
  if (!st.isDirectory()) throw new ImageError(dir, 0, 'missing', 'not a directory');
  return await readImages(dir, { verify });
}

/**
 * The tree as it is now, collected the way the image was (same root; same source unless --source says
 * otherwise). A root that no longer exists is an empty tree: every process shows as removed.
 */
export async function liveSnapshot(a: Snapshot, opts: { source?: SourceName | 'auto'; freeze: FreezeMethod; progress?: Progress }): Promise<Snapshot> {
  try {
    return await collect({
      root: a.info.root,
      source: opts.source ?? a.info.source,
      freeze: opts.freeze,
      ...(opts.progress ? { onPhase: opts.progress.onPhase } : {}),
    });
  } catch (e) {
    // the root is gone (not merely a thread or kernel thread now): compare with an empty tree
    if (e instanceof NoProcessError && e.pid === a.info.root && !existsSync(`/proc/${a.info.root}`)) {
      return {
        info: { ...a.info, live: true, freeze: opts.freeze, createdAt: Date.now(), processes: 0, threads: 0, timings: {} },
        tasks: [],
      };
    }
    throw e;
  }
}

function collectList(value: string, prev: string[] | undefined): string[] {
  return (prev ?? []).concat(value.split(','));
}

export function register(program: Command): void {
  const cmd = program
    .command('diff')
    .description('compare two snapshots (or one and the live tree) task by task')
    .argument('<A>', 'image directory (the old side)')
    .argument('[B]', 'image directory (the new side); omit with --live')
    .option('--json', 'print the diff as one JSON document (schema version 1)')
    .option('-i, --ignore <fields>', 'do not compare these fields (comma-separated, repeatable)', collectList)
    .option('--live', 'compare A with the tree as it is now (same root and source as A)')
    .addOption(new Option('-s, --source <name>', 'with --live: source to collect with (default: the one A was dumped with)')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']))
    .addOption(new Option('-f, --freeze <method>', 'with --live: freeze the live tree while reading it')
      .choices(['none', 'ptrace']).default('none'))
    .option('--no-verify', 'read only tasks.img: do not decode and cross-check the CRIU images (faster on large dumps)')
    .option('-q, --quiet', 'no progress line on stderr')
    .action(action(async (a: string, b: string | undefined, opts: DiffCliOptions) => {
      try {
        return await run(a, b, opts);
      } catch (e) {
        // diff(1): any trouble is exit status 2
        reportError(e);
        return EXIT.USAGE;
      }
    }));
  manual(cmd, {
    summary: 'compare two snapshots task by task',
    description: [
      'Compares two image directories written by tdcollect dump (their tasks.img), or with --live one image ' +
        'directory and the tree as it is now. Processes are matched by pid and start time, so a pid reused by ' +
        'another process shows as one process removed and another added; when a side did not record start ' +
        'times, processes are matched by pid alone and the output says so. Threads are matched the same way ' +
        'within each matched process.',
      'Reported per process: added and removed processes, reparenting (ppid), session (sid) and process-group ' +
        '(pgid) changes, state, comm, every credential (uid/euid/suid/fsuid, gid/egid/sgid/fsgid, each ' +
        'capability set by capability name - CAP_CHOWN .. CAP_CHECKPOINT_RESTORE, "bit N" beyond - and the ' +
        'supplementary groups added and removed), securebits, no_new_privs, seccomp, personality, PF flags, ' +
        'blocked signals by name, scheduling fields, exit code, robust futex list, and threads added, removed ' +
        'or changed. A field that one side did not record (its source could not read it) is not a difference; ' +
        'it is listed in a note. The dump headers (timings, creation time, source, freeze method) are never ' +
        'differences.',
      `--ignore takes field names (${DIFF_FIELDS.join(', ')}) and groups (${Object.keys(IGNORE_GROUPS).join(', ')}); ` +
        'names are case-insensitive; an unknown name is a usage error.',
      '--live collects the tree rooted at the image\'s root pid with the image\'s source (or --source) and, by ' +
        'default, without freezing it (--freeze none: a racy read, fine for a comparison); --freeze ptrace ' +
        'freezes it while it is read. A root that no longer exists compares as an empty tree.',
      'The human output is grouped by process: a line "process PID (COMM):" then one indented line per ' +
        'changed field ("capEff: -CAP_SYS_ADMIN", "ppid: 1200 -> 1 (reparented)"), then a summary line. ' +
        '--json prints one document: {version: 1, equal, a, b, ignored, notCompared, matchedByPidOnly, ' +
        'summary: {added, removed, changed}, processes: [{status, pid, comm, startTime, ppid, threads, ' +
        'matchedBy, changes: [{field, kind, old, new, added, removed}], threadsAdded, threadsRemoved, ' +
        'threadChanges}]}.',
    ],
    exitStatus: [
      [0, 'the snapshots are equal (after --ignore)'],
      [1, 'the snapshots differ'],
      [2, 'trouble: bad usage, unknown --ignore field, a missing directory, an unreadable or corrupt image, ' +
        'or the live tree could not be read'],
    ],
    examples: [
      ['tdcollect diff before/ after/', 'compare two dumps'],
      ['tdcollect diff --ignore state,sched before/ after/', 'ignore task states and scheduling fields'],
      ['tdcollect diff --json before/ after/ | jq .summary', 'machine-readable output'],
      ['tdcollect diff before/ --live', 'what changed in the tree since the dump'],
    ],
    seeAlso: ['tdcollect-dump(1)', 'diff(1)'],
  });
}

async function run(a: string, b: string | undefined, opts: DiffCliOptions): Promise<number> {
  const ignore = parseIgnore(opts.ignore ?? []);
  if (opts.live && b !== undefined) throw new UsageError('diff: give either two directories or one with --live');
  if (!opts.live && b === undefined) throw new UsageError('diff: needs two image directories (or one with --live)');
  if (!opts.live && (opts.source !== undefined || opts.freeze !== 'none')) {
    throw new UsageError('diff: --source and --freeze apply only with --live');
  }
  const sa = await loadImages(a, opts.verify);
  let sb: Snapshot;
  if (opts.live) {
    const progress = new Progress({ quiet: opts.quiet });
    try {
      sb = await liveSnapshot(sa, { source: opts.source, freeze: opts.freeze, progress });
    } finally {
      progress.done();
    }
  } else {
    sb = await loadImages(b!, opts.verify);
  }
  const d: SnapshotDiff = diffSnapshots(sa, sb, { ignore });
  d.a.path = a;
  if (!opts.live) d.b.path = b;
  const out = new BufferedWriter(1);
  out.write(opts.json ? JSON.stringify(d, null, 2) + '\n' : formatDiff(d));
  out.flush();
  return d.equal ? EXIT.OK : EXIT.DIFFERENT;
}
