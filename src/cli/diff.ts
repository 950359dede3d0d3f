/**
 * tdcollect diff: a semantic diff of two image sets (tdcollect dumps, CRIU dump directories, checkpoint
 * archives, in any pair), or of one and the live tree.
 */
import { Command, Option } from './commander.js';
import { existsSync } from 'node:fs';
import { action, BufferedWriter, reportError } from './common.js';
import { manual } from './manual.js';
import { Progress } from './progress.js';
import { collect, parsePid } from '../collector/collect.js';
import { diffSnapshots, formatDiff, parseIgnore, DIFF_FIELDS, IGNORE_GROUPS, type SnapshotDiff } from '../image/diff.js';
import type { ImageOrigin, ImageSetSnapshot } from '../image/imageset.js';
import { selectPidView, type PidViewName } from '../image/view.js';
import { pidViewOption, PID_VIEW_TEXT } from './pid-view.js';
import { EXIT, NoProcessError, UsageError } from '../errors.js';
import type { FreezeMethod, Snapshot, SourceName } from '../collector/task.js';

export interface DiffCliOptions {
  json?: boolean;
  /** which pid view both sides are compared in (default root) */
  pidView?: PidViewName;
  ignore?: string[];
  live?: boolean;
  /** with --live: the live root's pid, when it differs from the set's (a container's init seen from the host) */
  root?: string;
  source?: SourceName | 'auto';
  freeze: 'none' | 'ptrace';
  quiet?: boolean;
  /** false with --no-verify */
  verify: boolean;
}

/** Read one image set (directory or archive); a missing path is one clear line (exit 2). */
export async function loadImages(path: string, verify = true): Promise<ImageSetSnapshot> {
  const { readImageSet } = await import('../image/imageset.js');
  return await readImageSet(path, { verify });
}

const COMPRESSION: Record<string, string> = { none: 'tar', gzip: 'tar.gz', zstd: 'tar.zst' };

/** What a side is, in a few words: "tdcollect dump", "CRIU image set", "checkpoint archive (tar.zst, CRIU)". */
export function describeOrigin(o: ImageOrigin): string {
  const who = o.writer === 'criu' ? 'CRIU' : 'tdcollect';
  if (o.form === 'archive') {
    const c = o.container?.name ? `, container ${o.container.name}` : '';
    return `checkpoint archive (${COMPRESSION[o.compression ?? 'none']}, ${who} images${c})`;
  }
  return o.writer === 'criu' ? 'CRIU image set' : 'tdcollect dump';
}

/**
 * The tree as it is now, collected the way the image was (same root; same source unless --source says
 * otherwise). A root that no longer exists is an empty tree: every process shows as removed.
 */
