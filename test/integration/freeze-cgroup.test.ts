/**
 * The cgroup freezer (v2 cgroup.freeze and the v1 freezer) on real trees moved into cgroups the tests
 * create and remove: the tree is frozen while collected and thawed after, only our own freeze is undone,
 * bad cgroups are refused, and a freeze left behind by a SIGKILLed collector is undone by `tdcollect thaw`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect } from '../../src/collector/collect.js';
import { cgroupFreezer } from '../../src/collector/freeze/cgroup.js';
import { cgroupMounts } from '../../src/collector/freeze/cgroupfs.js';
import { FreezeError, EXIT } from '../../src/errors.js';
import { readTasksImage } from '../../src/image/read.js';
import { spawnChurn, type ChurnTree } from '../helpers/churn.js';
import { CLI, FREEZE_CHILD, procState, sleep, spawnNode, walkTree } from '../helpers/freeze.js';

const STATE_DIR = mkdtempSync(join(tmpdir(), 'tdc-freeze-state-'));
process.env.TDCOLLECT_STATE_DIR = STATE_DIR;
const mounts = cgroupMounts();
const created: string[] = [];
const trees: ChurnTree[] = [];

function mkCgroup(mount: string, name: string): string {
  const dir = join(mount, `tdcollect-test-${process.pid}-${name}`);
  mkdirSync(dir);
  created.push(dir);
  return dir;
}

function v2Frozen(dir: string): boolean {
  return readFileSync(join(dir, 'cgroup.events'), 'latin1').includes('frozen 1');
}
function v1State(dir: string): string {
  return readFileSync(join(dir, 'freezer.state'), 'latin1').trim();
}

async function tree(opts: Parameters<typeof spawnChurn>[0]): Promise<ChurnTree> {
  const t = await spawnChurn(opts);
  trees.push(t);
  return t;
}

async function cleanup(dir: string, t?: ChurnTree): Promise<void> {
  if (existsSync(join(dir, 'cgroup.freeze'))) writeFileSync(join(dir, 'cgroup.freeze'), '0');
  if (existsSync(join(dir, 'freezer.state'))) writeFileSync(join(dir, 'freezer.state'), 'THAWED');
  await t?.kill();
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(dir);
      created.splice(created.indexOf(dir), 1);
      return;
    } catch {
      await sleep(20);
    }
  }
  rmdirSync(dir);
}

beforeAll(() => {
  expect(mounts.v2, 'cgroup2 mount').toBeDefined();
  expect(mounts.v1freezer, 'v1 freezer mount').toBeDefined();
});

afterAll(async () => {
  for (const t of trees) await t.kill();
  for (const d of [...created].reverse()) await cleanup(d);
  rmSync(STATE_DIR, { recursive: true, force: true });
});

describe('cgroup freezer', () => {
  it('v2: a 1,000-process tree in its own cgroup dumps with the cgroup freezer and with ptrace', async () => {
    const dir = mkCgroup(mounts.v2!, 'v2big');
    const t = await tree({ idle: 1000, fanout: 20, cgroup: dir });
    try {
      const all = walkTree(t.root);
      expect(all.pids.length).toBe(1001);
      let frozenDuring = false;
      let statesDuring = '';
      let recorded: string[] = [];
      const snap = await collect({
        root: t.root, freeze: 'cgroup', source: 'auto',
        onPhase(p) {
          if (p !== 'collect') return;
          frozenDuring = v2Frozen(dir);
          statesDuring = [...new Set(all.tids.map(procState))].join('');
          recorded = readdirSync(STATE_DIR);
        },
      });
      expect(frozenDuring).toBe(true);
      expect(statesDuring).toBe('S'); // frozen tasks show S under v2
      expect(recorded).toHaveLength(1); // the freeze was recorded while held
      expect(readdirSync(STATE_DIR)).toEqual([]); // and the record removed after the thaw
      expect(v2Frozen(dir)).toBe(false);
      expect(readFileSync(join(dir, 'cgroup.freeze'), 'latin1').trim()).toBe('0');
      expect(snap.info.freeze).toBe('cgroup');
      expect(snap.info.cgroup).toBe(dir);
      expect(snap.info.processes).toBe(1001);
      expect(snap.tasks.map((x) => x.pid).sort((a, b) => a - b)).toEqual([...all.tids].sort((a, b) => a - b));
      for (const x of snap.tasks) expect(x.state).toBe('S'); // the pre-freeze state (idle, in pause())
      // the same tree with ptrace
      const snap2 = await collect({ root: t.root, freeze: 'ptrace', source: 'auto' });
      expect(snap2.info.processes).toBe(1001);
      expect(snap2.tasks.map((x) => x.pid)).toEqual(snap.tasks.map((x) => x.pid));
    } finally {
      await cleanup(dir, t);
    }
  });

  it('v1 freezer: the default cgroup is the root task\'s freezer cgroup; tasks (D while frozen) are recorded as before', async () => {
    const dir = mkCgroup(mounts.v1freezer!, 'v1');
    const t = await tree({ idle: 1000, fanout: 20, cgroup: dir });
    try {
      const all = walkTree(t.root);
      let during = '';
      let statesDuring = '';
      const snap = await collect({
        root: t.root, freeze: 'cgroup', source: 'auto',
        onPhase(p) {
          if (p !== 'collect') return;
          during = v1State(dir);
          statesDuring = [...new Set(all.tids.map(procState))].join('');
        },
      });
      expect(during).toBe('FROZEN');
      expect(statesDuring).toBe('D'); // frozen tasks show D under the v1 freezer
      expect(v1State(dir)).toBe('THAWED');
      expect(snap.info.cgroup).toBe(dir);
      expect(snap.info.processes).toBe(1001);
      for (const x of snap.tasks) expect(x.state).toBe('S');
    } finally {
      await cleanup(dir, t);
    }
  });

  it('refuses the root cgroup and a cgroup holding processes outside the tree (exit 7, says how to proceed)', async () => {
    const t = await tree({ idle: 3 });
    const e1 = await collect({ root: t.root, freeze: 'cgroup', source: 'auto' }).then(() => undefined, (e: unknown) => e);
    expect(e1).toBeInstanceOf(FreezeError);
    expect((e1 as FreezeError).exitCode).toBe(EXIT.FREEZE);
    expect((e1 as Error).message).toContain('root cgroup');
    expect((e1 as Error).message).toContain('--freeze cgroup=PATH');
    await t.kill();
    const dir = mkCgroup(mounts.v2!, 'mixed');
    const t2 = await tree({ idle: 3, cgroup: dir });
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(stranger.pid));
      const e2 = await cgroupFreezer.freeze(t2.root, {}).then(() => undefined, (e: unknown) => e);
      expect(e2).toBeInstanceOf(FreezeError);
      expect((e2 as Error).message).toContain(`process ${stranger.pid}`);
      expect((e2 as Error).message).toContain('not in the tree');
      expect(v2Frozen(dir)).toBe(false);
      expect(readdirSync(STATE_DIR)).toEqual([]);
    } finally {
      stranger.kill('SIGKILL');
      await new Promise((r) => stranger.once('exit', r));
      await cleanup(dir, t2);
    }
  });

  it('the CLI: dump --freeze cgroup=PATH records the freeze and the cgroup in tasks.img', async () => {
    const dir = mkCgroup(mounts.v2!, 'cli');
    const t = await tree({ idle: 30, cgroup: dir });
    const out = mkdtempSync(join(tmpdir(), 'tdc-cgcli-'));
    try {
      const c = spawnNode([CLI, 'dump', '-r', String(t.root), '-o', join(out, 'img'), '--freeze', `cgroup=${dir}`],
        { TDCOLLECT_STATE_DIR: STATE_DIR });
      const x = await c.exited;
      expect(x.code, c.stderr()).toBe(0);
      const { snapshot } = readTasksImage(join(out, 'img'));
      expect(snapshot.info.freeze).toBe('cgroup');
      expect(snapshot.info.cgroup).toBe(dir);
      expect(snapshot.info.live).toBe(false);
      expect(snapshot.info.processes).toBe(31);
      for (const task of snapshot.tasks) expect(task.state).toBe('S');
      expect(v2Frozen(dir)).toBe(false);
      expect(readdirSync(STATE_DIR)).toEqual([]);
      // and a cgroup that is not there is a usage error
      const bad = spawnNode([CLI, 'dump', '-r', String(t.root), '-o', join(out, 'img2'), '--freeze', 'cgroup=/no-such-cgroup-here']);
      const y = await bad.exited;
      expect(y.code).toBe(EXIT.USAGE);
      expect(bad.stderr().trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(out, { recursive: true, force: true });
      await cleanup(dir, t);
    }
  });

  it('leaves a cgroup that was already frozen frozen', async () => {
    const dir = mkCgroup(mounts.v2!, 'pre');
    const t = await tree({ idle: 5, cgroup: dir });
    try {
      writeFileSync(join(dir, 'cgroup.freeze'), '1');
      for (let i = 0; i < 200 && !v2Frozen(dir); i++) await sleep(5);
      const snap = await collect({ root: t.root, freeze: 'cgroup', source: 'auto' });
      expect(snap.info.processes).toBe(6);
      expect(v2Frozen(dir)).toBe(true);
      expect(readdirSync(STATE_DIR)).toEqual([]);
    } finally {
      await cleanup(dir, t);
    }
  });

  it('SIGKILL of the collector leaves the cgroup frozen and recorded; `tdcollect thaw` undoes it', async () => {
    const dir = mkCgroup(mounts.v2!, 'kill');
    const t = await tree({ idle: 50, cgroup: dir });
    try {
      const c = spawnNode([FREEZE_CHILD, String(t.root), 'cgroup'], { HOLD: 'block', TDCOLLECT_STATE_DIR: STATE_DIR });
      await c.waitLine('frozen');
      c.proc.kill('SIGKILL');
      await c.exited;
      await sleep(100);
      expect(v2Frozen(dir)).toBe(true);
      const files = readdirSync(STATE_DIR);
      expect(files).toHaveLength(1);
      const rec = JSON.parse(readFileSync(join(STATE_DIR, files[0]), 'utf8')) as { cgroup: string; pid: number; root: number };
      expect(rec.cgroup).toBe(dir);
      expect(rec.pid).toBe(c.proc.pid);
      expect(rec.root).toBe(t.root);
      const th = spawnNode([CLI, 'thaw'], { TDCOLLECT_STATE_DIR: STATE_DIR });
      const x = await th.exited;
      expect(x.code, th.stderr()).toBe(0);
      expect(th.lines[0]).toBe(`thawed ${dir} (frozen by tdcollect pid ${c.proc.pid} at ${(rec as unknown as { time: string }).time})`);
      for (let i = 0; i < 200 && v2Frozen(dir); i++) await sleep(5);
      expect(v2Frozen(dir)).toBe(false);
      expect(readdirSync(STATE_DIR)).toEqual([]);
      // nothing left to do
      const th2 = spawnNode([CLI, 'thaw'], { TDCOLLECT_STATE_DIR: STATE_DIR });
      await th2.exited;
      expect(th2.lines[0]).toContain('nothing to thaw');
    } finally {
      await cleanup(dir, t);
    }
  });

  it('the next freeze undoes a freeze left behind by a dead collector', async () => {
    const dir = mkCgroup(mounts.v2!, 'stale');
    const other = mkCgroup(mounts.v2!, 'stale2');
    const t = await tree({ idle: 5, cgroup: dir });
    const t2 = await tree({ idle: 5, cgroup: other });
    try {
      const c = spawnNode([FREEZE_CHILD, String(t.root), 'cgroup'], { HOLD: 'block', TDCOLLECT_STATE_DIR: STATE_DIR });
      await c.waitLine('frozen');
      c.proc.kill('SIGKILL');
      await c.exited;
      expect(v2Frozen(dir)).toBe(true);
      // a dump of another tree notices the stale record, thaws that cgroup and removes the record
      const snap = await collect({ root: t2.root, freeze: 'cgroup', source: 'auto' });
      expect(snap.info.cgroup).toBe(other);
      for (let i = 0; i < 200 && v2Frozen(dir); i++) await sleep(5);
      expect(v2Frozen(dir)).toBe(false);
      expect(readdirSync(STATE_DIR)).toEqual([]);
    } finally {
      await cleanup(dir, t);
      await cleanup(other, t2);
    }
  });

  it('SIGINT and SIGTERM while frozen thaw the cgroup, remove the record and kill the collector with that signal', async () => {
    const dir = mkCgroup(mounts.v2!, 'sig');
    const t = await tree({ idle: 20, cgroup: dir });
    try {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        const c = spawnNode([FREEZE_CHILD, String(t.root), 'cgroup'], { HOLD: 'wait', TDCOLLECT_STATE_DIR: STATE_DIR });
        await c.waitLine('frozen');
        expect(v2Frozen(dir)).toBe(true);
        expect(readdirSync(STATE_DIR)).toHaveLength(1);
        c.proc.kill(sig);
        const x = await c.exited;
        expect(x.signal).toBe(sig);
        expect(readdirSync(STATE_DIR)).toEqual([]);
        for (let i = 0; i < 200 && v2Frozen(dir); i++) await sleep(5);
        expect(v2Frozen(dir)).toBe(false);
      }
    } finally {
      await cleanup(dir, t);
    }
  });
});
