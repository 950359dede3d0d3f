/**
 * The ptrace freezer on real trees: every task is stopped while the source walks, the state recorded is
 * the one before the freeze, stopped tasks stay stopped, zombies and threads are recorded, a churning tree
 * gives consistent snapshots and keeps running, and nothing is left stopped when the collector is killed,
 * interrupted or refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { collect } from '../../src/collector/collect.js';
import { ptraceFreezer, PtraceSession } from '../../src/collector/freeze/ptrace.js';
import { FreezeError, EXIT } from '../../src/errors.js';
import type { Snapshot } from '../../src/collector/task.js';
import { readTasksImage } from '../../src/image/read.js';
import { killAllTrees, spawnTree } from '../helpers/tree.js';
import { spawnChurn } from '../helpers/churn.js';
import {
  CLI, FREEZE_CHILD, ppidOf, procState, sleep, spawnLines, spawnNode, stoppedOrTraced, tracedByUs, tracerPid, walkTree,
} from '../helpers/freeze.js';
import { fixtureBin } from '../helpers/cfixture.js';

afterAll(killAllTrees);

/**
 * Poll the tasks' /proc states (a cheap stat read each) until none is stopped; the clean pass must have
 * STARTED within a second of the collector's death (a released task does not stop again by itself). Then,
 * untimed, nobody may be traced any more.
 */
async function expectReleasedWithinASecond(tids: number[]): Promise<void> {
  const t0 = Date.now();
  let passStart = t0;
  let stopped = tids.filter((t) => { const s = procState(t); return s === 't' || s === 'T'; });
  while (stopped.length && Date.now() - t0 < 1000) {
    await sleep(10);
    passStart = Date.now();
    stopped = tids.filter((t) => { const s = procState(t); return s === 't' || s === 'T'; });
  }
  expect(stopped).toEqual([]);
  expect(passStart - t0).toBeLessThan(1000);
  expect(stoppedOrTraced(tids)).toEqual([]);
}

/** Independent consistency checks of a snapshot (pstree rules). */
function checkConsistent(s: Snapshot, root: number, rootPpid: number): void {
  const pids = new Set<number>();
  const leaders = new Set<number>();
  for (const t of s.tasks) {
    expect(pids.has(t.pid), `pid ${t.pid} twice`).toBe(false);
    pids.add(t.pid);
    if (t.pid === t.tgid) leaders.add(t.pid);
  }
  expect(s.tasks[0].pid).toBe(root);
  for (const t of s.tasks) {
    expect(leaders.has(t.tgid), `thread ${t.pid} without its leader ${t.tgid}`).toBe(true);
    if (t.pid === root) expect(t.ppid).toBe(rootPpid);
    else if (t.pid === t.tgid) expect(leaders.has(t.ppid), `ppid ${t.ppid} of ${t.pid} not in tree`).toBe(true);
    expect(t.state).not.toBe('t');
    expect(t.tpid).toBe(0);
  }
}

const until = async (pred: () => boolean, ms: number): Promise<boolean> => {
  for (const t0 = Date.now(); !pred() && Date.now() - t0 < ms;) await sleep(5);
  return pred();
};

/** test/fixtures/leader-dies.c with these arguments, once its child is waiting for its vfork child ('D') */
async function spawnLeaderDies(args: string[]): Promise<{ parent: number; child: number; lines: string[]; kill(): void }> {
  const c = spawnLines(fixtureBin('leader-dies', 'tdcollect-freeze'), args);
  const kill = () => c.proc.kill('SIGKILL');
  try {
    await c.waitLine('ready', 20_000);
  } catch (e) {
    kill();
    throw e;
  }
  const child = Number(c.lines.find((l) => l.startsWith('child '))!.split(' ')[1]);
  if (!(await until(() => procState(child) === 'D', 5_000))) {
    kill();
    throw new Error(`leader-dies child ${child} is not in its vfork wait: state ${procState(child)}`);
  }
  return { parent: c.proc.pid!, child, lines: c.lines, kill };
}

