/**
 * Operator comforts: a progress line on stderr (only when stderr is a terminal, never with --quiet) and
 * the `--stats` report of a dump (phase timings, task counts, syscall / round-trip counts), in the spirit
 * of CRIU's stats-dump.
 *
 *   const progress = new Progress({ quiet: opts.quiet });
 *   const snap = await collect({ root, onPhase: progress.onPhase });
 *   progress.phase('writing', snap.tasks.length);  ...  progress.update(n);
 *   progress.done();
 *   if (opts.stats) process.stderr.write(formatStats(snap.info));
 */
import type { DumpInfo } from '../collector/task.js';
import { now } from '../sys/clock.js';

export interface ProgressOptions {
  /** --quiet: never draw */
  quiet?: boolean;
  /** where to draw (default process.stderr); drawing happens only if it is a TTY */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /**
   * whether the stream is a terminal, when the caller knows it without the stream (process.stderr is
   * made on first use, and for a terminal that loads Node's tty, net and stream modules: about 5 ms; with
   * this given, a command that ends before the first draw never makes it)
   */
  isTTY?: boolean;
  /** draw even if the stream is not a TTY (tests) */
  force?: boolean;
  /** minimum ms between redraws (default 100) */
  interval?: number;
  /** ms from the first phase to the first draw (default: interval): a short command draws nothing */
  delay?: number;
}

const PHASE_LABEL: Record<string, string> = { freeze: 'freezing', collect: 'collecting', thaw: 'thawing', write: 'writing' };
const BAR = 24;

/** A one-line progress display: "[#####-------------------]  collecting  120/500  0.4s". */
export class Progress {
  readonly enabled: boolean;
  private readonly stream: ProgressOptions['stream'];
  private readonly interval: number;
  private readonly delay: number;
  private begun = -1;
  private label = '';
  private total: number | undefined;
  private current = 0;
  private started = 0;
  private lastDraw = 0;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;

  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream;
    this.enabled = !opts.quiet && (opts.force || (opts.isTTY ?? this.out.isTTY) === true);
    this.interval = opts.interval ?? 100;
    this.delay = opts.delay ?? this.interval;
  }

  private get out(): NonNullable<ProgressOptions['stream']> {
    return this.stream ?? process.stderr;
  }

  /** Start a phase; `total` makes a bar, without it the line shows a moving marker and the elapsed time. */
  phase(label: string, total?: number): void {
    if (!this.enabled) return;
    this.label = PHASE_LABEL[label] ?? label;
    this.total = total;
    this.current = 0;
    this.started = now();
    if (this.begun < 0) this.begun = this.started;
    this.draw(true);
    if (!this.timer) {
      this.timer = setInterval(() => this.draw(false), this.interval);
      this.timer.unref();
    }
  }

  /** Progress within the current phase. */
  update(current: number, total?: number): void {
    if (!this.enabled) return;
    this.current = current;
    if (total !== undefined) this.total = total;
    this.draw(false);
  }

  /** For collect({ onPhase }). */
  readonly onPhase = (phase: string, detail?: string): void => {
    this.phase(detail ? `${PHASE_LABEL[phase] ?? phase} ${detail}` : phase);
  };

  /** Erase the line and stop redrawing. */
  done(): void {
    if (this.timer) { clearInterval(this.timer); this.timer = undefined; }
    if (this.enabled && this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  /** The text of the line (without the carriage return and erase). */
  line(): string {
    const secs = ((now() - this.started) / 1000).toFixed(1);
    let bar: string;
    let count = '';
    if (this.total !== undefined && this.total > 0) {
      const filled = Math.min(BAR, Math.round((this.current / this.total) * BAR));
      bar = '#'.repeat(filled) + '-'.repeat(BAR - filled);
      count = `  ${this.current}/${this.total}`;
    } else {
      const pos = this.tick % (BAR - 3);
      bar = ' '.repeat(pos) + '<=>' + ' '.repeat(BAR - 3 - pos);
    }
    return `[${bar}]  ${this.label}${count}  ${secs}s`;
  }

  private draw(force: boolean): void {
    const t = now();
    if (t - this.begun < this.delay) return;
    if (!force && t - this.lastDraw < this.interval) return;
    this.lastDraw = t;
    this.tick++;
    let text = this.line();
    const cols = this.out.columns;
    if (cols && text.length >= cols) text = text.slice(0, cols - 1);
    this.out.write(`\r\x1b[K${text}`);
    this.drawn = true;
  }
}

function ms(v: number | undefined): string {
  return v === undefined ? 'n/a' : `${v.toFixed(3)} ms`;
}

/**
 * The `--stats` report (written to stderr by the dump command, so a --stdout stream stays clean):
 *
 *   Dump statistics (tdcollect 0.1.0)
 *     source:           procfs
 *     freeze method:    ptrace
 *     freezing time:    1.234 ms
 *     collecting time:  5.678 ms
 *     writing time:     3.210 ms
 *     thawing time:     0.456 ms
 *     total time:       10.578 ms
 *     processes:        12
 *     threads:          30
 *     syscalls:         123
 *     round trips:      4
 *     fields missing:   securebits, seccomp
 */
export function formatStats(info: DumpInfo): string {
  const t = info.timings ?? {};
  const parts = [t.freeze, t.collect, t.write, t.thaw].filter((x): x is number => x !== undefined);
  const total = parts.length ? parts.reduce((a, b) => a + b, 0) : undefined;
  const rows: [string, string][] = [
    ['source', (info.source ?? 'not recorded') + (info.sourceChoice ? ` (auto: ${info.sourceChoice})` : '')],
    ['freeze method', (info.freeze ?? 'not recorded') + (info.cgroup ? ` (${info.cgroup})` : '')],
    ['freezing time', ms(t.freeze)],
    ['collecting time', ms(t.collect)],
    ['writing time', ms(t.write)],
    ['thawing time', ms(t.thaw)],
    ['total time', ms(total)],
    ['processes', String(info.processes)],
    ['threads', String(info.threads)],
    ['syscalls', info.syscalls === undefined ? 'n/a' : String(info.syscalls)],
    ['round trips', info.roundTrips === undefined ? 'n/a' : String(info.roundTrips)],
  ];
  if (info.missing?.length) rows.push(['fields missing', info.missing.join(', ')]);
  const w = Math.max(...rows.map(([k]) => k.length)) + 3;
  return `Dump statistics (${info.tool ?? 'tool not recorded'})\n` + rows.map(([k, v]) => `  ${(k + ':').padEnd(w)}${v}`).join('\n') + '\n';
}
