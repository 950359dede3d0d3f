/**
 * Whose view a dump answers in when its socket is handed to another process (SCM_RIGHTS) mid-dump: always
 * the requester's, the task whose sendmsg() started it, whoever calls recvmsg() later. Each case has tasks
 * on both sides of the dump's cursor: the requester reads the first datagram itself, the reader the rest,
 * and the fixture (tdprobe -c) is big enough that the reader's part is produced by later batches.
 * Then: sockets closed mid-dump release everything the dump held (the module's dump_views count, rmmod).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  DUMP_ALL, DUMP_SUBTREE, MODULE, SHOW_CRED, SHOW_EXT, TDPROBE, decodeAll, parseProbe, probe, request,
  type TaskReply,
} from './lib.js';

const N = 40; // fixture: 2N tasks alternately root / nobody, N in each pid-namespace actor's namespace
const NOBODY = 65534;
const ALL = request({ dump: true, show: SHOW_CRED, strategy: DUMP_ALL, pid: 0 });

interface Handoff {
  before: TaskReply[]; // read by the requester (first batch)
  after: TaskReply[]; // read by the reader (later batches)
  ends: string[];
  done?: number;
  fixture: { pid: number; uid: number }[];
  nsFixture: number[];
  reqPid: number;
  readerPid: number;
  out: string;
}

function parseHandoff(out: string): Handoff {
  const h: Handoff = { before: [], after: [], ends: [], fixture: [], nsFixture: [], reqPid: 0, readerPid: 0, out };
  const parts: string[][] = [[], []];
  let part = 0;
  for (const line of out.split('\n')) {
    const [key, ...rest] = line.split(' ');
    if (key === 'HANDOFF') part = 1;
    else if (key === 'FIXTURE') h.fixture.push({ pid: Number(rest[0]), uid: Number(rest[1]) });
    else if (key === 'NSFIXTURE') h.nsFixture.push(Number(rest[0]));
    else if (key === 'REQPID') h.reqPid = Number(rest[0]);
    else if (key === 'READERPID') h.readerPid = Number(rest[0]);
    else if (key === 'END') h.ends.push(rest[0]!);
    else if (key === 'DGRAM' || key === 'FAMILY') parts[part]!.push(line);
  }
  const fam = parts[0]!.find((l) => l.startsWith('FAMILY')) ?? '';
  for (const [i, p] of parts.entries()) {
    const d = decodeAll(parseProbe([fam, ...p].join('\n')));
    if (i === 0) h.before = d.tasks;
    else h.after = d.tasks;
    if (d.done !== undefined) h.done = d.done;
  }
  return h;
}

function handoff(spec: string, extra: string[] = [], req = ALL): Handoff {
  const out = execFileSync(TDPROBE, ['-X', spec, '-b', '4096', '-k', '1', '-c', String(N), ...extra, req.toString('hex')], {
    encoding: 'utf8', maxBuffer: 64 << 20, timeout: 90_000, killSignal: 'SIGKILL',
  });
  return parseHandoff(out);
}

const pidsOf = (ts: TaskReply[]): number[] => ts.map((t) => t.task.pid);
const dumpViews = (): number => Number(readFileSync('/sys/module/task_diag/parameters/dump_views', 'utf8'));

/** The common shape: the dump ended normally, both parts hold tasks, and the cursor splits them by tgid. */
function expectSplitAtCursor(h: Handoff): void {
  expect(h.ends, h.out.slice(0, 2000)).toEqual(['done']);
  expect(h.done).toBe(0);
  expect(h.before.length, 'the requester read tasks below the cursor').toBeGreaterThan(0);
  expect(h.after.length, 'the reader got tasks above the cursor (later batches)').toBeGreaterThan(0);
  const lastBefore = Math.max(...h.before.map((t) => t.task.tgid));
  expect(Math.min(...h.after.map((t) => t.task.tgid))).toBeGreaterThan(lastBefore);
}

