/** manual pages (man-page order from one source), the progress line, --stats. */
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { manual, manualMarkdown, renderManual, wrap } from '../../src/cli/manual.js';
import { formatStats, Progress } from '../../src/cli/progress.js';
import { register as registerDiff } from '../../src/cli/diff.js';

function program(): Command {
  const p = new Command().name('tdcollect').exitOverride();
  registerDiff(p);
  const show = p.command('show').argument('<dir>', 'image directory').option('--json', 'JSON output');
  manual(show, {
    summary: 'print a snapshot',
    description: ['Prints the tasks of an image directory.'],
    exitStatus: [[0, 'printed'], [2, 'unreadable image']],
    examples: [['tdcollect show dump/', 'print a dump']],
  });
  return p;
}

describe('manual pages', () => {
  it('sections come in man-page order, OPTIONS from the registered options', () => {
    const diff = program().commands.find((c) => c.name() === 'diff')!;
    const text = renderManual(diff, { width: 80 });
    const order = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO']
      .map((s) => text.indexOf(`\n${s}\n`) >= 0 ? text.indexOf(`\n${s}\n`) : text.indexOf(`${s}\n`));
    expect(order.every((x) => x >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(text.startsWith('NAME\n    tdcollect-diff - compare two snapshots task by task\n')).toBe(true);
    expect(text).toContain('SYNOPSIS\n    tdcollect diff [options] <A> [B]\n');
    expect(text).toContain('    -i, --ignore <fields>\n        do not compare these fields');
    expect(text).toContain('    --live\n');
    expect(text).toContain('    0   the snapshots are equal');
    expect(text).toContain('    2   trouble:');
    for (const l of text.split('\n')) expect(l.length, l).toBeLessThanOrEqual(80);
  });

  it('--help and `help CMD` print the page', () => {
    for (const argv of [['diff', '--help'], ['help', 'diff'], ['show', '--help']]) {
      const p = program();
      let out = '';
      p.configureOutput({ writeOut: (s) => { out += s; } });
      for (const c of p.commands) c.configureOutput({ writeOut: (s) => { out += s; } });
      expect(() => p.parse(argv, { from: 'user' })).toThrow();
      expect(out.startsWith('NAME\n'), argv.join(' ')).toBe(true);
      expect(out).toContain('EXIT STATUS\n');
    }
  });

  it('markdown for the docs from the same pages', () => {
    const md = manualMarkdown(program());
    expect(md).toContain('### tdcollect diff\n\n#### NAME\n\ntdcollect-diff — compare two snapshots task by task\n');
    expect(md).toContain('### tdcollect show\n');
    expect(md).toContain('- `--json` — JSON output');
    expect(md).toContain('- `2` — unreadable image');
    expect(md).toContain('print a dump:\n\n```\ntdcollect show dump/\n```');
  });

  it('wraps on words', () => {
    expect(wrap('aa bb cc dd', 9, '  ')).toEqual(['  aa bb', '  cc dd']);
  });
});

function capture(isTTY: boolean): { stream: Writable & { isTTY: boolean; columns: number }; text: () => string } {
  let s = '';
  const w = new Writable({ write(c, _e, cb) { s += String(c); cb(); } }) as Writable & { isTTY: boolean; columns: number };
  w.isTTY = isTTY;
  w.columns = 100;
  return { stream: w, text: () => s };
}

describe('progress', () => {
  it('draws on a TTY only, never with --quiet, and erases its line', () => {
    const tty = capture(true);
    const p = new Progress({ stream: tty.stream, interval: 0 });
    expect(p.enabled).toBe(true);
    p.phase('write', 200);
    p.update(100);
    expect(p.line()).toMatch(/^\[#{12}-{12}\] {2}writing {2}100\/200 {2}\d+\.\ds$/);
    p.onPhase('collect');
    expect(p.line()).toMatch(/^\[ *<=> *\] {2}collecting {2}\d+\.\ds$/);
    p.done();
    expect(tty.text()).toContain('\r\x1b[K[############------------]  writing  100/200');
    expect(tty.text().endsWith('\r\x1b[K')).toBe(true);

    const pipe = capture(false);
    const q = new Progress({ stream: pipe.stream });
    q.phase('freeze'); q.update(1, 2); q.done();
    const quiet = capture(true);
    const r = new Progress({ stream: quiet.stream, quiet: true });
    r.phase('freeze'); r.update(1, 2); r.done();
    expect(pipe.text()).toBe('');
    expect(quiet.text()).toBe('');
  });
});

describe('formatStats', () => {
  it('phase timings, counts, syscalls and round trips', () => {
    const text = formatStats({
      formatVersion: 1, tool: 'tdcollect 0.1.0', source: 'taskdiag', freeze: 'ptrace', live: false, kernel: 'k',
      hostname: 'h', root: 1, createdAt: 0, processes: 12, threads: 30,
      timings: { freeze: 1.5, collect: 2.25, write: 3, thaw: 0.25 }, syscalls: 123, roundTrips: 4, missing: ['securebits'],
    });
    expect(text).toBe([
      'Dump statistics (tdcollect 0.1.0)',
      '  source:           taskdiag',
      '  freeze method:    ptrace',
      '  freezing time:    1.500 ms',
      '  collecting time:  2.250 ms',
      '  writing time:     3.000 ms',
      '  thawing time:     0.250 ms',
      '  total time:       7.000 ms',
      '  processes:        12',
      '  threads:          30',
      '  syscalls:         123',
      '  round trips:      4',
      '  fields missing:   securebits',
      '',
    ].join('\n'));
    const none = formatStats({
      formatVersion: 1, tool: 't', source: 'procfs', freeze: 'none', live: true, kernel: 'k', hostname: 'h', root: 1,
      createdAt: 0, processes: 1, threads: 1, timings: {}, missing: [],
    });
    expect(none).toContain('  writing time:     n/a\n');
    expect(none).toContain('  syscalls:         n/a\n');
  });
});
