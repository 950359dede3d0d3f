/**
 * Real trees -> images -> /usr/bin/crit. Every image is decoded by crit (Debian's 3.17.1, which drops the
 * post-3.17 fields cap_amb and no_new_privs: those are covered by the byte vectors of the unit tests) and
 * its JSON is compared field by field with the Task records, which the test reads itself from /proc text
 * and the treegen fixture's own report (robust list head, blocked signals, securebits).
 * `crit x DIR ps` must print the tree; `tdcollect show` must print it too and fail cleanly on damage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mask64, Snapshot, Task, TaskState } from '../../src/collector/task.js';
import { orderTasks } from '../../src/collector/walk.js';
import { collect } from '../../src/collector/collect.js';
import {
  coreEntry, frameImage, groupProcesses, KIND, readImages, schemas, writeImages,
} from '../../src/image/index.js';
import { killAllTrees, spawnTree, type Tree } from '../helpers/tree.js';
import { mask, procStatus } from '../helpers/procread.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'bin', 'tdcollect.js');
const CRIT = '/usr/bin/crit';

let work: string;
beforeAll(() => { work = mkdtempSync(join(tmpdir(), 'tdc-image-int-')); });
afterAll(async () => { await killAllTrees(); rmSync(work, { recursive: true, force: true }); });

// ---- an independent reading of /proc (plain text parsing in the test, not the project's sources) ----


function readTask(tree: Tree, tgid: number, tid: number): Task {
  const stat = readFileSync(`/proc/${tgid}/task/${tid}/stat`, 'latin1');
  const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  const field = (n: number): number => Number(f[n - 3]);
  const st = procStatus(tgid, tid);
  const ids = (k: string): number[] => st[k]!.split(/\s+/).map(Number);
  const [uid, euid, suid, fsuid] = ids('Uid');
  const [gid, egid, sgid, fsgid] = ids('Gid');
  const groups = st['Groups']! === '' ? [] : ids('Groups');
  const th = tree.threads.get(tid)!;
  const proc = tree.procs.get(tgid)!;
  return {
    pid: tid, tgid, ppid: tgid === tree.root ? tree.keeper : field(4), tpid: Number(st['TracerPid']),
    sid: field(6), pgid: field(5), state: f[0] as TaskState, comm,
    uid, euid, suid, fsuid, gid, egid, sgid, fsgid,
    capInh: mask(st['CapInh']!), capPrm: mask(st['CapPrm']!), capEff: mask(st['CapEff']!),
    capBnd: mask(st['CapBnd']!), capAmb: mask(st['CapAmb']!),
    groups: groups.sort((a, b) => a - b),
    ...(proc.securebits !== undefined ? { securebits: proc.securebits } : {}),
    noNewPrivs: st['NoNewPrivs'] === '1',
    seccomp: Number(st['Seccomp']),
    startTime: field(22),
    personality: parseInt(readFileSync(`/proc/${tgid}/personality`, 'latin1'), 16),
    flags: field(9),
    sigBlk: mask(st['SigBlk']!),
    nice: field(19), policy: field(41), priority: field(18), rtPriority: field(40), exitCode: field(52),
    ...(f[0] === 'Z' ? {} : { futexRla: th.robustHead, futexRlaLen: th.robustLen }),
  };
}

function snapshotOf(tree: Tree): Snapshot {
  const tasks: Task[] = [];
  for (const pid of tree.pids) for (const tid of tree.procs.get(pid)!.tids) tasks.push(readTask(tree, pid, tid));
  const ordered = orderTasks(tasks, tree.root);
  return {
    info: {
      formatVersion: 1, tool: 'tdcollect test', source: 'procfs', freeze: 'none', live: true, kernel: release(),
      hostname: hostname(), root: tree.root, createdAt: Date.now(), processes: tree.pids.length, threads: tasks.length,
      timings: {}, missing: [],
    },
    tasks: ordered,
  };
}

const decoded = new Map<string, Buffer>();
/** `crit decode -i file` output (cached: each image is decoded by crit once). */
function critJson(file: string): Buffer {
  let out = decoded.get(file);
  if (!out) decoded.set(file, (out = execFileSync(CRIT, ['decode', '-i', file])));
  return out;
}
function crit(file: string): { magic: string; entries: Record<string, any>[] } {
  return JSON.parse(critJson(file).toString('utf8'));
}

const SECCOMP = ['disabled', 'strict', 'filter'];
const show = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const u64 = (m: Mask64): number => m[1] * 2 ** 32 + m[0]; // exact below 2^53; crit prints JSON integers

/**
 * Decode every image of `dir` with crit and compare it, field by field, with the Task records it was written
 * from. Required CRIU fields the Task lacks must be 0; optional ones must be absent.
 */
