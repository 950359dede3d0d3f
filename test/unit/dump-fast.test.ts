/**
 * The fast paths of dump and show (cli/dump-run.ts fastDump, cli/show-run.ts fastShow) read the command line
 * as commander does: for every command line they accept, the same options as commander's parse of the
 * registered command; every command line commander refuses, or answers with help, they leave to commander
 * (undefined).
 */
import { describe, expect, it } from 'vitest';
import { Command } from '../../src/cli/commander.js';
import { register } from '../../src/cli/dump.js';
import { fastDump } from '../../src/cli/dump-run.js';
import { register as registerShow } from '../../src/cli/show.js';
import { fastShow } from '../../src/cli/show-run.js';
import { prng } from '../helpers/random.js';

/** commander's options for `tdcollect dump ARGS`, or 'refused' (an error, help) */
async function viaCommander(args: string[]): Promise<Record<string, unknown> | 'refused'> {
  const program = new Command().name('tdcollect').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  const cmd = program.commands.find((c) => c.name() === 'dump')!;
  cmd.exitOverride();
  let got: Record<string, unknown> | undefined;
  cmd.action((opts: Record<string, unknown>) => { got = opts; });
  try {
    await program.parseAsync(['node', 'tdcollect', 'dump', ...args]);
  } catch {
    return 'refused';
  }
  if (!got) return 'refused';
  return Object.fromEntries(Object.entries(got).filter(([, v]) => v !== undefined));
}

const clean = (o: object | undefined) => o && Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

describe('fastDump', () => {
  const fixed: string[][] = [
    ['--root', '12', '-o', 'out'], ['-r', '12', '--output', 'out', '--stats', '-q'], ['--root=12', '--output=a/b'],
    ['-r', '12', '--stdout', '--format', 'json'], ['-r', '12', '-o', 'x', '-s', 'procfs', '-f', 'cgroup=/sys/fs/cgroup/a'],
    ['-r', '12', '-o', 'x', '--force', '--force'], ['-r', '1', '-r', '2', '-o', 'x'], ['-r', '12', '-o', 'x', '--source=bpf'],
    // refused or help: left to commander
    [], ['-o', 'x'], ['-r'], ['-r', '12', '-s', 'nope'], ['-r', '12', '--format', 'xml'], ['--help'], ['-h'],
    ['-r', '12', 'extra'], ['-r', '12', '--bogus'], ['-r', '12', '--stats=yes'], ['-r12'], ['-qr', '12'],
    ['-r', '-5'], ['--root='], ['-r', '12', '--'],
  ];

  it('agrees with commander on fixed command lines', async () => {
    let accepted = 0;
    for (const args of fixed) {
      const fast = clean(fastDump(args));
      const slow = await viaCommander(args);
      if (fast) {
        accepted++;
        expect(slow, args.join(' ')).toEqual(fast);
      } else {
        // commander may accept forms the fast path leaves to it (-r12, -qr 12); what it must never do is
        // accept something different from what the fast path would have given
        expect(fast, args.join(' ')).toBeUndefined();
      }
    }
    expect(accepted).toBe(8);
    for (const args of [[], ['-o', 'x'], ['-r'], ['-r', '12', '-s', 'nope'], ['--help'], ['-r', '12', '--bogus']]) {
      expect(await viaCommander(args), args.join(' ')).toBe('refused');
    }
  });

  it('agrees with commander on random command lines', async () => {
    const rnd = prng(0xd0a1);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const valued: [string[], string[]][] = [
      [['-r', '--root'], ['12', '4711', 'abc', '-3']], [['-o', '--output'], ['out', 'a/b', '--x']],
      [['-s', '--source'], ['auto', 'bpf', 'procfs', 'taskdiag', 'nope']], [['-f', '--freeze'], ['ptrace', 'none', 'cgroup=/x']],
      [['--format'], ['json', 'msgpack', 'xml']],
    ];
    const flags = ['--force', '-q', '--quiet', '--stats', '--stdout', '--bogus', '-x'];
    let accepted = 0;
    for (let i = 0; i < 1500; i++) {
      const args: string[] = rnd() < 0.85 ? ['-r', String(1 + Math.floor(rnd() * 1000))] : [];
      for (let k = Math.floor(rnd() * 5); k > 0; k--) {
        if (rnd() < 0.4) { args.push(pick(flags)); continue; }
        const [names, values] = pick(valued);
        const name = pick(names);
        const value = pick(values);
        if (name.startsWith('--') && rnd() < 0.4) args.push(`${name}=${value}`);
        else args.push(name, value);
      }
      const fast = clean(fastDump(args));
      if (!fast) continue;
      accepted++;
      expect(await viaCommander(args), args.join(' ')).toEqual(fast);
    }
    expect(accepted).toBeGreaterThan(200);
  });
});

/** commander's [set, options] for `tdcollect show ARGS`, or 'refused' */
async function showViaCommander(args: string[]): Promise<[string, Record<string, unknown>] | 'refused'> {
  const program = new Command().name('tdcollect').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerShow(program);
  const cmd = program.commands.find((c) => c.name() === 'show')!;
  cmd.exitOverride();
  let got: [string, Record<string, unknown>] | undefined;
  cmd.action((path: string, opts: Record<string, unknown>) => { got = [path, { ...opts }]; });
  try {
    await program.parseAsync(['node', 'tdcollect', 'show', ...args]);
  } catch {
    return 'refused';
  }
  return got ?? 'refused';
}

describe('fastShow', () => {
  it('agrees with commander on random command lines, and leaves the rest to it', async () => {
    const rnd = prng(0x5e0);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const words = ['img', 'other', '--json', '--no-verify', '--pid-view', 'root', 'collector', 'nope', '--pid-view=root',
      '--pid-view=collector', '--pid-view=x', '--bogus', '-j', '--'];
    let accepted = 0;
    for (let i = 0; i < 1500; i++) {
      const args = Array.from({ length: Math.floor(rnd() * 5) }, () => pick(words));
      const fast = fastShow(args);
      if (!fast) continue;
      accepted++;
      expect(await showViaCommander(args), args.join(' ')).toEqual([fast.path, fast.opts]);
    }
    expect(accepted).toBeGreaterThan(100);
    for (const args of [[], ['--help'], ['a', 'b'], ['img', '--pid-view', 'nope'], ['img', '--bogus']]) {
      expect(fastShow(args), args.join(' ')).toBeUndefined();
      expect(await showViaCommander(args), args.join(' ')).toBe('refused');
    }
  });
});