describe('a dump handed to another process answers in the requester\'s view', () => {
  it('nobody starts, root reads: only what nobody may see, translated for nobody', () => {
    const h = handoff('nobody:root');
    expectSplitAtCursor(h);
    const all = [...h.before, ...h.after];
    for (const t of all) {
      expect(t.creds, `pid ${t.task.pid} has creds`).toBeDefined();
      expect([t.creds!.uid, t.creds!.euid, t.creds!.suid], `pid ${t.task.pid} (${t.task.comm})`).toEqual([NOBODY, NOBODY, NOBODY]);
    }
    const seen = pidsOf(all);
    const mine = h.fixture.filter((f) => f.uid === NOBODY).map((f) => f.pid);
    const roots = h.fixture.filter((f) => f.uid === 0).map((f) => f.pid);
    expect(seen).toEqual(expect.arrayContaining(mine));
    expect(pidsOf(h.after).filter((p) => mine.includes(p)).length, 'nobody\'s tasks above the cursor').toBeGreaterThan(0);
    for (const p of roots) expect(seen, `root's fixture task ${p}`).not.toContain(p);
    expect(seen, 'the root reader itself').not.toContain(h.readerPid);
    expect(seen, 'pid 1').not.toContain(1);
    expect(seen, 'the requester itself').toContain(h.reqPid);
    // the same set as nobody's own dump would give (fixture and requester; nothing of root's)
    expect(new Set(seen)).toEqual(new Set([...mine, h.reqPid]));
  });

  it('root starts, nobody reads: root\'s view, as a file root opened and passed on', () => {
    const h = handoff('root:nobody');
    expectSplitAtCursor(h);
    const all = [...h.before, ...h.after];
    const byPid = new Map(all.map((t) => [t.task.pid, t]));
    expect(byPid.get(1)?.creds?.uid).toBe(0);
    for (const f of h.fixture) {
      const t = byPid.get(f.pid);
      expect(t, `fixture task ${f.pid} (uid ${f.uid})`).toBeDefined();
      expect(t!.creds!.euid).toBe(f.uid);
      expect(t!.creds!.uid).toBe(f.uid);
    }
    const rootAfter = h.fixture.filter((f) => f.uid === 0 && pidsOf(h.after).includes(f.pid));
    expect(rootAfter.length, 'root\'s tasks above the cursor, read by nobody').toBeGreaterThan(0);
    expect(pidsOf(all), 'the requester itself').toContain(h.reqPid);
    // control: nobody's own dump has none of them
    const own = decodeAll(probe(ALL, ['-b', '4096'], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']));
    expect(own.done).toBe(0);
    for (const f of h.fixture.filter((x) => x.uid === 0)) expect(pidsOf(own.tasks)).not.toContain(f.pid);
  });

  it('a requester in a pid namespace, read from outside: that namespace only, its own pid numbers', () => {
    const h = handoff('ns:root');
    expectSplitAtCursor(h);
    const all = [...h.before, ...h.after];
    expect(h.nsFixture).toHaveLength(N);
    expect(new Set(pidsOf(all))).toEqual(new Set([1, ...h.nsFixture]));
    expect(all).toHaveLength(N + 1);
    const byPid = new Map(all.map((t) => [t.task.pid, t]));
    expect(byPid.get(1)!.task.ppid, 'the parent of the namespace\'s pid 1 is outside it').toBe(0);
    for (const p of h.nsFixture) {
      expect(byPid.get(p)!.task.ppid).toBe(1);
      expect(byPid.get(p)!.task.comm).toBe('tdprobe');
    }
    expect(pidsOf(h.after).some((p) => h.nsFixture.includes(p)), 'namespace tasks above the cursor').toBe(true);
    for (const f of h.fixture) expect(pidsOf(all), `outside task ${f.pid}`).not.toContain(f.pid);
  });

  it('a requester outside, read from inside a pid namespace: every task, in the requester\'s pid numbers', () => {
    const h = handoff('root:ns');
    expectSplitAtCursor(h);
    const all = [...h.before, ...h.after];
    const pids = pidsOf(all);
    expect(pids).toContain(1);
    expect(pids).toEqual(expect.arrayContaining(h.fixture.map((f) => f.pid)));
    expect(pidsOf(h.after).some((p) => h.fixture.some((f) => f.pid === p)), 'outside tasks above the cursor').toBe(true);
    // the reader is pid 1 of its namespace; in the requester's numbering it is the child of READERPID
    const reader = all.filter((t) => t.task.ppid === h.readerPid);
    expect(reader).toHaveLength(1);
    const inside = all.filter((t) => t.task.ppid === reader[0]!.task.pid);
    expect(inside).toHaveLength(N);
    for (const t of inside) expect(t.task.pid, 'a pid of the requester\'s namespace, not the reader\'s 2..N+1').toBeGreaterThan(N + 1);
  });

  it('a requester in a user namespace, read by root outside: ids translated into the requester\'s namespace', () => {
    // userns: nobody, then root of a user namespace that maps 0 to 65534, with N tasks there; tasks of
    // other user namespaces (the fixture, even nobody's) are not readable from it (commoncap)
    const h = handoff('userns:root');
    expectSplitAtCursor(h);
    const all = [...h.before, ...h.after];
    expect(h.nsFixture).toHaveLength(N);
    expect(new Set(pidsOf(all))).toEqual(new Set([...h.nsFixture, h.reqPid]));
    for (const t of all) {
      expect([t.creds!.uid, t.creds!.euid, t.creds!.gid], `pid ${t.task.pid}: 65534 outside is 0 inside`).toEqual([0, 0, 0]);
    }
    // and the reverse: root's dump read inside that user namespace keeps root's numbering
    const r = handoff('root:userns');
    expectSplitAtCursor(r);
    const byPid = new Map([...r.before, ...r.after].map((t) => [t.task.pid, t]));
    for (const f of r.fixture) expect(byPid.get(f.pid)?.creds?.uid, `fixture ${f.pid}`).toBe(f.uid);
  });

  it('a requester in a time namespace: start times in its boot-time clock, whoever reads', () => {
    const req = request({ dump: true, show: SHOW_CRED | SHOW_EXT, strategy: DUMP_ALL, pid: 0 });
    const AHEAD = 1_000_000n * 1_000_000_000n; // the time role's boot-time offset, in ns
    const inTime = handoff('time:root', [], req);
    expectSplitAtCursor(inTime);
    const outside = handoff('root:time', [], req);
    expectSplitAtCursor(outside);
    for (const t of [...inTime.before, ...inTime.after]) expect(t.ext!.startTimeNs >= AHEAD, `pid ${t.task.pid}`).toBe(true);
    for (const t of [...outside.before, ...outside.after]) expect(t.ext!.startTimeNs < AHEAD, `pid ${t.task.pid}`).toBe(true);
  });

  it('a handed SUBTREE dump (snapshot in the first batch) keeps the requester\'s visibility too', () => {
    const h = handoff('nobody:root', [], request({ dump: true, show: SHOW_CRED, strategy: DUMP_SUBTREE, pid: 1 }));
    expect(h.ends).toEqual(['done']);
    expect(h.done).toBe(0);
    const all = [...h.before, ...h.after];
    expect(h.before.length).toBeGreaterThan(0);
    expect(h.after.length).toBeGreaterThan(0);
    for (const t of all) expect(t.creds!.euid, `pid ${t.task.pid}`).toBe(NOBODY);
    const mine = h.fixture.filter((f) => f.uid === NOBODY).map((f) => f.pid);
    expect(new Set(pidsOf(all))).toEqual(new Set([...mine, h.reqPid]));
    expect(all).toHaveLength(N + 1);
  });
});

describe('what a dump holds is released on every path', () => {
  const insmod = (): void => { execFileSync('insmod', [MODULE]); };
  const rmmod = (): string => {
    try { execFileSync('rmmod', ['task_diag'], { stdio: 'pipe' }); return ''; } catch (e) { return String((e as { stderr: Buffer }).stderr); }
  };
  const settle = async (): Promise<number> => {
    // a socket closed mid-dump runs .done from socket release or a work item: give it a moment
    for (let i = 0; i < 50 && dumpViews() !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    return dumpViews();
  };
  afterAll(() => {
    try { execFileSync('grep', ['-q', '^task_diag ', '/proc/modules']); } catch { insmod(); }
  });

  it('normal end, error end: no view left', async () => {
    expect(await settle()).toBe(0);
    expect(decodeAll(probe(ALL)).done).toBe(0);
    expect(decodeAll(probe(request({ dump: true, strategy: 7n, pid: 1 }))).done).toBe(-22);
    expect(decodeAll(probe(request({ dump: true, strategy: DUMP_SUBTREE, pid: 1073741808 }))).done).toBe(-3);
    expect(handoff('nobody:root').done).toBe(0);
    expect(await settle()).toBe(0);
  });

  for (const spec of ['nobody:root', 'root:nobody', 'ns:root', 'root:ns']) {
    it(`${spec}: socket closed by the reader mid-dump -> views released, module unloads cleanly`, async () => {
      // each recv() of a dump also produces the next batch: 2.5N tasks make sure that the reader's one
      // datagram leaves more to come in any of the four views
      // -W: the reader keeps the socket, its dump unfinished, until we close its standard input
      const c = spawn(TDPROBE, ['-X', spec, '-b', '4096', '-k', '1', '-m', '1', '-W', '-c', String(5 * N / 2), ALL.toString('hex')], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let out = '';
      const exited = new Promise<number | null>((res) => c.on('exit', (code) => res(code)));
      const ended = new Promise<void>((res) => {
        c.stdout.on('data', (d: Buffer) => { out += d.toString(); if (/^END \w+\n/m.test(out)) res(); });
        void exited.then(() => res());
      });
      try {
        await ended;
        expect(out).toContain('END max');
        expect(dumpViews(), 'the open dump holds one view').toBe(1);
        expect(rmmod(), 'the open dump pins the module').toMatch(/in use|busy/i);
      } finally {
        c.stdin!.end();
      }
      expect(await exited).toBe(0);
      expect(await settle()).toBe(0);
      expect(rmmod()).toBe('');
      insmod();
      expect(decodeAll(probe(ALL)).done).toBe(0);
    });
  }

  it('requester gone, its pid namespace dead, before the reader reads on: no task from outside, released, unloads', async () => {
    const h = handoff('ns:root', ['-q']);
    expect(h.ends).toEqual(['done']);
    expect(h.done).toBe(0);
    for (const t of h.after) expect(t.task.pid, 'only the dead namespace\'s own numbering').toBeLessThanOrEqual(N + 1);
    for (const f of h.fixture) expect(pidsOf(h.after)).not.toContain(f.pid);
    expect(await settle()).toBe(0);
    expect(rmmod()).toBe('');
    insmod();
  });
});