function expectCritMatches(dir: string, snap: Snapshot): void {
  const leaders = snap.tasks.filter((t) => t.pid === t.tgid);
  const root = snap.tasks[0];

  const inv = crit(join(dir, 'inventory.img'));
  expect(inv.magic).toBe('INVENTORY');
  expect(inv.entries).toEqual([{
    img_version: 2, fdinfo_per_id: true, ns_per_id: true, lsmtype: 'NO_LSM',
    root_ids: { vm_id: 1, files_id: 1, fs_id: 1, sighand_id: 1 },
  }]);

  // pstree: one entry per process in snapshot order, root's ppid 0, leader first
  const ps = crit(join(dir, 'pstree.img'));
  expect(ps.magic).toBe('PSTREE');
  expect(ps.entries).toEqual(leaders.map((l) => ({
    pid: l.pid, ppid: l === root ? 0 : l.ppid, pgid: l.pgid, sid: l.sid,
    threads: snap.tasks.filter((t) => t.tgid === l.pid).map((t) => t.pid),
  })));
  expect(ps.entries[0].pid).toBe(snap.info.root);

  // every core, field by field
  const cores = readdirSync(dir).filter((n) => n.startsWith('core-'));
  expect(cores).toHaveLength(snap.tasks.length);
  for (const t of snap.tasks) {
    const img = crit(join(dir, `core-${t.pid}.img`));
    expect(img.magic).toBe('CORE');
    expect(img.entries).toHaveLength(1);
    const core = img.entries[0];
    expect(core.mtype).toBe('X86_64');
    const leader = t.pid === t.tgid;
    const dead = t.state === 'Z' && !snap.tasks.some((o) => o.tgid === t.pid && o !== t);
    if (leader) {
      expect(core.tc).toEqual({
        task_state: dead ? 2 : t.state === 'T' ? 3 : 1,
        exit_code: (t.exitCode ?? 0) >>> 0, personality: t.personality ?? 0, flags: t.flags ?? 0,
        blk_sigset: t.sigBlk ? u64(t.sigBlk) : 0, comm: t.comm,
      });
    } else {
      expect(core.tc).toBeUndefined();
    }
    if (dead) {
      expect(Object.keys(core).sort()).toEqual(['mtype', 'tc']);
      continue;
    }
    const want: Record<string, unknown> = {
      futex_rla: t.futexRla ?? 0, futex_rla_len: t.futexRlaLen ?? 0, comm: t.comm,
      creds: {
        uid: t.uid, gid: t.gid, euid: t.euid, egid: t.egid, suid: t.suid, sgid: t.sgid, fsuid: t.fsuid, fsgid: t.fsgid,
        cap_inh: [...t.capInh], cap_prm: [...t.capPrm], cap_eff: [...t.capEff], cap_bnd: [...t.capBnd],
        secbits: t.securebits ?? 0,
        ...(t.groups?.length ? { groups: t.groups } : {}),
      },
    };
    if (t.nice !== undefined) want.sched_nice = t.nice;
    if (t.policy !== undefined) want.sched_policy = t.policy;
    if ((t.policy === 1 || t.policy === 2) && t.rtPriority !== undefined) want.sched_prio = t.rtPriority;
    if (t.sigBlk) want.blk_sigset = u64(t.sigBlk);
    if (t.seccomp !== undefined) want.seccomp_mode = SECCOMP[t.seccomp];
    expect(core.thread_core).toEqual(want);
  }

  // python-protobuf (crit encode) re-encodes crit's JSON to exactly our bytes: field order, unpacked
  // repeated fields, required zeros. crit 3.17.1 does not know cap_amb / no_new_privs and drops them, so
  // cores are compared with our encoding of the same task without those two fields.
  const reencode = (file: string): Buffer =>
    execFileSync(CRIT, ['encode'], { input: critJson(file) });
  expect(reencode(join(dir, 'inventory.img')).equals(readFileSync(join(dir, 'inventory.img')))).toBe(true);
  expect(reencode(join(dir, 'pstree.img')).equals(readFileSync(join(dir, 'pstree.img')))).toBe(true);
  const groups = groupProcesses(snap.tasks);
  for (const g of groups) {
    for (const t of [g.leader, ...g.threads]) {
      const bare = { ...t, capAmb: undefined, noNewPrivs: undefined };
      const bareGroup = t === g.leader ? { ...g, leader: bare } : g;
      const want = frameImage(KIND.core, [schemas().core.encode(coreEntry(bare, bareGroup, 1)).finish()]);
      expect(show(reencode(join(dir, `core-${t.pid}.img`)))).toBe(show(want));
    }
  }

  // crit's own tree view works on the directory
  const x = execFileSync(CRIT, ['x', dir, 'ps'], { encoding: 'utf8' });
  for (const l of leaders) expect(x).toMatch(new RegExp(`^\\s*${l.pid}\\s+${l.pgid}\\s+${l.sid}\\s+`, 'm'));
  expect(x.trim().split('\n')).toHaveLength(leaders.length + 1);
}

