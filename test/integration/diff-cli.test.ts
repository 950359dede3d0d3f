/**
 * `tdcollect diff` on real trees (test/fixtures/diffgen.c): dump, change the tree for real (kill a child,
 * re-exec a child under setpriv, reuse a pid with clone3 set_tid, add a thread), dump again, diff.
 * Expected values come from /proc read here, not from tdcollect.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDiffgen, type Diffgen } from '../helpers/diffgen.js';
import type { SnapshotDiff } from '../../src/image/diff.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** TDCOLLECT_ROOT: run another build's bin/ (default: this checkout, built by the global setup) */
const BIN = join(process.env.TDCOLLECT_ROOT ?? ROOT, 'bin', 'tdcollect.js');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

let work: string;
let n = 0;
function dump(root: number): string {
  const dir = join(work, `d${++n}`);
  const r = cli('dump', '-r', String(root), '-o', dir, '--freeze', 'none');
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return dir;
}

/** /proc/PID/status "Key:" line values (independent reading). */
function status(pid: number, key: string): string[] {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${key}:`))!;
  return line.slice(key.length + 1).trim().split(/\s+/);
}
/** start time, /proc/PID/stat field 22 */
function startTime(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
}

/** PF_* flags, /proc/PID/stat field 9 */
function flags(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[6]);
}

function json(a: string, b: string, ...extra: string[]): { code: number | null; d: SnapshotDiff } {
  const r = cli('diff', '--json', a, b, ...extra);
  expect(r.err).toBe('');
  return { code: r.code, d: JSON.parse(r.out) as SnapshotDiff };
}

let g: Diffgen;
/** the fixture's comm (its binary name, cut to 15 bytes), read from /proc */
let COMM: string;
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tdcollect-diff-'));
  g = await spawnDiffgen();
  COMM = readFileSync(`/proc/${g.root}/comm`, 'utf8').trimEnd();
});
afterAll(async () => {
  await g?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('tdcollect diff on real trees', () => {
  let kids: number[];
  let d1: string, d2: string, d3: string, d4: string;

  it('an unchanged tree: exit 0, no output', async () => {
    kids = [await g.spawn(), await g.spawn(), await g.spawn()];
    d1 = dump(g.root);
    d2 = dump(g.root);
    const r = cli('diff', d1, d2);
    expect(r).toEqual({ code: 0, out: '', err: '' });
    const j = json(d1, d2);
    expect(j.code).toBe(0);
    expect(j.d).toMatchObject({ version: 1, equal: true, processes: [], summary: { added: 0, removed: 0, changed: 0 } });
    expect(j.d.a.processes).toBe(4);
  });

  it('a killed child: exit 1, names the pid', async () => {
    const victim = kids[0];
    const st = startTime(victim);
    await g.kill(victim);
    expect(existsSync(`/proc/${victim}`)).toBe(false);
    d3 = dump(g.root);
    const r = cli('diff', d2, d3);
    expect(r.code).toBe(1);
    expect(r.err).toBe('');
    expect(r.out).toContain(`process ${victim} (${COMM}): removed (ppid ${g.root}, start ${st})\n`);
    expect(r.out).toContain('1 process differ: 1 removed, 0 added, 0 changed\n');
    const j = json(d2, d3);
    expect(j.code).toBe(1);
    expect(j.d.processes).toEqual([
      { status: 'removed', pid: victim, comm: COMM, startTime: st, ppid: g.root, threads: [victim] },
    ]);
  });

  it('a child re-executed under setpriv: exit 1, names uid and the capabilities', async () => {
    const child = kids[1];
    const st = startTime(child);
    await g.setpriv(child);
    // independent reading of what changed
    expect(status(child, 'Uid')).toEqual(['1000', '1000', '1000', '1000']);
    expect(status(child, 'Gid')).toEqual(['1000', '1000', '1000', '1000']);
    expect(status(child, 'CapEff')).toEqual(['0000000000000000']);
    expect(startTime(child)).toBe(st); // same process: exec keeps pid and start time
    d4 = dump(g.root);
    const r = cli('diff', d3, d4);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`process ${child} (sleep):\n`);
    expect(r.out).toContain(`  comm: "${COMM}" -> "sleep"\n`);
    // exec clears PF_FORKNOEXEC; the handler that ran execve left SIGUSR1 blocked
    expect(r.out).toContain('  sigBlk: +SIGUSR1\n');
    expect(r.out).toContain('  uid: 0 -> 1000\n');
    expect(r.out).toContain('  egid: 0 -> 1000\n');
    expect(r.out).toMatch(/ {2}capEff: -CAP_CHOWN -CAP_DAC_OVERRIDE .*-CAP_SYS_ADMIN .*-CAP_CHECKPOINT_RESTORE\n/);
    const j = json(d3, d4);
    expect(j.code).toBe(1);
    expect(j.d.processes).toHaveLength(1);
    const e = j.d.processes[0];
    expect(e).toMatchObject({ status: 'changed', pid: child, comm: 'sleep', startTime: st, matchedBy: 'pid+startTime' });
    const byField = new Map(e.changes!.map((c) => [c.field, c]));
    for (const f of ['uid', 'euid', 'suid', 'fsuid', 'gid', 'egid', 'sgid', 'fsgid']) {
      expect(byField.get(f), f).toEqual({ field: f, kind: 'value', old: 0, new: 1000 });
    }
    // --clear-groups: the child had the root's supplementary groups, now none
    expect(status(child, 'Groups').filter((x) => x !== '')).toEqual([]);
    const rootGroups = status(g.root, 'Groups').filter((x) => x !== '').map(Number);
    expect(byField.get('groups')).toEqual(rootGroups.length
      ? { field: 'groups', kind: 'groups', old: rootGroups, new: [], added: [], removed: rootGroups }
      : undefined);
    const capEff = byField.get('capEff')!;
    expect(capEff.kind).toBe('caps');
    expect(capEff.new).toEqual([0, 0]);
    expect(capEff.added).toEqual([]);
    // every capability root had in its effective set (CapEff of the root, read now) is reported removed
    const rootEff = BigInt(`0x${status(g.root, 'CapEff')[0]}`);
    const expected: string[] = [];
    for (let bit = 0; bit < 64; bit++) if ((rootEff >> BigInt(bit)) & 1n) expected.push(bit <= 40 ? '' : `bit ${bit}`);
    expect(capEff.removed).toHaveLength(expected.length);
    expect(capEff.removed).toContain('CAP_SYS_ADMIN');
    expect(capEff.removed).toContain('CAP_CHECKPOINT_RESTORE');
  });

  it('--ignore drops fields; an unknown field is a usage error (exit 2, one line)', () => {
    const j = json(d3, d4, '--ignore', 'creds', '--ignore', 'COMM');
    const e = j.d.processes[0];
    const fields = e.changes!.map((c) => c.field);
    for (const f of ['uid', 'gid', 'capEff', 'capPrm', 'groups', 'comm']) expect(fields).not.toContain(f);
    expect(j.d.ignored).toContain('uid');
    const r = cli('diff', d3, d4, '--ignore', 'state,colour');
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toHaveLength(2);
    expect(r.err).toMatch(/^tdcollect: unknown field for --ignore: colour /);
  });

  it('a reused pid (clone3 set_tid): one process removed, another added', async () => {
    const pid = kids[2];
    const before = startTime(pid);
    await g.kill(pid);
    // start times count clock ticks: let at least a few pass so the new process cannot share one
    await new Promise((r) => setTimeout(r, 100));
    const rootFlags = flags(g.root);
    expect(await g.spawnAt(pid)).toBe(pid);
    // clone3 with set_tid needs CAP_CHECKPOINT_RESTORE: the root may now carry PF_SUPERPRIV (0x100)
    const rootFlagsAfter = flags(g.root);
    const after = startTime(pid);
    expect(after).toBeGreaterThan(before);
    const d5 = dump(g.root);
    const j = json(d4, d5);
    expect(j.code).toBe(1);
    const rootEntry = rootFlags === rootFlagsAfter ? [] : [{
      status: 'changed', pid: g.root, comm: COMM, startTime: startTime(g.root), matchedBy: 'pid+startTime',
      changes: [{ field: 'flags', kind: 'value', old: rootFlags, new: rootFlagsAfter }],
      threadsAdded: [], threadsRemoved: [], threadChanges: [],
    }];
    expect(j.d.processes).toEqual([
      ...rootEntry,
      { status: 'removed', pid, comm: COMM, startTime: before, ppid: g.root, threads: [pid] },
      { status: 'added', pid, comm: COMM, startTime: after, ppid: g.root, threads: [pid] },
    ]);
    expect(j.d.summary).toEqual({ added: 1, removed: 1, changed: rootEntry.length });
    // and live: the tree is as d5 says
    const live = cli('diff', d5, '--live');
    expect(live).toEqual({ code: 0, out: '', err: '' });
  });

  it('a new thread shows under its process', async () => {
    const before = dump(g.root);
    const tid = await g.thread();
    expect(existsSync(`/proc/${g.root}/task/${tid}`)).toBe(true);
    const after = dump(g.root);
    const r = cli('diff', before, after);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`process ${g.root} (${COMM}):\n  threads added: ${tid} (${COMM})\n`);
    const j = json(before, after);
    expect(j.d.processes).toHaveLength(1);
    expect(j.d.processes[0].threadsAdded).toEqual([{ tid, comm: COMM, startTime: startTime(tid) }]);
  });

  it('--live after the tree is gone: every process removed', async () => {
    const last = dump(g.root);
    const pids = readdirSync(`/proc/${g.root}/task`).length;
    expect(pids).toBe(2);
    await g.close();
    const j = cli('diff', '--json', last, '--live');
    expect(j.code).toBe(1);
    const d = JSON.parse(j.out) as SnapshotDiff;
    expect(d.processes.every((e) => e.status === 'removed')).toBe(true);
    expect(d.processes.map((e) => e.pid)).toContain(g.root);
    expect(d.summary.removed).toBe(d.a.processes);
  });
});

describe('tdcollect diff trouble: exit 2 and one line', () => {
  it('a missing directory', () => {
    const missing = join(work, 'does-not-exist');
    const r = cli('diff', d(), missing);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toBe(`tdcollect: ${missing}: no such image directory or archive\n`);
  });

  it('a corrupt image: names the file and an offset', () => {
    const src = d();
    const bad = join(work, 'bad');
    mkdirSync(bad);
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(bad, f));
    truncateSync(join(bad, 'tasks.img'), Math.floor(statSync(join(bad, 'tasks.img')).size / 2));
    const r = cli('diff', src, bad);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toHaveLength(2);
    expect(r.err).toMatch(new RegExp(`^tdcollect: ${join(bad, 'tasks.img')}: offset \\d+: `));
  });

  it('a corrupt CRIU core image is trouble, unless --no-verify (which reads tasks.img only)', () => {
    const src = d();
    const bad = join(work, 'badcore');
    mkdirSync(bad);
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(bad, f));
    const core = readdirSync(bad).find((f) => f.startsWith('core-'))!;
    truncateSync(join(bad, core), 6);
    const r = cli('diff', src, bad);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^tdcollect: ${join(bad, core)}: offset \\d+: [^\\n]*\\n$`));
    expect(cli('diff', '--no-verify', src, bad)).toEqual({ code: 0, out: '', err: '' });
  });

  it('usage: two directories and --live, or none', () => {
    expect(cli('diff', d(), d(), '--live').code).toBe(2);
    expect(cli('diff', d()).code).toBe(2);
    expect(cli('diff', d(), d(), '--freeze', 'ptrace').code).toBe(2);
  });
});

/** the first dump directory (every test of the first describe runs before) */
function d(): string {
  return join(work, 'd1');
}
