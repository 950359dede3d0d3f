/**
 * tdcollect ps [--root PID] [--source S] [-o FIELDS] [--threads] [--no-headers]: a live listing of every
 * task (or of the subtree of --root) from any source, one line per process (or per thread), sorted by pid.
 * Columns are named like ps(1)'s where one exists (ps-columns.ts). From the bpf source the iterator's records
 * are rendered as they are (ps-records.ts); other sources, the groups column and --stdout go through Task
 * records.
 */
import { Command, Option } from './commander.js';
import { action, BufferedWriter, writeAllSync } from './common.js';
import { addStreamOptions, streamToStdout, type StreamCliOptions } from './stream.js';
import { UsageError } from '../errors.js';
import type { SourceName, Task } from '../collector/task.js';
import type { Source } from '../collector/sources/source.js';
import { BpfSource } from '../collector/sources/bpf/bpf.js';
import type { RecordView } from '../collector/sources/bpf/record.js';
import { DEFAULT_FIELDS, DEFAULT_THREAD_FIELDS, COLUMNS, parseFields, renderPs, sortTasks } from './ps-columns.js';
import { compileRecordColumns, renderRecords, sortRecords } from './ps-records.js';

export { COLUMNS, DEFAULT_FIELDS, DEFAULT_THREAD_FIELDS, cellText, parseFields, renderPs, sortTasks } from './ps-columns.js';

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
async function psSource(name: SourceName | 'auto', root: number | undefined): Promise<Source> {
  if (name === 'bpf' || name === 'auto') {
    const pinned = BpfSource.openPinned();
    if (pinned) return pinned;
  }
  const { openSource } = await import('../collector/open-source.js');
  return openSource(name, { root });
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
      const source = await psSource(opts.source, root);
      const compiled = !opts.stdout && source instanceof BpfSource ? compileRecordColumns(cols) : undefined;
      if (compiled && source instanceof BpfSource) {
        // BPF records are rendered as they are, without decoding them into Task records
        let records: { view: RecordView; rows: number[] };
        try {
          records = source.records({ root, threads });
        } finally {
          source.close();
        }
        renderRecords(records.view, sortRecords(records.view, records.rows), compiled, opts.headers,
          (bytes, length) => writeAllSync(1, bytes.subarray(0, length)));
        return;
      }
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