describe('images of a real tree, decoded by crit', () => {
  it('a tree read from /proc by the test: every field matches, incl. the fixture\'s own report', async () => {
    const tree = await spawnTree({ procs: 3, threads: 2, rootThreads: 1, all: true });
    let snap: Snapshot;
    const dir = join(work, 'dump');
    try {
      snap = snapshotOf(tree);
      await writeImages(snap, dir);
    } finally {
      await tree.kill();
    }
    // the tree has what we mean to test
    const states = new Set(snap.tasks.map((t) => t.state));
    expect(states.has('T') && states.has('Z') && states.has('S')).toBe(true);
    expect(snap.tasks.some((t) => t.uid !== t.euid && t.groups!.length === 20 && t.seccomp === 2)).toBe(true);
    expect(snap.tasks.some((t) => t.policy === 1 && t.rtPriority === 10)).toBe(true);

    expectCritMatches(dir, snap);

    // values the fixture itself measured inside each thread (get_robust_list, sigprocmask)
    for (const t of snap.tasks) {
      if (t.state === 'Z') continue;
      const th = tree.threads.get(t.pid)!;
      const core = crit(join(dir, `core-${t.pid}.img`)).entries[0];
      expect(core.thread_core.futex_rla).toBe(th.robustHead);
      expect(core.thread_core.futex_rla_len).toBe(th.robustLen);
      expect(core.thread_core.blk_sigset ?? 0).toBe(parseInt(th.sigBlk, 16));
    }
    const creds = tree.one('creds');
    expect(crit(join(dir, `core-${creds}.img`)).entries[0].thread_core.creds.secbits).toBe(tree.procs.get(creds)!.securebits);

    // and the snapshot comes back losslessly
    expect(readImages(dir)).toStrictEqual(snap);
  });

  it('a tree collected by collect() (source auto, ptrace freeze): crit agrees with every Task record', async () => {
    const tree = await spawnTree({ procs: 4, fanout: 2, threads: 2, all: true });
    let snap: Snapshot;
    const dir = join(work, 'collected');
    try {
      snap = await collect({ root: tree.root, source: 'auto', freeze: 'ptrace' });
      await writeImages(snap, dir);
    } finally {
      await tree.kill();
    }
    expect(snap.tasks.map((t) => t.pid).sort((a, b) => a - b)).toEqual(tree.tids);
    expectCritMatches(dir, snap);
    expect(readImages(dir)).toStrictEqual(snap);
  });
});

describe('tdcollect show', () => {
  let dir: string;
  let snap: Snapshot;
  beforeAll(async () => {
    const tree = await spawnTree({ procs: 2, threads: 1, stopped: true, zombie: true });
    dir = join(work, 'show');
    try {
      snap = snapshotOf(tree);
      await writeImages(snap, dir);
    } finally {
      await tree.kill();
    }
  });
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'show', ...args], { encoding: 'utf8' });

  it('prints the tree', async () => {
    const r = run(dir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const all = r.stdout.trimEnd().split('\n');
    // the first line names the input
    expect(all[0]).toBe(`tdcollect dump (directory) ${dir}`);
    const lines = all.slice(1);
    const leaders = snap.tasks.filter((t) => t.pid === t.tgid);
    expect(lines).toHaveLength(1 + leaders.length);
    expect(lines[0]).toContain(`root ${snap.info.root}: ${leaders.length} processes, ${snap.tasks.length} threads`);
    expect(lines[1]).toBe(`${snap.info.root} ${snap.tasks[0].state} uid=0 ${snap.tasks[0].comm}`);
    for (const l of leaders.slice(1)) expect(r.stdout).toMatch(new RegExp(`[└├]─ ${l.pid} ${l.state} uid=${l.uid} `));
    const threaded = leaders.find((l) => snap.tasks.some((t) => t.tgid === l.pid && t.pid !== l.pid))!;
    const first = snap.tasks.find((t) => t.tgid === threaded.pid && t.pid !== threaded.pid)!;
    expect(r.stdout).toContain(`${threaded.pid} ${threaded.state} uid=0 ${threaded.comm}  [+`);
    expect(r.stdout).toContain(`${first.pid} ${first.state}`);
  });

  it('--json prints the documented schema', async () => {
    const r = run(dir, '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.version).toBe(2);
    expect(j.info.root).toBe(snap.info.root);
    expect(j.tasks.map((t: Task) => t.pid)).toEqual(snap.tasks.map((t) => t.pid));
    expect(j.tasks[0].capBnd).toBe(readFileSync(`/proc/self/status`, 'latin1').match(/CapBnd:\s*(\w+)/)![1]);
  });

  it('a corrupt or truncated image: one line naming file and offset, exit 2', async () => {
    const bad = join(work, 'show-bad');
    await writeImages(snap, bad);
    const core = join(bad, `core-${snap.tasks[1].pid}.img`);
    writeFileSync(core, readFileSync(core).subarray(0, 14));
    let r = run(bad);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`tdcollect: ${core}: offset 8: premature end of file: entry declares ${readFileSync(join(dir, `core-${snap.tasks[1].pid}.img`)).length - 12} bytes, 2 remain\n`);
    const tasks = join(bad, 'tasks.img');
    const buf = readFileSync(tasks);
    buf[4] ^= 0xff;
    writeFileSync(tasks, buf);
    r = run(bad, '--json');
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^tdcollect: ${tasks}: offset 4: magic 0x\\w+ is not tasks's 0x31434454\n$`));
    r = run(join(work, 'nowhere'));
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`tdcollect: ${join(work, 'nowhere')}: no such image directory or archive\n`);
  });
});
