/** tdcollect dump: freeze the tree rooted at --root, collect it, write images (or stream it). */
import { Command, Option } from './commander.js';
import { mkdtempSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { action } from './common.js';
import { manual } from './manual.js';
import { Progress, formatStats } from './progress.js';
import { addStreamOptions, streamToStdout, type StreamCliOptions } from './stream.js';
import { collect, parsePid } from '../collector/collect.js';
import { processOwner } from '../collector/owner.js';
import { beginWrite, type PendingWrite } from '../image/index.js';
import { OutputError, UsageError } from '../errors.js';
import type { FreezeMethod, SourceName } from '../collector/task.js';
import { now } from '../sys/clock.js';
import { isatty } from '../sys/fs.js';

export interface DumpCliOptions extends StreamCliOptions {
  root: string;
  output?: string;
  source: SourceName | 'auto';
  freeze: string;
  force?: boolean;
  quiet?: boolean;
  stats?: boolean;
}

/** Parse `--freeze ptrace|none|cgroup|cgroup=PATH`. */
export function parseFreeze(text: string): { method: FreezeMethod; cgroup?: string } {
  if (text === 'ptrace' || text === 'none' || text === 'cgroup') return { method: text };
  if (text.startsWith('cgroup=') && text.length > 7) return { method: 'cgroup', cgroup: text.slice(7) };
  throw new UsageError(`invalid --freeze '${text}': expected ptrace, cgroup, cgroup=PATH or none`);
}

/**
 * Refuse an output that cannot work before anything is frozen (writeImages checks again): a non-empty
 * existing target without --force, a target that is not a directory, a parent that is not a writable
 * directory.
 */
export function precheckOutput(dir: string, force: boolean): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code !== 'ENOENT') throw new OutputError(dir, `${dir}: cannot write: ${code}`);
    const parent = dirname(dir);
    try {
      // what writeImages will do first: create a directory beside the target (permission bits alone do not
      // tell, e.g. for root in /proc or on a read-only mount)
      rmdirSync(mkdtempSync(join(parent, '.tdcollect-probe-')));
    } catch (pe) {
      throw new OutputError(dir, `${dir}: cannot write: ${(pe as NodeJS.ErrnoException).code ?? 'EIO'} on ${parent}`);
    }
    return;
  }
  if (!st.isDirectory()) throw new OutputError(dir, `${dir}: exists and is not a directory`);
  if (!force && readdirSync(dir).length > 0) {
    throw new OutputError(dir, `${dir}: directory is not empty (use --force to replace it)`);
  }
}

