/**
 * The procfs source on real trees of this kernel: every field of every task against an independent
 * reading (ps -L, /proc text parsed naively in the test, and what treegen reported from inside each
 * thread), the tree shape, collectAll, collect(), and the error paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { procfsFactory, ProcfsSource } from '../../src/collector/sources/procfs.js';
import { collect } from '../../src/collector/collect.js';
import { NoProcessError, PermissionError } from '../../src/errors.js';
import type { Task } from '../../src/collector/task.js';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { mask, procPersonality, procStat, procStatus, psThreads } from '../helpers/procread.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

afterAll(killAllTrees);

/** Check one task against ps, naive /proc text and treegen's own report. */
function checkTask(t: Task, tree: Tree, ps: ReturnType<typeof psThreads>): void {
  const ctx = `task ${t.pid} (${t.comm})`;
  const row = ps.get(t.pid);
  expect(row, ctx).toBeDefined();
  const st = procStat(t.tgid, t.pid);
  const status = procStatus(t.tgid, t.pid);
  const rep = tree.threads.get(t.pid)!;
  expect(rep, ctx).toBeDefined();

  // identity: ps
  expect({ pid: t.pid, tgid: t.tgid, ppid: t.ppid, pgid: t.pgid, sid: t.sid }, ctx).toEqual({
    pid: row!.tid, tgid: row!.tgid, ppid: row!.ppid, pgid: row!.pgid, sid: row!.sid,
  });
  expect(t.state, ctx).toBe(row!.state[0]);
  expect(t.comm, ctx).toBe(row!.comm);
  expect(t.comm, ctx).toBe(st[2]);
  expect(t.tpid, ctx).toBe(Number(status.TracerPid));
  // credentials: ps and status
  expect([t.uid, t.euid, t.suid, t.fsuid], ctx).toEqual([row!.ruid, row!.euid, row!.suid, row!.fsuid]);
  expect([t.gid, t.egid, t.sgid, t.fsgid], ctx).toEqual([row!.rgid, row!.egid, row!.sgid, row!.fsgid]);
  expect(t.groups, ctx).toEqual(row!.groups);
  expect(t.groups, ctx).toEqual(status.Groups ? status.Groups.split(' ').map(Number) : []);
  expect(t.capInh, ctx).toEqual(mask(status.CapInh));
  expect(t.capPrm, ctx).toEqual(mask(status.CapPrm));
  expect(t.capEff, ctx).toEqual(mask(status.CapEff));
  expect(t.capBnd, ctx).toEqual(mask(status.CapBnd));
  expect(t.capAmb, ctx).toEqual(mask(status.CapAmb));
  expect(t.noNewPrivs, ctx).toBe(status.NoNewPrivs === '1');
  expect(t.seccomp, ctx).toBe(Number(status.Seccomp));
  expect(t.securebits, ctx).toBeUndefined();
  // scheduling: ps
  expect(t.priority, ctx).toBe(row!.priority);
  expect(t.policy, ctx).toBe(row!.policy);
  expect(t.rtPriority, ctx).toBe(row!.rtprio);
  if (row!.nice !== undefined) expect(t.nice, ctx).toBe(row!.nice);
  expect(t.nice, ctx).toBe(Number(st[19]));
  // signals: ps (stat's blocked word), status, and the mask the thread itself reported
  expect(t.sigBlk, ctx).toEqual(mask(row!.blocked));
  expect(t.sigBlk, ctx).toEqual(mask(status.SigBlk));
  expect(t.sigBlk, ctx).toEqual(mask(rep.sigBlk));
  // core: stat fields by number
  expect(t.flags, ctx).toBe(Number(st[9]));
  expect(t.startTime, ctx).toBe(Number(st[22]));
  expect(t.exitCode, ctx).toBe(Number(st[52]));
  expect(t.personality, ctx).toBe(procPersonality(t.tgid, t.pid));
  // robust futex list: what get_robust_list(0) said inside the thread (freed at exit for the zombie)
  if (t.state === 'Z') {
    expect(t.futexRla, ctx).toBe(0);
  } else {
    expect(t.futexRla, ctx).toBe(rep.robustHead);
    expect(t.futexRla, ctx).not.toBe(0);
  }
  expect(t.futexRlaLen, ctx).toBe(rep.robustLen);
}

