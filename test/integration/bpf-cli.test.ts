/**
 * tdcollect ps and tdcollect bpf pin/unpin/status as a user runs them (node bin/tdcollect.js, built dist/):
 * ps output against ps(1) on the same tree, exit codes, privileges dropped with setpriv, and a pinned
 * iterator read by an unprivileged user.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTree, killAllTrees, type Tree } from '../helpers/tree.js';
import { EXIT } from '../../src/errors.js';
import { RECORD_VERSION } from '../../src/collector/sources/bpf/record.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin/tdcollect.js');
const PIN_DIR = `/sys/fs/bpf/tdcollect-clitest-${process.pid}`;
const PIN = `${PIN_DIR}/tasks`;
const DROP_BPF = ['--inh-caps=-all', '--bounding-set=-bpf,-perfmon,-sys_admin'];
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[], opts: { env?: Record<string, string>; setpriv?: string[] } = {}): Run {
  const env = { ...process.env, TDCOLLECT_BPF_PIN: 'none', ...opts.env };
  const cmd = opts.setpriv ? 'setpriv' : process.execPath;
  const argv = opts.setpriv ? [...opts.setpriv, process.execPath, BIN, ...args] : [BIN, ...args];
  const r = spawnSync(cmd, argv, { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let tree: Tree;
beforeAll(async () => {
  tree = await spawnTree({ procs: 4, threads: 2, all: true });
});
afterAll(async () => {
  run(['bpf', 'unpin', '--path', PIN]);
  await killAllTrees();
});

/** ps(1) for the tree's processes (or threads), one array of columns per line. */
function psLines(threads: boolean): string[][] {
  const fields = threads ? 'pid=,lwp=,ppid=,pgid=,sid=,s=,uid=,gid=,comm=' : 'pid=,ppid=,pgid=,sid=,s=,uid=,gid=,comm=';
  const r = spawnSync('ps', [...(threads ? ['-L'] : []), '-p', tree.pids.join(','), '-o', fields], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').map((l) => l.trim().replace(/ <defunct>$/, '').split(/\s+/));
}
/** our ps lines, split the same way (comm has no spaces except in the pgid role, which is joined back) */
const split = (out: string) => out.trim().split('\n').map((l) => l.trim().split(/\s+/));

describe('tdcollect ps', () => {
  it('renders records (generated code) and decoded tasks (no code generation) the same, every column', () => {
    const fields = 'pid,tid,ppid,pgid,sid,tpid,stat,comm,uid,ruid,euid,suid,fsuid,gid,rgid,egid,sgid,fsgid,capinh,' +
      'capprm,capeff,capbnd,capamb,securebits,nnp,seccomp,start,personality,flags,sigblk,ni,pri,rtprio,cls,exit,robust';
    const args = [BIN, 'ps', '-s', 'bpf', '-r', String(tree.root), '-T', '-o', fields];
    const env = { ...process.env, TDCOLLECT_BPF_PIN: 'none' };
    const records = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    const tasks = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', ...args], { env, encoding: 'utf8' });
    expect(records.stderr).toBe('');
    expect(tasks.stderr).toBe('');
    expect(records.stdout.split('\n')).toHaveLength(tree.tids.length + 2); // header, lines, final newline
    expect(records.stdout).toBe(tasks.stdout);
    // without code generation the record renderer is not available, so the second run took the Task path
    const probe = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', `
      const { compileRecordColumns } = await import(${JSON.stringify(join(ROOT, 'dist/cli/ps-records.js'))});
      const { parseFields } = await import(${JSON.stringify(join(ROOT, 'dist/cli/ps-columns.js'))});
      console.log(compileRecordColumns(parseFields(['pid'])) === undefined);`], { encoding: 'utf8' });
    expect(probe.stdout.trim()).toBe('true');
  });

  it('lists the subtree like ps(1) does, processes and threads', () => {
    const ours = run(['ps', '--source', 'bpf', '--root', String(tree.root), '-o', 'pid,ppid,pgid,sid,stat,uid,gid,comm', '--no-headers']);
    expect(ours.stderr).toBe('');
    expect(ours.code).toBe(0);
    expect(split(ours.stdout)).toEqual(psLines(false));
    const thr = run(['ps', '-s', 'bpf', '-r', String(tree.root), '-T', '-o', 'pid,tid,ppid,pgid,sid,stat,uid,gid,comm', '--no-headers']);
    expect(thr.code).toBe(0);
    expect(split(thr.stdout)).toEqual(psLines(true));
  });

  it('prints a header and the default columns; lists every task without --root', () => {
    const r = run(['ps', '--source', 'bpf']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0].trim().split(/\s+/)).toEqual(['PID', 'PPID', 'PGID', 'SID', 'S', 'UID', 'COMMAND']);
    const pids = new Set(lines.slice(1, -1).map((l) => Number(l.trim().split(/\s+/)[0])));
    for (const p of tree.pids) expect(pids.has(p)).toBe(true);
    expect(pids.has(tree.threads.get(tree.tids.find((t) => !tree.threads.get(t)!.leader)!)!.tid)).toBe(false);
  });

  it('shows credential and scheduling columns', () => {
    const creds = tree.one('creds');
    const r = run(['ps', '-s', 'bpf', '-r', String(creds), '-o', 'euid,fsgid,capeff,capamb,groups,nnp,seccomp,securebits', '--no-headers']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual([
      '1005', '1008', '00000000000000c0', '0000000000000420',
      Array.from({ length: 20 }, (_, i) => 2000 + i).join(','), '1', '2', '4',
    ]);
  });

  it('exit codes: unknown field 2, missing root 3', () => {
    const bad = run(['ps', '-s', 'bpf', '-o', 'pid,bogus']);
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.stderr).toMatch(/^tdcollect: unknown field 'bogus'/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const gone = run(['ps', '-s', 'bpf', '-r', '4194000']);
    expect(gone.code).toBe(EXIT.NO_PROCESS);
    expect(gone.stderr).toBe('tdcollect: no such process: 4194000\n');
  });
});

describe('without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN', () => {
  for (const [who, setpriv] of [['caps dropped', DROP_BPF], ['uid 65534', NOBODY]] as const) {
    it(`${who}: --source bpf fails with one line naming the capabilities, exit 4`, () => {
      const r = run(['ps', '--source', 'bpf'], { setpriv: [...setpriv] });
      expect(r.code).toBe(EXIT.PERMISSION);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^tdcollect: loading the BPF task iterator needs CAP_BPF and CAP_PERFMON \(or CAP_SYS_ADMIN\)/);
    });

    it(`${who}: the probe says no, and --source auto does not stop at bpf`, () => {
      const script = `import('${join(ROOT, 'dist/collector/sources/bpf/bpf.js')}').then(async (m) => console.log(JSON.stringify(await m.bpfFactory.probe())))`;
      const r = spawnSync('setpriv', [...setpriv, process.execPath, '-e', script], { encoding: 'utf8', env: { ...process.env, TDCOLLECT_BPF_PIN: 'none' } });
      expect(JSON.parse(r.stdout)).toEqual({ ok: false, reason: 'loading the BPF task iterator needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)' });
      const auto = run(['ps', '--source', 'auto', '-r', String(tree.root)], { setpriv: [...setpriv] });
      // bpf is skipped: whatever happens next is another source's doing (procfs may answer, or refuse a task
      // this user may not read), never the bpf load error
      expect(auto.stderr).not.toMatch(/^tdcollect: loading the BPF task iterator/);
      if (auto.code === 0) {
        expect(auto.stdout).toContain(`${tree.root}`);
      } else {
        expect(auto.stderr.trim().split('\n')).toHaveLength(1);
        if (auto.stderr.includes('no source works')) expect(auto.stderr).toContain('bpf: loading the BPF task iterator needs CAP_BPF');
      }
    });
  }
});

describe('tdcollect bpf pin / unpin / status', () => {
  it('pins, lets an unprivileged user read a 0644 pin, and unpins', () => {
    const pin = run(['bpf', 'pin', '--path', PIN, '--mode', '0644']);
    expect(pin.stderr).toBe('');
    expect(pin.code).toBe(0);
    expect(pin.stdout).toBe(`pinned ${PIN} (mode 0644)\n`);
    expect(statSync(PIN).mode & 0o777).toBe(0o644);
    const st = run(['bpf', 'status', '--path', PIN]);
    expect(st.stdout).toContain(`pin: ${PIN}: yes, readable`);
    // the pinned iterator needs no privilege: uid 65534 lists the tree through it
    const env = { TDCOLLECT_BPF_PIN: PIN };
    const nobody = run(['ps', '-s', 'bpf', '-r', String(tree.root), '-o', 'pid', '--no-headers'], { env, setpriv: [...NOBODY] });
    expect(nobody.stderr).toBe('');
    expect(nobody.code).toBe(0);
    expect(nobody.stdout.trim().split(/\s+/).map(Number)).toEqual([...tree.pids].sort((a, b) => a - b));
    // and so does a process without the capabilities, with --source auto
    const dropped = run(['ps', '-r', String(tree.root), '-o', 'pid', '--no-headers'], { env, setpriv: [...DROP_BPF] });
    expect(dropped.code).toBe(0);
    expect(dropped.stdout.trim().split(/\s+/).map(Number)).toEqual([...tree.pids].sort((a, b) => a - b));
    const un = run(['bpf', 'unpin', '--path', PIN]);
    expect(un.stdout).toBe(`unpinned ${PIN}\n`);
    expect(existsSync(PIN)).toBe(false);
    expect(existsSync(PIN_DIR)).toBe(false);
    expect(run(['bpf', 'unpin', '--path', PIN]).stdout).toBe(`nothing pinned at ${PIN}\n`);
  });

  it('status names a pin an earlier version left beside the current one', () => {
    const current = `${PIN_DIR}/tasks-v${RECORD_VERSION}`;
    const older = `${PIN_DIR}/tasks-v${RECORD_VERSION - 1}`;
    expect(run(['bpf', 'pin', '--path', current]).code).toBe(0);
    expect(run(['bpf', 'pin', '--path', older]).code).toBe(0);
    try {
      const st = run(['bpf', 'status', '--path', current]);
      expect(st.code).toBe(0);
      expect(st.stdout).toContain(`pin: ${current}: yes, readable\n`);
      expect(st.stdout).toContain(`older pin: ${older} (left by an earlier tdcollect, never read by this one; remove it with tdcollect bpf unpin -p ${older})\n`);
      expect(run(['bpf', 'unpin', '-p', older]).stdout).toBe(`unpinned ${older}\n`);
      expect(run(['bpf', 'status', '--path', current]).stdout).not.toContain('older pin');
    } finally {
      run(['bpf', 'unpin', '--path', older]);
      run(['bpf', 'unpin', '--path', current]);
    }
    expect(existsSync(PIN_DIR)).toBe(false);
  });

  it('a 0600 pin is not readable by uid 65534, who gets exit 4', () => {
    expect(run(['bpf', 'pin', '--path', PIN]).code).toBe(0);
    try {
      const r = run(['ps', '-s', 'bpf'], { env: { TDCOLLECT_BPF_PIN: PIN }, setpriv: [...NOBODY] });
      expect(r.code).toBe(EXIT.PERMISSION);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      expect(run(['bpf', 'unpin', '--path', PIN]).code).toBe(0);
    }
  });

  it('pin without the capabilities: exit 4, one line', () => {
    const r = run(['bpf', 'pin', '--path', PIN], { setpriv: [...DROP_BPF] });
    expect(r.code).toBe(EXIT.PERMISSION);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(PIN)).toBe(false);
  });
});