export function register(program: Command): void {
  const cmd = program
    .command('dump')
    .description('freeze the tree rooted at a process, collect every process and thread, write CRIU-format images')
    .requiredOption('-r, --root <pid>', 'root process of the tree (a process id, not a thread id)')
    .option('-o, --output <dir>', 'image directory to create (it must not exist, or be empty, unless --force)')
    .addOption(new Option('-s, --source <name>', 'where task data comes from; auto tries taskdiag, bpf, procfs')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']).default('auto'))
    .option('-f, --freeze <method>', 'ptrace, cgroup, cgroup=PATH or none', 'ptrace')
    .option('--force', 'replace a non-empty output directory (atomically)')
    .option('-q, --quiet', 'no progress line on stderr')
    .option('--stats', 'print phase timings, task counts and syscall/round-trip counts on stderr');
  addStreamOptions(cmd);
  cmd.action(action(async (opts: DumpCliOptions) => {
    const root = parsePid(opts.root);
    if (opts.stdout && opts.output) throw new UsageError('dump: give either -o <dir> or --stdout, not both');
    if (!opts.stdout && !opts.output) throw new UsageError('dump: needs -o <dir> (or --stdout)');
    const freeze = parseFreeze(opts.freeze);
    const dir = opts.output ? resolve(opts.output) : undefined;
    if (dir) precheckOutput(dir, !!opts.force);
    const progress = new Progress({ quiet: !!opts.quiet, isTTY: isatty(2) });
    // a large dump starts writing while the tree is still frozen (a worker thread stages the core images
    // while this thread thaws the tree); `writeMs` is what the write costs this thread, before and after
    let pending: PendingWrite | undefined;
    let writeMs = 0;
    const writeOpts = { force: !!opts.force, owner: processOwner };
    try {
      const snapshot = await collect({
        root,
        source: opts.source,
        freeze: freeze.method,
        freezeOptions: freeze.cgroup !== undefined ? { cgroup: freeze.cgroup } : {},
        onPhase: progress.onPhase,
        ...(dir ? {
          onCollected: async (tasks) => {
            const t = now();
            pending = await beginWrite(tasks, dir, writeOpts);
            writeMs += now() - t;
          },
        } : {}),
      });
      const t0 = now();
      if (dir) {
        progress.phase('write', snapshot.tasks.length);
        // begun by onCollected before the thaw (here only if collect() did not call it)
        const p: PendingWrite = pending ?? await beginWrite(snapshot.tasks, dir, writeOpts);
        pending = undefined;
        await p.finish(snapshot.info);
      } else {
        await streamToStdout(snapshot.info, snapshot.tasks, opts.format);
      }
      snapshot.info.timings.write = writeMs + now() - t0;
      progress.done();
      if (opts.stats) process.stderr.write(formatStats(snapshot.info));
      return 0;
    } finally {
      // collect() failed after the write began (the thaw): give the write up, leaving nothing behind
      await (pending as PendingWrite | undefined)?.abort();
      progress.done();
    }
  }));
  manual(cmd, {
    summary: 'freeze a process tree, collect it, write CRIU-format images',
    description: [
      'Freezes the tree rooted at --root (every process and every thread below it), collects every task ' +
        'through one source, thaws the tree, and writes the images: inventory.img, pstree.img, one ' +
        'core-TID.img per thread, and tasks.img (the lossless record show, diff and the library read). The ' +
        'directory appears whole or not at all: it is written beside the target, made durable, then renamed ' +
        'into place.',
      'Sources: taskdiag (the TASKDIAG generic-netlink family, provided by the module in kernel/), bpf (a BPF ' +
        'task iterator, Linux >= 5.11 with BTF), procfs (/proc, works everywhere). auto takes the first that ' +
        'works in that order.',
      'Freezers: ptrace seizes and interrupts every thread (the default, as CRIU does); cgroup freezes the ' +
        'root task\'s cgroup (or PATH) with cgroup v2 cgroup.freeze or the v1 freezer, refusing a cgroup that ' +
        'holds tasks outside the tree; none reads the tree live (racy; marked live in tasks.img). The state ' +
        'recorded for each task is its state before the freeze. The tree is thawed on success, error, ' +
        'SIGINT, SIGTERM and SIGHUP; a cgroup freeze left by a killed collector is undone by tdcollect thaw.',
      '--stdout writes the snapshot as a stream instead of a directory: a header record, one record per ' +
        'task, an end record, as MessagePack maps or JSON Lines (--format).',
    ],
    exitStatus: [
      [0, 'the images were written'],
      [2, 'bad usage or argument (a pid that is not a positive integer, an unknown option)'],
      [3, 'no such process, or the root is a kernel thread or a thread id'],
      [4, 'a privilege is missing (the message names the capability and the pid)'],
      [5, 'the output directory is not empty (without --force) or cannot be written'],
      [6, 'the requested source or freezer is not available here (the message says what to do)'],
      [7, 'the tree could not be frozen consistently (already traced, still changing, timeout)'],
    ],
    examples: [
      ['tdcollect dump --root 1234 -o img/', 'freeze with ptrace, collect with the best source, write img/'],
      ['tdcollect dump --root 1234 -o img/ --source procfs --freeze cgroup', 'CRIU\'s path, freezing the cgroup'],
      ['tdcollect dump --root 1234 --stdout --format json | head', 'stream the snapshot as JSON Lines'],
    ],
    seeAlso: ['tdcollect-show(1)', 'tdcollect-diff(1)', 'tdcollect-thaw(1)', 'criu(8)'],
  });
}
