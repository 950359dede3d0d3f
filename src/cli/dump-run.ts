/**
 * What `tdcollect dump` does once its options are parsed, apart from their registration with commander
 * (dump.ts): the dump's fast path (fastDump, main.ts) runs it without loading commander at all.
 */
import { mkdtempSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Progress, formatStats } from './progress.js';
import { streamToStdout, type StreamCliOptions } from './stream-out.js';
import { collect, parsePid } from '../collector/collect.js';
import { processOwner } from '../collector/owner.js';
import { beginWrite, prepareWrite, WORKER_MIN_FILES, type PendingWrite, type WriteOptions } from '../image/index.js';
import { estimateTree } from '../collector/sources/index.js';
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


/** Children lists read (at most) to tell a large tree before the freeze: one for a wide tree, a few for a bushy one. */
const EARLY_WRITER_READS = 16;

/** The dump itself, from its parsed options; returns the exit code (errors are thrown). */
export async function runDump(opts: DumpCliOptions): Promise<number> {
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
    const writeOpts: WriteOptions = { force: !!opts.force, owner: processOwner };
    // a tree whose first children lists already hold a large dump's worth of processes: start the writer
    // (temporary directory, worker thread) now, beside the source's set-up, rather than after the collection
    if (dir && (estimateTree(root, WORKER_MIN_FILES, EARLY_WRITER_READS)?.small === false)) {
      writeOpts.prepared = prepareWrite(dir, writeOpts);
    }
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
      // collect() failed after the write began (the thaw): give the write up, leaving nothing behind; a writer
      // prepared for a collection that failed goes too
      await (pending as PendingWrite | undefined)?.abort();
      await writeOpts.prepared?.release();
      progress.done();
    }
}

const SOURCES_ALLOWED: readonly string[] = ['auto', 'taskdiag', 'bpf', 'procfs'];
const FORMATS_ALLOWED: readonly string[] = ['msgpack', 'json'];
/** the options that take a value, by every name they have */
const VALUED: Readonly<Record<string, keyof DumpCliOptions>> = {
  '-r': 'root', '--root': 'root', '-o': 'output', '--output': 'output', '-s': 'source', '--source': 'source',
  '-f': 'freeze', '--freeze': 'freeze', '--format': 'format',
};
const FLAGS: Readonly<Record<string, keyof DumpCliOptions>> = {
  '--force': 'force', '-q': 'quiet', '--quiet': 'quiet', '--stats': 'stats', '--stdout': 'stdout',
};

/**
 * The dump's options as commander would give them (dump.ts registers the same ones), for the common forms
 * only: `--name value`, `--name=value`, `-x value` and the flags, each option as often as wanted (the last
 * value counts, as commander's). Undefined for anything else (help, an unknown or incomplete option, a
 * value starting with '-', a choice not offered, an argument that is not an option, a missing --root):
 * commander then parses the command line, and says what is wrong with it. A dump is most commands' reason
 * to exist and the one whose start-up matters most; commander costs it about 2 ms (its code, and building
 * the program), where these lines cost nothing.
 */
export function fastDump(args: readonly string[]): DumpCliOptions | undefined {
  const o: Record<string, string | boolean | undefined> = { source: 'auto', freeze: 'ptrace', format: 'msgpack' };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq > 2) {
        value = arg.slice(eq + 1);
        arg = arg.slice(0, eq);
      }
    }
    const flag = FLAGS[arg];
    if (flag !== undefined) {
      if (value !== undefined) return undefined;
      o[flag] = true;
      continue;
    }
    const key = VALUED[arg];
    if (key === undefined) return undefined;
    if (value === undefined) value = args[++i];
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    // commander checks a choice at each occurrence, not only the last
    if ((key === 'source' && !SOURCES_ALLOWED.includes(value)) || (key === 'format' && !FORMATS_ALLOWED.includes(value))) return undefined;
    o[key] = value;
  }
  if (typeof o.root !== 'string') return undefined;
  return o as unknown as DumpCliOptions;
}
