/** tdcollect dump: freeze the tree rooted at --root, collect it, write images (or stream it). */
import { Command, Option } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { action } from './common.js';
import { collect, parsePid } from '../collector/collect.js';
import { writeImages } from '../image/index.js';
import { OutputError, UsageError } from '../errors.js';
import type { FreezeMethod, SourceName } from '../collector/task.js';

export interface DumpCliOptions {
  root: string;
  output?: string;
  source: SourceName | 'auto';
  freeze: string;
  force?: boolean;
}

/** Parse `--freeze ptrace|none|cgroup|cgroup=PATH`. */
export function parseFreeze(text: string): { method: FreezeMethod; cgroup?: string } {
  if (text === 'ptrace' || text === 'none' || text === 'cgroup') return { method: text };
  if (text.startsWith('cgroup=') && text.length > 7) return { method: 'cgroup', cgroup: text.slice(7) };
  throw new UsageError(`invalid --freeze '${text}': expected ptrace, cgroup, cgroup=PATH or none`);
}

/** Refuse a non-empty existing target before anything is frozen (writeImages checks again). */
export function precheckOutput(dir: string, force: boolean): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) throw new OutputError(dir, `${dir}: exists and is not a directory`);
  if (!force && readdirSync(dir).length > 0) {
    throw new OutputError(dir, `${dir}: directory is not empty (use --force to replace it)`);
  }
}

export function register(program: Command): void {
  program
    .command('dump')
    .description('freeze the tree rooted at a process, collect every process and thread, write CRIU-format images')
    .requiredOption('-r, --root <pid>', 'root process of the tree')
    .option('-o, --output <dir>', 'image directory to create')
    .addOption(new Option('-s, --source <name>', 'where task data comes from')
      .choices(['auto', 'taskdiag', 'bpf', 'procfs']).default('auto'))
    .option('-f, --freeze <method>', 'ptrace, cgroup, cgroup=PATH or none', 'ptrace')
    .option('--force', 'replace a non-empty output directory')
    .action(action(async (opts: DumpCliOptions) => {
      const root = parsePid(opts.root);
      if (!opts.output) throw new UsageError('dump needs -o <dir>');
      const freeze = parseFreeze(opts.freeze);
      const dir = resolve(opts.output);
      precheckOutput(dir, !!opts.force);
      const snapshot = await collect({
        root,
        source: opts.source,
        freeze: freeze.method,
        freezeOptions: freeze.cgroup !== undefined ? { cgroup: freeze.cgroup } : {},
      });
      const t0 = performance.now();
      await writeImages(snapshot, dir, { force: !!opts.force });
      snapshot.info.timings.write = performance.now() - t0;
      return 0;
    }));
}
