/**
 * `tdcollect dump` end to end through the CLI, and its bad-input paths: each one line on stderr, a
 * documented exit code, and nothing left on disk (no target, no temporary directory beside it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { EXIT } from '../../src/errors.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'tdcollect.js');

function cli(args: string[], opts: { uid?: number } = {}): { status: number | null; stdout: string; stderr: string } {
  const argv = opts.uid === undefined
    ? [process.execPath, BIN, ...args]
    : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', '--inh-caps=-all', process.execPath, BIN, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr starting with "tdcollect: ", containing every fragment. */
function expectOneLine(stderr: string, ...fragments: string[]): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0].startsWith('tdcollect: '), lines[0]).toBe(true);
  for (const f of fragments) expect(lines[0]).toContain(f);
}

/** Nothing in `parent` but what was there before. */
function expectNothingLeft(parent: string, before: string[]): void {
  expect(readdirSync(parent).sort()).toEqual([...before].sort());
}

/** A kernel thread: PF_KTHREAD (0x00200000) in stat field 9. */
function kernelThread(): number {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
      if (flags & 0x00200000) return Number(name);
    } catch { /* gone */ }
  }
  throw new Error('no kernel thread visible in /proc');
}

/** A pid that does not exist now: a child that has been reaped. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  const pid = Number(r.stdout.toString().trim());
  expect(existsSync(`/proc/${pid}`)).toBe(false);
  return pid;
}

let tree: Tree;
let work: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tdcollect-cli-'));
  tree = await spawnTree({ procs: 3, threads: 2, all: true });
});
afterAll(async () => {
  await killAllTrees();
  rmSync(work, { recursive: true, force: true });
});

describe('dump end to end', () => {
  it('dumps a real tree with the defaults (ptrace, auto) and leaves it as it was; show and crit read it', () => {
    const stateOf = (pid: number) => {
      const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    };
    const before = new Map(tree.pids.map((p) => [p, stateOf(p)]));
    const dir = join(work, 'img');
    const r = cli(['dump', '--root', String(tree.root), '-o', dir, '--stats', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('Dump statistics');
    expect(r.stderr).toMatch(new RegExp(`processes:\\s+${tree.pids.length}\\n`));
    expect(r.stderr).toMatch(new RegExp(`threads:\\s+${tree.tids.length}\\n`));
    // the tree is as it was: same states (the stopped task still T, nothing left in t), no tracer
    for (const [pid, st] of before) {
      expect(stateOf(pid), `state of ${pid}`).toBe(st);
      expect(readFileSync(`/proc/${pid}/status`, 'latin1')).toContain('TracerPid:\t0\n');
    }
    const files = readdirSync(dir).sort();
    expect(files).toContain('inventory.img');
    expect(files).toContain('pstree.img');
    expect(files).toContain('tasks.img');
    for (const tid of tree.tids) expect(files).toContain(`core-${tid}.img`);
    const show = cli(['show', dir]);
    expect(show.status, show.stderr).toBe(0);
    for (const pid of tree.pids) expect(show.stdout).toContain(String(pid));
    const json = JSON.parse(cli(['show', '--json', dir]).stdout);
    expect(json.version).toBe(2);
    const crit = spawnSync('/usr/bin/crit', ['x', dir, 'ps'], { encoding: 'utf8' });
    expect(crit.status, crit.stderr).toBe(0);
    for (const pid of tree.pids) expect(crit.stdout).toContain(String(pid));
  });
});

describe('a large dump (a worker thread writes while the tree is thawed)', () => {
  // above WORKER_MIN_FILES image files, so the core images are written by the worker thread and the main one
  const PROCS = 2100;
  let big: Tree;
  beforeAll(async () => { big = await spawnTree({ procs: PROCS }); }, 120_000);

  const thawed = (t: Tree) => {
    for (const pid of t.pids) {
      const st = readFileSync(`/proc/${pid}/status`, 'latin1');
      expect(st, `pid ${pid}`).toContain('TracerPid:\t0\n');
      expect(st, `pid ${pid}`).not.toMatch(/^State:\s+t/m);
    }
  };

  it('every task is in the images, each core image decodes to its task, the tree is thawed', () => {
    const dir = join(work, 'big');
    const r = cli(['dump', '--root', String(big.root), '-o', dir, '--stats', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`processes:\\s+${big.pids.length}\\n`));
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(big.tids.length + 3);
    for (const tid of big.tids) expect(files).toContain(`core-${tid}.img`);
    // show verifies every CRIU image against tasks.img (it fails on a short or mismatched core)
    const show = spawnSync(process.execPath, [BIN, 'show', '--json', dir], { encoding: 'utf8', maxBuffer: 256 << 20 });
    expect(show.status, show.stderr).toBe(0);
    const json = JSON.parse(show.stdout);
    expect(json.tasks.map((t: { pid: number }) => t.pid).sort((a: number, b: number) => a - b))
      .toEqual([...big.tids].sort((a, b) => a - b));
    const crit = spawnSync('/usr/bin/crit', ['x', dir, 'ps'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(crit.status, crit.stderr).toBe(0);
    const critPids = crit.stdout.split('\n').slice(1).filter((l) => l.trim() !== '').map((l) => Number(l.trim().split(/\s+/)[0]));
    expect(critPids.sort((a, b) => a - b)).toEqual([...big.pids].sort((a, b) => a - b));
    expect(readdirSync(work).filter((n) => n.startsWith('.big.'))).toEqual([]);
    thawed(big);
  });

  it('a freeze that fails after the writer was started early (a large tree): exit 7, the writer gone, nothing left', async () => {
    // the root's children list shows a large dump before the freeze, so the temporary directory and the worker
    // exist while the tree is frozen; a task traced by someone else makes the freeze fail
    const victim = big.pids[big.pids.length - 1];
    const { spawn } = await import('node:child_process');
    const strace = spawn('strace', ['-p', String(victim), '-o', '/dev/null'], { stdio: 'ignore' });
    try {
      const traced = () => /TracerPid:\t(\d+)/.exec(readFileSync(`/proc/${victim}/status`, 'latin1'))?.[1];
      for (let i = 0; i < 1000 && traced() === '0'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(traced()).toBe(String(strace.pid));
      const parent = mkdtempSync(join(work, 'early-'));
      const r = cli(['dump', '--root', String(big.root), '-o', join(parent, 'out'), '--quiet']);
      expect(r.status, r.stderr).toBe(EXIT.FREEZE);
      expectOneLine(r.stderr, `task ${victim}`);
      expect(readdirSync(parent)).toEqual([]);
    } finally {
      strace.kill('SIGKILL');
      await new Promise((r) => strace.once('exit', r));
    }
    thawed(big);
  });

  it('an output that fills up while the worker writes: one line naming the file and ENOSPC, exit 5, nothing left, tree thawed', () => {
    const mnt = mkdtempSync(join(work, 'full-'));
    // room for the directory and a few hundred core images, not for 2,100
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=755', `tdc-test-${process.pid}`, mnt]);
    try {
      const r = cli(['dump', '--root', String(big.root), '-o', join(mnt, 'out'), '--quiet']);
      expect(r.status, r.stderr).toBe(EXIT.OUTPUT);
      expectOneLine(r.stderr, `${mnt}/.out.tmp-`, ': ENOSPC');
      expect(readdirSync(mnt)).toEqual([]);
      thawed(big);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('bad input: one line, a documented exit code, nothing on disk', () => {
  it.each([['0'], ['-5'], ['abc'], ['12x'], ['']])('--root %j is a usage error (exit 2)', (root) => {
    const before = readdirSync(work);
    const r = cli(['dump', '--root', root, '-o', join(work, 'bad-pid')]);
    expect(r.status).toBe(EXIT.USAGE);
    expectOneLine(r.stderr);
    expectNothingLeft(work, before);
  });

  it('no such pid: exit 3, names the pid', () => {
    const pid = deadPid();
    const before = readdirSync(work);
    const r = cli(['dump', '--root', String(pid), '-o', join(work, 'gone')]);
    expect(r.status).toBe(EXIT.NO_PROCESS);
    expectOneLine(r.stderr, String(pid));
    expectNothingLeft(work, before);
  });

  it('a kernel thread as root: exit 3', () => {
    const k = kernelThread();
    const before = readdirSync(work);
    const r = cli(['dump', '--root', String(k), '-o', join(work, 'kthread')]);
    expect(r.status).toBe(EXIT.NO_PROCESS);
    expectOneLine(r.stderr, String(k), 'kernel thread');
    expectNothingLeft(work, before);
  });

  it('a thread id as root: exit 3, names the process', () => {
    const proc = tree.procs.get(tree.root)!;
    const tid = [...tree.threads.values()].find((t) => !t.leader)!.tid;
    const tgid = [...tree.threads.values()].find((t) => t.tid === tid)!.tgid;
    expect(proc).toBeDefined();
    const r = cli(['dump', '--root', String(tid), '-o', join(work, 'thread')]);
    expect(r.status).toBe(EXIT.NO_PROCESS);
    expectOneLine(r.stderr, String(tid), String(tgid));
  });

  it('/proc entries we may not read: exit 4 naming CAP_SYS_PTRACE and the pid', () => {
    const out = join(work, 'nobody');
    mkdirSync(out, { mode: 0o777 });
    rmSync(out, { recursive: true });
    const r = cli(['dump', '--root', String(tree.root), '-o', '/tmp/tdcollect-nobody-never', '--source', 'procfs', '--freeze', 'none'], { uid: 65534 });
    expect(r.status).toBe(EXIT.PERMISSION);
    expectOneLine(r.stderr, 'CAP_SYS_PTRACE');
    expect(r.stderr).toMatch(/\bpid \d+|\d+/);
    expect(existsSync('/tmp/tdcollect-nobody-never')).toBe(false);
  });

  it('an output path that cannot be written: exit 5, names the path, before anything is frozen', () => {
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    const before = readdirSync(work);
    // --source taskdiag would fail with exit 6 if the output were not refused first
    const r = cli(['dump', '--root', String(tree.root), '-o', join(file, 'img'), '--source', 'taskdiag']);
    expect(r.status).toBe(EXIT.OUTPUT);
    expectOneLine(r.stderr, join(file, 'img'));
    expectNothingLeft(work, before);
    const ro = cli(['dump', '--root', String(tree.root), '-o', '/proc/tdcollect-img', '--source', 'taskdiag']);
    expect(ro.status).toBe(EXIT.OUTPUT);
    expectOneLine(ro.stderr, '/proc/tdcollect-img');
  });

  it('a non-empty target is refused without --force (exit 5) and replaced whole with it', () => {
    const dir = join(work, 'full');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep'), 'old');
    const r = cli(['dump', '--root', String(tree.root), '-o', dir, '--quiet']);
    expect(r.status).toBe(EXIT.OUTPUT);
    expectOneLine(r.stderr, dir, '--force');
    expect(readdirSync(dir)).toEqual(['keep']);
    const f = cli(['dump', '--root', String(tree.root), '-o', dir, '--force', '--quiet']);
    expect(f.status, f.stderr).toBe(0);
    expect(readdirSync(dir)).not.toContain('keep');
    expect(readdirSync(dir)).toContain('tasks.img');
    expect(readdirSync(work).filter((n) => n.startsWith('.full.'))).toEqual([]);
  });

  it('--source taskdiag where the kernel has no TASKDIAG family: exit 6, says what to do', () => {
    const r = cli(['dump', '--root', String(tree.root), '-o', join(work, 'td'), '--source', 'taskdiag']);
    expect(r.status).toBe(EXIT.UNAVAILABLE);
    expectOneLine(r.stderr, 'TASKDIAG');
    expect(existsSync(join(work, 'td'))).toBe(false);
  });
});