export async function liveSnapshot(a: Snapshot, opts: { source?: SourceName | 'auto'; freeze: FreezeMethod; progress?: Progress; root?: number }): Promise<Snapshot> {
  const root = opts.root ?? a.info.root;
  try {
    return await collect({
      root,
      source: opts.source ?? a.info.source ?? 'auto',
      freeze: opts.freeze,
      ...(opts.progress ? { onPhase: opts.progress.onPhase } : {}),
    });
  } catch (e) {
    // the root is gone (not merely a thread or kernel thread now): compare with an empty tree
    if (e instanceof NoProcessError && e.pid === root && !existsSync(`/proc/${root}`)) {
      return {
        info: { ...a.info, live: true, freeze: opts.freeze, createdAt: Date.now(), processes: 0, threads: 0, timings: {}, missing: [] },
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
    .argument('<A>', 'image set (the old side): tdcollect dump, CRIU dump directory or checkpoint archive')
    .argument('[B]', 'image set (the new side); omit with --live')
    .option('--json', 'print the diff as one JSON document (schema version 1)')
    .option('-i, --ignore <fields>', 'do not compare these fields (comma-separated, repeatable)', collectList)
    .option('--live', 'compare A with the tree as it is now (same root and source as A)')
    .option('-r, --root <pid>', 'with --live: collect the tree rooted at this pid instead of the set\'s root (e.g. a checkpointed container\'s init as the host sees it)')
    .addOption(new Option('-s, --source <name>', 'with --live: source to collect with (default: the one A was dumped with; auto for a CRIU set)')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']))
    .addOption(new Option('-f, --freeze <method>', 'with --live: freeze the live tree while reading it')
      .choices(['none', 'ptrace']).default('none'))
    .option('--no-verify', 'tdcollect dumps: read only tasks.img, do not decode and cross-check the CRIU images (faster on large dumps)')
    .addOption(pidViewOption())
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
      'Compares two image sets, or with --live one image set and the tree as it is now. An image set is a ' +
        'directory written by tdcollect dump (read from its tasks.img), a directory written by criu dump, or a ' +
        'checkpoint archive (podman container checkpoint --export, CRI-O/kubelet checkpoints: a tar, tar.gz or ' +
        'tar.zst with the CRIU images under checkpoint/), in any pair. Processes are matched by pid and start ' +
        'time, so a pid reused by another process shows as one process removed and another added; when a side ' +
        'did not record start times (CRIU does not), processes are matched by pid alone and the output says so. ' +
        'Threads are matched the same way within each matched process.',
      'Reported per process: added and removed processes, reparenting (ppid), session (sid) and process-group ' +
        '(pgid) changes, state, comm, every credential (uid/euid/suid/fsuid, gid/egid/sgid/fsgid, each ' +
        'capability set by capability name - CAP_CHOWN .. CAP_CHECKPOINT_RESTORE, "bit N" beyond - and the ' +
        'supplementary groups added and removed), securebits, no_new_privs, seccomp, personality, PF flags, ' +
        'blocked signals by name, scheduling fields, exit code, robust futex list, and threads added, removed ' +
        'or changed. A field that one side did not record (its source could not read it, or CRIU does not write ' +
        'it: tpid, the root\'s parent, kernel priority, a zombie\'s credentials) is not a difference; it is ' +
        'listed in a note. CRIU records a task\'s state only as alive, dead or stopped: against it, a /proc state ' +
        'letter is compared as that class (Z and X dead, T and t stopped, any other alive). The dump headers ' +
        '(timings, creation time, source, freeze method) are never differences.',
      `--ignore takes field names (${DIFF_FIELDS.join(', ')}) and groups (${Object.keys(IGNORE_GROUPS).join(', ')}); ` +
        'names are case-insensitive; an unknown name is a usage error.',
      PID_VIEW_TEXT,
      '--live collects the tree rooted at the image\'s root pid with the image\'s source (or --source; auto ' +
        'when the set does not name one) and, by ' +
        'default, without freezing it (--freeze none: a racy read, fine for a comparison); --freeze ptrace ' +
        'freezes it while it is read. A root that no longer exists compares as an empty tree. A container\'s ' +
        'checkpoint records pids as the container sees them (its init is 1): --root PID names the live root as ' +
        'this host sees it.',
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
      ['tdcollect diff ours/ criu-dump/', 'a tdcollect dump against the images criu dump wrote of the same tree'],
      ['tdcollect diff checkpoint.tar.zst --live', 'a container checkpoint archive against the running container'],
    ],
    seeAlso: ['tdcollect-dump(1)', 'diff(1)'],
  });
}

async function run(a: string, b: string | undefined, opts: DiffCliOptions): Promise<number> {
  const ignore = parseIgnore(opts.ignore ?? []);
  if (opts.live && b !== undefined) throw new UsageError('diff: give either two image sets or one with --live');
  if (!opts.live && b === undefined) throw new UsageError('diff: needs two image sets (or one with --live)');
  if (!opts.live && (opts.source !== undefined || opts.freeze !== 'none' || opts.root !== undefined)) {
    throw new UsageError('diff: --root, --source and --freeze apply only with --live');
  }
  const root = opts.root !== undefined ? parsePid(opts.root) : undefined;
  const sa: ImageSetSnapshot = await loadImages(a, opts.verify);
  let sb: Snapshot;
  if (opts.live) {
    const progress = new Progress({ quiet: opts.quiet });
    try {
      sb = await liveSnapshot(sa, { source: opts.source, freeze: opts.freeze, progress, ...(root !== undefined ? { root } : {}) });
    } finally {
      progress.done();
    }
  } else {
    sb = await loadImages(b!, opts.verify);
  }
  const view = opts.pidView ?? 'root';
  const d: SnapshotDiff = diffSnapshots(selectPidView(sa, view), selectPidView(sb, view), { ignore });
  d.a.path = a;
  d.a.kind = describeOrigin(sa.origin);
  if (!opts.live) {
    d.b.path = b;
    d.b.kind = describeOrigin((sb as ImageSetSnapshot).origin);
  } else {
    d.b.kind = 'live tree';
  }
  const out = new BufferedWriter(1);
  out.write(opts.json ? JSON.stringify(d, null, 2) + '\n' : formatDiff(d));
  out.flush();
  return d.equal ? EXIT.OK : EXIT.DIFFERENT;
}