describe('ptrace freezer', () => {
  it('freezes every task, records pre-freeze states, zombies, threads, and leaves stopped tasks stopped', async () => {
    const tree = await spawnTree({ procs: 6, threads: 2, rootThreads: 1, all: true });
    try {
      const before = new Map(tree.tids.map((t) => [t, procState(t)]));
      expect(before.get(tree.one('stopped'))).toBe('T');
      expect(before.get(tree.one('zombie'))).toBe('Z');
      let during: Map<number, string> | undefined;
      let tracers: number[] = [];
      const snap = await collect({
        root: tree.root, freeze: 'ptrace', source: 'auto',
        onPhase(p) {
          if (p !== 'collect') return;
          during = new Map(tree.tids.map((t) => [t, procState(t)]));
          tracers = tree.tids.map(tracerPid);
        },
      });
      // while collecting, every live task was in ptrace-stop, traced by us
      for (const t of tree.tids) {
        if (before.get(t) === 'Z') { expect(during!.get(t)).toBe('Z'); continue; }
        expect(during!.get(t), `task ${t} during the freeze`).toBe('t');
      }
      expect(tracers.filter((p, i) => before.get(tree.tids[i]) !== 'Z').every((p) => p === process.pid)).toBe(true);
      // the snapshot: exactly the tree's threads, with the states they had before
      expect(snap.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
      for (const t of snap.tasks) {
        expect(t.state, `state of ${t.pid}`).toBe(before.get(t.pid));
        expect(t.tpid).toBe(0);
      }
      for (const tid of tree.procs.get(tree.one('stopped'))!.tids) expect(snap.tasks.find((t) => t.pid === tid)!.state).toBe('T');
      expect(snap.tasks.find((t) => t.pid === tree.one('zombie'))!.state).toBe('Z');
      expect(snap.info.freeze).toBe('ptrace');
      expect(snap.info.live).toBe(false);
      checkConsistent(snap, tree.root, tree.keeper);
      // after the thaw: every task as it was (the stopped ones still in group stop), nobody traced
      await sleep(50);
      for (const t of tree.tids) {
        expect(procState(t), `task ${t} after the thaw`).toBe(before.get(t));
        expect(tracerPid(t)).toBe(0);
      }
    } finally {
      await tree.kill();
    }
  });

  it('dumps a tree that forks and reaps continuously 20 times: consistent every time, and it keeps running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tdc-churn-'));
    const counter = join(dir, 'counter');
    const tree = await spawnChurn({ churn: 6, idle: 20, fanout: 4, counter });
    const readCounter = () => Number(readFileSync(counter, 'latin1').trim() || '0');
    try {
      await sleep(100);
      const sizes: number[] = [];
      for (let i = 0; i < 20; i++) {
        let frozenView: string | undefined;
        const snap = await collect({
          root: tree.root, freeze: 'ptrace', source: 'procfs',
          onPhase(p) {
            if (p === 'collect') {
              // frozen: the tree's shape cannot change between two walks
              const a = walkTree(tree.root);
              frozenView = JSON.stringify(a);
            }
          },
        });
        expect(frozenView).toBeDefined();
        checkConsistent(snap, tree.root, tree.keeper);
        // the snapshot is exactly the frozen tree walked independently
        const view = JSON.parse(frozenView!) as { tids: number[] };
        expect(snap.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual([...view.tids].sort((a, b) => a - b));
        sizes.push(snap.tasks.length);
        // nobody stays stopped in between
        expect(stoppedOrTraced(walkTree(tree.root).tids)).toEqual([]);
      }
      expect(Math.min(...sizes)).toBeGreaterThanOrEqual(21);
      // progress: the counter keeps advancing after the 20 dumps
      const c1 = readCounter();
      await sleep(300);
      const c2 = readCounter();
      expect(c2).toBeGreaterThan(c1);
    } finally {
      await tree.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('the CLI dumps a churning tree with --freeze ptrace (the default): consistent images, tree keeps running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tdc-churn-cli-'));
    const counter = join(dir, 'counter');
    const tree = await spawnChurn({ churn: 6, idle: 10, fanout: 3, counter });
    try {
      for (let i = 0; i < 3; i++) {
        const img = join(dir, `img${i}`);
        const args = [CLI, 'dump', '-r', String(tree.root), '-o', img];
        if (i > 0) args.push('--freeze', 'ptrace');
        const c = spawnNode(args);
        const x = await c.exited;
        expect(x.code, c.stderr()).toBe(0);
        const { snapshot } = readTasksImage(img);
        expect(snapshot.info.freeze).toBe('ptrace');
        expect(snapshot.info.live).toBe(false);
        checkConsistent(snapshot, tree.root, tree.keeper);
      }
      const c1 = Number(readFileSync(counter, 'latin1'));
      await sleep(300);
      expect(Number(readFileSync(counter, 'latin1'))).toBeGreaterThan(c1);
    } finally {
      await tree.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('repeated sessions on a churning tree: every seized task stopped, states from before the freeze, all released', async () => {
    const tree = await spawnChurn({ churn: 4, idle: 5 });
    try {
      for (let i = 0; i < 5; i++) {
        const s = new PtraceSession(tree.root);
        s.run();
        const frozen = [...s.seized.keys()];
        expect(frozen.length).toBeGreaterThanOrEqual(6);
        for (const tid of frozen) expect(procState(tid)).toBe('t');
        for (const st of s.states.values()) expect(st).not.toBe('t');
        s.release();
        await sleep(5);
        expect(stoppedOrTraced(frozen.filter((t) => procState(t) !== '-'))).toEqual([]);
      }
    } finally {
      await tree.kill();
    }
  });

  it('threads created during the seize are frozen too: every thread of the process is stopped', async () => {
    const tree = await spawnChurn({ threads: 4, churn: 2 });
    let cloned = 0;
    let maxThreads = 0;
    try {
      for (let i = 0; i < 30; i++) {
        const s = new PtraceSession(tree.root);
        s.run();
        try {
          // nothing can create a thread now: the listing is stable and every thread is ours and stopped
          const tids = readdirSync(`/proc/${tree.root}/task`).map(Number);
          maxThreads = Math.max(maxThreads, tids.length);
          expect(tids.length).toBeGreaterThanOrEqual(5);
          for (const t of tids) {
            expect(s.seized.has(t), `thread ${t} not seized`).toBe(true);
            expect(procState(t)).toBe('t');
          }
          expect(s.procs.get(tree.root)!.threads.size).toBe(tids.length);
          cloned += s.stats.cloned;
        } finally {
          s.release();
        }
        await sleep(2);
      }
      console.log(`threads per freeze up to ${maxThreads}; ${cloned} attached at a clone over 30 freezes`);
    } finally {
      await tree.kill();
    }
  });

  it('a freeze that fails part-way on a thread-creating process lets go of everything, threads created meanwhile too', async () => {
    const tree = await spawnChurn({ threads: 4, churn: 2 });
    let failed = 0;
    try {
      for (let i = 0; i < 60; i++) {
        // a zero wait bound: run() fails while tasks are still on their way to their stop, or cloning
        const s = new PtraceSession(tree.root, { timeoutMs: 0 });
        const err = (() => { try { s.run(); s.release(); return undefined; } catch (e) { return e; } })();
        if (err !== undefined) {
          expect(err).toBeInstanceOf(FreezeError);
          failed++;
        }
        expect(s.leftTraced).toBe(0);
        expect(tracedByUs(), `after freeze ${i}`).toEqual([]);
        await sleep(2);
      }
      expect(failed).toBeGreaterThan(0);
    } finally {
      await tree.kill();
    }
  });

  it('a leader that dies while seized, a zombie until its last thread is gone, is reaped by its parent after the thaw', async () => {
    // the other thread closes 16,000 files as it dies (about 40 ms): so long the dead leader's exit is not reported
    const ld = await spawnLeaderDies(['16000', '300']);
    try {
      // the leader waits for its vfork child, which kills the process 300 ms after its start
      const fr = await ptraceFreezer.freeze(ld.child);
      // recorded as a zombie: it died while the freezer waited for it to stop
      expect(fr.states.get(ld.child)).toBe('Z');
      expect(fr.frozen.has(ld.child)).toBe(false);
      await fr.thaw();
      // its exit went to us, its tracer; the thaw reaped it from us, so its parent gets it
      expect(await until(() => ld.lines.includes('reaped'), 5_000), `still traced: ${tracedByUs().join(' ')}`).toBe(true);
      expect(tracedByUs()).toEqual([]);
    } finally {
      ld.kill();
    }
  });

  it('a task that cannot stop before the release gives up (a vfork parent) is let go of by a later release', async () => {
    // the vfork child exits 4 s after its start; until then the leader cannot reach its interrupt stop
    const ld = await spawnLeaderDies(['0', '4000', 'live']);
    try {
      const s = new PtraceSession(ld.child, { timeoutMs: 0 });
      expect(() => s.run()).toThrow(FreezeError);
      // run() released what it had seized: the leader was waited for (RELEASE_WAIT_MS) and is still ours
      expect(s.leftTraced).toBe(1);
      expect(tracedByUs()).toEqual([`${ld.child}:D`]);
      // back from vfork(), it reaches the interrupt stop and stays there, ours
      expect(await until(() => procState(ld.child) === 't', 10_000)).toBe(true);
      // the next release, of any session of this thread, detaches it
      const other = new PtraceSession(ld.parent);
      other.release();
      expect(other.leftTraced).toBe(0);
      expect(tracedByUs()).toEqual([]);
      expect(procState(ld.child)).toBe('S');
    } finally {
      ld.kill();
    }
  });

  it('a task traced by someone else is a FreezeError naming it and its tracer; nothing is left seized', async () => {
    const tree = await spawnTree({ procs: 3 });
    const victim = tree.role('bulk')[1];
    const { spawn } = await import('node:child_process');
    const strace = spawn('strace', ['-p', String(victim), '-o', '/dev/null'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && tracerPid(victim) === 0; i++) await sleep(10);
      expect(tracerPid(victim)).toBe(strace.pid);
      const err = await ptraceFreezer.freeze(tree.root).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(FreezeError);
      expect((err as FreezeError).exitCode).toBe(EXIT.FREEZE);
      expect((err as Error).message).toContain(`task ${victim}`);
      expect((err as Error).message).toContain(`pid ${strace.pid}`);
      await sleep(20);
      expect(stoppedOrTraced(tree.tids, new Set([victim]))).toEqual([]);
    } finally {
      strace.kill('SIGKILL');
      await new Promise((r) => strace.once('exit', r));
      await tree.kill();
    }
  });

  it('SIGKILL of the collector mid-freeze of a 2,000-process tree: within a second nothing is stopped', async () => {
    const tree = await spawnChurn({ idle: 2000, fanout: 40 });
    try {
      const all = walkTree(tree.root);
      expect(all.pids.length).toBe(2001);
      // (a) killed while the whole tree is frozen (collector blocked in the collect phase)
      const c = spawnNode([FREEZE_CHILD, String(tree.root), 'ptrace'], { HOLD: 'block' });
      await c.waitLine('frozen');
      expect(all.tids.filter((t) => procState(t) === 't').length).toBe(all.tids.length);
      c.proc.kill('SIGKILL');
      await c.exited;
      await expectReleasedWithinASecond(all.tids);
      // (b) killed in the middle of the seize
      const d = spawnNode([FREEZE_CHILD, String(tree.root), 'ptrace'], { HOLD: 'block' });
      await d.waitLine('freezing');
      let partial = 0;
      for (let i = 0; i < 500 && partial < 50; i++) {
        partial = 0;
        for (const t of all.tids.slice(0, 200)) if (tracerPid(t) !== 0) partial++;
        if (partial < 50) await sleep(1);
      }
      d.proc.kill('SIGKILL');
      await d.exited;
      await expectReleasedWithinASecond(all.tids);
      expect(walkTree(tree.root).pids.length).toBe(2001);
    } finally {
      await tree.kill();
    }
  });

  it('SIGINT, SIGTERM and SIGHUP while frozen thaw the tree and kill the collector with that signal', async () => {
    const tree = await spawnTree({ procs: 20, stopped: true });
    try {
      const stopped = tree.procs.get(tree.one('stopped'))!.tids;
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
        const c = spawnNode([FREEZE_CHILD, String(tree.root), 'ptrace'], { HOLD: 'wait' });
        await c.waitLine('frozen');
        expect(procState(tree.root)).toBe('t');
        c.proc.kill(sig);
        const x = await c.exited;
        expect(x.signal).toBe(sig);
        expect(c.lines).not.toContain('thawed');
        await sleep(20);
        expect(stoppedOrTraced(tree.tids, new Set(stopped))).toEqual([]);
        for (const t of stopped) { expect(procState(t)).toBe('T'); expect(tracerPid(t)).toBe(0); }
      }
    } finally {
      await tree.kill();
    }
  });

  it('refuses, as uid 65534, to seize a root-owned tree: one line naming CAP_SYS_PTRACE and the pid, exit 4', async () => {
    const tree = await spawnTree({ procs: 2 });
    const out = mkdtempSync(join(tmpdir(), 'tdc-nobody-'));
    execFileSync('chown', ['65534:65534', out]);
    try {
      // the freezer itself, through the library
      const lib = spawnNode([join(dirname(FREEZE_CHILD), 'freeze-refuse.mjs'), String(tree.root)],
        {}, ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']);
      await lib.exited;
      const r = JSON.parse(lib.lines[0] ?? '{}') as { name: string; exitCode: number; capability: string; pid: number; message: string };
      expect(r.name, lib.stderr()).toBe('PermissionError');
      expect(r.exitCode).toBe(EXIT.PERMISSION);
      expect(r.capability).toBe('CAP_SYS_PTRACE');
      expect(r.pid).toBe(tree.root);
      expect(r.message).toContain(`pid ${tree.root}`);
      expect(stoppedOrTraced(tree.tids)).toEqual([]);
      // the CLI: one line, exit 4
      const c = spawnNode([CLI, 'dump', '-r', String(tree.root), '-o', join(out, 'img'), '--freeze', 'ptrace', '--source', 'procfs'],
        {}, ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all']);
      const x = await c.exited;
      const lines = c.stderr().trimEnd().split('\n');
      expect(x.code).toBe(EXIT.PERMISSION);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^tdcollect: /);
      expect(lines[0]).toContain('CAP_SYS_PTRACE');
      expect(lines[0]).toContain(String(tree.root));
      expect(stoppedOrTraced(tree.tids)).toEqual([]);
    } finally {
      rmSync(out, { recursive: true, force: true });
      await tree.kill();
    }
  });

  it('a 1,000-process tree freezes and thaws; pre-freeze states and parents match /proc', async () => {
    const tree = await spawnChurn({ idle: 1000, fanout: 10 });
    try {
      const all = walkTree(tree.root);
      const before = new Map(all.tids.map((t) => [t, procState(t)]));
      const snap = await collect({ root: tree.root, freeze: 'ptrace', source: 'auto' });
      expect(snap.info.processes).toBe(1001);
      checkConsistent(snap, tree.root, tree.keeper);
      for (const t of snap.tasks) {
        expect(t.state).toBe(before.get(t.pid));
        if (t.pid !== tree.root) expect(t.ppid).toBe(ppidOf(t.pid));
      }
      expect(stoppedOrTraced(all.tids)).toEqual([]);
    } finally {
      await tree.kill();
    }
  });
});