describe('procfs source: a tree with every role', () => {
  let tree: Tree;
  let tracer: ChildProcess | undefined;
  beforeAll(async () => {
    tree = await spawnTree({ procs: 3, threads: 2, rootThreads: 2, all: true });
    // a traced task: strace attaches to the pgid child, so its TracerPid is strace's pid
    tracer = spawn('strace', ['-qq', '-o', '/dev/null', '-p', String(tree.one('pgid'))], { stdio: 'ignore' });
    const target = tree.one('pgid');
    const deadline = Date.now() + 20_000;
    while (Number(procStatus(target, target).TracerPid) !== tracer.pid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(async () => {
    if (tracer && tracer.exitCode === null) {
      const gone = new Promise((r) => tracer!.once('exit', r));
      tracer.kill('SIGKILL');
      await gone;
    }
    await tree?.kill();
  });

  it('finds exactly the tree, with every thread, and every field matches ps and /proc', async () => {
    const src = await procfsFactory.open();
    const tasks = await src.collectTree(tree.root);
    const ps = psThreads(tree.pids);
    expect(tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
    expect([...ps.keys()].sort((a, b) => a - b)).toEqual(tree.tids);
    for (const t of tasks) checkTask(t, tree, ps);
    expect(src.missing).toEqual(['securebits']);
    expect(src.stats().syscalls).toBeGreaterThan(tasks.length * 10);
    src.close();
  });

  it('records the roles as treegen built them', async () => {
    const src = await procfsFactory.open();
    const tasks = await src.collectTree(tree.root);
    const by = new Map(tasks.map((t) => [t.pid, t]));
    const threadsOf = (pid: number) => tasks.filter((t) => t.tgid === pid).map((t) => t.pid).sort((a, b) => a - b);

    // threads: all present, leaders included
    for (const pid of tree.pids) expect(threadsOf(pid)).toEqual([...tree.procs.get(pid)!.tids].sort((a, b) => a - b));
    expect(threadsOf(tree.root)).toHaveLength(4); // leader, 2 threads, the forker thread

    const stopped = tree.one('stopped');
    for (const tid of threadsOf(stopped)) expect(by.get(tid)!.state).toBe('T');
    expect(threadsOf(stopped)).toHaveLength(3);

    const zombie = by.get(tree.one('zombie'))!;
    expect(zombie.state).toBe('Z');
    expect(zombie.exitCode).toBe(7 << 8);
    expect(zombie.ppid).toBe(tree.root);

    // the child forked by a non-leader thread: its parent is the root process
    const tc = by.get(tree.one('thread-child'))!;
    expect(tc.ppid).toBe(tree.root);
    expect(tc.tgid).toBe(tc.pid);

    const pg = by.get(tree.one('pgid'))!;
    expect(pg.pgid).toBe(pg.pid);
    expect(pg.sid).toBe(tree.root);
    expect(pg.comm).toBe('tg) (p g');
    expect(pg.tpid).not.toBe(0);
    expect(pg.tpid).toBe(tracer!.pid);

    const ses = by.get(tree.one('session'))!;
    expect([ses.sid, ses.pgid]).toEqual([ses.pid, ses.pid]);

    for (const tid of threadsOf(tree.one('creds'))) {
      const c = by.get(tid)!;
      expect([c.uid, c.euid, c.suid, c.fsuid]).toEqual([1001, 1005, 1006, 1007]);
      expect([c.gid, c.egid, c.sgid, c.fsgid]).toEqual([1002, 1003, 1004, 1008]);
      expect(c.groups).toEqual(Array.from({ length: 20 }, (_, i) => 2000 + i));
      // CHOWN 0, KILL 5, SETGID 6, SETUID 7, NET_BIND_SERVICE 10
      expect(c.capPrm).toEqual([0b100_1110_0001, 0]);
      expect(c.capEff).toEqual([0b000_1100_0000, 0]);
      expect(c.capInh).toEqual([0b100_0010_0000, 0]);
      expect(c.capAmb).toEqual([0b100_0010_0000, 0]);
      // SYS_BOOT 22 and MKNOD 27 dropped from the bounding set
      expect(c.capBnd[0] & (1 << 22)).toBe(0);
      expect(c.capBnd[0] & (1 << 27)).toBe(0);
      expect(c.noNewPrivs).toBe(true);
      expect(c.seccomp).toBe(2);
      expect(c.personality).toBe(0x0040000 | 0x0400000);
    }
    const creds = tree.procs.get(tree.one('creds'))!;
    const credThreads = threadsOf(creds.pid);
    expect(by.get(credThreads[0])!.sigBlk).toEqual([1 << (10 - 1), 0]); // leader: SIGUSR1
    expect(by.get(credThreads[1])!.sigBlk).toEqual([1 << (12 - 1), 0]); // thread: SIGUSR2

    const sched = threadsOf(tree.one('sched')).map((tid) => by.get(tid)!);
    expect(sched.map((t) => t.policy)).toEqual([3, 1, 0]); // BATCH, FIFO, OTHER
    expect(sched.map((t) => t.rtPriority)).toEqual([0, 10, 0]);
    expect(sched[0].nice).toBe(7);
    expect(sched[1].priority).toBe(-11); // -1 - rt_priority
    expect(sched[2].nice).toBe(-3);
    expect(sched.map((t) => t.sigBlk)).toEqual([[1 << 9, 0], [1 << 11, 0], [1, 0]]);

    // every process's children are in the tree: the shape is whole
    const tgids = new Set(tasks.map((t) => t.tgid));
    for (const t of tasks) if (t.pid === t.tgid && t.pid !== tree.root) expect(tgids.has(t.ppid)).toBe(true);
    src.close();
  });

  it('collectAll sees every process of the tree, and its threads only when asked', async () => {
    const src = await procfsFactory.open();
    const procs = await src.collectAll({ threads: false });
    const pids = new Set(procs.map((t) => t.pid));
    for (const pid of tree.pids) expect(pids.has(pid)).toBe(true);
    for (const t of procs) expect(t.pid).toBe(t.tgid);
    const all = await src.collectAll({ threads: true });
    const tids = new Set(all.map((t) => t.pid));
    for (const tid of tree.tids) expect(tids.has(tid)).toBe(true);
    expect(all.length).toBeGreaterThan(procs.length);
    const ps = psThreads(tree.pids);
    for (const t of all) if (tree.threads.has(t.pid)) checkTask(t, tree, ps);
    src.close();
  });

  it('collect() returns the tree in pstree order with a truthful header', async () => {
    const snap = await collect({ root: tree.root, source: 'procfs', freeze: 'none' });
    expect(snap.info.source).toBe('procfs');
    expect(snap.info.live).toBe(true);
    expect(snap.info.processes).toBe(tree.pids.length);
    expect(snap.info.threads).toBe(tree.tids.length);
    expect(snap.info.missing).toEqual(['securebits']);
    expect(snap.info.syscalls).toBeGreaterThan(0);
    expect(snap.tasks[0].pid).toBe(tree.root);
    expect(snap.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
    const ps = psThreads(tree.pids);
    for (const t of snap.tasks) checkTask(t, tree, ps);
  });
});

describe('procfs source: shapes and sizes', () => {
  it('walks a 1,000-process wide tree with 1 thread each', async () => {
    const tree = await spawnTree({ procs: 1000, threads: 1 });
    try {
      const src = await procfsFactory.open();
      const tasks = await src.collectTree(tree.root);
      expect(tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
      expect(tasks).toHaveLength(2001);
      const ps = psThreads(tree.pids);
      for (const t of tasks) {
        const row = ps.get(t.pid)!;
        expect([t.tgid, t.ppid, t.pgid, t.sid, t.state, t.comm]).toEqual([row.tgid, row.ppid, row.pgid, row.sid, row.state[0], row.comm]);
        expect(t.futexRla).toBe(tree.threads.get(t.pid)!.robustHead);
      }
    } finally {
      await tree.kill();
    }
  });

  it('walks a 200-deep chain and a 4-ary tree, in pstree order through collect()', async () => {
    for (const fanout of [1, 4]) {
      const tree = await spawnTree({ procs: 200, fanout });
      try {
        const snap = await collect({ root: tree.root, source: 'procfs', freeze: 'none' });
        expect(snap.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
        for (const t of snap.tasks) expect(t.ppid).toBe(tree.procs.get(t.pid)!.ppid);
        // pre-order: every process comes after its parent
        const at = new Map(snap.tasks.map((t, i) => [t.pid, i]));
        for (const t of snap.tasks) if (t.pid !== tree.root) expect(at.get(t.ppid)!).toBeLessThan(at.get(t.pid)!);
      } finally {
        await tree.kill();
      }
    }
  });
});

describe('procfs source: errors and races', () => {
  it('throws NoProcessError for a pid that does not exist', async () => {
    let pid = 32767;
    while (existsSync(`/proc/${pid}`)) pid--;
    const src = await procfsFactory.open();
    await expect(src.collectTree(pid)).rejects.toBeInstanceOf(NoProcessError);
    await expect(src.collectTree(pid)).rejects.toMatchObject({ pid, exitCode: 3 });
  });

  it('refuses a thread id as the root of a tree', async () => {
    const tree = await spawnTree({ rootThreads: 1 });
    try {
      const tid = tree.procs.get(tree.root)!.tids.find((t) => t !== tree.root)!;
      const src = await procfsFactory.open();
      const err = await src.collectTree(tid).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(NoProcessError);
      expect((err as NoProcessError).pid).toBe(tid);
      expect((err as Error).message).toContain(`thread of process ${tree.root}`);
    } finally {
      await tree.kill();
    }
  });

  it('throws PermissionError naming CAP_SYS_PTRACE and the pid when run unprivileged', async () => {
    const tree = await spawnTree({ procs: 1 });
    try {
      const script = `
        import { procfsFactory } from ${JSON.stringify(join(REPO, 'dist/collector/sources/procfs.js'))};
        const src = await procfsFactory.open();
        try { await src.collectTree(${tree.root}); console.log(JSON.stringify({ ok: true })); }
        catch (e) { console.log(JSON.stringify({ name: e.name, capability: e.capability, pid: e.pid, message: e.message })); }
        const all = await src.collectAll({ threads: false });
        const mine = all.find((t) => t.pid === ${tree.root});
        console.log(JSON.stringify({ all: all.length, rootSeen: !!mine, personality: mine?.personality ?? null, uid: mine?.uid }));
      `;
      const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all',
        '--bounding-set=-all', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
      const [err, all] = out.trim().split('\n').map((l) => JSON.parse(l));
      expect(err.name).toBe(PermissionError.name);
      expect(err.capability).toBe('CAP_SYS_PTRACE');
      expect(err.pid).toBe(tree.root);
      expect(err.message).toContain(String(tree.root));
      // ps-style listing still works unprivileged: the fields that need ptrace access stay undefined
      expect(all.rootSeen).toBe(true);
      expect(all.personality).toBe(null);
      expect(all.uid).toBe(0);
    } finally {
      await tree.kill();
    }
  });

  it('skips tasks that vanish mid-walk: a tree being killed yields whole walks or NoProcessError', async () => {
    const tree = await spawnTree({ procs: 300, fanout: 3, threads: 1 });
    const src = new ProcfsSource();
    const killing = tree.kill();
    let walks = 0;
    let finished = false;
    void killing.then(() => { finished = true; });
    while (!finished) {
      try {
        const tasks = await src.collectTree(tree.root);
        for (const t of tasks) expect(tree.threads.has(t.pid)).toBe(true);
        walks++;
      } catch (e) {
        expect(e).toBeInstanceOf(NoProcessError);
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
    await killing;
    await expect(src.collectTree(tree.root)).rejects.toBeInstanceOf(NoProcessError);
    expect(walks).toBeGreaterThanOrEqual(0);
  });
});
